package shard

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// TestAgainstMariaDB runs the planner's statements on a real server (all
// datanodes are databases of one server): DDL fans out, rows are inserted
// through the planner, every physical row sits where Pisanix's formula
// puts it, and filtered SELECTs (text and prepared) return exactly the
// rows an unsharded copy returns.
func TestAgainstMariaDB(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MariaDB")
	}
	m := testutil.StartMariaDB(t)
	conn := m.Open(t, "test")
	for _, db := range []string{"db0", "db1", "db2", "db3", "ref"} {
		mustExec(t, conn, "CREATE DATABASE "+db)
	}
	cfg, l := testConfig(
		tableRule("t_order", "crc32mod", "id", 4),
		dbRule("t_user", "mod", "id", "ds1", "ds2", "ds3"),
		dbTableRule("t_item", "mod", "uid", "crc32mod", "id", 3, "ds1", "ds2"),
	)
	rt, err := Compile(cfg, l)
	if err != nil {
		t.Fatal(err)
	}
	run := func(p *Plan, args []any) [][3]int64 {
		t.Helper()
		var out [][3]int64
		for _, tg := range p.Targets {
			a := args
			if tg.Params != nil {
				a = make([]any, len(tg.Params))
				for i, k := range tg.Params {
					a[i] = args[k]
				}
			}
			rows, err := conn.Query(tg.SQL, a...)
			if err != nil {
				t.Fatalf("%s: %v", tg.SQL, err)
			}
			cols, _ := rows.Columns()
			for rows.Next() {
				var r [3]int64
				ptrs := []any{&r[0], &r[1], &r[2]}
				if err := rows.Scan(ptrs[:len(cols)]...); err != nil {
					t.Fatal(err)
				}
				out = append(out, r)
			}
			rows.Close()
		}
		return out
	}
	exec := func(p *Plan) {
		t.Helper()
		for _, tg := range p.Targets {
			mustExec(t, conn, tg.SQL)
		}
	}
	rnd := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct{ table, db string }{{"t_order", "db0"}, {"t_user", "db1"}, {"t_item", "db2"}} {
		ddl := "CREATE TABLE " + tc.table + " (id BIGINT NOT NULL, uid BIGINT NOT NULL, v BIGINT, PRIMARY KEY (id, uid))"
		exec(mustPlan(t, rt, ddl, tc.db))
		mustExec(t, conn, strings.Replace(ddl, tc.table, "ref."+tc.table, 1))
		seen := map[[2]int64]bool{}
		for batch := 0; batch < 20; batch++ {
			var vals []string
			for i := 0; i < 10; i++ {
				id, uid := rnd.Int64N(400)-100, rnd.Int64N(50)
				if rnd.IntN(20) == 0 {
					id = rnd.Int64()
				}
				if seen[[2]int64{id, uid}] {
					continue
				}
				seen[[2]int64{id, uid}] = true
				vals = append(vals, fmt.Sprintf("(%d, %d, %d)", id, uid, rnd.Int64N(10)))
			}
			ins := "INSERT INTO " + tc.table + " (id, uid, v) VALUES " + strings.Join(vals, ", ")
			exec(mustPlan(t, rt, ins, tc.db))
			mustExec(t, conn, strings.Replace(ins, tc.table, "ref."+tc.table, 1))
		}
		// Prepared multi-row INSERTs, split at Bind.
		pins, err := rt.Prepare("INSERT INTO "+tc.table+" (id, uid, v) VALUES (?, ?, ?), (?, ?, 7), (?, ?, ?)", tc.db)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			var args []any
			for j := 0; j < 3; j++ {
				id, uid := 1000+rnd.Int64N(1000), rnd.Int64N(50)
				for seen[[2]int64{id, uid}] {
					id++
				}
				seen[[2]int64{id, uid}] = true
				args = append(args, id, uid)
				if j != 1 {
					args = append(args, rnd.Int64N(10))
				}
			}
			plan, err := pins.Bind(args)
			if err != nil {
				t.Fatal(err)
			}
			for _, tg := range plan.Targets {
				a := args
				if tg.Params != nil {
					a = make([]any, len(tg.Params))
					for k, x := range tg.Params {
						a[k] = args[x]
					}
				}
				mustExec(t, conn, tg.SQL, a...)
			}
			refArgs := append([]any(nil), args...)
			mustExec(t, conn, "INSERT INTO ref."+tc.table+" (id, uid, v) VALUES (?, ?, ?), (?, ?, 7), (?, ?, ?)", refArgs...)
		}
		// Every physical row is where the formula puts it.
		r := rt.byName[tc.table]
		total := 0
		for s := 0; s < r.shards(); s++ {
			_, schema, table := r.physical(s)
			rows, err := conn.Query(fmt.Sprintf("SELECT id, uid FROM `%s`.`%s`", schema, table))
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id, uid int64
				if err := rows.Scan(&id, &uid); err != nil {
					t.Fatal(err)
				}
				total++
				if got := rowShard(r, [2]operand{{param: -1, k: intKey(uid)}, {param: -1, k: intKey(id)}}, nil); got != s && r.strategy == StrategyDatabaseTable {
					t.Errorf("%s row (%d,%d) on shard %d, formula %d", tc.table, id, uid, s, got)
				}
				if r.strategy != StrategyDatabaseTable {
					if got := rowShard(r, [2]operand{{param: -1, k: intKey(id)}, {param: -1, k: intKey(id)}}, nil); got != s {
						t.Errorf("%s row id %d on shard %d, formula %d", tc.table, id, s, got)
					}
				}
			}
			rows.Close()
		}
		if total != len(seen) {
			t.Errorf("%s: %d physical rows, %d inserted", tc.table, total, len(seen))
		}
		for _, where := range []string{
			"id = 5", "id = -7", "id IN (1, 2, 3, -4)", "id BETWEEN -3 AND 12", "id > 10 AND id <= 30",
			"uid = 3", "uid = 3 AND id = 17", "uid IN (1, 2) AND id BETWEEN 0 AND 5", "id = 5 OR uid = 2",
			"id = '42'", "v = 3", "id = 1 AND id = 2", "NOT (id = 3)", "id IS NULL",
		} {
			q := "SELECT id, uid, v FROM " + tc.table + " WHERE " + where
			got := run(mustPlan(t, rt, q, tc.db), nil)
			want := run(&Plan{Targets: []Target{{SQL: strings.Replace(q, tc.table, "ref."+tc.table, 1)}}}, nil)
			sortRows(got)
			sortRows(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s: %d rows, want %d", q, len(got), len(want))
			}
		}
		// Prepared: the key from parameters.
		p, err := rt.Prepare("SELECT id, uid, v FROM "+tc.table+" WHERE uid = ? AND id IN (?, ?)", tc.db)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 30; i++ {
			args := []any{rnd.Int64N(50), rnd.Int64N(400) - 100, fmt.Sprint(rnd.Int64N(400) - 100)}
			plan, err := p.Bind(args)
			if err != nil {
				t.Fatal(err)
			}
			got := run(plan, args)
			want := run(&Plan{Targets: []Target{{SQL: "SELECT id, uid, v FROM ref." + tc.table + " WHERE uid = ? AND id IN (?, ?)"}}}, args)
			sortRows(got)
			sortRows(want)
			if !slices.Equal(got, want) {
				t.Errorf("prepared %v: %v, want %v", args, got, want)
			}
		}
		// Aggregates: the rewritten SQL runs; counts add up.
		plan := mustPlan(t, rt, "SELECT COUNT(*), SUM(v), AVG(v), MIN(id) FROM "+tc.table+" WHERE uid < 40", tc.db)
		var n int64
		for _, tg := range plan.Targets {
			var c int64
			var s, a, mn, ds, dc sql.NullString
			if err := conn.QueryRow(tg.SQL).Scan(&c, &s, &a, &mn, &ds, &dc); err != nil {
				t.Fatalf("%s: %v", tg.SQL, err)
			}
			n += c
		}
		var want int64
		if err := conn.QueryRow("SELECT COUNT(*) FROM ref." + tc.table + " WHERE uid < 40").Scan(&want); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s: count %d, want %d", tc.table, n, want)
		}
		// Statements the planner rewrites all run.
		for _, q := range []string{
			"SELECT uid, COUNT(*) c, AVG(v) FROM " + tc.table + " GROUP BY uid HAVING COUNT(*) > 1 ORDER BY c DESC LIMIT 3",
			"SELECT DISTINCT v, uid FROM " + tc.table + " ORDER BY uid DESC LIMIT 2, 5",
			"SELECT * FROM " + tc.table + " ORDER BY v, id LIMIT 4",
			"SELECT id FROM " + tc.table + " WHERE id = 3 AND uid = 1 LOCK IN SHARE MODE",
			"SELECT CHAR(65 USING latin1), INSERT('abc', 1, 1, 'x') FROM " + tc.table + " WHERE id = 3 AND uid = 1",
			"EXPLAIN SELECT * FROM " + tc.table + " WHERE id = 3 AND uid = 1",
			"SHOW CREATE TABLE " + tc.table, "DESCRIBE " + tc.table, "SHOW INDEX FROM " + tc.table,
			"UPDATE " + tc.table + " SET v = v + 1 WHERE id = 3",
			"DELETE FROM " + tc.table + " WHERE id = 4",
			"ALTER TABLE " + tc.table + " ADD COLUMN w INT",
			"CREATE INDEX ix_v ON " + tc.table + " (v)", "DROP INDEX ix_v ON " + tc.table,
		} {
			for _, tg := range mustPlan(t, rt, q, tc.db).Targets {
				rows, err := conn.Query(tg.SQL)
				if err != nil {
					t.Errorf("%s: %s: %v", q, tg.SQL, err)
					continue
				}
				rows.Close()
			}
		}
		exec(mustPlan(t, rt, "TRUNCATE TABLE "+tc.table, tc.db))
		exec(mustPlan(t, rt, "DROP TABLE "+tc.table, tc.db))
	}
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func sortRows(r [][3]int64) {
	slices.SortFunc(r, func(a, b [3]int64) int {
		for i := range a {
			if a[i] != b[i] {
				if a[i] < b[i] {
					return -1
				}
				return 1
			}
		}
		return 0
	})
}
