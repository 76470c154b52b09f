package proxy

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

func failoverConfig(addr string, f proxyconfig.Failover) *proxyconfig.Config {
	cfg := baseConfig(addr)
	cfg.Proxy.Config[0].Failover = &f
	return cfg
}

// killTxThread kills, from a direct connection, the backend thread of the
// only open InnoDB transaction of server m (without a statement through
// the session, which would become part of its transaction).
func killTxThread(t *testing.T, m *testutil.MariaDB) {
	t.Helper()
	direct := m.Open(t, "test")
	var tid int64
	// INNODB_TRX is a cache refreshed every 0.1 s.
	eventually(t, 5*time.Second, "the transaction's backend thread", func() error {
		return direct.QueryRow("SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX").Scan(&tid)
	})
	m.Exec(t, "KILL ?", tid)
}

func isClosedConn(err error) bool {
	return errors.Is(err, gomysql.ErrInvalidConn) || errors.Is(err, driver.ErrBadConn)
}

func execAll(t *testing.T, c *sql.Conn, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := c.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// An ERR inside a transaction carries no status flags; the session must
// keep its connection (it was released, with the transaction open, to the
// next client, and the session went on in autocommit).
func TestErrorInTransactionKeepsItsConnection(t *testing.T) {
	m := testutil.StartMariaDB(t)
	m.Exec(t, "CREATE TABLE err_tx (id INT PRIMARY KEY)")
	tp := startProxy(t, baseConfig(m.Addr))
	db := openDB(t, tp.dsn(""))
	a, b := sqlConn(t, db), sqlConn(t, db)
	ctx := context.Background()
	execAll(t, a, "BEGIN", "INSERT INTO err_tx VALUES (1)")
	if _, err := a.ExecContext(ctx, "INSERT INTO err_tx VALUES (1)"); mysqlErrCode(err) != 1062 {
		t.Fatalf("duplicate key: want 1062, got %v", err)
	}
	var inTx int
	if err := b.QueryRowContext(ctx, "SELECT @@in_transaction").Scan(&inTx); err != nil || inTx != 0 {
		t.Fatalf("another session got a connection inside a transaction (in_transaction=%d, %v)", inTx, err)
	}
	if err := a.QueryRowContext(ctx, "SELECT @@in_transaction").Scan(&inTx); err != nil || inTx != 1 {
		t.Fatalf("the session lost its transaction after an error (in_transaction=%d, %v)", inTx, err)
	}
	execAll(t, a, "INSERT INTO err_tx VALUES (2)", "ROLLBACK")
	var n int
	if err := m.Open(t, "test").QueryRow("SELECT COUNT(*) FROM err_tx").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows after ROLLBACK: %d (%v), want 0", n, err)
	}
}

// delayed_retry: statements outside a transaction wait through a backend
// restart instead of failing; a stale pooled connection is not an error.
func TestDelayedRetryThroughRestart(t *testing.T) {
	m := testutil.StartMariaDB(t)
	m.Exec(t, "CREATE TABLE delayed_t (id INT PRIMARY KEY)")
	tp, reg, _ := startProxyMetrics(t, failoverConfig(m.Addr, proxyconfig.Failover{
		DelayedRetry: true, DelayedRetryTimeout: proxyconfig.D(30 * time.Second)}))
	db := openDB(t, tp.dsn(""))
	c := sqlConn(t, db)
	execAll(t, c, "INSERT INTO delayed_t VALUES (1)")

	m.Stop()
	down := time.Now()
	started := make(chan struct{})
	go func() {
		time.Sleep(time.Second)
		m.Start()
		close(started)
	}()
	// A write and a read, while the server is down: both wait.
	execAll(t, c, "INSERT INTO delayed_t VALUES (2)")
	waited := time.Since(down)
	<-started
	if waited < 900*time.Millisecond {
		t.Fatalf("the INSERT returned after %v, before the server was back", waited)
	}
	if v := queryString(t, c, "SELECT COUNT(*) FROM delayed_t"); v != "2" {
		t.Fatalf("rows: %s, want 2", v)
	}
	if n := metricValue(t, reg, "pisa_proxy_failover_delayed_statements_total", map[string]string{"outcome": "recovered"}); n < 1 {
		t.Fatalf("recovered delayed statements: %v", n)
	}
	t.Logf("the INSERT waited %v for the restart", waited.Round(time.Millisecond))
}

