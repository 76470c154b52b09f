package govern

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/audit"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/govmetrics"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func selectFacts(table string) *sqlparse.Facts {
	return &sqlparse.Facts{Kind: sqlparse.KindSelect, Class: sqlparse.ClassRead, ReadOnly: true,
		Tables: []sqlparse.Table{{Name: table}}, Fingerprint: "select * from " + table + " where id = ?", Digest: digest}
}

func testConfig(auditPath string) *proxyconfig.Governance {
	c := &proxyconfig.Governance{
		Access: &proxyconfig.Access{Users: []proxyconfig.AccessUser{
			{User: "app", Password: "pw", Schemas: []string{"shop"}, Kinds: []string{"read", "write"}, MaxRows: 500},
		}},
		CircuitBreak: []proxyconfig.CircuitBreak{
			{Name: "no-drop", MatchSpec: proxyconfig.MatchSpec{Regex: []string{`drop\s+table`}, CaseInsensitive: true}},
			{Name: "watch-sleep", MatchSpec: regexSpec("sleep"), DryRun: true},
		},
		ConcurrencyControl: []proxyconfig.ConcurrencyControl{
			{Name: "report", MatchSpec: regexSpec("from report"), MaxConcurrency: 1},
		},
	}
	if auditPath != "" {
		c.Audit = &proxyconfig.Audit{Output: auditPath}
	}
	return c
}

func newChain(t testing.TB, cfg *proxyconfig.Governance, m *govmetrics.Metrics) (*Chain, *State) {
	t.Helper()
	st := NewState("d", m, StateOptions{Logger: quiet})
	c, err := Compile(cfg, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); st.Close() })
	return c, st
}

func req(user, sql string, f *sqlparse.Facts) *Request {
	return &Request{User: user, Schema: "shop", SQL: sql, Facts: f, Command: mysql.ComQuery, ClientAddr: "10.1.1.1:4000"}
}

func TestChain(t *testing.T) {
	c, st := newChain(t, testConfig(""), nil)
	ctx := context.Background()
	tests := []struct {
		name   string
		r      *Request
		code   uint16
		rule   string
		reason string
		msg    string
		dry    string
		conc   string
		rows   uint64
	}{
		{"pass", req("app", "select * from orders where id = 1", selectFacts("orders")), 0, "", "", "", "", "", 500},
		{"unlisted user passes", req("root", "drop database x", &sqlparse.Facts{Kind: sqlparse.KindDDL, Class: sqlparse.ClassDDL}), 0, "", "", "", "", "", 0},
		{"access table", req("app", "select * from hr.pay", &sqlparse.Facts{Kind: sqlparse.KindSelect, Class: sqlparse.ClassRead, Tables: []sqlparse.Table{{Schema: "hr", Name: "pay"}}}),
			mysql.ErrCodeTableAccessDenied, "access:app", govmetrics.ReasonTable, "SELECT command denied to user 'app'@'10.1.1.1' for table `hr`.`pay`", "", "", 0},
		{"access before circuit", req("app", "DROP TABLE orders", &sqlparse.Facts{Kind: sqlparse.KindDDL, Class: sqlparse.ClassDDL, Tables: []sqlparse.Table{{Name: "orders"}}}),
			mysql.ErrCodeTableAccessDenied, "access:app", govmetrics.ReasonKind, "DROP command denied", "", "", 0},
		{"circuit", req("root", "DROP  TABLE orders", nil), mysql.ErrCodeUnknownCom, "no-drop", govmetrics.ReasonCircuitBreak, `audit plugin rejected: circuit_break rule "no-drop"`, "", "", 0},
		{"dry run", req("root", "select sleep(1)", nil), 0, "", "", "", "watch-sleep", "", 0},
		{"concurrency slot", req("root", "select * from report", nil), 0, "", "", "", "", "report", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, rej := c.Check(ctx, tt.r)
			defer c.Finish(tt.r, &v, &Outcome{Duration: time.Millisecond})
			if tt.code == 0 {
				if rej != nil {
					t.Fatalf("rejected: %v", rej)
				}
				if v.DryRun() != tt.dry || v.ConcurrencyRule() != tt.conc || v.MaxRows != tt.rows {
					t.Errorf("verdict = %+v", v)
				}
				return
			}
			if rej == nil {
				t.Fatal("passed")
			}
			if rej.Err.Code != tt.code || rej.Rule != tt.rule || rej.Reason != tt.reason || !strings.Contains(rej.Err.Message, tt.msg) {
				t.Errorf("rejection = %+v %+v", rej, rej.Err)
			}
		})
	}
	if n := st.Concurrency().InFlight("report"); n != 0 {
		t.Errorf("slot leaked: %d", n)
	}
}

