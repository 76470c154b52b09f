package backoff

import (
	"context"
	"testing"
	"time"
)

func TestCeilingDoublesToMaxAndResets(t *testing.T) {
	b := New(100*time.Millisecond, time.Second)
	var ceilings []time.Duration
	b.rand = func(n time.Duration) time.Duration { ceilings = append(ceilings, n); return n }
	for range 6 {
		b.Next()
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if ceilings[i] != w*time.Millisecond {
			t.Fatalf("wait %d: ceiling %v, want %v (all %v)", i, ceilings[i], w*time.Millisecond, ceilings)
		}
	}
	b.Reset()
	if b.Next(); ceilings[len(ceilings)-1] != 100*time.Millisecond {
		t.Fatalf("after Reset: ceiling %v", ceilings[len(ceilings)-1])
	}
}

// Full jitter: every wait lies in [0, ceiling] and the waits spread over that range.
func TestFullJitter(t *testing.T) {
	b := New(time.Second, time.Second)
	var low, high bool
	for range 2000 {
		d := b.Next()
		if d < 0 || d > time.Second {
			t.Fatalf("wait %v outside [0, 1s]", d)
		}
		low = low || d < 250*time.Millisecond
		high = high || d > 750*time.Millisecond
	}
	if !low || !high {
		t.Fatalf("waits do not spread over [0, 1s]: below 250ms %v, above 750ms %v", low, high)
	}
}

func TestNewClamps(t *testing.T) {
	b := New(0, -1)
	if b.min != time.Millisecond || b.max != time.Millisecond {
		t.Fatalf("min %v max %v", b.min, b.max)
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep with a live context returned false")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if Sleep(ctx, time.Hour) || time.Since(start) > time.Second {
		t.Fatal("Sleep did not end with the context")
	}
	if Sleep(ctx, 0) {
		t.Fatal("Sleep(0) with a cancelled context returned true")
	}
}
