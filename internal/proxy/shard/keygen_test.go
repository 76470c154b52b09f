package shard

import (
	"testing"
	"time"
)

func TestSnowflake(t *testing.T) {
	now := SnowflakeEpoch.Add(time.Hour)
	g := NewSnowflake(5)
	g.now = func() time.Time { return now }
	a, b := g.Next(), g.Next()
	if b != a+1 || a>>22 != time.Hour.Milliseconds() || (a>>12)&1023 != 5 {
		t.Fatalf("keys %d %d", a, b)
	}
	// 4096 keys in one millisecond run ahead of the clock, still growing.
	prev := b
	for i := 0; i < 5000; i++ {
		k := g.Next()
		if k <= prev || (k>>12)&1023 != 5 {
			t.Fatalf("key %d after %d", k, prev)
		}
		prev = k
	}
	// The clock going back does not make keys go back.
	now = now.Add(-time.Minute)
	if k := g.Next(); k <= prev {
		t.Fatalf("key %d after %d with the clock back", k, prev)
	}
}
