// Package migration runs a Pisanix user's files, written from the formats of
// Pisanix's specification, against this project: standalone TOML files,
// CRD objects and Helm values. Each either loads and serves real queries
// against MariaDB or is refused with the message docs/migrating-from-pisanix.md
// documents.
package migration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/database-mesh/pisanix-go/internal/metrics"
	"github.com/database-mesh/pisanix-go/internal/proxy"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	tu "github.com/database-mesh/pisanix-go/internal/testutil"
)

// running is a proxy serving one fixture.
type running struct {
	p    *proxy.Proxy
	reg  *prometheus.Registry
	cfg  *proxyconfig.Config
	logs *syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// local points a fixture at the test's MariaDB: nodes written for
// 127.0.0.1:3306 go to the shared test server, listeners to free ports.
func local(t *testing.T, cfg *proxyconfig.Config) {
	t.Helper()
	addr := tu.MariaDBAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	for i := range cfg.MySQL.Nodes {
		n := &cfg.MySQL.Nodes[i]
		if n.Host == "127.0.0.1" && n.Port == 3306 {
			n.Host = host
			fmt.Sscan(port, &n.Port)
		}
	}
	for i := range cfg.Proxy.Config {
		cfg.Proxy.Config[i].ListenAddr = "127.0.0.1:0"
	}
}

// load loads a fixture as pisa-proxy daemon -c would.
func load(t *testing.T, name string) (*proxyconfig.Config, error) {
	t.Helper()
	return proxyconfig.Load(filepath.Join("testdata", "standalone", name))
}

// serve applies cfg to a new proxy.
func serve(t *testing.T, cfg *proxyconfig.Config) *running {
	t.Helper()
	local(t, cfg)
	r := &running{reg: prometheus.NewRegistry(), cfg: cfg, logs: &syncBuf{}}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(r.logs), &slog.HandlerOptions{Level: slog.LevelInfo}))
	m := metrics.NewProxy(r.reg)
	r.p = proxy.New(logger, m)
	r.p.EnableGovernanceMetrics(r.reg)
	r.reg.MustRegister(metrics.NewPoolCollector(r.p.PoolStats))
	if err := r.p.Apply(cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.p.Close(ctx)
	})
	return r
}

// client opens a client of listener name with the listener's account.
func (r *running) client(t *testing.T, name string) *sql.DB {
	t.Helper()
	var lc *proxyconfig.Listener
	for i := range r.cfg.Proxy.Config {
		if r.cfg.Proxy.Config[i].Name == name {
			lc = &r.cfg.Proxy.Config[i]
		}
	}
	if lc == nil {
		t.Fatalf("no listener %q", name)
	}
	c := gomysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = lc.User, lc.Password, "tcp", r.p.Listener(name).Addr().String(), lc.DB
	c.Timeout = 5 * time.Second
	conn, err := gomysql.NewConnector(c)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	return db
}

// scrape gathers the proxy's metrics; a gathering error fails the test
// (two series with the same labels are one).
func (r *running) scrape(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			fmt.Fprintf(&b, "%s{%s} %g\n", mf.GetName(), strings.Join(labels, ","), v)
		}
	}
	return b.String()
}

func mysqlErr(err error) *gomysql.MySQLError {
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		return me
	}
	return nil
}

