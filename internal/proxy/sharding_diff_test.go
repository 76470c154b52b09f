package proxy

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// The differential test: the same schema and the same random statements on
// one unsharded MariaDB table (the reference) and on a table sharded behind
// the proxy. Every answer must equal the reference's (as a multiset unless
// the ORDER BY fixes the order), or be the documented ERR 1235. Seeded:
// PISA_TEST_SEED reproduces a run, and a failure prints the statement.

const diffSchema = `(id BIGINT PRIMARY KEY, k INT NULL, s1 VARCHAR(20) COLLATE utf8mb4_general_ci NULL,
	s2 VARCHAR(20) COLLATE utf8mb4_general_ci NULL, d DECIMAL(10,2) NULL, f DOUBLE NULL,
	s3 VARCHAR(20) COLLATE utf8mb4_bin NULL, s4 VARCHAR(20) COLLATE utf8mb4_unicode_ci NULL,
	s5 VARCHAR(20) CHARACTER SET latin1 COLLATE latin1_swedish_ci NULL)`

// diffStrategies are the sharding rules the test runs under.
var diffStrategies = []struct {
	name string
	rule func() proxyconfig.Sharding
}{
	{"database_mod", func() proxyconfig.Sharding {
		return proxyconfig.Sharding{TableName: "t_diff", ActualDatanodes: []string{"ds001", "ds002"},
			DatabaseStrategy: &proxyconfig.DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"}}
	}},
	{"table_crc32mod", func() proxyconfig.Sharding {
		return proxyconfig.Sharding{TableName: "t_diff", ActualDatanodes: []string{"ds001"},
			TableStrategy: &proxyconfig.TableStrategy{TableShardingAlgorithmName: "crc32mod", TableShardingColumn: "id", ShardingCount: 4}}
	}},
	{"database_table", func() proxyconfig.Sharding {
		return proxyconfig.Sharding{TableName: "t_diff", ActualDatanodes: []string{"ds001", "ds002"},
			DatabaseTableStrategy: &proxyconfig.DatabaseTableStrategy{DatabaseShardingAlgorithmName: "crc32mod", DatabaseShardingColumn: "id",
				TableShardingAlgorithmName: "mod", TableShardingColumn: "id", ShardingCount: 3}}
	}},
}

type diffGen struct {
	r     *rand.Rand
	maxID int
}

var (
	s1Values = []string{"apple", "banana", "cherry", "date", "elder"}
	// s2 holds values equal under utf8mb4_general_ci ('a' = 'A' = 'á',
	// trailing spaces ignored): ordered with id as tie-breaker, compared
	// with '=' only.
	s2Values = []string{"a", "A", "á", "b", "B ", "c", "ä", "Z", "z", ""}
)

func (g *diffGen) id() int { return 1 + g.r.IntN(g.maxID) }

func (g *diffGen) value(col string) string {
	if g.r.IntN(8) == 0 {
		return "NULL"
	}
	switch col {
	case "id":
		return strconv.Itoa(g.id())
	case "k":
		return strconv.Itoa(g.r.IntN(7) - 2)
	case "s1":
		return "'" + s1Values[g.r.IntN(len(s1Values))] + "'"
	case "s2", "s3", "s4", "s5":
		return "'" + s2Values[g.r.IntN(len(s2Values))] + "'"
	case "d":
		return fmt.Sprintf("%d.%02d", g.r.IntN(200)-50, g.r.IntN(100))
	case "f":
		return fmt.Sprintf("%de%d", g.r.IntN(100)-50, g.r.IntN(5))
	}
	return "NULL"
}

// cond is a WHERE condition (without WHERE), or "".
func (g *diffGen) cond(depth int) string {
	switch n := g.r.IntN(12); {
	case n == 0 && depth < 2:
		return "(" + g.cond(depth+1) + " OR " + g.cond(depth+1) + ")"
	case n == 1 && depth < 2:
		return g.cond(depth+1) + " AND " + g.cond(depth+1)
	case n <= 3:
		return "id = " + strconv.Itoa(g.id())
	case n == 4:
		ids := make([]string, 1+g.r.IntN(4))
		for i := range ids {
			ids[i] = strconv.Itoa(g.id())
		}
		return "id IN (" + strings.Join(ids, ", ") + ")"
	case n == 5:
		a := g.id()
		return fmt.Sprintf("id BETWEEN %d AND %d", a, a+g.r.IntN(10))
	case n == 6:
		return fmt.Sprintf("id %s %d", []string{"<", "<=", ">", ">="}[g.r.IntN(4)], g.id())
	case n == 7:
		return fmt.Sprintf("k %s %d", []string{"=", "<", ">", "<>"}[g.r.IntN(4)], g.r.IntN(5)-2)
	case n == 8:
		return "s2 = " + g.value("s2")
	case n == 9:
		return []string{"k IS NULL", "s1 IS NOT NULL", "d > 0"}[g.r.IntN(3)]
	case n == 10:
		return "s1 = " + g.value("s1")
	}
	return "id <> " + strconv.Itoa(g.id())
}

func (g *diffGen) where() string {
	if g.r.IntN(4) == 0 {
		return ""
	}
	return " WHERE " + g.cond(0)
}

// query returns a SELECT and whether its ORDER BY fixes the row order.
func (g *diffGen) query() (string, bool) {
	switch g.r.IntN(5) {
	case 0: // aggregates over everything
		aggs := []string{"COUNT(*)", "COUNT(k)", "SUM(k)", "SUM(d)", "MIN(k)", "MAX(d)", "MIN(s1)", "MAX(s1)", "AVG(d)", "AVG(k)",
			"MIN(f)", "MAX(id)", "COUNT(DISTINCT id)"}
		n := 1 + g.r.IntN(3)
		sel := make([]string, n)
		for i := range sel {
			sel[i] = aggs[g.r.IntN(len(aggs))]
		}
		return "SELECT " + strings.Join(sel, ", ") + " FROM t_diff" + g.where(), true
	case 1: // GROUP BY
		key := []string{"k", "s1"}[g.r.IntN(2)]
		aggs := []string{"COUNT(*)", "SUM(d)", "MIN(id)", "MAX(k)", "AVG(d)", "COUNT(s2)"}
		q := "SELECT " + key + ", " + aggs[g.r.IntN(len(aggs))] + ", " + aggs[g.r.IntN(len(aggs))] + " FROM t_diff" + g.where() + " GROUP BY " + key
		if g.r.IntN(3) == 0 {
			q += fmt.Sprintf(" HAVING COUNT(*) > %d", g.r.IntN(4))
		}
		if g.r.IntN(2) == 0 {
			q += " ORDER BY " + key + " " + []string{"ASC", "DESC"}[g.r.IntN(2)]
			if g.r.IntN(2) == 0 {
				q += fmt.Sprintf(" LIMIT %d", 1+g.r.IntN(4))
			}
			return q, true
		}
		return q, false
	case 2: // DISTINCT
		col := []string{"k", "s1", "k, s1"}[g.r.IntN(3)]
		q := "SELECT DISTINCT " + col + " FROM t_diff" + g.where()
		if g.r.IntN(2) == 0 {
			q += " ORDER BY " + col
			return q, true
		}
		return q, false
	default: // rows, ordered or not, limited or not
		cols := []string{"*", "id, k", "id, s2, d", "s1, f, id", "k", "id, s3, s4, s5"}[g.r.IntN(6)]
		q := "SELECT " + cols + " FROM t_diff" + g.where()
		if g.r.IntN(3) > 0 {
			keys := []string{"k", "s2", "d", "f", "s1", "s3", "s4", "s5"}
			g.r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
			var order []string
			for _, k := range keys[:g.r.IntN(3)] {
				order = append(order, k+" "+[]string{"ASC", "DESC"}[g.r.IntN(2)])
			}
			order = append(order, "id "+[]string{"ASC", "DESC"}[g.r.IntN(2)]) // total order
			q += " ORDER BY " + strings.Join(order, ", ")
			switch g.r.IntN(3) {
			case 0:
				q += fmt.Sprintf(" LIMIT %d", g.r.IntN(20))
			case 1:
				q += fmt.Sprintf(" LIMIT %d, %d", g.r.IntN(30), 1+g.r.IntN(10))
			}
			return q, true
		}
		return q, false
	}
}

// joinQuery is a SELECT joining t_diff with the broadcast table t_bc.
func (g *diffGen) joinQuery() (string, bool) {
	join := []string{" JOIN ", " LEFT JOIN "}[g.r.IntN(2)]
	from := " FROM t_diff" + join + "t_bc ON bk = t_diff.k"
	switch g.r.IntN(4) {
	case 0:
		return "SELECT t_diff.id, bname, s1 FROM t_diff" + join + "t_bc b ON b.bk = t_diff.k" + g.where() + " ORDER BY t_diff.id", true
	case 1:
		return "SELECT COUNT(*), COUNT(bname), SUM(d), MAX(t_diff.id)" + from + g.where(), true
	case 2:
		return "SELECT k, COUNT(*), COUNT(bk)" + from + g.where() + " GROUP BY k", false
	}
	return "SELECT id, bk" + from + g.where() + fmt.Sprintf(" ORDER BY id DESC LIMIT %d", 1+g.r.IntN(10)), true
}

// bindQuery is a SELECT joining t_diff with t_diff2, bound to it (sharded
// alike by id2), on the sharding key.
func (g *diffGen) bindQuery() (string, bool) {
	join := []string{" JOIN ", " LEFT JOIN ", " RIGHT JOIN "}[g.r.IntN(3)]
	from := " FROM t_diff" + join + "t_diff2 ON t_diff2.id2 = t_diff.id"
	switch g.r.IntN(3) {
	case 0:
		return "SELECT t_diff.id, k, v FROM t_diff" + join + "t_diff2 x ON x.id2 = t_diff.id" + g.where() + " ORDER BY t_diff.id, v", true
	case 1:
		return "SELECT COUNT(*), COUNT(v), SUM(v), MAX(id2)" + from + g.where(), true
	}
	return "SELECT k, SUM(v), COUNT(*)" + from + g.where() + " GROUP BY k", false
}

// boundRule is rule shaped like t_diff's, for t_diff2 keyed by id2.
func boundRule(r proxyconfig.Sharding) proxyconfig.Sharding {
	b := proxyconfig.Sharding{TableName: "t_diff2", ActualDatanodes: r.ActualDatanodes}
	if ts := r.TableStrategy; ts != nil {
		c := *ts
		c.TableShardingColumn = "id2"
		b.TableStrategy = &c
	}
	if ds := r.DatabaseStrategy; ds != nil {
		c := *ds
		c.DatabaseShardingColumn = "id2"
		b.DatabaseStrategy = &c
	}
	if dts := r.DatabaseTableStrategy; dts != nil {
		c := *dts
		c.DatabaseShardingColumn, c.TableShardingColumn = "id2", "id2"
		b.DatabaseTableStrategy = &c
	}
	return b
}

func (g *diffGen) insert() string {
	n := 1 + g.r.IntN(4)
	rows := make([]string, n)
	for i := range rows {
		g.maxID++
		rows[i] = fmt.Sprintf("(%d, %s, %s, %s, %s, %s, %s, %s, %s)", g.maxID, g.value("k"), g.value("s1"), g.value("s2"),
			g.value("d"), g.value("f"), g.value("s3"), g.value("s4"), g.value("s5"))
	}
	return "INSERT INTO t_diff (id, k, s1, s2, d, f, s3, s4, s5) VALUES " + strings.Join(rows, ", ")
}

func (g *diffGen) dml() string {
	switch g.r.IntN(4) {
	case 0:
		return g.insert()
	case 1:
		return "DELETE FROM t_diff" + g.where()
	case 2:
		return "UPDATE t_diff SET k = " + g.value("k") + ", d = d + 1" + g.where()
	}
	return "UPDATE t_diff SET s1 = " + g.value("s1") + g.where()
}

// diffRows runs a query and returns its rows as strings, the first being
// its columns' names and types.
func diffRows(db interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, q string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(context.Background(), q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	meta := make([]string, len(cols))
	for i, ct := range types {
		meta[i] = cols[i] + " " + ct.DatabaseTypeName()
	}
	out := []string{"columns: " + strings.Join(meta, ", ")}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		parts := make([]string, len(cols))
		for i, v := range vals {
			parts[i] = "NULL"
			if v.Valid {
				parts[i] = v.String
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	return out, rows.Err()
}

// paramize turns the first integer literal after "id = " into a parameter,
// for the prepared-statement protocol.
func paramize(q string) (string, []any) {
	i := strings.Index(q, "id = ")
	if i < 0 {
		return q, nil
	}
	j := i + len("id = ")
	k := j
	for k < len(q) && q[k] >= '0' && q[k] <= '9' {
		k++
	}
	if k == j {
		return q, nil
	}
	v, _ := strconv.Atoi(q[j:k])
	return q[:j] + "?" + q[k:], []any{v}
}

func TestShardingDifferential(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PISA_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	statements := 600
	if testing.Short() {
		statements = 150
	}
	t.Logf("seed %d (PISA_TEST_SEED reproduces it)", seed)
	m1, m2 := testutil.StartMariaDB(t), testutil.StartMariaDB(t)
	m1.Exec(t, "CREATE DATABASE diffref")
	ref := m1.Open(t, "diffref")
	for si, strat := range diffStrategies {
		t.Run(strat.name, func(t *testing.T) {
			cfg := &proxyconfig.Config{}
			cfg.MySQL.Nodes = []proxyconfig.Node{node("ds001", m1), node("ds002", m2)}
			cfg.Proxy.Config = []proxyconfig.Listener{{
				Name: "diff", ListenAddr: "127.0.0.1:0", User: "proxy", Password: "proxypass", DB: "test",
				SimpleLoadBalance: &proxyconfig.SimpleLoadBalance{Nodes: []string{"ds001"}},
				Sharding:          []proxyconfig.Sharding{strat.rule()},
			}}
			cfg.Proxy.Config[0].Sharding[0].BroadcastTables = []string{"t_bc"}
			cfg.Proxy.Config[0].Sharding[0].BindingTables = []string{"t_diff2"}
			cfg.Proxy.Config[0].Sharding = append(cfg.Proxy.Config[0].Sharding, boundRule(cfg.Proxy.Config[0].Sharding[0]))
			cfg.Proxy.XA = proxyconfig.XA{ProxyID: "diff", LogFile: t.TempDir() + "/xa.log"}
			cfg.ApplyDefaults()
			tp := startProxy(t, cfg)
			sharded := openDB(t, tp.dsn(""))
			for _, db := range []*sql.DB{ref, sharded} {
				if _, err := db.Exec("DROP TABLE IF EXISTS t_diff"); err != nil {
					t.Fatal(err)
				}
				if _, err := db.Exec("CREATE TABLE t_diff " + diffSchema); err != nil {
					t.Fatal(err)
				}
				// t_bc: a broadcast table (a copy on every datanode).
				for _, q := range []string{"DROP TABLE IF EXISTS t_bc", "CREATE TABLE t_bc (bk INT PRIMARY KEY, bname VARCHAR(10))",
					"INSERT INTO t_bc (bk, bname) VALUES (-2, 'm2'), (0, 'zero'), (1, 'one'), (3, 'three')",
					// t_diff2: bound to t_diff (rows for some of its ids, two for some).
					"DROP TABLE IF EXISTS t_diff2", "CREATE TABLE t_diff2 (id2 BIGINT, v INT, PRIMARY KEY (id2, v))",
					"INSERT INTO t_diff2 (id2, v) VALUES (1, 10), (2, 20), (2, 21), (5, 50), (7, 70), (8, 80), (8, 81), (13, 130), (21, 210), (22, 220), (40, 400)"} {
					if _, err := db.Exec(q); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
			}
			g := &diffGen{r: rand.New(rand.NewPCG(seed, uint64(si)))}
			for i := 0; i < 30; i++ {
				q := g.insert()
				for _, db := range []*sql.DB{ref, sharded} {
					if _, err := db.Exec(q); err != nil {
						t.Fatalf("seed %d: %s: %v", seed, q, err)
					}
				}
			}
			refused, ran, joins, joinsRefused := 0, 0, 0, 0
			for i := 0; i < statements; i++ {
				if g.r.IntN(5) == 0 {
					q := g.dml()
					rr, rerr := ref.Exec(q)
					sr, serr := sharded.Exec(q)
					if mysqlErrCode(serr) == 1235 {
						refused++
						if rerr == nil {
							// Keep both sides equal: undo by replaying is
							// impossible, so the reference must not have
							// changed rows the proxy refused to touch.
							t.Fatalf("seed %d: %s: refused (%v) after the reference ran it: the generator must not produce it", seed, q, serr)
						}
						continue
					}
					if (rerr == nil) != (serr == nil) {
						t.Fatalf("seed %d: %s: reference %v, sharded %v", seed, q, rerr, serr)
					}
					if rerr == nil {
						rn, _ := rr.RowsAffected()
						sn, _ := sr.RowsAffected()
						if rn != sn {
							t.Fatalf("seed %d: %s: reference affected %d rows, sharded %d", seed, q, rn, sn)
						}
					}
					ran++
					continue
				}
				q, ordered := g.query()
				isJoin := g.r.IntN(5) == 0
				if isJoin {
					q, ordered = g.joinQuery()
					if g.r.IntN(2) == 0 {
						q, ordered = g.bindQuery()
					}
					joins++
				}
				var args []any
				if g.r.IntN(3) == 0 {
					q, args = paramize(q)
				}
				want, rerr := diffRows(ref, q, args...)
				got, serr := diffRows(sharded, q, args...)
				if mysqlErrCode(serr) == 1235 {
					refused++
					if isJoin {
						joinsRefused++
					}
					continue
				}
				if rerr != nil || serr != nil {
					if (rerr == nil) != (serr == nil) {
						t.Fatalf("seed %d: %s %v: reference %v, sharded %v", seed, q, args, rerr, serr)
					}
					continue
				}
				ran++
				if !ordered {
					slices.Sort(want[1:])
					slices.Sort(got[1:])
				}
				if !slices.Equal(want, got) {
					t.Fatalf("seed %d: %s %v:\nreference (%d rows): %q\nsharded   (%d rows): %q", seed, q, args, len(want), want, len(got), got)
				}
			}
			// Transactions of several statements (BEGIN, or autocommit off),
			// committed or rolled back, each side on one connection; the
			// whole table is compared after each.
			txs := 40
			if testing.Short() {
				txs = 10
			}
			ctx := context.Background()
			for i := 0; i < txs; i++ {
				rc, err := ref.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				sc, err := sharded.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				both := func(q string) {
					for _, c := range []*sql.Conn{rc, sc} {
						if _, err := c.ExecContext(ctx, q); err != nil {
							t.Fatalf("seed %d: transaction %d: %s: %v", seed, i, q, err)
						}
					}
				}
				start, end := "BEGIN", "COMMIT"
				autocommitOff := g.r.IntN(3) == 0
				if autocommitOff {
					start = "SET autocommit = 0"
				}
				if g.r.IntN(3) == 0 {
					end = "ROLLBACK"
				}
				both(start)
				var trace []string
				aborted := false
				for j, n := 0, 2+g.r.IntN(5); j < n && !aborted; j++ {
					if g.r.IntN(2) == 0 {
						q := g.dml()
						trace = append(trace, q)
						rr, rerr := rc.ExecContext(ctx, q)
						sr, serr := sc.ExecContext(ctx, q)
						switch {
						case mysqlErrCode(serr) == 1235:
							// Refused inside the transaction (e.g. several
							// physical tables of one node): both roll back.
							refused++
							aborted = true
						case (rerr == nil) != (serr == nil):
							t.Fatalf("seed %d: transaction %d %q: reference %v, sharded %v", seed, i, trace, rerr, serr)
						case rerr == nil:
							rn, _ := rr.RowsAffected()
							sn, _ := sr.RowsAffected()
							if rn != sn {
								t.Fatalf("seed %d: transaction %d %q: reference affected %d rows, sharded %d", seed, i, trace, rn, sn)
							}
							ran++
						}
						continue
					}
					q, ordered := g.query()
					trace = append(trace, q)
					want, rerr := diffRows(rc, q)
					got, serr := diffRows(sc, q)
					switch {
					case mysqlErrCode(serr) == 1235:
						refused++
						aborted = true
					case (rerr == nil) != (serr == nil):
						t.Fatalf("seed %d: transaction %d %q: reference %v, sharded %v", seed, i, trace, rerr, serr)
					case rerr == nil:
						ran++
						if !ordered {
							slices.Sort(want[1:])
							slices.Sort(got[1:])
						}
						if !slices.Equal(want, got) {
							t.Fatalf("seed %d: transaction %d %q (its own writes visible):\nreference: %q\nsharded:   %q", seed, i, trace, want, got)
						}
					}
				}
				if aborted {
					end = "ROLLBACK"
				}
				both(end)
				if autocommitOff {
					both("SET autocommit = 1")
				}
				rc.Close()
				sc.Close()
				want, _ := diffRows(ref, "SELECT * FROM t_diff ORDER BY id")
				got, err := diffRows(sharded, "SELECT * FROM t_diff ORDER BY id")
				if err != nil || !slices.Equal(want, got) {
					t.Fatalf("seed %d: after transaction %d %q + %s: table differs (%v): reference %d rows, sharded %d", seed, i, trace, end, err, len(want), len(got))
				}
			}

			// The whole table, at the end.
			want, _ := diffRows(ref, "SELECT * FROM t_diff ORDER BY id")
			got, err := diffRows(sharded, "SELECT * FROM t_diff ORDER BY id")
			if err != nil || !slices.Equal(want, got) {
				t.Fatalf("seed %d: final table differs (%v): reference %d rows, sharded %d", seed, err, len(want), len(got))
			}
			t.Logf("%d statements answered like the reference, %d refused with 1235 (JOINs with the broadcast or the binding table: %d, %d refused)", ran, refused, joins, joinsRefused)
			if refused > statements/4 {
				t.Errorf("%d of %d statements refused: the supported grammar shrank", refused, statements)
			}
		})
	}
}
