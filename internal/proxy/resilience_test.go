package proxy

// Resilience tests against real MariaDB servers: backends that crash and
// come back, several backends with balancing and failover, pool exhaustion,
// client limits, idle clients, connection churn and reloads.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// currentRuntime returns the listener's current compiled config.
func (tp *testProxy) currentRuntime(t testing.TB) *runtime {
	t.Helper()
	l := tp.p.Listener(tp.cfg.Proxy.Config[0].Name)
	if l == nil {
		t.Fatal("listener not running")
	}
	return l.rt.Load()
}

// poolFor returns the listener's pool of the backend at addr.
func (tp *testProxy) poolFor(t testing.TB, addr string) *backend.Pool {
	t.Helper()
	for _, pl := range tp.currentRuntime(t).pools {
		if pl.Endpoint().Addr == addr {
			return pl
		}
	}
	t.Fatalf("no pool for %s", addr)
	return nil
}

// sqlConn returns one dedicated client session.
func sqlConn(t testing.TB, db *sql.DB) *sql.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// backendPort runs SELECT @@port on the session.
func backendPort(c *sql.Conn) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var port int
	err := c.QueryRowContext(ctx, "SELECT @@port").Scan(&port)
	return port, err
}

func isNoBackend(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && me.Number == 2002 && me.Message == "There is no healthy backend to connect."
}

func isLostBackend(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && me.Number == 2013
}

