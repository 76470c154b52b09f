package shard

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
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

// A prepared INSERT that leaves out the generated key gets a `?` per row for it: Gen says
// where, the client's parameters are the others, and Bind routes each row by its key.
func TestPreparedInsertGeneratesKeys(t *testing.T) {
	rule := dbRule("t_gen", "mod", "id", "ds0", "ds1")
	rule.KeyGenerator = &proxyconfig.KeyGenerator{Type: "snowflake", WorkerID: new(3)}
	rt := mustRouter(t, rule)
	p, err := rt.Prepare("INSERT INTO t_gen (a, b) VALUES (?, 'x'), (?, ?) ON DUPLICATE KEY UPDATE b = ?", "db0")
	if err != nil {
		t.Fatal(err)
	}
	g := p.Gen()
	if g == nil || p.Params != 6 || p.ClientParams() != 4 || !slices.Equal(g.Slots(), []int{1, 4}) {
		t.Fatalf("gen %v, params %d, client params %d", g, p.Params, p.ClientParams())
	}
	// Keys 10 and 11 go to different shards: one INSERT per shard with its row.
	plan, err := p.Bind([]any{int64(1), int64(10), int64(2), "y", int64(11), "z"})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Targets) != 2 {
		t.Fatalf("targets %+v", plan.Targets)
	}
	for _, tg := range plan.Targets {
		if !strings.Contains(tg.SQL, "`id`") || strings.Count(tg.SQL, "?") != len(tg.Params) {
			t.Fatalf("target %+v", tg)
		}
	}
	// The same text with the key given is planned as it is; a text INSERT of the first text
	// still gets literal keys from FillKeys (its plan is cached apart).
	p2, err := rt.Prepare("INSERT INTO t_gen (a, id) VALUES (?, ?)", "db0")
	if err != nil || p2.Gen() != nil || p2.ClientParams() != 2 {
		t.Fatalf("key given: %v %v", p2.Gen(), err)
	}
	if out, _, ok := rt.FillKeys("INSERT INTO t_gen (a, b) VALUES (1, 'x')", "db0"); !ok || strings.Contains(out, "?") {
		t.Fatalf("FillKeys: %q %v", out, ok)
	}
	// A text with the marker's digits is refused, not mistaken.
	if _, err := rt.Prepare(fmt.Sprintf("INSERT INTO t_gen (a) VALUES (%d)", keyMarker), "db0"); err == nil {
		t.Fatal("a text holding the marker was planned")
	}
}

// FuzzKeyGen: any text through FillKeys and Prepare on a table that generates keys: no panic,
// errors are MySQL errors, a prepared INSERT with generated keys has a slot per row among its
// parameters, and binding it (keys in the slots) routes every row.
func FuzzKeyGen(f *testing.F) {
	for _, s := range []string{
		"INSERT INTO t_gen (a) VALUES (1), (2)", "INSERT INTO t_gen (a, b) VALUES (?, ?), (?, 'x')",
		"INSERT INTO t_gen (a) VALUES (?) ON DUPLICATE KEY UPDATE a = ?", "REPLACE INTO t_gen (a) VALUES (?)",
		"INSERT INTO t_gen SET a = ?", "INSERT INTO t_gen (id, a) VALUES (?, ?)", "INSERT INTO t_gen (a) SELECT 1",
		"/* c */ INSERT INTO db0.t_gen (a) VALUES ('?')", "INSERT INTO t_gen (a) VALUES (7318034651149732093)",
	} {
		f.Add(s)
	}
	rule := dbRule("t_gen", "mod", "id", "ds0", "ds1")
	rule.KeyGenerator = &proxyconfig.KeyGenerator{Type: "snowflake", WorkerID: new(9)}
	rt := mustRouter(f, rule)
	f.Fuzz(func(t *testing.T, sql string) {
		if out, _, ok := rt.FillKeys(sql, "db0"); ok && out == "" {
			t.Fatalf("%q: FillKeys ok with no text", sql)
		}
		p, err := rt.Prepare(sql, "db0")
		if err != nil {
			var me *mysql.Error
			if !errors.As(err, &me) || strings.Contains(me.Message, "internal error") {
				t.Fatalf("%q: %v", sql, err)
			}
			return
		}
		g := p.Gen()
		if g == nil {
			return
		}
		slots := g.Slots()
		if len(slots) == 0 || p.ClientParams()+len(slots) != p.Params || slots[len(slots)-1] >= p.Params {
			t.Fatalf("%q: slots %v of %d parameters", sql, slots, p.Params)
		}
		for i := 1; i < len(slots); i++ {
			if slots[i] <= slots[i-1] {
				t.Fatalf("%q: slots %v not increasing", sql, slots)
			}
		}
		args := make([]any, p.Params)
		for i := range args {
			args[i] = int64(i)
		}
		for _, s := range slots {
			args[s] = g.Next()
		}
		plan, err := p.Bind(args)
		if err != nil {
			var me *mysql.Error
			if !errors.As(err, &me) {
				t.Fatalf("%q: Bind: %v", sql, err)
			}
			return
		}
		if len(plan.Targets) == 0 {
			t.Fatalf("%q: no target", sql)
		}
	})
}
