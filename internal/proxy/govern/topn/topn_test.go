package topn

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxy/govern/govmetrics"
)

func TestTopN(t *testing.T) {
	tr := New("d", 2)
	tr.Observe("a", 3*time.Second)
	tr.Observe("b", time.Second)
	tr.Observe("c", 2*time.Second) // no room: other
	tr.Observe("a", time.Second)
	tr.Observe("", time.Hour) // ignored
	got, other := tr.Snapshot()
	if len(got) != 2 || got["a"] != 4*time.Second || got["b"] != time.Second || other != 2*time.Second {
		t.Fatalf("tracked %v other %s", got, other)
	}
	// c spent more than b since the last rebalance: it replaces b.
	tr.Rebalance()
	got, _ = tr.Snapshot()
	if _, ok := got["b"]; ok || len(got) != 2 {
		t.Fatalf("after rebalance: %v", got)
	}
	if got["c"] != 0 || got["a"] != 4*time.Second {
		t.Fatalf("after rebalance: %v (c's earlier time stays in other)", got)
	}
	tr.Observe("c", time.Second)
	tr.Observe("b", 5*time.Second)
	got, other = tr.Snapshot()
	if got["c"] != time.Second || other != 7*time.Second {
		t.Fatalf("tracked %v other %s", got, other)
	}
	// Shrinking N drops the weakest.
	tr.SetN(1)
	tr.Rebalance()
	got, _ = tr.Snapshot()
	if len(got) != 1 {
		t.Fatalf("after SetN(1): %v", got)
	}
}

func TestZeroN(t *testing.T) {
	tr := New("d", 0)
	tr.Observe("a", time.Second)
	tr.Rebalance()
	got, other := tr.Snapshot()
	if len(got) != 0 || other != time.Second {
		t.Fatalf("%v %s", got, other)
	}
	s := tr.AppendSamples(nil)
	if len(s) != 1 || s[0] != (govmetrics.Sample{Metric: govmetrics.TopFingerprint, Domain: "d", Label: Other, Value: 1}) {
		t.Errorf("samples %+v", s)
	}
}

func TestBoundedCardinality(t *testing.T) {
	tr := New("d", 10)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				tr.Observe(fmt.Sprintf("q%d", (i*7+g)%997), time.Duration(i%13+1)*time.Millisecond)
				if i%1000 == 0 {
					tr.AppendSamples(nil)
				}
			}
		}()
	}
	wg.Wait()
	if n := len(tr.AppendSamples(nil)); n > 11 {
		t.Fatalf("%d series > N+1", n)
	}
	if len(tr.cand) > tr.maxCand() {
		t.Fatalf("candidates unbounded: %d", len(tr.cand))
	}
}

func BenchmarkObserveTracked(b *testing.B) {
	tr := New("d", 20)
	d := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tr.Observe(d, time.Millisecond)
	b.ReportAllocs()
	for b.Loop() {
		tr.Observe(d, time.Millisecond)
	}
}
