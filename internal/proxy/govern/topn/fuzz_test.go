package topn

import (
	"testing"
	"time"
)

func FuzzObserve(f *testing.F) {
	f.Add(3, []byte("abcabcxyz"))
	f.Add(0, []byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, n int, ops []byte) {
		tr := New("d", n%50)
		for i, op := range ops {
			if op%17 == 0 {
				tr.Rebalance()
				continue
			}
			tr.Observe(string(rune('a'+op%32)), time.Duration(i+1))
		}
		if got := len(tr.AppendSamples(nil)); got > max(n%50, 0)+1 {
			t.Fatalf("%d series for n=%d", got, n%50)
		}
	})
}
