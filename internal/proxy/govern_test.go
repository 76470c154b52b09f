package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/database-mesh/pisanix-go/internal/proxy/govern/breaker"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Circuit break (regex, case-insensitive, dry run) and concurrency control
// through the proxy against MariaDB, with a real client.
func TestCircuitBreakAndConcurrencyControl(t *testing.T) {
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.Config[0].Plugin = &proxyconfig.Plugin{
		CircuitBreak: []proxyconfig.CircuitBreak{
			{Name: "no-sleep-99", MatchSpec: proxyconfig.MatchSpec{Regex: []string{`SLEEP\(99\)`}}},
			{Name: "no-drop", MatchSpec: proxyconfig.MatchSpec{Regex: []string{`drop\s+table`}, CaseInsensitive: true}},
			{Name: "watch-benchmark", MatchSpec: proxyconfig.MatchSpec{Regex: []string{`BENCHMARK`}}, DryRun: true},
		},
		ConcurrencyControl: []proxyconfig.ConcurrencyControl{
			{Name: "one-sleeper", MatchSpec: proxyconfig.MatchSpec{Regex: []string{`SLEEP\(0\.5\)`}}, MaxConcurrency: 1},
			{Name: "queued", MatchSpec: proxyconfig.MatchSpec{Regex: []string{`SLEEP\(0\.3\)`}}, MaxConcurrency: 1, WaitTimeout: proxyconfig.D(3 * time.Second)},
		},
	}
	tp := startProxy(t, cfg)
	db := openDB(t, tp.dsn(""))
	_, err := db.Exec("SELECT SLEEP(99)")
	if mysqlErrCode(err) != 1047 || !strings.Contains(errText(err), "no-sleep-99") {
		t.Fatalf("circuit break: want 1047 naming the rule, got %v", err)
	}
	_, err = db.Exec("DROP TABLE IF EXISTS t_never")
	if mysqlErrCode(err) != 1047 || !strings.Contains(errText(err), "no-drop") {
		t.Fatalf("case-insensitive rule: got %v", err)
	}
	if got := queryString(t, db, "SELECT BENCHMARK(1, 1)"); got != "0" {
		t.Fatalf("dry-run rule must not reject: %q", got)
	}
	if got := queryString(t, db, "SELECT 'fine'"); got != "fine" {
		t.Fatal(got)
	}
	// At most one SLEEP(0.5) at a time; the second is rejected at once.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 1 {
				time.Sleep(150 * time.Millisecond)
			}
			_, errs[i] = db.Exec("SELECT SLEEP(0.5)")
		}()
	}
	wg.Wait()
	if errs[0] != nil || mysqlErrCode(errs[1]) != 1047 || !strings.Contains(errText(errs[1]), "one-sleeper") {
		t.Fatalf("concurrency control: %v / %v", errs[0], errs[1])
	}
	// With a wait queue the second waits for the first and both succeed.
	start := time.Now()
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = db.Exec("SELECT SLEEP(0.3)")
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("queued: %v / %v", errs[0], errs[1])
	}
	if d := time.Since(start); d < 550*time.Millisecond {
		t.Fatalf("two queued SLEEP(0.3) finished in %v: they ran concurrently", d)
	}
}

