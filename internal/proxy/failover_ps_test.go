package proxy

import (
	"bytes"
	"context"
	"database/sql"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

func mustPrepare(t *testing.T, db *sql.DB, q string) *sql.Stmt {
	t.Helper()
	st, err := db.Prepare(q)
	if err != nil {
		t.Fatalf("prepare %s: %v", q, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// A transaction of prepared statements (COM_STMT_EXECUTE with binary
// parameters, go-sql-driver without interpolateParams) whose backend
// connection is killed is replayed on a new connection: the statements
// are prepared there again, the execute in flight runs on it, and the
// transaction commits as if nothing happened.
func TestTransactionReplayPreparedAfterKill(t *testing.T) {
	m := testutil.StartMariaDB(t)
	m.Exec(t, "CREATE TABLE replay_ps (id INT PRIMARY KEY, v INT, s VARCHAR(20))")
	m.Exec(t, "INSERT INTO replay_ps VALUES (1, 0, 'a'), (2, 0, 'b')")
	tp, reg, logs := startProxyMetrics(t, failoverConfig(m.Addr, proxyconfig.Failover{TransactionReplay: true}))
	defer func() {
		if t.Failed() {
			t.Logf("proxy log:\n%s", logs.String())
		}
	}()
	db := openDB(t, tp.dsn("interpolateParams=false"))
	upd := mustPrepare(t, db, "UPDATE replay_ps SET v = v + ?, s = ? WHERE id = ?")
	sel := mustPrepare(t, db, "SELECT v, s FROM replay_ps WHERE id = ?")
	ins := mustPrepare(t, db, "INSERT INTO replay_ps VALUES (?, ?, ?)")
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.Stmt(upd).Exec(5, "x", 1); err != nil {
		t.Fatalf("update: %v", err)
	}
	// Prepared inside the transaction: with arguments (go-sql-driver
	// prepares, executes, closes), and without parameters or columns.
	if _, err := tx.Exec("UPDATE replay_ps SET v = v + ? WHERE id = ?", 1, 2); err != nil {
		t.Fatalf("update with arguments: %v", err)
	}
	del, err := tx.Prepare("DELETE FROM replay_ps WHERE id = 99")
	if err != nil {
		t.Fatalf("prepare in the transaction: %v", err)
	}
	if _, err := del.Exec(); err != nil {
		t.Fatalf("delete: %v", err)
	}
	var v int
	var s string
	if err := tx.Stmt(sel).QueryRow(1).Scan(&v, &s); err != nil || v != 5 || s != "x" {
		t.Fatalf("in the transaction: %d %q (%v)", v, s, err)
	}
	var other int
	if err := m.Open(t, "test").QueryRow("SELECT v FROM replay_ps WHERE id = 2").Scan(&other); err != nil || other != 0 {
		t.Fatalf("the transaction's update is visible outside it: %d (%v)", other, err)
	}
	killTxThread(t, m)
	// The execute in flight when the loss is found runs again after the
	// replay.
	if _, err := tx.Stmt(ins).Exec(3, 7, "c"); err != nil {
		t.Fatalf("insert after the kill: %v", err)
	}
	if err := tx.Stmt(sel).QueryRow(3).Scan(&v, &s); err != nil || v != 7 || s != "c" {
		t.Fatalf("after the replay: %d %q (%v)", v, s, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	var got string
	if err := m.Open(t, "test").QueryRow("SELECT GROUP_CONCAT(id, ':', v, s ORDER BY id) FROM replay_ps").Scan(&got); err != nil || got != "1:5x,2:1b,3:7c" {
		t.Fatalf("committed: %q (%v), want 1:5x,2:1b,3:7c", got, err)
	}
	if n := metricValue(t, reg, "pisa_proxy_failover_transaction_replays_total", map[string]string{"outcome": "replayed"}); n != 1 {
		t.Fatalf("replays: %v", n)
	}
}

// A replayed execute whose result differs from what the client was sent
// fails loudly, as a text statement's does: ERR 2013, the connection
// closed, nothing of the transaction committed.
func TestTransactionReplayPreparedMismatch(t *testing.T) {
	m := testutil.StartMariaDB(t)
	m.Exec(t, "CREATE TABLE replay_psm (id INT PRIMARY KEY, v INT)")
	m.Exec(t, "INSERT INTO replay_psm VALUES (1, 0), (2, 0)")
	tp, reg, _ := startProxyMetrics(t, failoverConfig(m.Addr, proxyconfig.Failover{TransactionReplay: true}))
	db := openDB(t, tp.dsn("interpolateParams=false"))
	upd := mustPrepare(t, db, "UPDATE replay_psm SET v = ? WHERE id = ?")
	sel := mustPrepare(t, db, "SELECT v FROM replay_psm WHERE id = ?")
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.Stmt(upd).Exec(7, 2); err != nil {
		t.Fatalf("update: %v", err)
	}
	var v int
	if err := tx.Stmt(sel).QueryRow(1).Scan(&v); err != nil || v != 0 {
		t.Fatalf("v = %d (%v)", v, err)
	}
	m.Exec(t, "UPDATE replay_psm SET v = 5 WHERE id = 1")
	killTxThread(t, m)
	if _, err := tx.Stmt(upd).Exec(9, 1); mysqlErrCode(err) != 2013 {
		t.Fatalf("after a replay that differs: want ERR 2013, got %v", err)
	}
	if err := tx.Commit(); err == nil {
		t.Fatal("commit after the failed replay succeeded")
	}
	var got string
	if err := m.Open(t, "test").QueryRow("SELECT GROUP_CONCAT(id, ':', v ORDER BY id) FROM replay_psm").Scan(&got); err != nil || got != "1:5,2:0" {
		t.Fatalf("rows: %q (%v), want 1:5,2:0 (nothing of the transaction)", got, err)
	}
	if n := metricValue(t, reg, "pisa_proxy_failover_transaction_replays_total", map[string]string{"outcome": "mismatch"}); n != 1 {
		t.Fatalf("mismatched replays: %v", n)
	}
}

// An execute is recorded with its parameter types bound, whether the
// client sent them with it or earlier.
func TestAppendTypedExec(t *testing.T) {
	types := []byte{0x03, 0x00, 0xfe, 0x00} // INT, STRING
	// id 7, no cursor, iterations 1, null bitmap 0, new-params-bound 0,
	// values: int 5, string "ab".
	head := []byte{0x17, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0}
	vals := []byte{5, 0, 0, 0, 2, 'a', 'b'}
	p := append(append(append([]byte{}, head...), 0), vals...)
	got, ok := appendTypedExec(nil, p, types, 2)
	want := append(append(append(append([]byte{}, head...), 1), types...), vals...)
	if !ok || !bytes.Equal(got, want) {
		t.Fatalf("types bound: %x (%v), want %x", got, ok, want)
	}
	// Sent with it: unchanged.
	if got, ok := appendTypedExec(nil, want, nil, 2); !ok || !bytes.Equal(got, want) {
		t.Fatalf("types sent: %x (%v)", got, ok)
	}
	// No parameters: unchanged; malformed: refused.
	if got, ok := appendTypedExec(nil, head[:10], nil, 0); !ok || !bytes.Equal(got, head[:10]) {
		t.Fatalf("no parameters: %x (%v)", got, ok)
	}
	if _, ok := appendTypedExec(nil, head[:10], types, 2); ok {
		t.Fatal("a truncated execute was accepted")
	}
	if _, ok := appendTypedExec(nil, p, nil, 2); ok {
		t.Fatal("an execute without types, none bound before, was accepted")
	}
}

// Which executes a replay accepts: no cursor, no long data, nothing the
// security claim rewrites; their text is judged as a COM_QUERY's.
func TestReplayableExec(t *testing.T) {
	parser := sqlparse.New(sqlparse.Options{})
	exec := func(flags byte) []byte { return []byte{0x17, 1, 0, 0, 0, flags, 1, 0, 0, 0} }
	for _, tc := range []struct {
		name     string
		p        []byte
		st       stmt
		inFlight bool
		ok       bool
	}{
		{"update", exec(0), stmt{text: "UPDATE t SET v = ? WHERE id = ?"}, false, true},
		{"select in flight", exec(0), stmt{text: "SELECT v FROM t WHERE id = ?"}, true, true},
		{"cursor", exec(1), stmt{text: "SELECT v FROM t WHERE id = ?"}, false, false},
		{"long data", exec(0), stmt{text: "INSERT INTO t VALUES (?)", longData: true}, false, false},
		{"commit in flight", exec(0), stmt{text: "COMMIT"}, true, false},
		{"user variables", exec(0), stmt{text: "SELECT @a := ?"}, false, false},
		{"bulk", []byte{0xfa, 1, 0, 0, 0, 0, 0}, stmt{text: "INSERT INTO t VALUES (?)"}, false, false},
	} {
		ts := replayableExec(tc.p, 1, &tc.st)
		var l txLog
		why := l.replayable(parser, tc.p, ts, 1, tc.inFlight)
		if (why == "") != tc.ok {
			t.Errorf("%s: replayable = %q, want ok=%v", tc.name, why, tc.ok)
		}
	}
}

// A COM_STMT_PREPARE inside a transaction whose answer has no status flags
// (a statement without parameters or columns) keeps the session on its
// connection: released, it went to the next client with the transaction
// open.
func TestPrepareInTransactionKeepsItsConnection(t *testing.T) {
	m := testutil.StartMariaDB(t)
	m.Exec(t, "CREATE TABLE prep_tx (id INT PRIMARY KEY)")
	tp := startProxy(t, baseConfig(m.Addr))
	db := openDB(t, tp.dsn("interpolateParams=false"))
	db.SetMaxOpenConns(2)
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.Exec("INSERT INTO prep_tx VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	st, err := tx.Prepare("DELETE FROM prep_tx WHERE id = 99")
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	defer st.Close()
	// Another session: it must not get the transaction's connection.
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM prep_tx").Scan(&n); err != nil || n != 0 {
		t.Fatalf("another session sees %d rows (%v): it got the transaction's connection", n, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM prep_tx").Scan(&n); err != nil || n != 0 {
		t.Fatalf("after the rollback: %d rows (%v)", n, err)
	}
}
