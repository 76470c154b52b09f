package breaker

import (
	"errors"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// FuzzBreaker drives a breaker with arbitrary configs and event sequences:
// no panics, and a state always in {closed, half-open, open}.
func FuzzBreaker(f *testing.F) {
	f.Add(0.5, 4, int64(10e9), int64(5e9), 1, []byte{0, 1, 1, 1, 1, 2, 3, 0})
	f.Add(1.0, 0, int64(1e6), int64(0), 3, []byte{1, 1, 2, 2, 0, 3})
	f.Fuzz(func(t *testing.T, rate float64, minReq int, window, openFor int64, half int, ops []byte) {
		clk := &fakeClock{t: time.Unix(0, 0)}
		b, err := New("d", proxyconfig.EndpointBreaker{ErrorRate: rate, MinRequests: minReq, Window: proxyconfig.D(time.Duration(window)),
			OpenFor: proxyconfig.D(time.Duration(openFor)), HalfOpenMax: half}, clk.Now, quiet)
		if err != nil {
			return
		}
		fail := errors.New("x")
		for _, op := range ops {
			switch op % 4 {
			case 0:
				b.Allow("e")
			case 1:
				b.Report("e", fail, 0)
			case 2:
				b.Report("e", nil, 0)
			case 3:
				clk.Advance(time.Duration(op) * 100 * time.Millisecond)
			}
			if s := b.State("e"); s != Closed && s != HalfOpen && s != Open {
				t.Fatalf("state %d", s)
			}
		}
	})
}