func TestNonStatementCommands(t *testing.T) {
	c, _ := newChain(t, &proxyconfig.Governance{CircuitBreak: []proxyconfig.CircuitBreak{{MatchSpec: regexSpec("shop")}}}, nil)
	r := req("app", "shop", nil)
	r.Command = mysql.ComInitDB
	if _, rej := c.Check(context.Background(), r); rej != nil {
		t.Errorf("COM_INIT_DB payload matched a circuit rule: %v", rej)
	}
	for _, cmd := range []byte{mysql.ComQuery, mysql.ComStmtPrepare, mysql.ComStmtExecute} {
		r.Command = cmd
		if _, rej := c.Check(context.Background(), r); rej == nil {
			t.Errorf("command %s not checked", mysql.CommandName(cmd))
		}
	}
}

func TestConcurrencyAcrossReload(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := govmetrics.New(reg)
	st := NewState("d", m, StateOptions{Logger: quiet})
	defer st.Close()
	c1, err := Compile(testConfig(""), st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := req("root", "select * from report", nil)
	v1, rej := c1.Check(ctx, r)
	if rej != nil {
		t.Fatal(rej)
	}
	// Reload with the same rule name: the running statement still counts.
	c2, err := Compile(testConfig(""), st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c1.Close()
	if _, rej := c2.Check(ctx, r); rej == nil || rej.Reason != govmetrics.ReasonConcurrency ||
		rej.Err.Message != `concurrency control plugin rejected: concurrency_control rule "report": 1 statements already running` {
		t.Fatalf("rej = %+v", rej)
	}
	want := `
# HELP pisa_proxy_concurrency_in_flight Statements holding a concurrency_control slot right now, by rule.
# TYPE pisa_proxy_concurrency_in_flight gauge
pisa_proxy_concurrency_in_flight{domain="d",rule="report"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pisa_proxy_concurrency_in_flight"); err != nil {
		t.Error(err)
	}
	// The old chain's permit frees the slot for the new chain.
	c1.Finish(r, &v1, &Outcome{})
	c1.Finish(r, &v1, &Outcome{}) // idempotent
	v2, rej := c2.Check(ctx, r)
	if rej != nil {
		t.Fatal(rej)
	}
	v2.Release()
	// A bad config is rejected whole and leaves the state alone.
	bad := testConfig(filepath.Join(t.TempDir(), "no", "such", "dir", "audit.log"))
	bad.ConcurrencyControl[0].MaxConcurrency = 100
	if _, err := Compile(bad, st, Options{}); err == nil {
		t.Fatal("unwritable audit path accepted")
	}
	v3, _ := c2.Check(ctx, r)
	if _, rej := c2.Check(ctx, r); rej == nil {
		t.Fatal("failed compile raised the limit")
	}
	v3.Release()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP pisa_proxy_rule_rejections_total Statements rejected by a governance rule (access, circuit_break, concurrency_control), by rule and reason.
# TYPE pisa_proxy_rule_rejections_total counter
pisa_proxy_rule_rejections_total{domain="d",reason="circuit_break",rule="no-drop"} 0
pisa_proxy_rule_rejections_total{domain="d",reason="concurrency_limit",rule="report"} 2
`), "pisa_proxy_rule_rejections_total"); err != nil {
		t.Error(err)
	}
	c2.Close()
}