// The wait is bounded in time and in waiting statements.
func TestDelayedRetryBounds(t *testing.T) {
	m := testutil.StartMariaDB(t)
	tp, reg, _ := startProxyMetrics(t, failoverConfig(m.Addr, proxyconfig.Failover{
		DelayedRetry: true, DelayedRetryTimeout: proxyconfig.D(time.Second), DelayedRetryMaxWaiting: 1}))
	db := openDB(t, tp.dsn(""))
	a, b := sqlConn(t, db), sqlConn(t, db)
	queryString(t, a, "SELECT 1")
	queryString(t, b, "SELECT 1")
	m.Stop()
	first := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := a.ExecContext(context.Background(), "DO 1")
		first <- err
	}()
	time.Sleep(300 * time.Millisecond)
	_, err := b.ExecContext(context.Background(), "DO 1")
	if !isNoBackend(err) || time.Since(start) > 900*time.Millisecond {
		t.Fatalf("over delayed_retry_max_waiting: want ERR 2002 at once, got %v after %v", err, time.Since(start))
	}
	err = <-first
	if !isNoBackend(err) || time.Since(start) < time.Second {
		t.Fatalf("want ERR 2002 after delayed_retry_timeout, got %v after %v", err, time.Since(start))
	}
	for outcome, want := range map[string]float64{"timed_out": 1, "overflow": 1} {
		if n := metricValue(t, reg, "pisa_proxy_failover_delayed_statements_total", map[string]string{"outcome": outcome}); n != want {
			t.Errorf("delayed statements %s: %v, want %v", outcome, n, want)
		}
	}
}

// transaction_replay: a transaction whose backend thread is killed goes on
// on a new connection, and everything it did commits once.
func TestTransactionReplayAfterKill(t *testing.T) {
	m := testutil.StartMariaDB(t)
	m.Exec(t, "CREATE TABLE replay_t (id INT PRIMARY KEY, v INT)")
	m.Exec(t, "INSERT INTO replay_t VALUES (1, 0), (2, 0)")
	tp, reg, _ := startProxyMetrics(t, failoverConfig(m.Addr, proxyconfig.Failover{TransactionReplay: true}))
	db := openDB(t, tp.dsn(""))
	c := sqlConn(t, db)
	execAll(t, c, "BEGIN", "UPDATE replay_t SET v = v + 1 WHERE id = 1")
	if v := queryString(t, c, "SELECT GROUP_CONCAT(id, ':', v ORDER BY id) FROM replay_t"); v != "1:1,2:0" {
		t.Fatalf("rows in the transaction: %s", v)
	}
	killTxThread(t, m)
	execAll(t, c, "INSERT INTO replay_t VALUES (3, 0)")
	if v := queryString(t, c, "SELECT GROUP_CONCAT(id, ':', v ORDER BY id) FROM replay_t"); v != "1:1,2:0,3:0" {
		t.Fatalf("rows after the replay: %s", v)
	}
	execAll(t, c, "COMMIT")
	var got string
	if err := m.Open(t, "test").QueryRow("SELECT GROUP_CONCAT(id, ':', v ORDER BY id) FROM replay_t").Scan(&got); err != nil || got != "1:1,2:0,3:0" {
		t.Fatalf("committed: %q (%v), want 1:1,2:0,3:0", got, err)
	}
	if n := metricValue(t, reg, "pisa_proxy_failover_transaction_replays_total", map[string]string{"outcome": "replayed"}); n != 1 {
		t.Fatalf("replays: %v", n)
	}
}

// A transaction interrupted by a server restart is replayed once the
// server is back (the statement in flight waits for it).
func TestTransactionReplayThroughRestart(t *testing.T) {
	m := testutil.StartMariaDB(t)
	m.Exec(t, "CREATE TABLE replay_r (id INT PRIMARY KEY)")
	tp := startProxy(t, failoverConfig(m.Addr, proxyconfig.Failover{TransactionReplay: true, DelayedRetryTimeout: proxyconfig.D(30 * time.Second)}))
	db := openDB(t, tp.dsn(""))
	c := sqlConn(t, db)
	execAll(t, c, "BEGIN", "INSERT INTO replay_r VALUES (1)")
	m.Stop()
	started := make(chan struct{})
	go func() {
		defer close(started)
		time.Sleep(time.Second)
		m.Start()
	}()
	defer func() { <-started }()
	execAll(t, c, "INSERT INTO replay_r VALUES (2)", "COMMIT")
	var n int
	if err := m.Open(t, "test").QueryRow("SELECT COUNT(*) FROM replay_r").Scan(&n); err != nil || n != 2 {
		t.Fatalf("committed rows: %d (%v), want 2", n, err)
	}
}

