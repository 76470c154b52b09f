package concurrency

import (
	"context"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

func FuzzAcquire(f *testing.F) {
	f.Add("x", 1, 0, int64(0), 0, "x", uint8(3))
	f.Add("(", 0, 5, int64(1000), 2, "", uint8(1))
	f.Add("^a", -1, -1, int64(-5), -1, "a", uint8(9))
	f.Fuzz(func(t *testing.T, rx string, max, dur int, waitNS int64, maxQueue int, sql string, n uint8) {
		if waitNS > int64(time.Millisecond) {
			waitNS = int64(time.Millisecond)
		}
		clk := newClock()
		reg := NewRegistry("d", clk.Now)
		s, err := Compile([]proxyconfig.ConcurrencyControl{{MatchSpec: regexSpec(rx), MaxConcurrency: max, Duration: dur,
			WaitTimeout: proxyconfig.D(time.Duration(waitNS)), MaxQueue: maxQueue}}, reg, Options{})
		if err != nil {
			return
		}
		var ps []Permit
		for i := range int(n % 8) {
			p, _, _, _ := s.Acquire(context.Background(), sql, nil)
			ps = append(ps, p)
			clk.Advance(time.Duration(i) * time.Second)
		}
		if in := reg.InFlight("concurrency_control[0]"); in > max {
			t.Fatalf("in flight %d > %d", in, max)
		}
		for _, p := range ps {
			p.Release()
		}
		if in := reg.InFlight("concurrency_control[0]"); in != 0 {
			t.Fatalf("in flight %d after release", in)
		}
	})
}