// eventually polls f every 50ms until it returns nil or d passes.
func eventually(t testing.TB, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func withTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// A backend that crashes and restarts: open sessions get MySQL errors (never
// a dropped connection), the proxy reports not ready, and the same sessions
// work again once the server is back.
func TestBackendCrashAndRestart(t *testing.T) {
	m := testutil.StartMariaDB(t)
	tp := startProxy(t, baseConfig(m.Addr))
	db := openDB(t, tp.dsn(""))
	sess := sqlConn(t, db)
	busy := sqlConn(t, db)
	for i := 0; i < 3; i++ {
		if port, err := backendPort(sess); err != nil || port != m.Port {
			t.Fatalf("before crash: port %d, %v", port, err)
		}
	}
	if _, err := backendPort(busy); err != nil {
		t.Fatal(err)
	}
	// The warm-up connection of a new endpoint may still be on its way.
	eventually(t, 5*time.Second, "Ready() before crash", tp.p.Ready)

	// One query is running when the server dies.
	inflight := make(chan error, 1)
	go func() {
		ctx, cancel := withTimeout(30 * time.Second)
		defer cancel()
		_, err := busy.ExecContext(ctx, "DO SLEEP(20)")
		inflight <- err
	}()
	time.Sleep(300 * time.Millisecond)
	m.Stop()

	select {
	case err := <-inflight:
		if !isLostBackend(err) && !isNoBackend(err) {
			t.Fatalf("in-flight query: want ERR 2013 or 2002, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("in-flight query still running 10s after the backend died")
	}
	// Queries on open sessions fail with 2002 (a first one may see the dead
	// pooled connection and get 2013); the sessions stay open.
	for _, c := range []*sql.Conn{sess, busy} {
		sawNoBackend := false
		for i := 0; i < 3; i++ {
			_, err := backendPort(c)
			switch {
			case isNoBackend(err):
				sawNoBackend = true
			case isLostBackend(err) && i == 0:
			default:
				t.Fatalf("query %d while the backend is down: want ERR 2002, got %v", i, err)
			}
		}
		if !sawNoBackend {
			t.Fatal("never got ERR 2002 while the backend is down")
		}
		ctx, cancel := withTimeout(5 * time.Second)
		err := c.PingContext(ctx)
		cancel()
		if err != nil {
			t.Fatalf("COM_PING while the backend is down: %v", err)
		}
	}
	if err := tp.p.Ready(); err == nil {
		t.Fatal("Ready() is nil while the only backend is down")
	}
	// New clients are still accepted.
	if err := openDB(t, tp.dsn("")).Ping(); err != nil {
		t.Fatalf("new client while the backend is down: %v", err)
	}

	m.Start()
	restarted := time.Now()
	eventually(t, 10*time.Second, "session works after restart", func() error {
		port, err := backendPort(sess)
		if err == nil && port != m.Port {
			err = fmt.Errorf("port %d", port)
		}
		return err
	})
	eventually(t, 10*time.Second, "Ready() after restart", tp.p.Ready)
	t.Logf("recovered %v after restart", time.Since(restarted).Round(time.Millisecond))
	if _, err := backendPort(busy); err != nil {
		t.Fatalf("second session after restart: %v", err)
	}
	if n := tp.p.Sessions(); n < 2 {
		t.Fatalf("sessions = %d, want the open ones to survive", n)
	}
}

// twoBackends starts a throwaway MariaDB and pairs it with the shared one.
func twoBackends(t *testing.T) (*testutil.MariaDB, string) {
	t.Helper()
	m := testutil.StartMariaDB(t)
	return m, testutil.MariaDBAddr(t)
}

func portOfAddr(t testing.TB, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(p, &n)
	return n
}

func twoNodeConfig(kind string, addrA string, wA int, addrB string, wB int) *proxyconfig.Config {
	cfg := baseConfig(addrA, addrB)
	cfg.MySQL.Nodes[0].Weight = &wA
	cfg.MySQL.Nodes[1].Weight = &wB
	cfg.Proxy.Config[0].SimpleLoadBalance = &proxyconfig.SimpleLoadBalance{BalanceType: kind}
	return cfg
}

// portCounts runs n SELECT @@port on one session and counts the answers.
func portCounts(t testing.TB, c *sql.Conn, n int) map[int]int {
	t.Helper()
	got := map[int]int{}
	for i := 0; i < n; i++ {
		port, err := backendPort(c)
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		got[port]++
	}
	return got
}

func TestBalanceAcrossBackends(t *testing.T) {
	m, shared := twoBackends(t)
	a, b := m.Port, portOfAddr(t, shared)
	const n = 200
	cases := []struct {
		kind         string
		wA, wB       int
		wantA, slack int // expected count on A out of n, tolerance
	}{
		{"roundrobin", 1, 1, 100, 0},
		{"roundrobin", 3, 1, 150, 0},
		{"roundrobin", 0, 1, 0, 0},
		{"random", 1, 1, 100, 40}, // sd ≈ 7
		{"random", 3, 1, 150, 30}, // sd ≈ 6
		{"random", 1, 0, 200, 0},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s-%d:%d", tc.kind, tc.wA, tc.wB), func(t *testing.T) {
			tp := startProxy(t, twoNodeConfig(tc.kind, m.Addr, tc.wA, shared, tc.wB))
			c := sqlConn(t, openDB(t, tp.dsn("")))
			got := portCounts(t, c, n)
			if got[a]+got[b] != n {
				t.Fatalf("answers from unexpected ports: %v", got)
			}
			if d := got[a] - tc.wantA; d < -tc.slack || d > tc.slack {
				t.Fatalf("port %d served %d of %d, want %d±%d (all: %v)", a, got[a], n, tc.wantA, tc.slack, got)
			}
			t.Logf("%v", got)
		})
	}
}

// One of two backends dies: read-only statements move to the other without
// a client-visible error, the dead endpoint is ejected, and it is used again
// once it is back. A statement inside a transaction is not replayed.
func TestFailoverBetweenBackends(t *testing.T) {
	m, shared := twoBackends(t)
	a, b := m.Port, portOfAddr(t, shared)
	cfg := twoNodeConfig("roundrobin", m.Addr, 1, shared, 1)
	tp := startProxy(t, cfg)
	db := openDB(t, tp.dsn(""))
	c := sqlConn(t, db)
	if got := portCounts(t, c, 10); got[a] != 5 || got[b] != 5 {
		t.Fatalf("warm-up spread %v", got)
	}
	poolA := tp.poolFor(t, m.Addr)

	m.Stop()
	// Every statement succeeds and is served by the survivor.
	got := portCounts(t, c, 40)
	if got[b] != 40 {
		t.Fatalf("after stopping %d: %v", a, got)
	}
	if poolA.Healthy() {
		t.Fatal("stopped endpoint still marked healthy")
	}
	if err := tp.p.Ready(); err != nil {
		t.Fatalf("not ready with one healthy backend: %v", err)
	}
	// Other statement kinds go to the survivor too.
	for _, q := range []string{"SHOW VARIABLES LIKE 'port'", "SELECT 1"} {
		ctx, cancel := withTimeout(5 * time.Second)
		rows, err := c.QueryContext(ctx, q)
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", q, err)
		}
		rows.Close()
		cancel()
	}

	m.Start()
	eventually(t, 25*time.Second, "endpoint re-admitted", func() error {
		if !poolA.Healthy() {
			return errors.New("pool still unhealthy")
		}
		return nil
	})
	if got := portCounts(t, c, 20); got[a] == 0 || got[b] == 0 {
		t.Fatalf("restarted endpoint not used again: %v", got)
	}

	// A transaction pinned to A: A dies, the next statement fails and is not
	// silently replayed on B.
	var tx *sql.Tx
	for i := 0; ; i++ {
		var err error
		tx, err = c.BeginTx(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var port int
		if err := tx.QueryRow("SELECT @@port").Scan(&port); err != nil {
			t.Fatal(err)
		}
		if port == a {
			break
		}
		tx.Rollback()
		if i == 10 {
			t.Fatal("no transaction landed on the restarted backend")
		}
	}
	m.Stop()
	var port int
	err := tx.QueryRow("SELECT @@port").Scan(&port)
	if err == nil {
		t.Fatalf("statement in a transaction on a dead backend succeeded (port %d): it was replayed", port)
	}
	if !isLostBackend(err) && !isNoBackend(err) {
		t.Fatalf("in transaction: want a MySQL error 2013/2002, got %v", err)
	}
	_ = tx.Rollback()
	// The transaction's session was closed, as a server would close it (it
	// never goes on without its transaction); a new session works, on B.
	if _, err := backendPort(c); err == nil {
		t.Fatal("the session of the lost transaction is still open")
	}
	if port, err := backendPort(sqlConn(t, db)); err != nil || port != b {
		t.Fatalf("new session after the failed transaction: port %d, %v", port, err)
	}
}

// With max_open 1 and a transaction holding the only connection, another
// session gets a prompt error instead of hanging, and works once it is free.
func TestPoolExhaustion(t *testing.T) {
	cfg := baseConfig(testutil.MariaDBAddr(t))
	lc := &cfg.Proxy.Config[0]
	lc.Pool.MaxOpen = 1
	lc.Pool.WaitTimeout = proxyconfig.Duration{Duration: 200 * time.Millisecond}
	tp := startProxy(t, cfg)
	db := openDB(t, tp.dsn(""))
	sa, sb := sqlConn(t, db), sqlConn(t, db)
	if _, err := backendPort(sb); err != nil {
		t.Fatal(err)
	}
	tx, err := sa.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("SELECT 1"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = backendPort(sb)
	took := time.Since(start)
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != 2002 || !strings.Contains(me.Message, "exhausted") {
		t.Fatalf("want ERR 2002 about the exhausted pool, got %v", err)
	}
	if took < 180*time.Millisecond || took > 3*time.Second {
		t.Fatalf("pool wait took %v, want about 200ms", took)
	}
	if st := tp.poolFor(t, testutil.MariaDBAddr(t)).Stats(); st.Timeouts < 1 || st.Open != 1 {
		t.Fatalf("pool stats %+v", st)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := backendPort(sb); err != nil {
		t.Fatalf("after the transaction ended: %v", err)
	}
	// Both keep working, sharing the single connection.
	for i := 0; i < 5; i++ {
		for _, c := range []*sql.Conn{sa, sb} {
			if _, err := backendPort(c); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestMaxConnections(t *testing.T) {
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.Config[0].MaxConnections = 2
	tp := startProxy(t, cfg)
	c1 := dialRaw(t, tp.addr)
	_ = dialRaw(t, tp.addr)
	err := openDB(t, tp.dsn("")).Ping()
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1040 || me.Message != "Too many connections" {
		t.Fatalf("third client: want ERR 1040 Too many connections, got %v", err)
	}
	// A slot frees when a client leaves.
	c1.c.ResetSeq()
	_ = c1.c.WritePacketFlush([]byte{mysql.ComQuit})
	c1.c.Close()
	eventually(t, 5*time.Second, "client accepted after one left", func() error {
		db := openDB(t, tp.dsn(""))
		defer db.Close()
		return db.Ping()
	})
}

func TestIdleClientTimeout(t *testing.T) {
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.Config[0].IdleClientTimeout = proxyconfig.Duration{Duration: 500 * time.Millisecond}
	tp := startProxy(t, cfg)
	idle := dialRaw(t, tp.addr)
	busy := dialRaw(t, tp.addr)
	// The busy client pings more often than the timeout and stays.
	for i := 0; i < 10; i++ {
		time.Sleep(100 * time.Millisecond)
		if resp := busy.command(t, []byte{mysql.ComPing}); resp[0] != mysql.OKHeader {
			t.Fatalf("ping: %q", resp)
		}
	}
	// The idle one was disconnected.
	idle.c.ResetSeq()
	_ = idle.c.WritePacketFlush([]byte{mysql.ComPing})
	_ = idle.c.NetConn().SetReadDeadline(time.Now().Add(5 * time.Second))
	if resp, err := idle.c.ReadPacket(); err == nil {
		t.Fatalf("idle client still connected: got %q", resp)
	} else if ne := (net.Error)(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("idle client: read timed out instead of seeing the connection closed")
	}
	eventually(t, 5*time.Second, "idle session removed", func() error {
		if n := tp.p.Sessions(); n != 1 {
			return fmt.Errorf("%d sessions", n)
		}
		return nil
	})
	// go-sql-driver notices the closed connection as a connection error.
	db := openDB(t, tp.dsn(""))
	db.SetMaxIdleConns(1)
	c := sqlConn(t, db)
	if _, err := backendPort(c); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if _, err := backendPort(c); err == nil {
		t.Fatal("query on a session idle past idle_client_timeout succeeded")
	} else if !testutil.IsConnError(err) && !errors.Is(err, gomysql.ErrInvalidConn) && !strings.Contains(err.Error(), "bad connection") {
		t.Fatalf("want a connection error, got %v", err)
	}
}

// Many short client connections, some with a query, leave no goroutines,
// sessions or backend connections behind.
func TestConnectDisconnectNoLeak(t *testing.T) {
	cycles := 10000
	if testing.Short() {
		cycles = 1000
	}
	m := testutil.StartMariaDB(t)
	const maxOpen = 4
	cfg := baseConfig(m.Addr)
	cfg.Proxy.Config[0].Pool.MaxOpen = maxOpen
	tp := startProxy(t, cfg)
	warm := dialRaw(t, tp.addr)
	resp := warm.command(t, append([]byte{mysql.ComQuery}, "SELECT 1"...))
	warm.readUntilEnd(t, resp, false)
	warm.c.Close()
	eventually(t, 5*time.Second, "warm-up session gone", func() error {
		if n := tp.p.Sessions(); n != 0 {
			return fmt.Errorf("%d sessions", n)
		}
		return nil
	})
	goruntime.GC()
	base := goruntime.NumGoroutine()

	start := time.Now()
	var next, queries atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(cycles) {
					return
				}
				if err := connectCycle(tp.addr, i%10 == 0); err != nil {
					errs <- fmt.Errorf("cycle %d: %w", i, err)
					return
				}
				if i%10 == 0 {
					queries.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	t.Logf("%d connect/disconnect cycles (%d with a query) in %v", cycles, queries.Load(), time.Since(start).Round(time.Millisecond))

	eventually(t, 10*time.Second, "sessions closed", func() error {
		if n := tp.p.Sessions(); n != 0 {
			return fmt.Errorf("%d sessions still open", n)
		}
		return nil
	})
	eventually(t, 10*time.Second, "goroutines back to baseline", func() error {
		if n := goruntime.NumGoroutine(); n > base+3 {
			return fmt.Errorf("%d goroutines, baseline %d", n, base)
		}
		return nil
	})
	st := tp.poolFor(t, m.Addr).Stats()
	if st.Open > maxOpen || st.InUse != 0 {
		t.Fatalf("pool stats after the run: %+v", st)
	}
	// The server sees at most max_open proxy connections (+1: ours).
	sdb := m.Open(t, "test")
	var threads int
	if err := sdb.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND <> 'Daemon'").Scan(&threads); err != nil {
		t.Fatal(err)
	}
	if threads > maxOpen+1 {
		t.Fatalf("%d server connections after the run, want ≤ %d", threads, maxOpen+1)
	}
	t.Logf("pool %+v, server connections %d", st, threads)
}

// connectCycle connects, authenticates, maybe runs a query, and quits.
func connectCycle(addr string, query bool) error {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	c := mysql.NewConn(nc)
	if _, err := mysql.ClientHandshake(c, &mysql.ClientConfig{User: "proxy", Password: "proxypass", DB: "test"}); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if query {
		c.ResetSeq()
		if err := c.WritePacketFlush(append([]byte{mysql.ComQuery}, "SELECT 1"...)); err != nil {
			return err
		}
		// Column count, column, EOF, row, EOF.
		eofs := 0
		for eofs < 2 {
			p, err := c.ReadPacket()
			if err != nil {
				return fmt.Errorf("read result: %w", err)
			}
			switch {
			case len(p) > 0 && p[0] == mysql.ERRHeader:
				return mysql.ParseErr(p)
			case len(p) > 0 && p[0] == 0xfe && len(p) < 9:
				eofs++
			}
		}
	}
	c.ResetSeq()
	return c.WritePacketFlush([]byte{mysql.ComQuit})
}

// A reload that changes a listener keeps open sessions working; a reload
// that cannot be applied leaves the running config untouched.
func TestReloadKeepsSessions(t *testing.T) {
	shared := testutil.MariaDBAddr(t)
	cfg := baseConfig(shared)
	tp := startProxy(t, cfg)
	db := openDB(t, tp.dsn(""))
	sess := sqlConn(t, db)
	if _, err := backendPort(sess); err != nil {
		t.Fatal(err)
	}
	// A pinned session too (user variable).
	pinned := sqlConn(t, db)
	if _, err := pinned.ExecContext(context.Background(), "SET @kept = 42"); err != nil {
		t.Fatal(err)
	}
	extraDSN := fmt.Sprintf("extra:extrapw@tcp(%s)/test", tp.addr)
	if err := openDB(t, extraDSN).Ping(); err == nil {
		t.Fatal("user extra accepted before the reload")
	}

	next := baseConfig(shared)
	lc := &next.Proxy.Config[0]
	lc.Users = append(lc.Users, proxyconfig.ListenerUser{User: "extra", Password: "extrapw"})
	lc.MaxConnections = 100
	lc.IdleClientTimeout = proxyconfig.Duration{Duration: time.Hour}
	lc.Pool.MaxOpen = 7 // a changed pool setting: new pools
	next.ApplyDefaults()
	if err := tp.p.Apply(next); err != nil {
		t.Fatalf("reload: %v", err)
	}
	for i := 0; i < 3; i++ {
		if _, err := backendPort(sess); err != nil {
			t.Fatalf("open session after reload, query %d: %v", i, err)
		}
	}
	if v := queryString(t, pinned, "SELECT @kept"); v != "42" {
		t.Fatalf("pinned session lost its state across the reload: @kept = %q", v)
	}
	if err := openDB(t, extraDSN).Ping(); err != nil {
		t.Fatalf("user added by the reload: %v", err)
	}
	if err := openDB(t, tp.dsn("")).Ping(); err != nil {
		t.Fatalf("new client after reload: %v", err)
	}

	// A reload that cannot bind: the whole config is rejected.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bad := baseConfig(shared)
	bad.Proxy.Config[0].Users = nil // would drop "extra" if applied
	bad.Proxy.Config = append(bad.Proxy.Config, proxyconfig.Listener{
		Name: "second", ListenAddr: busy.Addr().String(), User: "x", Password: "y", DB: "test"})
	bad.ApplyDefaults()
	if err := tp.p.Apply(bad); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("reload with a taken address: want a listen error, got %v", err)
	}
	if tp.p.Listener("second") != nil {
		t.Fatal("listener of the rejected config is running")
	}
	if err := openDB(t, extraDSN).Ping(); err != nil {
		t.Fatalf("old config no longer serving after a rejected reload: %v", err)
	}
	if _, err := backendPort(sess); err != nil {
		t.Fatalf("open session after a rejected reload: %v", err)
	}
	if err := tp.p.Ready(); err != nil {
		t.Fatal(err)
	}
}