// A replay whose results differ from what the client was sent (another
// client changed a row it had read) is the loud failure: ERR 2013, the
// connection closed, nothing of the transaction committed.
func TestTransactionReplayMismatch(t *testing.T) {
	m := testutil.StartMariaDB(t)
	m.Exec(t, "CREATE TABLE replay_m (id INT PRIMARY KEY, v INT)")
	m.Exec(t, "INSERT INTO replay_m VALUES (1, 0), (2, 0)")
	tp, reg, _ := startProxyMetrics(t, failoverConfig(m.Addr, proxyconfig.Failover{TransactionReplay: true}))
	db := openDB(t, tp.dsn(""))
	c := sqlConn(t, db)
	execAll(t, c, "BEGIN", "UPDATE replay_m SET v = 7 WHERE id = 2")
	if v := queryString(t, c, "SELECT v FROM replay_m WHERE id = 1"); v != "0" {
		t.Fatalf("v = %s", v)
	}
	m.Exec(t, "UPDATE replay_m SET v = 5 WHERE id = 1")
	killTxThread(t, m)
	_, err := c.ExecContext(context.Background(), "INSERT INTO replay_m VALUES (3, 0)")
	if mysqlErrCode(err) != 2013 {
		t.Fatalf("after a replay that differs: want ERR 2013, got %v", err)
	}
	if _, err := c.ExecContext(context.Background(), "COMMIT"); !isClosedConn(err) {
		t.Fatalf("after the failed replay the connection must be closed, got %v", err)
	}
	var got string
	if err := m.Open(t, "test").QueryRow("SELECT GROUP_CONCAT(id, ':', v ORDER BY id) FROM replay_m").Scan(&got); err != nil || got != "1:5,2:0" {
		t.Fatalf("rows: %q (%v), want 1:5,2:0 (nothing of the transaction)", got, err)
	}
	if n := metricValue(t, reg, "pisa_proxy_failover_transaction_replays_total", map[string]string{"outcome": "mismatch"}); n != 1 {
		t.Fatalf("mismatched replays: %v", n)
	}
}

// A transaction over transaction_replay_max_size is not replayed.
func TestTransactionReplayTooLarge(t *testing.T) {
	m := testutil.StartMariaDB(t)
	m.Exec(t, "CREATE TABLE replay_l (id INT PRIMARY KEY, s TEXT)")
	tp, reg, _ := startProxyMetrics(t, failoverConfig(m.Addr, proxyconfig.Failover{TransactionReplay: true, TransactionReplayMaxSize: 64}))
	db := openDB(t, tp.dsn(""))
	c := sqlConn(t, db)
	execAll(t, c, "BEGIN", "INSERT INTO replay_l VALUES (1, '"+strings.Repeat("x", 100)+"')")
	killTxThread(t, m)
	if _, err := c.ExecContext(context.Background(), "INSERT INTO replay_l VALUES (2, '')"); mysqlErrCode(err) != 2013 {
		t.Fatalf("want ERR 2013, got %v", err)
	}
	if n := metricValue(t, reg, "pisa_proxy_failover_transaction_replays_total", map[string]string{"outcome": "too_large"}); n != 1 {
		t.Fatalf("too_large: %v", n)
	}
}

// Which statements a replay accepts: nothing that may have committed
// (COMMIT in flight), nothing with effects beyond its results.
func TestReplayable(t *testing.T) {
	parser := sqlparse.New(sqlparse.Options{})
	q := func(s string) []byte { return append([]byte{0x03}, s...) }
	for _, tc := range []struct {
		sql      string
		i        int
		inFlight bool
		ok       bool
	}{
		{"BEGIN", 0, false, true},
		{"START TRANSACTION", 0, false, true},
		{"BEGIN", 2, false, false},
		{"BEGIN", 2, true, false},
		{"SELECT c FROM sbtest1 WHERE id=5", 1, false, true},
		{"UPDATE t SET v = v + 1 WHERE id = 1", 1, true, true},
		{"INSERT INTO t VALUES (1)", 0, false, true},
		{"DELETE FROM t WHERE id = 1", 3, true, true},
		{"COMMIT", 3, true, false},
		{"ROLLBACK", 3, true, true},
		{"SAVEPOINT a", 2, false, true},
		{"ROLLBACK TO SAVEPOINT a", 3, false, true},
		{"SET @x = 1", 1, false, false},
		{"SELECT GET_LOCK('a', 1)", 1, false, false},
		{"SELECT SLEEP(1)", 1, false, false},
		{"CREATE TABLE x (a INT)", 1, false, false},
		{"SELECT 1; SELECT 2", 1, false, false},
		{"SET autocommit = 1", 1, true, false},
	} {
		why := replayable(parser, q(tc.sql), tc.i, tc.inFlight)
		if (why == "") != tc.ok {
			t.Errorf("replayable(%q, %d, in flight %v) = %q, want ok=%v", tc.sql, tc.i, tc.inFlight, why, tc.ok)
		}
	}
	if why := replayable(parser, []byte{0x17, 1, 0, 0, 0}, 1, false); why == "" {
		t.Error("a COM_STMT_EXECUTE was accepted")
	}
}