func one(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	var s sql.NullString
	if err := db.QueryRow(q, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s.String
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// direct runs statements on the test server itself.
func direct(t *testing.T, qs ...string) {
	t.Helper()
	db := tu.Open(t, tu.MariaDBDSN(t))
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// Pisanix's shipped example: one read node, everything routed to read. It
// starts with a warning, serves reads, and answers writes with ERROR 1290.
func TestExampleConfigReadOnly(t *testing.T) {
	cfg, err := load(t, "example-config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(cfg.Warnings(), "\n"); !strings.Contains(w, `no node with role "readwrite"`) {
		t.Fatalf("no warning about the missing writer: %q", w)
	}
	r := serve(t, cfg)
	if !strings.Contains(r.logs.String(), `no node with role \"readwrite\"`) {
		t.Fatalf("the warning is not logged at load:\n%s", r.logs.String())
	}
	direct(t, "CREATE TABLE IF NOT EXISTS mig_ro (id INT PRIMARY KEY)", "REPLACE INTO mig_ro VALUES (1)")
	db := r.client(t, "mysql")
	db.SetMaxOpenConns(1)
	if v := one(t, db, "SELECT id FROM mig_ro WHERE id = 1"); v != "1" {
		t.Fatalf("read: %q", v)
	}
	// Session state still works (on the reader).
	exec(t, db, "SET NAMES utf8mb4")
	exec(t, db, "SET @x = 5")
	if v := one(t, db, "SELECT @x"); v != "5" {
		t.Fatalf("user variable: %q", v)
	}
	// Prepared reads work; writes are refused, also while pinned.
	stmt, err := db.Prepare("SELECT id FROM mig_ro WHERE id = ?")
	if err != nil {
		t.Fatalf("prepare a read: %v", err)
	}
	var id int
	if err := stmt.QueryRow(1).Scan(&id); err != nil || id != 1 {
		t.Fatalf("execute: %d %v", id, err)
	}
	stmt.Close()
	for _, q := range []string{"INSERT INTO mig_ro VALUES (2)", "BEGIN", "SET autocommit = 0", "SELECT id FROM mig_ro FOR UPDATE"} {
		_, err := db.Exec(q)
		me := mysqlErr(err)
		if me == nil || me.Number != 1290 || !strings.Contains(me.Message, `no node with role "readwrite"`) {
			t.Fatalf("%s: got %v, want ERROR 1290 naming the missing readwrite node", q, err)
		}
	}
	if _, err := db.Prepare("UPDATE mig_ro SET id = 3"); mysqlErr(err) == nil || mysqlErr(err).Number != 1290 {
		t.Fatalf("prepare a write: %v", err)
	}
	if v := one(t, db, "SELECT COUNT(*) FROM mig_ro"); v != "1" {
		t.Fatalf("a write reached the server: %s rows", v)
	}
}

// The standalone guide's read/write splitting: simple_loadbalance.nodes
// names only the reader, yet writes go to the readwrite node.
func TestStaticRWSplittingGuide(t *testing.T) {
	cfg, err := load(t, "rw-static-guide.toml")
	if err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(cfg.Warnings(), "\n"); !strings.Contains(w, "simple_loadbalance.nodes") {
		t.Fatalf("no warning that nodes does not narrow read/write splitting: %q", w)
	}
	r := serve(t, cfg)
	direct(t, "CREATE TABLE IF NOT EXISTS mig_rw (id INT PRIMARY KEY, v INT)", "DELETE FROM mig_rw")
	db := r.client(t, "mysql")
	exec(t, db, "INSERT INTO mig_rw VALUES (1, 10)")
	if v := one(t, db, "select v from mig_rw where id = 1"); v != "10" {
		t.Fatalf("read back: %q", v)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("UPDATE mig_rw SET v = 11 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	m := r.scrape(t)
	for _, want := range []string{
		"pisa_proxy_route_decisions_total{domain=mysql,rule=read-rule,target=read} 1",
		"target=readwrite",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grep(m, "route_decisions"))
		}
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Simple load balancing over two nodes on one host:port: both serve, and
// each has its own pool series (no scrape error).
func TestSimpleLoadBalanceSharedHost(t *testing.T) {
	cfg, err := load(t, "simple-lb.toml")
	if err != nil {
		t.Fatal(err)
	}
	r := serve(t, cfg)
	db := r.client(t, "mysql")
	for i := 0; i < 10; i++ {
		if v := one(t, db, "SELECT 40 + 2"); v != "42" {
			t.Fatalf("query: %q", v)
		}
	}
	m := r.scrape(t)
	for _, node := range []string{"ds001", "ds002"} {
		if !strings.Contains(m, "pisa_proxy_backend_pool_open_connections{domain=mysql,node="+node+",") {
			t.Errorf("no pool series for node %s:\n%s", node, grep(m, "backend_pool_open"))
		}
	}
}

// Dynamic read/write splitting with every discovery key serves queries.
func TestDynamicRWSplitting(t *testing.T) {
	cfg, err := load(t, "rw-dynamic.toml")
	if err != nil {
		t.Fatal(err)
	}
	r := serve(t, cfg)
	direct(t, "CREATE TABLE IF NOT EXISTS mig_dyn (id INT PRIMARY KEY)", "DELETE FROM mig_dyn")
	db := r.client(t, "mysql")
	exec(t, db, "INSERT INTO mig_dyn VALUES (7)")
	if v := one(t, db, "select id from mig_dyn"); v != "7" {
		t.Fatalf("read: %q", v)
	}
}

// Circuit break: Pisanix's words, then the rule.
func TestCircuitBreak(t *testing.T) {
	cfg, err := load(t, "circuit-break.toml")
	if err != nil {
		t.Fatal(err)
	}
	r := serve(t, cfg)
	db := r.client(t, "mysql")
	_, err = db.Exec("SELECT * FROM mig_secret")
	me := mysqlErr(err)
	if me == nil || me.Number != 1047 || me.SQLState != [5]byte{'0', '8', 'S', '0', '1'} ||
		!strings.HasPrefix(me.Message, "audit plugin rejected") || !strings.Contains(me.Message, "circuit_break") {
		t.Fatalf("got %v, want ERROR 1047 (08S01) audit plugin rejected ...", err)
	}
	if v := one(t, db, "SELECT 1"); v != "1" {
		t.Fatal("session unusable after the rejection")
	}
}

// Concurrency control: the second concurrent match is rejected with
// Pisanix's words.
func TestConcurrencyControl(t *testing.T) {
	cfg, err := load(t, "concurrency-control.toml")
	if err != nil {
		t.Fatal(err)
	}
	r := serve(t, cfg)
	db := r.client(t, "mysql")
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		conn, err := db.Conn(context.Background())
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		close(started)
		_, err = conn.ExecContext(context.Background(), "SELECT SLEEP(2)")
		done <- err
	}()
	<-started
	// Probe only once SLEEP(2) holds the rule's one slot: a probe that ran
	// first would take it and have SLEEP(2) refused instead.
	direct := tu.Open(t, tu.MariaDBDSN(t))
	for i := 0; ; i++ {
		var n int
		if err := direct.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(2)'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if i == 250 {
			t.Fatal("SELECT SLEEP(2) never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	var got error
	for time.Now().Before(deadline) {
		_, got = db.Exec("SELECT SLEEP(0)")
		if got != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	me := mysqlErr(got)
	if me == nil || me.Number != 1047 || !strings.HasPrefix(me.Message, "concurrency control plugin rejected") {
		t.Fatalf("got %v, want ERROR 1047 concurrency control plugin rejected ...", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Table sharding: rows go to mig_order_0000<id % 4>.
func TestShardingTable(t *testing.T) {
	cfg, err := load(t, "sharding-table.toml")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		direct(t, fmt.Sprintf("CREATE TABLE IF NOT EXISTS mig_order_%05d (id BIGINT PRIMARY KEY, v VARCHAR(10))", i),
			fmt.Sprintf("DELETE FROM mig_order_%05d", i))
	}
	r := serve(t, cfg)
	db := r.client(t, "mysql")
	for id := 1; id <= 8; id++ {
		exec(t, db, "INSERT INTO mig_order (id, v) VALUES (?, ?)", id, fmt.Sprint("v", id))
	}
	if v := one(t, db, "SELECT COUNT(*) FROM mig_order"); v != "8" {
		t.Fatalf("count: %s", v)
	}
	if v := one(t, db, "SELECT v FROM mig_order WHERE id = 6"); v != "v6" {
		t.Fatalf("point select: %q", v)
	}
	check := tu.Open(t, tu.MariaDBDSN(t))
	if v := one(t, check, "SELECT COUNT(*) FROM mig_order_00002"); v != "2" {
		t.Fatalf("mig_order_00002 holds %s rows, want 2 (ids 2 and 6)", v)
	}
}

// Database sharding over two schemas of one server.
func TestShardingDatabase(t *testing.T) {
	cfg, err := load(t, "sharding-database.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"mig_shard0", "mig_shard1"} {
		direct(t, "CREATE DATABASE IF NOT EXISTS "+s,
			"CREATE TABLE IF NOT EXISTS "+s+".mig_user (id BIGINT PRIMARY KEY, name VARCHAR(20))",
			"DELETE FROM "+s+".mig_user")
	}
	r := serve(t, cfg)
	db := r.client(t, "mysql")
	for id := 1; id <= 6; id++ {
		exec(t, db, "INSERT INTO mig_user (id, name) VALUES (?, ?)", id, fmt.Sprint("u", id))
	}
	if v := one(t, db, "SELECT COUNT(*) FROM mig_user"); v != "6" {
		t.Fatalf("count: %s", v)
	}
	check := tu.Open(t, tu.MariaDBDSN(t))
	a, b := one(t, check, "SELECT COUNT(*) FROM mig_shard0.mig_user"), one(t, check, "SELECT COUNT(*) FROM mig_shard1.mig_user")
	if a == "0" || b == "0" {
		t.Fatalf("rows per shard %s/%s: both schemas should hold some", a, b)
	}
	m := r.scrape(t)
	for _, node := range []string{"ds001", "ds002"} {
		if !strings.Contains(m, "node="+node) {
			t.Errorf("no pool series for %s", node)
		}
	}
}

// Sharding over a node group (read/write splitting inside the shard).
func TestShardingNodeGroup(t *testing.T) {
	cfg, err := load(t, "sharding-node-group.toml")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		direct(t, fmt.Sprintf("CREATE TABLE IF NOT EXISTS mig_order_%05d (id BIGINT PRIMARY KEY, v VARCHAR(10))", i))
	}
	direct(t, "DELETE FROM mig_order_00003")
	r := serve(t, cfg)
	db := r.client(t, "mysql")
	exec(t, db, "INSERT INTO mig_order (id, v) VALUES (?, ?)", 7, "ng")
	if v := one(t, db, "select v from mig_order where id = 7"); v != "ng" {
		t.Fatalf("read back: %q", v)
	}
}

// Files that cannot be honoured are refused with a message naming the key.
func TestRefusedFiles(t *testing.T) {
	for file, want := range map[string]string{
		"shardingsphere-proxy.toml": `proxy.config[0].backend_type: "shardingsphere-proxy" is not supported`,
	} {
		_, err := load(t, file)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", file, err, want)
		}
	}
}
