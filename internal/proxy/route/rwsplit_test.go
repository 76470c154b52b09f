package route

import (
	"slices"
	"sync"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

var (
	factSelect       = &sqlparse.Facts{Kind: sqlparse.KindSelect, Class: sqlparse.ClassRead, ReadOnly: true}
	factSelectUpdate = &sqlparse.Facts{Kind: sqlparse.KindSelect, Class: sqlparse.ClassRead, LockingRead: true}
	factSleep        = &sqlparse.Facts{Kind: sqlparse.KindSelect, Class: sqlparse.ClassRead, ReadOnly: true, SideEffects: true}
	factInsert       = &sqlparse.Facts{Kind: sqlparse.KindInsert, Class: sqlparse.ClassWrite}
	factUpdate       = &sqlparse.Facts{Kind: sqlparse.KindUpdate, Class: sqlparse.ClassWrite}
	factBegin        = &sqlparse.Facts{Kind: sqlparse.KindBegin, Class: sqlparse.ClassTransaction}
	factCommit       = &sqlparse.Facts{Kind: sqlparse.KindCommit, Class: sqlparse.ClassTransaction}
	factAutocommit0  = &sqlparse.Facts{Kind: sqlparse.KindSet, Class: sqlparse.ClassTransaction, AutocommitOff: true}
	factSetNames     = &sqlparse.Facts{Kind: sqlparse.KindSet, Class: sqlparse.ClassTransaction}
	factShow         = &sqlparse.Facts{Kind: sqlparse.KindShow, Class: sqlparse.ClassRead, ReadOnly: true}
	factGetLock      = &sqlparse.Facts{Kind: sqlparse.KindSelect, Class: sqlparse.ClassRead, SideEffects: true, Locks: true}
	factMulti        = &sqlparse.Facts{Kind: sqlparse.KindSelect, Class: sqlparse.ClassRead, ReadOnly: true, Multi: true}
	factDDL          = &sqlparse.Facts{Kind: sqlparse.KindDDL, Class: sqlparse.ClassDDL}
	factParseErr     = &sqlparse.Facts{Kind: sqlparse.KindSelect, ParseErr: errTest{}}
)

type errTest struct{}

func (errTest) Error() string { return "parse error" }

// nodes: 0 readwrite, 1 read, 2 read.
func testNodes() []NodeInfo {
	return []NodeInfo{
		{Name: "rw", Role: RoleReadWrite, Weight: 1},
		{Name: "r1", Role: RoleRead, Weight: 1},
		{Name: "r2", Role: RoleRead, Weight: 1},
	}
}

func mustRouter(t *testing.T, cfg RWConfig, nodes []NodeInfo) *RWRouter {
	t.Helper()
	r, err := NewRWRouter(cfg, nodes)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRWRouteRules(t *testing.T) {
	cfg := RWConfig{
		DefaultTarget: "readwrite",
		Rules: []RWRule{
			// A generic rule listed first still runs after every regex rule.
			{Name: "generic", Type: RuleGeneric, AlgorithmName: KindRoundRobin},
			{Name: "report-to-writer", Type: RuleRegex, Regex: []string{"^SELECT .* FROM report"}, Target: "readwrite"},
			{Name: "select-read", Type: RuleRegex, Regex: []string{"^select", "^SELECT"}, Target: "read", AlgorithmName: KindRandom},
			{Name: "show-rw", Regex: []string{"SHOW"}, Target: "readwrite"}, // type inferred: regex
		},
	}
	r := mustRouter(t, cfg, testNodes())
	cases := []struct {
		name   string
		sql    string
		f      *sqlparse.Facts
		inTx   bool
		target Target
		rule   string
	}{
		{"regex first match in order", "SELECT * FROM report", factSelect, false, TargetReadWrite, "report-to-writer"},
		{"second regex", "SELECT 1", factSelect, false, TargetRead, "select-read"},
		{"any regex of a rule", "select 1", factSelect, false, TargetRead, "select-read"},
		{"regex is case-sensitive and unanchored", "show tables; -- SHOW", factShow, false, TargetReadWrite, "show-rw"},
		{"generic after regex rules: read", "show tables", factShow, false, TargetRead, "generic"},
		{"generic: comments and whitespace", "/* hint */\n\t  select 1", factSelect, false, TargetRead, "generic"},
		{"generic: leading comment defeats regex, not facts", "/* x */ SELECT a FROM t", factSelect, false, TargetRead, "generic"},
		{"generic: CTE read", "WITH c AS (SELECT 1) SELECT * FROM c", factSelect, false, TargetRead, "generic"},
		{"generic: side effects go readwrite", "DO SLEEP(1)", factSleep, false, TargetReadWrite, "generic"},
		{"generic: SET goes readwrite", "SET NAMES utf8mb4", factSetNames, false, TargetReadWrite, "generic"},
		{"generic: parse error goes readwrite", "SELECT ???", &sqlparse.Facts{Kind: sqlparse.KindSelect, ReadOnly: true, ParseErr: errTest{}}, false, TargetReadWrite, RuleNameReadWrite},

		{"write beats a read regex", "SELECT 1; INSERT", factInsert, false, TargetReadWrite, RuleNameReadWrite},
		{"CTE update beats a read regex", "SELECT 1 FROM dual", factUpdate, false, TargetReadWrite, RuleNameReadWrite},
		{"locking read", "SELECT * FROM t FOR UPDATE", factSelectUpdate, false, TargetReadWrite, RuleNameReadWrite},
		{"GET_LOCK", "SELECT GET_LOCK('a', 1)", factGetLock, false, TargetReadWrite, RuleNameReadWrite},
		{"BEGIN", "BEGIN", factBegin, false, TargetReadWrite, RuleNameReadWrite},
		{"COMMIT", "COMMIT", factCommit, false, TargetReadWrite, RuleNameReadWrite},
		{"autocommit off", "SET autocommit=0", factAutocommit0, false, TargetReadWrite, RuleNameReadWrite},
		{"read inside a transaction", "SELECT 1", factSelect, true, TargetReadWrite, RuleNameReadWrite},
		{"multi-statement", "SELECT 1; SELECT 2", factMulti, false, TargetReadWrite, RuleNameReadWrite},
		{"DDL", "SELECT", factDDL, false, TargetReadWrite, RuleNameReadWrite},
		{"unparsable select", "SELECT ?!", factParseErr, false, TargetReadWrite, RuleNameReadWrite},
		{"no facts: regex only", "SELECT 1", nil, false, TargetRead, "select-read"},
		{"no facts: generic says readwrite", "foo", nil, false, TargetReadWrite, "generic"},
		{"no facts in a transaction", "SELECT 1", nil, true, TargetReadWrite, RuleNameReadWrite},
	}
	for _, c := range cases {
		d := r.Route(c.sql, c.f, c.inTx)
		if d.Target != c.target || d.Rule != c.rule {
			t.Errorf("%s: Route(%q) = %v/%q, want %v/%q", c.name, c.sql, d.Target, d.Rule, c.target, c.rule)
		}
	}
}

func TestRWRouteDefaultTarget(t *testing.T) {
	for _, def := range []string{"read", "readwrite", ""} {
		r := mustRouter(t, RWConfig{DefaultTarget: def,
			Rules: []RWRule{{Name: "w", Regex: []string{"^INSERT"}, Target: "readwrite"}}}, testNodes())
		d := r.Route("SELECT 1", factSelect, false)
		want := TargetReadWrite
		if def == "read" {
			want = TargetRead
		}
		if d.Target != want || d.Rule != RuleNameDefault {
			t.Errorf("default %q: got %v/%q", def, d.Target, d.Rule)
		}
		// The default target never sends a write to a reader.
		if d := r.Route("UPDATE t SET a=1", factUpdate, false); d.Target != TargetReadWrite {
			t.Errorf("default %q: update routed %v", def, d.Target)
		}
	}
}

func TestRWPick(t *testing.T) {
	r := mustRouter(t, RWConfig{DefaultTarget: "read",
		Rules: []RWRule{{Name: "rr", Type: RuleGeneric, AlgorithmName: KindRoundRobin}}}, testNodes())
	d := r.Route("SELECT 1", factSelect, false)
	seen := map[int]int{}
	for range 10 {
		ep, ok := d.Pick(nil)
		if !ok || ep.Role != RoleRead {
			t.Fatalf("Pick = %+v %v", ep, ok)
		}
		seen[ep.Index]++
	}
	if seen[1] != 5 || seen[2] != 5 {
		t.Fatalf("round robin over readers: %v", seen)
	}
	w := r.Route("INSERT INTO t VALUES (1)", factInsert, false)
	if ep, ok := w.Pick(nil); !ok || ep.Index != 0 || ep.Role != RoleReadWrite {
		t.Fatalf("write Pick = %+v %v", ep, ok)
	}

	// usable filters; with no usable reader the read falls back to the writer.
	only2 := func(i int) bool { return i != 1 }
	for range 4 {
		if ep, _ := d.Pick(only2); ep.Index != 2 {
			t.Fatalf("Pick(usable) = %+v", ep)
		}
	}
	noReaders := func(i int) bool { return i == 0 }
	if ep, ok := d.Pick(noReaders); !ok || ep.Index != 0 || ep.Role != RoleReadWrite {
		t.Fatalf("fallback Pick = %+v %v", ep, ok)
	}
	if ep, ok := d.Pick(func(int) bool { return false }); ok || ep.Index != -1 {
		t.Fatalf("nothing usable: Pick = %+v %v", ep, ok)
	}
	if ep, ok := w.Pick(func(i int) bool { return i != 0 }); ok {
		t.Fatalf("write with the writer unusable picked %+v", ep)
	}
	if ep, ok := (Decision{}).Pick(nil); ok {
		t.Fatalf("zero Decision picked %+v", ep)
	}

	// Membership changes apply to decisions made before.
	r.SetMembership([]int{2}, []int{0, 1})
	if ep, _ := w.Pick(nil); ep.Index != 2 {
		t.Fatalf("after failover, write picked %+v", ep)
	}
	for range 4 {
		if ep, _ := d.Pick(nil); ep.Index == 2 {
			t.Fatalf("after failover, read picked the writer %+v", ep)
		}
	}
	r.SetMembership([]int{2}, nil)
	if ep, _ := d.Pick(nil); ep.Index != 2 || ep.Role != RoleReadWrite {
		t.Fatalf("no readers: read picked %+v", ep)
	}
	r.SetMembership(nil, []int{1, 5, -1, 1})
	ws, rs := r.Membership()
	if len(ws) != 0 || !slices.Equal(rs, []int{1}) {
		t.Fatalf("Membership() = %v %v", ws, rs)
	}
	if ep, ok := w.Pick(nil); ok {
		t.Fatalf("no writer: write picked %+v", ep)
	}
	if ep, ok := w.ToWriter().Pick(nil); ok {
		t.Fatalf("no writer: ToWriter picked %+v", ep)
	}
	if ep, ok := r.Writer().Pick(nil); ok {
		t.Fatalf("no writer: Writer picked %+v", ep)
	}
}

func TestRWPickWeights(t *testing.T) {
	nodes := testNodes()
	nodes[1].Weight = 0 // drained
	r := mustRouter(t, RWConfig{Rules: []RWRule{{Name: "g", Type: RuleGeneric, AlgorithmName: KindRoundRobin}}}, nodes)
	d := r.Route("SELECT 1", factSelect, false)
	for range 5 {
		if ep, _ := d.Pick(nil); ep.Index != 2 {
			t.Fatalf("drained node picked: %+v", ep)
		}
	}
}

func TestRWNoReadNodes(t *testing.T) {
	// Pisanix: a read target uses the readwrite nodes when there is no read node.
	r := mustRouter(t, RWConfig{DefaultTarget: "read"}, []NodeInfo{{Name: "a", Role: RoleReadWrite, Weight: 1}, {Name: "b", Weight: 1}})
	d := r.Route("SELECT 1", factSelect, false)
	if d.Target != TargetRead {
		t.Fatalf("target %v", d.Target)
	}
	seen := map[int]bool{}
	for range 50 {
		ep, ok := d.Pick(nil)
		if !ok || ep.Role != RoleReadWrite {
			t.Fatalf("Pick = %+v %v", ep, ok)
		}
		seen[ep.Index] = true
	}
	if !seen[0] || !seen[1] {
		t.Fatalf("random over both readwrite nodes: %v", seen)
	}
}

func TestNewRWRouterErrors(t *testing.T) {
	bad := []struct {
		name  string
		cfg   RWConfig
		nodes []NodeInfo
	}{
		{"no nodes", RWConfig{}, nil},
		{"bad default", RWConfig{DefaultTarget: "write"}, testNodes()},
		{"bad regex", RWConfig{Rules: []RWRule{{Name: "x", Regex: []string{"("}, Target: "read"}}}, testNodes()},
		{"regex without target", RWConfig{Rules: []RWRule{{Name: "x", Regex: []string{"a"}}}}, testNodes()},
		{"regex type without regex", RWConfig{Rules: []RWRule{{Name: "x", Type: RuleRegex, Target: "read"}}}, testNodes()},
		{"bad target", RWConfig{Rules: []RWRule{{Name: "x", Regex: []string{"a"}, Target: "slave"}}}, testNodes()},
		{"bad algorithm", RWConfig{Rules: []RWRule{{Name: "x", Type: RuleGeneric, AlgorithmName: "lru"}}}, testNodes()},
		{"bad type", RWConfig{Rules: []RWRule{{Name: "x", Type: "fancy"}}}, testNodes()},
		{"bad role", RWConfig{}, []NodeInfo{{Name: "a", Role: "master"}}},
		{"negative weight", RWConfig{}, []NodeInfo{{Name: "a", Weight: -1}}},
	}
	for _, c := range bad {
		if _, err := NewRWRouter(c.cfg, c.nodes); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

func TestRWConfigFrom(t *testing.T) {
	static := &proxyconfig.RWSplittingStatic{DefaultTarget: "read", Rules: []proxyconfig.Rule{
		{Name: "a", Regex: []string{"^x"}, Target: "read", AlgorithmName: "roundrobin"},
		{Name: "b", AlgorithmName: "random"},
	}}
	disc := &proxyconfig.Discovery{Type: "mha"}
	dynamic := &proxyconfig.RWSplittingDynamic{DefaultTarget: "readwrite", Discovery: disc}

	cfg, d := RWConfigFrom(&proxyconfig.ReadWriteSplitting{Static: static, Dynamic: dynamic})
	if d != nil || cfg.DefaultTarget != "read" || len(cfg.Rules) != 2 ||
		cfg.Rules[0].Type != RuleRegex || cfg.Rules[1].Type != RuleGeneric || cfg.Rules[0].AlgorithmName != "roundrobin" {
		t.Fatalf("static wins: %+v %v", cfg, d)
	}
	cfg, d = RWConfigFrom(&proxyconfig.ReadWriteSplitting{Dynamic: dynamic})
	if d != disc || cfg.DefaultTarget != "readwrite" {
		t.Fatalf("dynamic: %+v %v", cfg, d)
	}
	if cfg, d := RWConfigFrom(nil); d != nil || len(cfg.Rules) != 0 {
		t.Fatal("nil config")
	}

	w := 3
	nodes := []proxyconfig.Node{{Name: "a", Host: "::1", Port: 3306, Role: "read", Weight: &w}, {Name: "b", Host: "h", Port: 1}}
	ni := NodeInfos(nodes)
	if ni[0] != (NodeInfo{Name: "a", Role: RoleRead, Weight: 3}) || ni[1] != (NodeInfo{Name: "b", Role: RoleReadWrite, Weight: 1}) {
		t.Fatalf("NodeInfos = %+v", ni)
	}
	dn := DiscoveryNodes(nodes)
	if dn[0].Addr != "[::1]:3306" || dn[1].Role != RoleReadWrite {
		t.Fatalf("DiscoveryNodes = %+v", dn)
	}
}

func TestRWRouteNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	r := mustRouter(t, RWConfig{Rules: []RWRule{
		{Name: "w", Regex: []string{"^(?i)insert"}, Target: "readwrite"},
		{Name: "g", Type: RuleGeneric, AlgorithmName: KindRoundRobin},
	}}, testNodes())
	usable := func(i int) bool { return i != 1 }
	allocs := testing.AllocsPerRun(1000, func() {
		d := r.Route("SELECT * FROM t WHERE id = 1", factSelect, false)
		if _, ok := d.Pick(nil); !ok {
			t.Fatal("no pick")
		}
		if _, ok := d.Pick(usable); !ok {
			t.Fatal("no pick")
		}
		d = r.Route("UPDATE t SET a = 1", factUpdate, false)
		if _, ok := d.Pick(usable); !ok {
			t.Fatal("no pick")
		}
	})
	if allocs != 0 {
		t.Fatalf("Route+Pick allocate %v times", allocs)
	}
}

func TestRWConcurrentMembership(t *testing.T) {
	r := mustRouter(t, RWConfig{Rules: []RWRule{{Name: "g", Type: RuleGeneric, AlgorithmName: KindRoundRobin}}}, testNodes())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := factSelect
			if g%2 == 1 {
				f = factInsert
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := r.Route("x", f, false)
				if ep, ok := d.Pick(func(int) bool { return true }); ok && (ep.Index < 0 || ep.Index > 2) {
					t.Errorf("bad index %d", ep.Index)
					return
				}
			}
		}()
	}
	sets := [][2][]int{{{0}, {1, 2}}, {{2}, {1}}, {nil, {1}}, {{1}, nil}}
	for i := range 2000 {
		s := sets[i%len(sets)]
		r.SetMembership(s[0], s[1])
	}
	close(stop)
	wg.Wait()
}

func BenchmarkRWRoutePick(b *testing.B) {
	r, _ := NewRWRouter(RWConfig{Rules: []RWRule{
		{Name: "w", Regex: []string{"^INSERT"}, Target: "readwrite"},
		{Name: "g", Type: RuleGeneric, AlgorithmName: KindRoundRobin},
	}}, testNodes())
	b.ReportAllocs()
	for b.Loop() {
		d := r.Route("SELECT c FROM sbtest1 WHERE id=1", factSelect, false)
		d.Pick(nil)
	}
}

// With the real parser: comments, whitespace and CTEs do not fool the generic
// rule; writes hidden behind them still go to the writer.
func TestRWRouteWithParser(t *testing.T) {
	p := sqlparse.New(sqlparse.Options{})
	r := mustRouter(t, RWConfig{Rules: []RWRule{{Name: "generic", Type: RuleGeneric}}}, testNodes())
	for sql, want := range map[string]Target{
		"/* c */ \n\t select * from t":                        TargetRead,
		"  -- c\nSELECT 1":                                    TargetRead,
		"WITH c AS (SELECT 1 AS a) SELECT a FROM c":           TargetRead,
		"SHOW TABLES":                                         TargetRead,
		"/* select */ UPDATE t SET a = 1":                     TargetReadWrite,
		"WITH c AS (SELECT 1 AS a) UPDATE t, c SET t.a = c.a": TargetReadWrite,
		"SELECT * FROM t FOR UPDATE":                          TargetReadWrite,
		"SELECT * FROM t LOCK IN SHARE MODE":                  TargetReadWrite,
		"INSERT INTO t VALUES (1)":                            TargetReadWrite,
		"  begin":                                             TargetReadWrite,
		"SET autocommit = 0":                                  TargetReadWrite,
		"SELECT GET_LOCK('x', 1)":                             TargetReadWrite,
		"SELECT SLEEP(1)":                                     TargetReadWrite,
		"SELECT 1 INTO @x":                                    TargetReadWrite,
	} {
		if d := r.Route(sql, p.Parse(sql), false); d.Target != want {
			t.Errorf("Route(%q) = %v (rule %s), want %v", sql, d.Target, d.Rule, want)
		}
	}
}

// A router whose nodes include no readwrite node reports NoWriter; Reader
// picks a reader, and a readwrite decision finds no node (the caller refuses
// the statement).
func TestRWRouterNoWriter(t *testing.T) {
	r := mustRouter(t, RWConfig{DefaultTarget: "read"}, []NodeInfo{
		{Name: "r1", Role: RoleRead, Weight: 1}, {Name: "r2", Role: RoleRead, Weight: 1}})
	if !r.NoWriter() {
		t.Fatal("NoWriter false without a readwrite node")
	}
	for i := 0; i < 10; i++ {
		ep, ok := r.Reader().Pick(nil)
		if !ok || ep.Role != RoleRead || (ep.Index != 0 && ep.Index != 1) {
			t.Fatalf("Reader().Pick = %+v %v", ep, ok)
		}
	}
	if _, ok := r.Writer().Pick(nil); ok {
		t.Fatal("a writer was picked on a router without one")
	}
	if mustRouter(t, RWConfig{}, testNodes()).NoWriter() {
		t.Fatal("NoWriter true with a readwrite node")
	}
}