// A graceful shutdown interrupts running statements and closes their
// connections (with ERR 1317 first for some): with failover that is a lost
// connection, and the read-only statement runs again once the server is
// back.
// TestDelayedRetryLosesConnectionTwice: a read-only statement whose backend
// connection is killed under it twice in a row (a server closing its
// connections one by one while it shuts down: the retry takes one that
// still looked alive) runs a third time with delayed_retry; without it,
// the second loss reaches the client as 2013.
func TestDelayedRetryLosesConnectionTwice(t *testing.T) {
	m := testutil.StartMariaDB(t)
	for _, delayed := range []bool{true, false} {
		t.Run(fmt.Sprintf("delayed_retry=%v", delayed), func(t *testing.T) {
			tp, _, logs := startProxyMetrics(t, failoverConfig(m.Addr, proxyconfig.Failover{
				DelayedRetry: delayed, TransactionReplay: !delayed, DelayedRetryTimeout: proxyconfig.D(30 * time.Second)}))
			c := sqlConn(t, openDB(t, tp.dsn("")))
			res := make(chan string, 1)
			go func() {
				var v string
				if err := c.QueryRowContext(context.Background(), "SELECT COUNT(*) /* kill me twice */ FROM seq_1_to_5000 a, seq_1_to_5000 b").Scan(&v); err != nil {
					v = err.Error()
				}
				res <- v
			}()
			direct := m.Open(t, "test")
			killed := map[int64]bool{}
			for len(killed) < 2 {
				var id int64
				eventually(t, 20*time.Second, "the statement on a connection not killed yet", func() error {
					rows, err := direct.Query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT COUNT(*) /* kill me twice */%'")
					if err != nil {
						return err
					}
					defer rows.Close()
					for rows.Next() {
						if err := rows.Scan(&id); err != nil {
							return err
						}
						if !killed[id] {
							return nil
						}
					}
					var all []string
					r2, _ := direct.Query("SELECT CONCAT(ID, ' ', COALESCE(INFO, '')) FROM information_schema.PROCESSLIST")
					for r2.Next() {
						var x string
						r2.Scan(&x)
						all = append(all, x)
					}
					r2.Close()
					select {
					case v := <-res:
						t.Fatalf("the statement ended before it was killed twice: %s", v)
					default:
					}
					return fmt.Errorf("not running (%d killed): %q", len(killed), all)
				})
				killed[id] = true
				if _, err := direct.Exec("KILL CONNECTION ?", id); err != nil {
					t.Fatal(err)
				}
			}
			v := <-res
			if n := strings.Count(logs.String(), "backend failed during command"); n != 2 {
				t.Fatalf("%d backend failures logged, want 2 (result %q)", n, v)
			}
			if delayed {
				if v != "25000000" {
					t.Fatalf("with delayed_retry: %s", v)
				}
			} else if !strings.Contains(v, "2013") {
				t.Fatalf("without delayed_retry, a second lost connection must reach the client as 2013; got %s", v)
			}
		})
	}
}

func TestDelayedRetryThroughShutdown(t *testing.T) {
	m := testutil.StartMariaDB(t)
	tp, _, logs := startProxyMetrics(t, failoverConfig(m.Addr, proxyconfig.Failover{
		DelayedRetry: true, DelayedRetryTimeout: proxyconfig.D(30 * time.Second)}))
	c := sqlConn(t, openDB(t, tp.dsn("")))
	res := make(chan string, 1)
	start := time.Now()
	go func() {
		var v string
		err := c.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM seq_1_to_8000 a, seq_1_to_8000 b").Scan(&v)
		if err != nil {
			v = err.Error()
		}
		res <- v
	}()
	// Shut down only once the statement runs on the server (a fixed sleep
	// let a quick machine finish it first).
	direct := m.Open(t, "test")
	for deadline := time.Now().Add(30 * time.Second); ; {
		var n int
		if err := direct.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT COUNT(*) FROM seq%'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the statement never ran on the server")
		}
		time.Sleep(5 * time.Millisecond)
	}
	direct.Close()
	m.Shutdown()
	down := time.Since(start)
	m.Start()
	if v := <-res; v != "64000000" {
		t.Fatalf("statement in flight during the shutdown: %s", v)
	}
	if !strings.Contains(logs.String(), "backend failed during command") {
		t.Fatalf("the statement was not interrupted by the shutdown (%v): nothing was tested\n%s", down, logs.String())
	}
}
