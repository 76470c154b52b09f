package proxy

import (
	"context"
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// A broadcast table has a copy on every datanode: DDL and writes reach
// every copy (writes in one XA transaction: all copies or none), reads one
// copy; a JOIN with a sharded table is refused.
func TestShardingBroadcastTables(t *testing.T) {
	sc := startShardedWith(t, func(cfg *proxyconfig.Config) {
		cfg.Proxy.Config[0].Sharding[0].BroadcastTables = []string{"t_dict"}
	})
	sc.exec(t, "CREATE TABLE t_order (id BIGINT PRIMARY KEY, note VARCHAR(20))")
	sc.exec(t, "CREATE TABLE t_dict (id INT PRIMARY KEY, name VARCHAR(20))")
	copies := func(q string) []string {
		var out []string
		for _, m := range []*testutil.MariaDB{sc.m1, sc.m2} {
			out = append(out, strings.Join(rowsOf(t, m.Open(t, "test"), q), ","))
		}
		return out
	}
	res := sc.exec(t, "INSERT INTO t_dict (id, name) VALUES (1, 'a'), (2, 'b')")
	if n, _ := res.RowsAffected(); n != 2 {
		t.Fatalf("INSERT affected %d rows, want 2 (one copy's count)", n)
	}
	res = sc.exec(t, "UPDATE t_dict SET name = ? WHERE id = ?", "c", 2) // prepared
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("UPDATE affected %d rows, want 1", n)
	}
	if got := copies("SELECT id, name FROM t_dict ORDER BY id"); got[0] != "1|a,2|c" || got[1] != got[0] {
		t.Fatalf("copies: %q", got)
	}
	if got := rowsOf(t, sc.db, "SELECT name FROM t_dict ORDER BY id"); strings.Join(got, ",") != "a,c" {
		t.Fatalf("read: %v", got)
	}
	// A write that fails on one copy changes none.
	sc.m2.Exec(t, "INSERT INTO t_dict (id, name) VALUES (3, 'only2')")
	if _, err := sc.db.Exec("INSERT INTO t_dict (id, name) VALUES (3, 'x')"); mysqlErrCode(err) != 1062 {
		t.Fatalf("duplicate on the second copy: want 1062, got %v", err)
	}
	if got := copies("SELECT COUNT(*) FROM t_dict WHERE id = 3"); got[0] != "0" {
		t.Fatalf("the first copy kept a write the second refused: %q", got)
	}
	sc.m2.Exec(t, "DELETE FROM t_dict WHERE id = 3")
	// Inside a transaction with a sharded table, rolled back together.
	ctx := context.Background()
	tx, err := sc.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"INSERT INTO t_dict (id, name) VALUES (4, 'tx')", "INSERT INTO t_order (id, note) VALUES (5, 'tx'), (6, 'tx')"} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if got := rowsOf(t, tx, "SELECT name FROM t_dict WHERE id = 4"); len(got) != 1 {
		t.Fatalf("the transaction's own write: %v", got)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := copies("SELECT COUNT(*) FROM t_dict WHERE id = 4"); got[0] != "0" || got[1] != "0" {
		t.Fatalf("rolled back broadcast rows: %q", got)
	}
	for _, m := range []*testutil.MariaDB{sc.m1, sc.m2} {
		if got := xaRecover(t, m); len(got) != 0 {
			t.Fatalf("prepared branches left: %v", got)
		}
	}
	// JOINs with the sharded table run on each shard with its copy.
	sc.exec(t, "INSERT INTO t_order (id, note) VALUES (1, 'o1'), (2, 'o2'), (3, 'o3'), (4, 'o4')")
	sc.exec(t, "INSERT INTO t_dict (id, name) VALUES (3, 'c3'), (4, 'c4')")
	for _, tc := range []struct{ q, want string }{
		{"SELECT o.id, d.name FROM t_order o JOIN t_dict d ON d.id = o.id ORDER BY o.id", "1|a,2|c,3|c3,4|c4"},
		{"SELECT o.id, d.name FROM t_order o LEFT JOIN t_dict d ON d.id = o.id + 2 ORDER BY o.id DESC LIMIT 3", "4|NULL,3|NULL,2|c4"},
		// d.id = 3 is the broadcast table's column: no pruning by it.
		{"SELECT o.id FROM t_order o, t_dict d WHERE d.id = 3 AND o.note <> 'x' ORDER BY o.id", "1,2,3,4"},
		// o.id = 3 prunes to one shard.
		{"SELECT t_order.note, t_dict.name FROM t_order JOIN t_dict ON t_dict.id = t_order.id WHERE t_order.id = 3", "o3|c3"},
		{"SELECT COUNT(*), SUM(o.id) FROM t_order o JOIN t_dict d ON d.id <= o.id", "10|30"},
	} {
		if got := strings.Join(rowsOf(t, sc.db, tc.q), ","); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.q, got, tc.want)
		}
	}
	// Comparing a joined table's string column across shards: refused.
	if _, err := sc.db.Exec("SELECT d.name FROM t_order o JOIN t_dict d ON d.id = o.id ORDER BY d.name"); mysqlErrCode(err) != 1235 {
		t.Fatalf("ORDER BY a broadcast column on several shards: want 1235, got %v", err)
	}
	// Writes joining a broadcast table, and another table: refused.
	if _, err := sc.db.Exec("UPDATE t_order o JOIN t_dict d ON d.id = o.id SET o.note = d.name"); mysqlErrCode(err) != 1235 {
		t.Fatalf("UPDATE with a JOIN: want 1235, got %v", err)
	}
	sc.exec(t, "DELETE FROM t_order")
	sc.exec(t, "DROP TABLE t_dict")
	if got := copies("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = 't_dict'"); got[0] != "0" || got[1] != "0" {
		t.Fatalf("DROP reached: %q", got)
	}
}
