// Package backoff is the one retry pacing of the repository: exponential growth from Min,
// capped at Max, with full jitter (each wait is uniform in [0, ceiling]), so that many clients
// failing together (sidecars after a controller restart, pools after a backend restart) spread
// their retries instead of arriving in waves.
//
//	b := backoff.New(500*time.Millisecond, 30*time.Second)
//	for {
//		if err := try(); err == nil {
//			b.Reset()
//			...
//		}
//		if !backoff.Sleep(ctx, b.Next()) {
//			return ctx.Err()
//		}
//	}
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff paces retries. The zero value is not usable; make one with New. A Backoff is not safe
// for concurrent use (each retry loop owns one).
type Backoff struct {
	min, max time.Duration
	// ceiling is the upper bound of the next wait: min, 2·min, 4·min, … capped at max.
	ceiling time.Duration
	// rand returns a uniform value in [0, n]; replaced in tests.
	rand func(n time.Duration) time.Duration
}

// New returns a backoff growing from min to max. min <= 0 is taken as 1 ms, max < min as min.
func New(min, max time.Duration) *Backoff {
	if min <= 0 {
		min = time.Millisecond
	}
	if max < min {
		max = min
	}
	return &Backoff{min: min, max: max, ceiling: min, rand: uniform}
}

func uniform(n time.Duration) time.Duration { return rand.N(n + 1) }

// Next returns the wait before the next attempt, uniform in [0, ceiling] (full jitter), and
// doubles the ceiling up to max.
func (b *Backoff) Next() time.Duration {
	d := b.rand(b.ceiling)
	if b.ceiling < b.max {
		b.ceiling = min(b.ceiling*2, b.max)
	}
	return d
}

// Ceiling is the upper bound of the next wait (for logs: "retry within").
func (b *Backoff) Ceiling() time.Duration { return b.ceiling }

// Reset starts again from min, after a success.
func (b *Backoff) Reset() { b.ceiling = b.min }

// Sleep waits d or until ctx ends; it reports whether the whole wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
