package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

func TestPreparedStatements(t *testing.T) {
	tp := defaultProxy(t)
	for _, params := range []string{"", "interpolateParams=true"} {
		t.Run("params="+params, func(t *testing.T) {
			db := openDB(t, tp.dsn(params))
			db.SetMaxOpenConns(1)
			var a int
			var b string
			if err := db.QueryRow("SELECT ? + 1, CONCAT(?, 'x')", 41, "y").Scan(&a, &b); err != nil {
				t.Fatal(err)
			}
			if a != 42 || b != "yx" {
				t.Fatalf("got %d %q", a, b)
			}
			st, err := db.Prepare("SELECT ? * 2")
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 20; i++ {
				var v int
				if err := st.QueryRow(i).Scan(&v); err != nil {
					t.Fatal(err)
				}
				if v != 2*i {
					t.Fatalf("%d*2 = %d", i, v)
				}
			}
			st.Close()
		})
	}
}

// A client that prepares and closes many statements must not exhaust the
// server's max_prepared_stmt_count: the statements a connection keeps are
// bounded.
func TestStmtCloseReallyCloses(t *testing.T) {
	tp := defaultProxy(t)
	db := openDB(t, tp.dsn(""))
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Limit this backend session's view: count the server's open statements
	// before and after.
	before := preparedCount(t)
	for i := 0; i < 500; i++ {
		st, err := conn.PrepareContext(context.Background(), fmt.Sprintf("SELECT %d + ?", i))
		if err != nil {
			t.Fatalf("prepare %d: %v", i, err)
		}
		var v int
		if err := st.QueryRow(1).Scan(&v); err != nil || v != i+1 {
			t.Fatalf("exec %d: %v %d", i, err, v)
		}
		st.Close()
	}
	// Closed statements stay prepared on the backend connection for other
	// executes, up to its cache's bound (the least recently used is
	// closed on the server).
	if after := preparedCount(t); after-before > backend.DefaultMaxStmts*openBackends(tp)+5 {
		t.Fatalf("prepared statements leaked on the server: %d before, %d after (bound %d per connection, %d connections)",
			before, after, backend.DefaultMaxStmts, openBackends(tp))
	}
}

