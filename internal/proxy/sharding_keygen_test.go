package proxy

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// An INSERT that omits the key column of a table with a snowflake key
// generator gets a key per row before routing; the OK's last insert id and
// SELECT LAST_INSERT_ID() are the first generated key.
func TestShardingKeyGenerator(t *testing.T) {
	sc := startShardedWith(t, func(cfg *proxyconfig.Config) {
		cfg.Proxy.Config[0].Sharding[0].KeyGenerator = &proxyconfig.KeyGenerator{Type: "snowflake", WorkerID: new(5)}
	})
	sc.exec(t, "CREATE TABLE t_order (id BIGINT PRIMARY KEY, note VARCHAR(20))")
	ctx := context.Background()
	c := sqlConn(t, sc.db)
	res, err := c.ExecContext(ctx, "INSERT INTO t_order (note) VALUES ('a'), ('b'), ('c'), ('d')")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := res.LastInsertId()
	if n, _ := res.RowsAffected(); n != 4 || first <= 0 || (first>>12)&1023 != 5 {
		t.Fatalf("affected %d, last insert id %d", n, first)
	}
	var lid int64
	if err := c.QueryRowContext(ctx, "SELECT LAST_INSERT_ID()").Scan(&lid); err != nil || lid != first {
		t.Fatalf("SELECT LAST_INSERT_ID() = %d, %v; want %d", lid, err, first)
	}
	// Each row is on the shard its key routes to (mod 2), keys grow.
	ids := map[string]string{}
	for _, m := range []*struct {
		rows []string
		mod  int
	}{{rowsOf(t, sc.m1.Open(t, "test"), "SELECT id, note FROM t_order"), 0}, {rowsOf(t, sc.m2.Open(t, "test"), "SELECT id, note FROM t_order"), 1}} {
		for _, r := range m.rows {
			id, note, _ := strings.Cut(r, "|")
			n, _ := strconv.ParseInt(id, 10, 64)
			if int(n%2) != m.mod {
				t.Fatalf("row %s on shard %d", r, m.mod)
			}
			ids[note] = id
		}
	}
	if len(ids) != 4 || ids["a"] != strconv.FormatInt(first, 10) {
		t.Fatalf("rows %v, first key %d", ids, first)
	}
	prev := int64(0)
	for _, note := range []string{"a", "b", "c", "d"} {
		k, _ := strconv.ParseInt(ids[note], 10, 64)
		if k <= prev {
			t.Fatalf("keys of one statement do not grow: %v", ids)
		}
		prev = k
	}
	// Found through the proxy by key.
	if got := rowsOf(t, sc.db, "SELECT note FROM t_order WHERE id = "+ids["c"]); len(got) != 1 || got[0] != "c" {
		t.Fatalf("row by generated key: %v", got)
	}
	// A key given by the client is kept.
	if _, err := c.ExecContext(ctx, "INSERT INTO t_order (id, note) VALUES (7, 'given')"); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, sc.m2.Open(t, "test"), "SELECT note FROM t_order WHERE id = 7"); len(got) != 1 {
		t.Fatalf("given key: %v", got)
	}
	// LAST_INSERT_ID() in another statement would read the backend's: refused.
	if _, err := c.ExecContext(ctx, "INSERT INTO t_order (id, note) VALUES (LAST_INSERT_ID() + 1, 'x')"); mysqlErrCode(err) != 1235 {
		t.Fatalf("LAST_INSERT_ID() in an INSERT: want 1235, got %v", err)
	}
	// Prepared INSERTs without the key (go-sql-driver prepares a statement with arguments):
	// each execute gets new keys, rows routed by them, the OK's last insert id the first.
	stmt, err := c.PrepareContext(ctx, "INSERT INTO t_order (note) VALUES (?), (CONCAT(?, '2'))")
	if err != nil {
		t.Fatalf("prepared INSERT without key: %v", err)
	}
	var lastIDs []int64
	for i := range 6 {
		res, err := stmt.ExecContext(ctx, "p"+strconv.Itoa(i), "p"+strconv.Itoa(i))
		if err != nil {
			t.Fatalf("execute %d: %v", i, err)
		}
		id, _ := res.LastInsertId()
		if n, _ := res.RowsAffected(); n != 2 || id <= prev || (id>>12)&1023 != 5 {
			t.Fatalf("execute %d: affected %d, last insert id %d (previous key %d)", i, n, id, prev)
		}
		prev = id
		lastIDs = append(lastIDs, id)
	}
	stmt.Close()
	if err := c.QueryRowContext(ctx, "SELECT LAST_INSERT_ID()").Scan(&lid); err != nil || lid != lastIDs[5] {
		t.Fatalf("SELECT LAST_INSERT_ID() after prepared INSERTs = %d, %v; want %d", lid, err, lastIDs[5])
	}
	for i, id := range lastIDs {
		got := rowsOf(t, []*sql.DB{sc.m1.Open(t, "test"), sc.m2.Open(t, "test")}[id%2], "SELECT note FROM t_order WHERE id = "+strconv.FormatInt(id, 10))
		if len(got) != 1 || got[0] != "p"+strconv.Itoa(i) {
			t.Fatalf("execute %d's first row (key %d) on shard %d: %v", i, id, id%2, got)
		}
	}
	if got := rowsOf(t, sc.db, "SELECT COUNT(*), COUNT(DISTINCT id) FROM t_order WHERE note LIKE 'p%'"); got[0] != "12|12" {
		t.Fatalf("prepared rows: %v", got)
	}
	// Inside a transaction on both shards, rolled back: nothing stays.
	tx, err := sc.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t_order (note) VALUES ('r1'), ('r2')"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, sc.db, "SELECT COUNT(*) FROM t_order WHERE note LIKE 'r%'"); got[0] != "0" {
		t.Fatalf("rolled back generated rows: %v", got)
	}
}
