package proxy

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// xaRecover returns the prepared XA branches of a server (XA RECOVER's
// data column).
func xaRecover(t *testing.T, m *testutil.MariaDB) []string {
	t.Helper()
	var out []string
	for _, r := range rowsOf(t, m.Open(t, "test"), "XA RECOVER") {
		parts := strings.Split(r, "|")
		out = append(out, parts[len(parts)-1])
	}
	return out
}

func countWhere(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	return rowsOf(t, db, q)[0]
}

// A transaction on two datanodes commits on both (two-phase), or rolls
// back on both; one on a single datanode commits in one phase; statements
// on every shard, prepared statements, unsharded tables and autocommit off
// join the transaction; nothing stays prepared.
func TestShardingXATransactions(t *testing.T) {
	sc := startSharded(t)
	sc.exec(t, "CREATE TABLE t_order (id BIGINT PRIMARY KEY, note VARCHAR(20))")
	sc.exec(t, "CREATE TABLE t_plain (id INT PRIMARY KEY, note VARCHAR(20))")
	ctx := context.Background()
	d1, d2 := sc.m1.Open(t, "test"), sc.m2.Open(t, "test")

	// Two datanodes, committed.
	tx, err := sc.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"INSERT INTO t_order (id, note) VALUES (1, 'a'), (2, 'a')",
		"INSERT INTO t_plain (id, note) VALUES (1, 'a')",
		"UPDATE t_order SET note = 'b' WHERE note = 'a'", // every shard
	} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Reads inside the transaction see its writes, on every shard.
	if got := rowsOf(t, tx, "SELECT id, note FROM t_order ORDER BY id"); strings.Join(got, ",") != "1|b,2|b" {
		t.Fatalf("rows inside the transaction: %v", got)
	}
	// Not visible outside before COMMIT.
	if got := countWhere(t, d2, "SELECT COUNT(*) FROM t_order"); got != "0" {
		t.Fatalf("uncommitted row visible on ds002: %s", got)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if a, b := countWhere(t, d1, "SELECT COUNT(*) FROM t_order WHERE note='b'"), countWhere(t, d2, "SELECT COUNT(*) FROM t_order WHERE note='b'"); a != "1" || b != "1" {
		t.Fatalf("committed rows: ds001 %s, ds002 %s", a, b)
	}
	if got := countWhere(t, d1, "SELECT COUNT(*) FROM t_plain"); got != "1" {
		t.Fatalf("t_plain: %s", got)
	}

	// Two datanodes and the default node, rolled back.
	tx, err = sc.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	stmt, err := tx.Prepare("INSERT INTO t_order (id, note) VALUES (?, 'r')")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{3, 4, 5, 6} {
		if _, err := stmt.Exec(id); err != nil {
			t.Fatalf("prepared insert %d: %v", id, err)
		}
	}
	if _, err := tx.Exec("INSERT INTO t_plain (id, note) VALUES (2, 'r')"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := countWhere(t, sc.db, "SELECT COUNT(*) FROM t_order WHERE note = 'r'"); got != "0" {
		t.Fatalf("rolled back rows: %s", got)
	}
	if got := countWhere(t, sc.db, "SELECT COUNT(*) FROM t_plain WHERE note = 'r'"); got != "0" {
		t.Fatalf("rolled back t_plain rows: %s", got)
	}

	// One datanode: one phase.
	if _, err := sc.db.Exec("BEGIN"); err == nil {
		// database/sql sends BEGIN on some connection; use a Conn instead.
	}
	c := sqlConn(t, sc.db)
	for _, q := range []string{"BEGIN", "INSERT INTO t_order (id, note) VALUES (7, 'one')", "COMMIT"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// autocommit off: a transaction per COMMIT.
	for _, q := range []string{"SET autocommit = 0", "INSERT INTO t_order (id, note) VALUES (8, 'ac'), (9, 'ac')",
		"DELETE FROM t_order WHERE id = 7", "COMMIT", "INSERT INTO t_order (id, note) VALUES (10, 'ac2'), (11, 'ac2')", "ROLLBACK",
		"INSERT INTO t_order (id, note) VALUES (12, 'ac3'), (13, 'ac3')", "SET autocommit = 1"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if got := rowsOf(t, sc.db, "SELECT id FROM t_order WHERE note LIKE 'ac%' OR id = 7 ORDER BY id"); strings.Join(got, ",") != "8,9,12,13" {
		t.Fatalf("autocommit off: %v", got)
	}
	for _, m := range []*testutil.MariaDB{sc.m1, sc.m2} {
		if got := xaRecover(t, m); len(got) != 0 {
			t.Fatalf("prepared branches left on %s: %v", m.Addr, got)
		}
	}
	// A failing statement on one branch leaves the transaction usable.
	tx, err = sc.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t_order (id, note) VALUES (20, 'd'), (21, 'd')"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t_order (id, note) VALUES (1, 'dup')"); mysqlErrCode(err) != 1062 {
		t.Fatalf("duplicate key: want 1062, got %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := countWhere(t, sc.db, "SELECT COUNT(*) FROM t_order WHERE note = 'd'"); got != "2" {
		t.Fatalf("rows after a failed statement: %s", got)
	}
}

// best_effort: branches start with BEGIN and commit one after the other.
func TestShardingBestEffortTransactions(t *testing.T) {
	sc := startShardedWith(t, func(cfg *proxyconfig.Config) {
		cfg.Proxy.Config[0].TransactionMode = proxyconfig.TransactionModeBestEffort
	})
	sc.exec(t, "CREATE TABLE t_order (id BIGINT PRIMARY KEY, note VARCHAR(20))")
	ctx := context.Background()
	tx, err := sc.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t_order (id, note) VALUES (1, 'a'), (2, 'a')"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	tx, err = sc.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t_order (id, note) VALUES (3, 'r'), (4, 'r')"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, sc.db, "SELECT id FROM t_order ORDER BY id"); strings.Join(got, ",") != "1,2" {
		t.Fatalf("rows: %v", got)
	}
	for _, m := range []*testutil.MariaDB{sc.m1, sc.m2} {
		if got := xaRecover(t, m); len(got) != 0 {
			t.Fatalf("XA branches on %s in best_effort mode: %v", m.Addr, got)
		}
	}
}

// BenchmarkShardingTxOneShard measures a transaction that touches one
// shard (BEGIN, UPDATE by key, COMMIT) in xa mode (XA START … XA COMMIT
// ONE PHASE) and in best_effort mode (BEGIN … COMMIT, today's cost), and a
// transaction on two shards in xa mode (two-phase, decision log fsync).
func BenchmarkShardingTxOneShard(b *testing.B) {
	for _, mode := range []string{proxyconfig.TransactionModeXA, proxyconfig.TransactionModeBestEffort} {
		b.Run(mode, func(b *testing.B) {
			benchTx(b, mode, false)
		})
	}
	b.Run("xa-two-shards", func(b *testing.B) { benchTx(b, proxyconfig.TransactionModeXA, true) })
}

func benchTx(b *testing.B, mode string, two bool) {
	testutil.SkipShort(b)
	m1, m2 := testutil.StartMariaDB(b), testutil.StartMariaDB(b)
	cfg := &proxyconfig.Config{}
	cfg.MySQL.Nodes = []proxyconfig.Node{node("ds001", m1), node("ds002", m2)}
	cfg.Proxy.XA = proxyconfig.XA{ProxyID: "bench", LogFile: b.TempDir() + "/xa.log"}
	cfg.Proxy.Config = []proxyconfig.Listener{{
		Name: "shard", ListenAddr: "127.0.0.1:0", User: "proxy", Password: "proxypass", DB: "test",
		SimpleLoadBalance: &proxyconfig.SimpleLoadBalance{Nodes: []string{"ds001"}},
		TransactionMode:   mode,
		Sharding: []proxyconfig.Sharding{{TableName: "t_b", ActualDatanodes: []string{"ds001", "ds002"},
			DatabaseStrategy: &proxyconfig.DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"}}},
	}}
	tp := startProxy(b, cfg)
	db := openDB(b, tp.dsn("interpolateParams=true"))
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE t_b (id BIGINT PRIMARY KEY, n BIGINT)"); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO t_b (id, n) VALUES (1, 0), (2, 0)"); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ResetTimer()
	cpu0 := cpu()
	defer func() {
		// CPU of this process (client and proxy) per transaction: less
		// sensitive than wall time to a loaded machine.
		b.ReportMetric(float64((cpu()-cpu0).Microseconds())/float64(b.N), "cpu-µs/tx")
	}()
	for i := 0; i < b.N; i++ {
		if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
			b.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, "UPDATE t_b SET n = n + 1 WHERE id = 1"); err != nil {
			b.Fatal(err)
		}
		if two {
			if _, err := c.ExecContext(ctx, "UPDATE t_b SET n = n + 1 WHERE id = 2"); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
			b.Fatal(err)
		}
	}
}

// A decision log that cannot be written fails the two-phase COMMIT with
// ERROR 1402 and rolls every branch back; the XA metrics count each
// outcome.
func TestShardingXADecisionLogFailureAndMetrics(t *testing.T) {
	m1, m2 := testutil.StartMariaDB(t), testutil.StartMariaDB(t)
	cfg := shardedConfig(t, m1, m2)
	blocker := t.TempDir() + "/file"
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Proxy.XA.LogFile = blocker + "/xa.log" // a directory that cannot exist
	tp, reg, _ := startProxyMetrics(t, cfg)
	db := openDB(t, tp.dsn(""))
	if _, err := db.Exec("CREATE TABLE t_order (id BIGINT PRIMARY KEY, note VARCHAR(20))"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := sqlConn(t, db)
	for _, q := range []string{"BEGIN", "INSERT INTO t_order (id, note) VALUES (1, 'one')", "COMMIT", // one phase: no log
		"BEGIN", "INSERT INTO t_order (id, note) VALUES (2, 'x'), (3, 'x')", "ROLLBACK",
		"BEGIN", "INSERT INTO t_order (id, note) VALUES (4, 'x'), (5, 'x')"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_, err := c.ExecContext(ctx, "COMMIT")
	if mysqlErrCode(err) != 1402 || !strings.Contains(err.Error(), "decision log") {
		t.Fatalf("COMMIT with an unwritable decision log: want 1402 naming the log, got %v", err)
	}
	if got := countWhere(t, db, "SELECT COUNT(*) FROM t_order"); got != "1" {
		t.Fatalf("rows after the failed commit: %s, want 1", got)
	}
	for _, m := range []*testutil.MariaDB{m1, m2} {
		if got := xaRecover(t, m); len(got) != 0 {
			t.Fatalf("prepared branches left on %s: %v", m.Addr, got)
		}
	}
	// The session goes on.
	if _, err := c.ExecContext(ctx, "INSERT INTO t_order (id, note) VALUES (6, 'after')"); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "pisa_proxy_xa_transactions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					got[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	want := map[string]float64{"started": 3, "committed_one_phase": 1, "rolled_back": 2, "failed": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("xa_transactions_total{outcome=%q} = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// Prepared BEGIN, COMMIT and ROLLBACK (sysbench's --db-ps-mode=auto prepares
// them) belong to the transaction with branches as their texts do: run as
// plain statements on the default node, they left a plain transaction open
// there, and the next statement on another datanode was refused (1235) or
// its XA START failed (1400 XAER_OUTSIDE).
func TestShardingXAPreparedTransactionControl(t *testing.T) {
	sc := startSharded(t)
	sc.exec(t, "CREATE TABLE t_order (id BIGINT PRIMARY KEY, note VARCHAR(20))")
	ctx := context.Background()
	d1, d2 := sc.m1.Open(t, "test"), sc.m2.Open(t, "test")
	conn, err := sc.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	prep := func(q string) *sql.Stmt {
		st, err := conn.PrepareContext(ctx, q)
		if err != nil {
			t.Fatalf("prepare %s: %v", q, err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	begin, commit, rollback := prep("BEGIN"), prep("COMMIT"), prep("ROLLBACK")
	ins := prep("INSERT INTO t_order (id, note) VALUES (?, ?)")
	run := func(st *sql.Stmt, args ...any) {
		t.Helper()
		if _, err := st.ExecContext(ctx, args...); err != nil {
			t.Fatalf("execute with %v: %v", args, err)
		}
	}
	for round := 0; round < 3; round++ {
		run(begin)
		run(ins, 10*round+1, "c")
		run(ins, 10*round+2, "c")
		run(commit)
		run(begin)
		run(ins, 10*round+3, "r")
		run(ins, 10*round+4, "r")
		run(rollback)
	}
	if a, b := countWhere(t, d1, "SELECT COUNT(*) FROM t_order WHERE note = 'c'"), countWhere(t, d2, "SELECT COUNT(*) FROM t_order WHERE note = 'c'"); a != "3" || b != "3" {
		t.Fatalf("committed rows: ds001 %s, ds002 %s, want 3 and 3", a, b)
	}
	if got := countWhere(t, sc.db, "SELECT COUNT(*) FROM t_order WHERE note = 'r'"); got != "0" {
		t.Fatalf("rolled back rows: %s", got)
	}
	for name, d := range map[string]*sql.DB{"ds001": d1, "ds002": d2} {
		if got := rowsOf(t, d, "XA RECOVER"); len(got) != 0 {
			t.Fatalf("branches left prepared on %s: %v", name, got)
		}
	}
}

// A deadlock rolls back the branch it hit: as on one server, the client's
// whole transaction is over, its other branches are rolled back with it,
// and its COMMIT has nothing left to end (it got 1402 when the rolled-back
// branch failed to prepare).
func TestShardingXADeadlockEndsTheTransaction(t *testing.T) {
	sc := startSharded(t)
	sc.exec(t, "CREATE TABLE t_order (id BIGINT PRIMARY KEY, note VARCHAR(20))")
	sc.exec(t, "INSERT INTO t_order (id, note) VALUES (1, 'x'), (2, 'x'), (3, 'x'), (4, 'x')")
	ctx := context.Background()
	conn := func() *sql.Conn {
		c, err := sc.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := conn(), conn()
	exec := func(c *sql.Conn, q string) error {
		_, err := c.ExecContext(ctx, q)
		return err
	}
	must := func(c *sql.Conn, q string) {
		t.Helper()
		if err := exec(c, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Odd and even ids live on different datanodes; 1 and 3 share one.
	must(a, "BEGIN")
	must(a, "UPDATE t_order SET note = 'a' WHERE id = 2")
	must(a, "UPDATE t_order SET note = 'a' WHERE id = 1")
	must(b, "BEGIN")
	must(b, "UPDATE t_order SET note = 'b' WHERE id = 4")
	must(b, "UPDATE t_order SET note = 'b' WHERE id = 3")
	aDone := make(chan error, 1)
	go func() { aDone <- exec(a, "UPDATE t_order SET note = 'a' WHERE id = 3") }()
	time.Sleep(200 * time.Millisecond) // a waits for b's lock on 3
	bErr := exec(b, "UPDATE t_order SET note = 'b' WHERE id = 1")
	aErr := <-aDone
	var victim, winner *sql.Conn
	var vErr error
	switch {
	case bErr != nil && aErr == nil:
		victim, winner, vErr = b, a, bErr
	case aErr != nil && bErr == nil:
		victim, winner, vErr = a, b, aErr
	default:
		t.Fatalf("want one deadlock victim: a %v, b %v", aErr, bErr)
	}
	if !strings.Contains(vErr.Error(), "1213") {
		t.Fatalf("victim's error: %v, want 1213", vErr)
	}
	// The victim's transaction is over: COMMIT ends nothing and succeeds.
	must(victim, "COMMIT")
	must(winner, "COMMIT")
	want := "1|a,2|a,3|a,4|x"
	if victim == a {
		want = "1|x,2|x,3|b,4|b"
	}
	if got := strings.Join(rowsOf(t, sc.db, "SELECT id, note FROM t_order ORDER BY id"), ","); got != want {
		t.Fatalf("rows after the deadlock: %s, want %s", got, want)
	}
	for name, d := range map[string]*sql.DB{"ds001": sc.m1.Open(t, "test"), "ds002": sc.m2.Open(t, "test")} {
		if got := rowsOf(t, d, "XA RECOVER"); len(got) != 0 {
			t.Fatalf("branches left prepared on %s: %v", name, got)
		}
	}
	// Both sessions go on.
	must(victim, "UPDATE t_order SET note = 'z' WHERE id = 1")
	must(winner, "UPDATE t_order SET note = 'z' WHERE id = 2")
}

// START TRANSACTION READ ONLY on xa: branches on both datanodes are read-only XA branches (a
// write gets 1792), COMMIT ends them in one phase with no decision log and nothing prepared;
// READ WRITE is BEGIN; WITH CONSISTENT SNAPSHOT is refused naming why.
func TestShardingXAReadOnlyTransaction(t *testing.T) {
	var xaLog string
	sc := startShardedWith(t, func(cfg *proxyconfig.Config) { xaLog = cfg.Proxy.XA.LogFile })
	sc.exec(t, "CREATE TABLE t_order (id BIGINT PRIMARY KEY, note VARCHAR(20))")
	sc.exec(t, "INSERT INTO t_order (id, note) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
	ctx := context.Background()
	c := sqlConn(t, sc.db)
	for _, q := range []string{"START TRANSACTION READ ONLY", "SELECT COUNT(*) FROM t_order", "SELECT note FROM t_order WHERE id = 2"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Both branches run: XA ACTIVE on both servers, read-only.
	if _, err := c.ExecContext(ctx, "UPDATE t_order SET note = 'x' WHERE id = 1"); mysqlErrCode(err) != 1792 {
		t.Fatalf("a write in a read-only transaction: want 1792, got %v", err)
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatalf("COMMIT: %v", err)
	}
	for _, m := range []*testutil.MariaDB{sc.m1, sc.m2} {
		if got := xaRecover(t, m); len(got) != 0 {
			t.Fatalf("prepared branches on %s: %v", m.Addr, got)
		}
	}
	if got := rowsOf(t, sc.db, "SELECT note FROM t_order ORDER BY id"); strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("rows: %v", got)
	}
	if fi, err := os.Stat(xaLog); err == nil && fi.Size() > 0 {
		t.Fatalf("a read-only transaction wrote the decision log (%d bytes)", fi.Size())
	}
	// The session goes on: a read-write transaction on both datanodes commits.
	for _, q := range []string{"START TRANSACTION READ WRITE", "UPDATE t_order SET note = 'w'", "COMMIT"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if got := countWhere(t, sc.db, "SELECT COUNT(*) FROM t_order WHERE note = 'w'"); got != "3" {
		t.Fatalf("read-write transaction: %s rows updated", got)
	}
	if _, err := c.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); mysqlErrCode(err) != 1235 ||
		!strings.Contains(err.Error(), "no snapshot spans the nodes") {
		t.Fatalf("WITH CONSISTENT SNAPSHOT: want 1235 with the reason, got %v", err)
	}
}

// An XA transaction whose statements all only read (pure SELECTs, text and prepared) commits
// every branch in one phase, without the decision log; one with a function call in a SELECT (a
// stored function could write) or a write takes the two-phase commit.
func TestShardingXAReadsCommitInOnePhase(t *testing.T) {
	var xaLog string
	sc := startShardedWith(t, func(cfg *proxyconfig.Config) { xaLog = cfg.Proxy.XA.LogFile })
	sc.exec(t, "CREATE TABLE t_order (id BIGINT PRIMARY KEY, note VARCHAR(20))")
	sc.exec(t, "INSERT INTO t_order (id, note) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
	logSize := func() int64 {
		fi, err := os.Stat(xaLog)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	ctx := context.Background()
	tx, err := sc.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, tx, "SELECT COUNT(*) FROM t_order"); got[0] != "3" { // both datanodes
		t.Fatalf("count: %v", got)
	}
	var note string
	if err := tx.QueryRow("SELECT note FROM t_order WHERE id = ?", 2).Scan(&note); err != nil || note != "b" {
		t.Fatalf("prepared point select: %q %v", note, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := logSize(); n != 0 {
		t.Fatalf("a transaction of reads wrote %d bytes of decision log", n)
	}

	// A function call: two phases (the decision is logged).
	tx, err = sc.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, tx, "SELECT UPPER(note) FROM t_order ORDER BY id"); strings.Join(got, ",") != "A,B,C" {
		t.Fatalf("rows: %v", got)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	after := logSize()
	if after == 0 {
		t.Fatal("a transaction calling a function on two datanodes committed without the decision log")
	}
	// Reads then writes on both datanodes: two phases.
	tx, err = sc.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = rowsOf(t, tx, "SELECT COUNT(*) FROM t_order")
	if _, err := tx.Exec("UPDATE t_order SET note = 'w' WHERE id IN (1, 2)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if logSize() <= after {
		t.Fatal("a transaction writing on two datanodes committed without the decision log")
	}
	for _, m := range []*testutil.MariaDB{sc.m1, sc.m2} {
		if got := xaRecover(t, m); len(got) != 0 {
			t.Fatalf("prepared branches on %s: %v", m.Addr, got)
		}
	}
	if got := countWhere(t, sc.db, "SELECT COUNT(*) FROM t_order WHERE note = 'w'"); got != "2" {
		t.Fatalf("written rows: %s", got)
	}
}
