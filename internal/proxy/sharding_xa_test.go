package proxy

import (
	"context"
	"database/sql"
	"strings"
	"testing"

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