func preparedCount(t *testing.T) int {
	db := openDB(t, "root:@tcp(127.0.0.1:3306)/test")
	var name string
	var v int
	if err := db.QueryRow("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'").Scan(&name, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestTransactionsPinAndRelease(t *testing.T) {
	tp := defaultProxy(t)
	db := openDB(t, tp.dsn(""))
	db.Exec("DROP TABLE IF EXISTS proxy_tx")
	if _, err := db.Exec("CREATE TABLE proxy_tx (id INT PRIMARY KEY) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	defer db.Exec("DROP TABLE proxy_tx")
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO proxy_tx VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	// Inside the transaction we see our row; other sessions do not.
	var n int
	if err := tx.QueryRow("SELECT COUNT(*) FROM proxy_tx").Scan(&n); err != nil || n != 1 {
		t.Fatalf("in tx: %d %v", n, err)
	}
	other := openDB(t, tp.dsn(""))
	if err := other.QueryRow("SELECT COUNT(*) FROM proxy_tx").Scan(&n); err != nil || n != 0 {
		t.Fatalf("other session sees uncommitted row: %d %v", n, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT COUNT(*) FROM proxy_tx").Scan(&n); err != nil || n != 0 {
		t.Fatalf("after rollback: %d %v", n, err)
	}
	tx, _ = db.Begin()
	tx.Exec("INSERT INTO proxy_tx VALUES (2)")
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := other.QueryRow("SELECT COUNT(*) FROM proxy_tx").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after commit: %d %v", n, err)
	}
}

// Session variables set by a client follow it to whichever backend
// connection serves it, and do not leak to other clients.
func TestSessionStateFollowsClient(t *testing.T) {
	testutil.SkipShort(t)
	cfg := baseConfig("127.0.0.1:3306")
	cfg.Proxy.Config[0].Pool.MaxOpen = 2
	tp := startProxy(t, cfg)
	db := openDB(t, tp.dsn(""))
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string) {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("SET SESSION sql_mode = 'ANSI_QUOTES'")
	exec("SET time_zone = '+03:00'")
	exec("SET NAMES latin1")
	exec("USE mysql")
	// Churn the pool from other clients so our next statement likely lands
	// on another backend connection.
	others := openDB(t, tp.dsn(""))
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				var m string
				others.QueryRow("SELECT @@SESSION.sql_mode").Scan(&m)
				if m == "ANSI_QUOTES" {
					t.Errorf("another client sees our sql_mode")
				}
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 10; i++ {
		var mode, tz, cs, dbname string
		if err := conn.QueryRowContext(context.Background(), "SELECT @@SESSION.sql_mode, @@SESSION.time_zone, @@character_set_client, DATABASE()").Scan(&mode, &tz, &cs, &dbname); err != nil {
			t.Fatal(err)
		}
		if mode != "ANSI_QUOTES" || tz != "+03:00" || cs != "latin1" || dbname != "mysql" {
			t.Fatalf("state lost: sql_mode=%q tz=%q cs=%q db=%q", mode, tz, cs, dbname)
		}
	}
}

func TestUserVariablePins(t *testing.T) {
	testutil.SkipShort(t)
	cfg := baseConfig("127.0.0.1:3306")
	tp := startProxy(t, cfg)
	db := openDB(t, tp.dsn(""))
	db.SetMaxOpenConns(1)
	conn, _ := db.Conn(context.Background())
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "SET @pv = 42"); err != nil {
		t.Fatal(err)
	}
	others := openDB(t, tp.dsn(""))
	for i := 0; i < 10; i++ {
		others.Exec("SELECT 1")
	}
	var v sql.NullInt64
	if err := conn.QueryRowContext(context.Background(), "SELECT @pv").Scan(&v); err != nil || v.Int64 != 42 {
		t.Fatalf("user variable lost: %v %v", v, err)
	}
	if _, err := conn.ExecContext(context.Background(), "CREATE TEMPORARY TABLE tmp_pin (a INT)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "INSERT INTO tmp_pin VALUES (1)"); err != nil {
		t.Fatalf("temporary table lost: %v", err)
	}
}

func TestMultiStatementsAndResults(t *testing.T) {
	tp := defaultProxy(t)
	db := openDB(t, tp.dsn("multiStatements=true"))
	db.SetMaxOpenConns(1)
	rows, err := db.Query("SELECT 1; SELECT 2, 3; SELECT 'x'")
	if err != nil {
		t.Fatal(err)
	}
	var sets int
	for {
		for rows.Next() {
		}
		sets++
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if sets != 3 {
		t.Fatalf("result sets = %d", sets)
	}
	db.Exec("DROP PROCEDURE IF EXISTS proxy_multi")
	if _, err := db.Exec("CREATE PROCEDURE proxy_multi() BEGIN SELECT 1 AS a; SELECT 2 AS b, 3 AS c; END"); err != nil {
		t.Fatal(err)
	}
	defer db.Exec("DROP PROCEDURE proxy_multi")
	rows, err = db.Query("CALL proxy_multi()")
	if err != nil {
		t.Fatal(err)
	}
	sets = 0
	for {
		for rows.Next() {
		}
		sets++
		if !rows.NextResultSet() {
			break
		}
	}
	rows.Close()
	if sets < 2 {
		t.Fatalf("CALL result sets = %d", sets)
	}
	// Without multiStatements the client's protection holds.
	plain := openDB(t, tp.dsn(""))
	if _, err := plain.Exec("SELECT 1; SELECT 2"); err == nil {
		t.Fatal("multi statement accepted from a client that did not enable it")
	}
}

func TestLargeResultStreams(t *testing.T) {
	tp := defaultProxy(t)
	db := openDB(t, tp.dsn(""))
	rows, err := db.Query("SELECT seq, REPEAT('x', 1000) FROM seq_1_to_50000")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 50000 {
		t.Fatalf("rows = %d", n)
	}
	// A row larger than 16 MiB crosses the packet split (each value stays
	// under the server's max_allowed_packet).
	var big1, big2 []byte
	db2 := openDB(t, tp.dsn("maxAllowedPacket=0"))
	if err := db2.QueryRow("SELECT REPEAT('y', 9*1024*1024), REPEAT('z', 9*1024*1024)").Scan(&big1, &big2); err != nil {
		t.Fatalf("18 MiB row: %v", err)
	}
	if len(big1) != 9*1024*1024 || len(big2) != 9*1024*1024 || !bytes.Equal(big2[:3], []byte("zzz")) {
		t.Fatalf("18 MiB row has %d+%d bytes", len(big1), len(big2))
	}
}

func TestTLSClients(t *testing.T) {
	tp := defaultProxy(t)
	gomysql.RegisterTLSConfig("pisa-skip", &tls.Config{InsecureSkipVerify: true})
	db := openDB(t, tp.dsn("tls=pisa-skip"))
	var cipher, version string
	if err := db.QueryRow("SELECT 'ok', 'v'").Scan(&cipher, &version); err != nil {
		t.Fatalf("query over TLS: %v", err)
	}
	// tls=true verifies the self-signed certificate and must fail.
	bad := openDB(t, tp.dsn("tls=true"))
	if err := bad.Ping(); err == nil {
		t.Fatal("self-signed certificate accepted with verification on")
	}
}

func TestRequireTLS(t *testing.T) {
	cfg := baseConfig("127.0.0.1:3306")
	cfg.Proxy.Config[0].TLS.Required = true
	tp := startProxy(t, cfg)
	if err := openDB(t, tp.dsn("")).Ping(); mysqlErrCode(err) != 1045 {
		t.Fatalf("plain client with TLS required: %v", err)
	}
	gomysql.RegisterTLSConfig("pisa-skip2", &tls.Config{InsecureSkipVerify: true})
	if err := openDB(t, tp.dsn("tls=pisa-skip2")).Ping(); err != nil {
		t.Fatal(err)
	}
}

// caching_sha2_password on the client side: full authentication (RSA key
// exchange without TLS, cleartext over TLS), then the fast path.
func TestCachingSha2ServerSide(t *testing.T) {
	cfg := baseConfig("127.0.0.1:3306")
	cfg.Proxy.Config[0].ServerVersion = "8.0.36-pisa"
	tp := startProxy(t, cfg)
	for i := 0; i < 2; i++ {
		db := openDB(t, tp.dsn("")) // no TLS: RSA public key exchange first
		if err := db.Ping(); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		db.Close()
	}
	gomysql.RegisterTLSConfig("pisa-skip3", &tls.Config{InsecureSkipVerify: true})
	if err := openDB(t, tp.dsn("tls=pisa-skip3")).Ping(); err != nil {
		t.Fatal(err)
	}
	if err := openDB(t, fmt.Sprintf("proxy:bad@tcp(%s)/test", tp.addr)).Ping(); mysqlErrCode(err) != 1045 {
		t.Fatalf("bad password: %v", err)
	}
}

// caching_sha2_password on the backend side, against the proxy's own server
// side: proxy B uses proxy A (MySQL 8 flavour) as its backend.
func TestCachingSha2BackendSide(t *testing.T) {
	testutil.SkipShort(t)
	cfgA := baseConfig("127.0.0.1:3306")
	cfgA.Proxy.Config[0].ServerVersion = "8.0.36-pisa"
	a := startProxy(t, cfgA)
	cfgB := baseConfig(a.addr)
	cfgB.MySQL.Nodes[0].User = "proxy"
	cfgB.MySQL.Nodes[0].Password = "proxypass"
	b := startProxy(t, cfgB)
	db := openDB(t, b.dsn(""))
	db.SetMaxIdleConns(0)
	for i := 0; i < 3; i++ {
		if got := queryString(t, db, "SELECT 40 + 2"); got != "42" {
			t.Fatalf("through two proxies: %q", got)
		}
	}
}

func TestPingInitDBFieldListStatistics(t *testing.T) {
	tp := defaultProxy(t)
	db := openDB(t, tp.dsn(""))
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	conn, _ := db.Conn(context.Background())
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "USE mysql"); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, conn, "SELECT DATABASE()"); got != "mysql" {
		t.Fatalf("db = %q", got)
	}
	if _, err := conn.ExecContext(context.Background(), "USE no_such_db_abc"); mysqlErrCode(err) != 1049 {
		t.Fatalf("USE unknown: %v", err)
	}
	if got := queryString(t, conn, "SELECT DATABASE()"); got != "mysql" {
		t.Fatalf("db after failed USE = %q", got)
	}
}

func TestConnectionIDAndKill(t *testing.T) {
	tp := defaultProxy(t)
	db := openDB(t, tp.dsn(""))
	db.SetMaxOpenConns(1)
	conn, _ := db.Conn(context.Background())
	defer conn.Close()
	id := queryString(t, conn, "SELECT CONNECTION_ID()")
	killer := openDB(t, tp.dsn(""))
	errc := make(chan error, 1)
	go func() {
		var v int
		errc <- conn.QueryRowContext(context.Background(), "SELECT SLEEP(20)").Scan(&v)
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if _, err := killer.Exec("KILL QUERY " + id); err != nil {
		t.Fatalf("KILL QUERY %s: %v", id, err)
	}
	select {
	case <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("KILL QUERY did not interrupt the sleep")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("KILL QUERY too slow")
	}
	// The session survives KILL QUERY.
	if got := queryString(t, conn, "SELECT 7"); got != "7" {
		t.Fatal(got)
	}
	if _, err := killer.Exec("KILL 999999"); mysqlErrCode(err) != 1094 {
		t.Fatalf("unknown id: %v", err)
	}
	if _, err := killer.Exec("KILL " + id); err != nil {
		t.Fatal(err)
	}
	if err := conn.PingContext(context.Background()); err == nil {
		t.Fatal("killed connection still alive")
	}
}

func TestClientDisconnectKillsBackendQuery(t *testing.T) {
	tp := defaultProxy(t)
	db := openDB(t, tp.dsn(""))
	marker := fmt.Sprintf("pisa_disconnect_%d", time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	// go-sql-driver closes the connection when the context ends.
	db.QueryRowContext(ctx, "SELECT SLEEP(30), '"+marker+"'").Scan(new(int), new(string))
	root := openDB(t, "root:@tcp(127.0.0.1:3306)/test")
	deadline := time.Now().Add(8 * time.Second)
	for {
		var n int
		root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND COMMAND = 'Query'", "%"+marker+"%").Scan(&n)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend query still running after the client left")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestUnsupportedCommandKeepsSession(t *testing.T) {
	tp := defaultProxy(t)
	c := dialRaw(t, tp.addr)
	resp := c.command(t, []byte{0x12, 0, 0, 0, 0}) // COM_BINLOG_DUMP
	if resp[0] != 0xff || !strings.Contains(string(resp), "COM_BINLOG_DUMP") {
		t.Fatalf("unexpected response %q", resp)
	}
	if code := uint16(resp[1]) | uint16(resp[2])<<8; code != 1047 {
		t.Fatalf("code %d", code)
	}
	resp = c.command(t, []byte{0x0e}) // COM_PING
	if resp[0] != 0 {
		t.Fatalf("ping after unsupported command: %q", resp)
	}
}

func TestNoHealthyBackend(t *testing.T) {
	cfg := baseConfig("127.0.0.1:1") // nothing listens there
	tp := startProxy(t, cfg)
	db := openDB(t, tp.dsn(""))
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := 0; i < 2; i++ {
		_, err := conn.ExecContext(context.Background(), "SELECT 1")
		var me *gomysql.MySQLError
		if !asMySQLErr(err, &me) || me.Number != 2002 || me.Message != "There is no healthy backend to connect." {
			t.Fatalf("want 2002, got %v", err)
		}
	}
	if err := conn.PingContext(context.Background()); err != nil {
		t.Fatalf("session closed after backend failure: %v", err)
	}
	if tp.p.Ready() == nil {
		t.Fatal("ready with no healthy backend")
	}
}

func asMySQLErr(err error, target **gomysql.MySQLError) bool {
	me, ok := err.(*gomysql.MySQLError)
	if ok {
		*target = me
	}
	return ok
}

func TestLoadDataLocalInfile(t *testing.T) {
	tp := defaultProxy(t)
	gomysql.RegisterReaderHandler("pisa-rows", func() io.Reader {
		return strings.NewReader("1,a\n2,b\n3,c\n")
	})
	db := openDB(t, tp.dsn("allowAllFiles=true"))
	db.Exec("DROP TABLE IF EXISTS proxy_load")
	if _, err := db.Exec("CREATE TABLE proxy_load (id INT, v CHAR(1))"); err != nil {
		t.Fatal(err)
	}
	defer db.Exec("DROP TABLE proxy_load")
	res, err := db.Exec("LOAD DATA LOCAL INFILE 'Reader::pisa-rows' INTO TABLE proxy_load FIELDS TERMINATED BY ','")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 3 {
		t.Fatalf("loaded %d rows", n)
	}
}

func TestConnectAttributesForwarded(t *testing.T) {
	srv := testutil.StartMariaDB(t, "--performance-schema=ON")
	cfg := baseConfig(srv.Addr)
	tp := startProxy(t, cfg)
	// Attributes go on connections opened for the client: keep the pool's
	// warm-up connection busy in another session's transaction so that our
	// client gets a new one.
	for tp.p.Ready() != nil {
		time.Sleep(10 * time.Millisecond)
	}
	busy, err := openDB(t, tp.dsn("")).Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if _, err := busy.ExecContext(context.Background(), "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := busy.ExecContext(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, tp.dsn("connectionAttributes=program_name:pisa_attr_test"))
	db.SetMaxOpenConns(1)
	var backendID string
	if err := db.QueryRow("SELECT @@pseudo_thread_id").Scan(&backendID); err != nil {
		t.Fatal(err)
	}
	root := openDB(t, srv.DSN("test"))
	var n int
	err = root.QueryRow(`SELECT COUNT(*) FROM performance_schema.session_connect_attrs
		WHERE PROCESSLIST_ID = ? AND ATTR_NAME = 'program_name' AND ATTR_VALUE = 'pisa_attr_test'`, backendID).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("client attribute not forwarded to backend thread %s", backendID)
	}
}

func TestSetNamesCollateFollowsClient(t *testing.T) {
	tp := defaultProxy(t)
	db := openDB(t, tp.dsn(""))
	db.SetMaxOpenConns(1)
	conn, _ := db.Conn(context.Background())
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatal(err)
	}
	others := openDB(t, tp.dsn(""))
	for i := 0; i < 5; i++ {
		others.Exec("SELECT 1")
	}
	if got := queryString(t, conn, "SELECT @@collation_connection"); got != "utf8mb4_unicode_ci" {
		t.Fatalf("collation_connection = %q", got)
	}
}