func TestAuditAndTop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	c, st := newChain(t, testConfig(path), nil)
	ctx := context.Background()
	r := req("app", "select * from orders where id = 42", selectFacts("orders"))
	v, rej := c.Check(ctx, r)
	if rej != nil {
		t.Fatal(rej)
	}
	start := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	c.Finish(r, &v, &Outcome{Start: start, Duration: 1500 * time.Microsecond, Rows: 1, Backend: "db1:3306", Route: "read"})
	rr := req("root", "drop table x", nil)
	if _, rej := c.Check(ctx, rr); rej == nil {
		t.Fatal("not rejected")
	}
	dr := req("root", "select sleep(5)", nil)
	v, _ = c.Check(ctx, dr)
	c.Finish(dr, &v, &Outcome{Start: start, Err: mysql.NewError(1317, "70100", "interrupted")})
	c.Audit().Flush()

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []audit.Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec audit.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records: %+v", len(recs), recs)
	}
	a := recs[0]
	if !a.Time.Equal(start) || a.Domain != "d" || a.User != "app" || a.Client != "10.1.1.1:4000" || a.Schema != "shop" ||
		a.Command != "COM_QUERY" || a.Digest != digest || a.SQL != "select * from orders where id = ?" ||
		a.Duration != 1.5 || a.Rows != 1 || a.Backend != "db1:3306" || a.Route != "read" || a.Error != "" {
		t.Errorf("record 0 = %+v", a)
	}
	if b := recs[1]; !b.Rejected || b.SQL != "drop table x" && b.SQL != "drop table ?" || len(b.Rules) != 1 || b.Rules[0] != "no-drop" ||
		!strings.Contains(b.Error, "1047") {
		t.Errorf("record 1 = %+v", b)
	}
	if d := recs[2]; d.SQL != "select sleep(?)" || len(d.Rules) != 1 || d.Rules[0] != "watch-sleep (dry_run)" || !strings.Contains(d.Error, "1317") {
		t.Errorf("record 2 = %+v", d)
	}
	tracked, _ := st.Top().Snapshot()
	if tracked[digest] != 1500*time.Microsecond {
		t.Errorf("top = %v", tracked)
	}
}

func TestSchemaAndPassword(t *testing.T) {
	c, _ := newChain(t, testConfig(""), nil)
	if rej := c.CheckSchema("app", "h:1", "hr"); rej == nil || rej.Err.Code != mysql.ErrCodeDBAccessDenied {
		t.Errorf("rej = %+v", rej)
	}
	if rej := c.CheckSchema("app", "h:1", "shop"); rej != nil {
		t.Error(rej)
	}
	if pw, ok := c.Password("app"); !ok || pw != "pw" {
		t.Error("password lookup")
	}
	empty, _ := newChain(t, nil, nil)
	if _, ok := empty.Password("app"); ok {
		t.Error("empty chain knows users")
	}
	if rej := empty.CheckSchema("app", "h", "x"); rej != nil {
		t.Error(rej)
	}
}

// Compile refuses what proxyconfig's validation refuses (the chain is
// also compiled from configs that were not parsed).
func TestCompileValidates(t *testing.T) {
	tests := []struct {
		cfg  *proxyconfig.Governance
		want string
	}{
		{&proxyconfig.Governance{CircuitBreak: []proxyconfig.CircuitBreak{{MatchSpec: regexSpec("(")}}}, "circuit_break[0].regex[0]"},
		{&proxyconfig.Governance{ConcurrencyControl: []proxyconfig.ConcurrencyControl{{MatchSpec: regexSpec("x"), MaxConcurrency: -1}}}, "concurrency_control[0].max_concurrency"},
		{&proxyconfig.Governance{Access: &proxyconfig.Access{Users: []proxyconfig.AccessUser{{User: "a", Kinds: []string{"x"}}}}}, "access.users[0].kinds[0]"},
		{&proxyconfig.Governance{Audit: &proxyconfig.Audit{Output: "stdout", Include: "x"}}, "audit.include"},
	}
	for _, tt := range tests {
		_, err := Compile(tt.cfg, NewState("d", nil, StateOptions{}), Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v, want %q", err, tt.want)
		}
	}
	if _, err := Compile(nil, NewState("d", nil, StateOptions{}), Options{}); err != nil {
		t.Error(err)
	}
}

