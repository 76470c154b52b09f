package proxy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/database-mesh/pisanix-go/internal/metrics"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// testProxy is a running proxy with one listener in front of backends.
type testProxy struct {
	p    *Proxy
	addr string
	cfg  *proxyconfig.Config
}

func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("PISA_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// baseConfig is one listener "test" (user proxy/proxypass, db test) over
// the given backend addresses.
func baseConfig(backends ...string) *proxyconfig.Config {
	cfg := &proxyconfig.Config{}
	cfg.Proxy.Config = []proxyconfig.Listener{{
		Name: "test", ListenAddr: "127.0.0.1:0", User: "proxy", Password: "proxypass", DB: "test",
		Users: []proxyconfig.ListenerUser{{User: "nopass", Password: ""}},
	}}
	for i, b := range backends {
		host, port, _ := net.SplitHostPort(b)
		var p int
		fmt.Sscan(port, &p)
		cfg.MySQL.Nodes = append(cfg.MySQL.Nodes, proxyconfig.Node{
			Name: fmt.Sprintf("ds%03d", i+1), Host: host, Port: p, User: "root", Password: "", DB: "test",
		})
	}
	return cfg
}

func startProxy(t testing.TB, cfg *proxyconfig.Config) *testProxy {
	t.Helper()
	cfg.ApplyDefaults()
	p := New(testLogger(), metrics.NewProxy(nil))
	if err := p.Apply(cfg); err != nil {
		t.Fatalf("apply config: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	l := p.Listener(cfg.Proxy.Config[0].Name)
	return &testProxy{p: p, addr: l.Addr().String(), cfg: cfg}
}

func (tp *testProxy) dsn(params string) string {
	d := fmt.Sprintf("proxy:proxypass@tcp(%s)/test", tp.addr)
	if params != "" {
		d += "?" + params
	}
	return d
}

func openDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func defaultProxy(t testing.TB) *testProxy {
	return startProxy(t, baseConfig(testutil.MariaDBAddr(t)))
}

func queryString(t testing.TB, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, query string, args ...any) string {
	t.Helper()
	var s sql.NullString
	if err := q.QueryRowContext(context.Background(), query, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return s.String
}

func mysqlErrCode(err error) uint16 {
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func TestQueryThroughProxy(t *testing.T) {
	tp := defaultProxy(t)
	db := openDB(t, tp.dsn(""))
	if got := queryString(t, db, "SELECT 1+1"); got != "2" {
		t.Fatalf("SELECT 1+1 = %q", got)
	}
	if got := queryString(t, db, "SELECT DATABASE()"); got != "test" {
		t.Fatalf("DATABASE() = %q", got)
	}
	if _, err := db.Exec("DROP TABLE IF EXISTS proxy_basic"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE proxy_basic (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(20))"); err != nil {
		t.Fatal(err)
	}
	defer db.Exec("DROP TABLE proxy_basic")
	res, err := db.Exec("INSERT INTO proxy_basic (v) VALUES ('a'), ('b'), ('c')")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 3 {
		t.Fatalf("affected = %d", n)
	}
	if id, _ := res.LastInsertId(); id != 1 {
		t.Fatalf("last insert id = %d", id)
	}
	rows, err := db.Query("SELECT id, v FROM proxy_basic ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var id int
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d=%s", id, v))
	}
	rows.Close()
	if strings.Join(got, ",") != "1=a,2=b,3=c" {
		t.Fatalf("rows = %v", got)
	}
	// A bad statement gets the server's error and the session stays usable.
	_, err = db.Exec("SELEC nonsense")
	if mysqlErrCode(err) != 1064 {
		t.Fatalf("want 1064, got %v", err)
	}
	if got := queryString(t, db, "SELECT 'still ok'"); got != "still ok" {
		t.Fatal(got)
	}
}

func TestAuthFailure(t *testing.T) {
	tp := defaultProxy(t)
	db := openDB(t, fmt.Sprintf("proxy:wrong@tcp(%s)/test", tp.addr))
	err := db.Ping()
	if mysqlErrCode(err) != 1045 {
		t.Fatalf("want 1045, got %v", err)
	}
	db2 := openDB(t, fmt.Sprintf("nobody:x@tcp(%s)/test", tp.addr))
	if err := db2.Ping(); mysqlErrCode(err) != 1045 {
		t.Fatalf("unknown user: want 1045, got %v", err)
	}
	// Extra user without password.
	db3 := openDB(t, fmt.Sprintf("nopass@tcp(%s)/test", tp.addr))
	if err := db3.Ping(); err != nil {
		t.Fatalf("extra user: %v", err)
	}
}

func TestUnknownDatabase(t *testing.T) {
	tp := defaultProxy(t)
	db := openDB(t, fmt.Sprintf("proxy:proxypass@tcp(%s)/no_such_db_xyz", tp.addr))
	if err := db.Ping(); mysqlErrCode(err) != 1049 {
		t.Fatalf("want 1049, got %v", err)
	}
}