// Access control per user: schemas, tables, statement kinds, row limits;
// MySQL's own error codes.
func TestAccessControl(t *testing.T) {
	root := openDB(t, "root:@tcp("+testutil.MariaDBAddr(t)+")/test")
	root.Exec("CREATE TABLE IF NOT EXISTS acl_allowed (id INT PRIMARY KEY)")
	root.Exec("INSERT IGNORE INTO acl_allowed SELECT seq FROM seq_1_to_20")
	root.Exec("CREATE TABLE IF NOT EXISTS acl_secret (id INT PRIMARY KEY)")
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.Config[0].Access = &proxyconfig.Access{Users: []proxyconfig.AccessUser{{
		User: "reader", Password: "readerpw", Schemas: []string{"test"},
		Tables: []string{"test.acl_allowed"}, Kinds: []string{"read"}, MaxRows: 5,
	}}}
	tp := startProxy(t, cfg)
	db := openDB(t, "reader:readerpw@tcp("+tp.addr+")/test")
	db.SetMaxOpenConns(1)
	rows, err := db.Query("SELECT id FROM acl_allowed ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	rows.Close()
	if n != 5 {
		t.Fatalf("max_rows 5: got %d rows", n)
	}
	if _, err := db.Exec("SELECT * FROM acl_secret"); mysqlErrCode(err) != 1142 {
		t.Fatalf("table not allowed: want 1142, got %v", err)
	}
	if _, err := db.Exec("INSERT INTO acl_allowed VALUES (100)"); mysqlErrCode(err) != 1142 {
		t.Fatalf("write not allowed: want 1142, got %v", err)
	}
	if _, err := db.Exec("USE mysql"); mysqlErrCode(err) != 1044 {
		t.Fatalf("schema not allowed: want 1044, got %v", err)
	}
	other := openDB(t, "reader:readerpw@tcp("+tp.addr+")/mysql")
	if err := other.Ping(); mysqlErrCode(err) != 1044 {
		t.Fatalf("schema not allowed at connect: want 1044, got %v", err)
	}
	// The listener's own account is unrestricted.
	if _, err := openDB(t, tp.dsn("")).Exec("SELECT * FROM acl_secret"); err != nil {
		t.Fatal(err)
	}
}

// The audit log: JSON lines with user, schema, fingerprint (literals
// redacted), duration, rows, error, backend, rule hits.
func TestAuditLog(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.Config[0].Audit = &proxyconfig.Audit{Output: file}
	cfg.Proxy.Config[0].Plugin = &proxyconfig.Plugin{CircuitBreak: []proxyconfig.CircuitBreak{{Name: "deny-42", MatchSpec: proxyconfig.MatchSpec{Regex: []string{"4242"}}}}}
	tp := startProxy(t, cfg)
	db := openDB(t, tp.dsn(""))
	db.Exec("SELECT 'secret-literal', 1")
	db.Exec("SELECT 4242")
	db.Exec("SELECT * FROM no_such_table_audit")
	var recs []map[string]any
	deadline := time.Now().Add(5 * time.Second)
	for len(recs) < 3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		recs = recs[:0]
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("bad audit line %q: %v", sc.Text(), err)
			}
			recs = append(recs, m)
		}
		f.Close()
	}
	if len(recs) < 3 {
		t.Fatalf("audit records: %v", recs)
	}
	all, _ := json.Marshal(recs)
	if strings.Contains(string(all), "secret-literal") {
		t.Fatalf("literal not redacted: %s", all)
	}
	var sawReject, sawError bool
	for _, r := range recs {
		if r["user"] != "proxy" || r["schema"] != "test" {
			t.Fatalf("record without user/schema: %v", r)
		}
		if r["rejected"] == true && strings.Contains(string(mustJSON(r["rules"])), "deny-42") {
			sawReject = true
		}
		if e, _ := r["error"].(string); strings.Contains(e, "1146") || strings.Contains(e, "doesn't exist") {
			sawError = true
			if r["backend"] == "" {
				t.Fatalf("no backend in %v", r)
			}
		}
	}
	if !sawReject || !sawError {
		t.Fatalf("rejection %v, error %v in %s", sawReject, sawError, all)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// The endpoint breaker stops routing to an endpoint that keeps failing.
func TestEndpointBreaker(t *testing.T) {
	good := testutil.MariaDBAddr(t)
	sick := testutil.StartMariaDB(t)
	cfg := baseConfig(good, sick.Addr)
	cfg.Proxy.Config[0].SimpleLoadBalance = &proxyconfig.SimpleLoadBalance{BalanceType: "roundrobin"}
	cfg.Proxy.Config[0].EndpointBreaker = &proxyconfig.EndpointBreaker{ErrorRate: 0.5, MinRequests: 4,
		Window: proxyconfig.D(10 * time.Second), OpenFor: proxyconfig.D(time.Minute)}
	tp := startProxy(t, cfg)
	db := openDB(t, tp.dsn(""))
	// Make the second endpoint sick: statements fail with a server error
	// that counts as a failure (server shutting down / lost connection).
	for i := 0; i < 4; i++ {
		db.Exec("SELECT 1")
	}
	sick.Stop()
	for i := 0; i < 10; i++ {
		db.Exec("SELECT 1")
	}
	sick.Start()
	// Wait until health checks admit the endpoint again: from then on only
	// the breaker can keep it out (for open_for).
	rt := tp.p.Listener("test").rt.Load()
	deadline := time.Now().Add(20 * time.Second)
	for !rt.pools[1].Healthy() {
		if time.Now().After(deadline) {
			t.Fatal("restarted endpoint never healthy again")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if rt.breaker.State("ds002") != breaker.Open {
		t.Fatalf("breaker state %v, want open", rt.breaker.State("ds002"))
	}
	var port int
	seen := map[int]int{}
	for i := 0; i < 10; i++ {
		if err := db.QueryRowContext(context.Background(), "SELECT @@port").Scan(&port); err != nil {
			t.Fatal(err)
		}
		seen[port]++
	}
	if seen[sick.Port] != 0 {
		t.Fatalf("breaker did not keep the sick endpoint out: %v", seen)
	}
}

// Governance reloads with the config: an open session sees a new rule at
// its next statement, and the parser's counters are exported.
func TestGovernanceReload(t *testing.T) {
	cfg := baseConfig(testutil.MariaDBAddr(t))
	tp := startProxy(t, cfg)
	db := openDB(t, tp.dsn(""))
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := queryString(t, conn, "SELECT 'before'"); got != "before" {
		t.Fatal(got)
	}
	next := baseConfig(testutil.MariaDBAddr(t))
	next.Proxy.Config[0].Plugin = &proxyconfig.Plugin{CircuitBreak: []proxyconfig.CircuitBreak{{Name: "reloaded", MatchSpec: proxyconfig.MatchSpec{Regex: []string{"'after'"}}}}}
	next.ApplyDefaults()
	// Keep the listener: same address as the running one.
	next.Proxy.Config[0].ListenAddr = tp.p.Listener("test").addr
	if err := tp.p.Apply(next); err != nil {
		t.Fatal(err)
	}
	_, err = conn.ExecContext(context.Background(), "SELECT 'after'")
	if mysqlErrCode(err) != 1047 || !strings.Contains(errText(err), "reloaded") {
		t.Fatalf("open session after reload: want 1047 naming the new rule, got %v", err)
	}
	if got := queryString(t, conn, "SELECT 'other'"); got != "other" {
		t.Fatal(got)
	}
	reg := prometheusRegistry(t, tp.p)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// SELECT 'other' differs from SELECT 'after' only in a literal: its
	// facts come from the normalized cache level.
	for _, name := range []string{"pisa_proxy_sqlparse_cache_misses_total", "pisa_proxy_sqlparse_cache_normalized_hits_total"} {
		found := false
		for _, mf := range mfs {
			if mf.GetName() == name && mf.GetMetric()[0].GetCounter().GetValue() > 0 {
				found = true
			}
		}
		if !found {
			t.Fatalf("%s not exported or 0", name)
		}
	}
}

func prometheusRegistry(t *testing.T, p *Proxy) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.ParserCollector())
	return reg
}