func TestWaitQueueThroughChain(t *testing.T) {
	cfg := &proxyconfig.Governance{ConcurrencyControl: []proxyconfig.ConcurrencyControl{{Name: "q", MatchSpec: regexSpec("x"), MaxConcurrency: 1,
		WaitTimeout: proxyconfig.D(10 * time.Millisecond), MaxQueue: 1}}}
	c, _ := newChain(t, cfg, nil)
	r := req("u", "x", nil)
	v, _ := c.Check(context.Background(), r)
	_, rej := c.Check(context.Background(), r)
	if rej == nil || rej.Reason != govmetrics.ReasonQueueTimeout {
		t.Fatalf("rej = %+v", rej)
	}
	c.Finish(r, &v, &Outcome{})
}

// BenchmarkChainPass is the per-statement cost of a statement that
// matches no rule, with a typical config (one restricted user, two
// circuit-break rules, one concurrency rule, top fingerprints).
func BenchmarkChainPass(b *testing.B) {
	c, _ := newChain(b, testConfig(""), nil)
	ctx := context.Background()
	r := req("app", "SELECT c FROM sbtest1 WHERE id=4711", &sqlparse.Facts{Kind: sqlparse.KindSelect, Class: sqlparse.ClassRead,
		ReadOnly: true, Tables: []sqlparse.Table{{Name: "sbtest1"}}, Fingerprint: "select c from sbtest1 where id = ?", Digest: digest})
	o := &Outcome{Duration: time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		v, rej := c.Check(ctx, r)
		if rej != nil {
			b.Fatal(rej)
		}
		c.Finish(r, &v, o)
	}
}

// BenchmarkChainCheckOnly: Check alone (no Finish).
func BenchmarkChainCheckOnly(b *testing.B) {
	c, _ := newChain(b, testConfig(""), nil)
	ctx := context.Background()
	r := req("app", "SELECT c FROM sbtest1 WHERE id=4711", selectFacts("sbtest1"))
	b.ReportAllocs()
	for b.Loop() {
		if _, rej := c.Check(ctx, r); rej != nil {
			b.Fatal(rej)
		}
	}
}

// BenchmarkChainPassParallel: the pass path from many sessions at once.
func BenchmarkChainPassParallel(b *testing.B) {
	c, _ := newChain(b, testConfig(""), nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		r := req("app", "SELECT c FROM sbtest1 WHERE id=4711", selectFacts("sbtest1"))
		o := &Outcome{Duration: time.Millisecond}
		for pb.Next() {
			v, _ := c.Check(ctx, r)
			c.Finish(r, &v, o)
		}
	})
}

// BenchmarkChainPassUnique: every statement text is new (literals inlined
// by the client), so the regexp result cache never hits.
func BenchmarkChainPassUnique(b *testing.B) {
	c, _ := newChain(b, testConfig(""), nil)
	ctx := context.Background()
	qs := make([]string, 1<<16)
	for i := range qs {
		qs[i] = "SELECT c FROM sbtest1 WHERE id=" + strconv.Itoa(i*7919)
	}
	r := req("app", "", selectFacts("sbtest1"))
	o := &Outcome{Duration: time.Millisecond}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.SQL = qs[i&(len(qs)-1)]
		i++
		v, rej := c.Check(ctx, r)
		if rej != nil {
			b.Fatal(rej)
		}
		c.Finish(r, &v, o)
	}
}

// regexSpec is a match spec of regexps only.
func regexSpec(res ...string) proxyconfig.MatchSpec { return proxyconfig.MatchSpec{Regex: res} }
