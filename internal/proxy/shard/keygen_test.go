package shard

import (
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
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

// A reloaded configuration (a new Router) goes on from the last key of its worker id: a fresh
// generator would restart its sequence within the same millisecond and repeat keys. The worker
// id comes from the rule, or else from proxy.key_worker_id; neither is refused.
func TestKeyGeneratorSurvivesReload(t *testing.T) {
	rule := dbRule("t_gen", "mod", "id", "ds0", "ds1")
	rule.KeyGenerator = &proxyconfig.KeyGenerator{Type: "snowflake"}
	cfg, l := testConfig(rule)
	if _, err := Compile(cfg, l); err == nil {
		t.Fatal("a key generator without a worker id compiled")
	}
	cfg.Proxy.KeyWorkerID = new(977)
	seen := map[int64]bool{}
	for range 3 {
		rt, err := Compile(cfg, l)
		if err != nil {
			t.Fatal(err)
		}
		g := rt.byName["t_gen"].gen
		for range 3000 {
			k := g.Next()
			if seen[k] || (k>>12)&1023 != 977 {
				t.Fatalf("key %d (worker %d) repeated or of another worker after a reload", k, (k>>12)&1023)
			}
			seen[k] = true
		}
	}
	rule.KeyGenerator.WorkerID = new(12)
	cfg, l = testConfig(rule)
	rt, err := Compile(cfg, l)
	if err != nil {
		t.Fatal(err)
	}
	if k := rt.byName["t_gen"].gen.Next(); (k>>12)&1023 != 12 {
		t.Fatalf("the rule's own worker id is not used: key %d", k)
	}
}
