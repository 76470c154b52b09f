package shard

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// expectShard is Pisanix's placement computed from the formulas, not
// from the planner: node, schema, table and shard number.
func expectShard(s proxyconfig.Sharding, dbKey, tKey uint64) (node, schema, table string, shard int) {
	alg := func(name string, k uint64, n int) int {
		if name == "mod" {
			return int(k % uint64(n))
		}
		return AlgCRC32Mod.Index(k, n)
	}
	switch {
	case s.TableStrategy != nil:
		ti := alg(s.TableStrategy.TableShardingAlgorithmName, tKey, s.TableStrategy.ShardingCount)
		return s.ActualDatanodes[0], "db" + s.ActualDatanodes[0][2:], fmt.Sprintf("%s_%05d", s.TableName, ti), ti
	case s.DatabaseStrategy != nil:
		di := alg(s.DatabaseStrategy.DatabaseShardingAlgorithmName, dbKey, len(s.ActualDatanodes))
		n := s.ActualDatanodes[di]
		return n, "db" + n[2:], s.TableName, di
	default:
		st := s.DatabaseTableStrategy
		di := alg(st.DatabaseShardingAlgorithmName, dbKey, len(s.ActualDatanodes))
		ti := alg(st.TableShardingAlgorithmName, tKey, st.ShardingCount)
		n := s.ActualDatanodes[di]
		return n, "db" + n[2:], fmt.Sprintf("%s_%05d", s.TableName, ti), di*st.ShardingCount + ti
	}
}

func strategies() []proxyconfig.Sharding {
	var out []proxyconfig.Sharding
	for _, alg := range []string{"mod", "crc32mod"} {
		out = append(out,
			tableRule("t_order", alg, "id", 4),
			dbRule("t_order", alg, "id", "ds1", "ds2", "ds3"),
			dbTableRule("t_order", alg, "uid", alg, "id", 3, "ds1", "ds2"),
			dbTableRule("t_order", alg, "id", alg, "id", 5, "ds1", "ds2", "ds3"),
		)
	}
	return out
}

func sessionDB(s proxyconfig.Sharding) string { return "db" + s.ActualDatanodes[0][2:] }

func ruleCols(s proxyconfig.Sharding) (dbCol, tCol string) {
	switch {
	case s.TableStrategy != nil:
		return "", s.TableStrategy.TableShardingColumn
	case s.DatabaseStrategy != nil:
		return s.DatabaseStrategy.DatabaseShardingColumn, ""
	}
	return s.DatabaseTableStrategy.DatabaseShardingColumn, s.DatabaseTableStrategy.TableShardingColumn
}

// TestStrategies routes INSERT and point SELECT for every strategy and
// algorithm and compares with the formulas.
func TestStrategies(t *testing.T) {
	for _, s := range strategies() {
		rt := mustRouter(t, s)
		db := sessionDB(s)
		dbCol, tCol := ruleCols(s)
		name := fmt.Sprintf("%s-%s-%s", s.TableName, dbCol, tCol)
		t.Run(name, func(t *testing.T) {
			for _, k := range []int64{0, 1, 2, 3, 4, 5, 7, 10, 42, 99, 100, 12345, 9223372036854775807} {
				dk, tk := uint64(k), uint64(k)
				if dbCol != "" && tCol != "" && !strings.EqualFold(dbCol, tCol) {
					tk = uint64(k + 1)
				}
				node, schema, table, shard := expectShard(s, dk, tk)
				var cols, vals, where []string
				if dbCol != "" {
					cols, vals, where = append(cols, dbCol), append(vals, fmt.Sprint(dk)), append(where, fmt.Sprintf("%s = %d", dbCol, dk))
				}
				if tCol != "" && !strings.EqualFold(dbCol, tCol) {
					cols, vals, where = append(cols, tCol), append(vals, fmt.Sprint(tk)), append(where, fmt.Sprintf("%s = %d", tCol, tk))
				}
				ins := mustPlan(t, rt, fmt.Sprintf("INSERT INTO t_order (%s, v) VALUES (%s, 'x')", strings.Join(cols, ", "), strings.Join(vals, ", ")), db)
				sel := mustPlan(t, rt, "SELECT v FROM t_order WHERE "+strings.Join(where, " AND "), db)
				for _, p := range []*Plan{ins, sel} {
					if p.Kind != RouteSingle || len(p.Targets) != 1 {
						t.Fatalf("key %d: plan %+v", k, p)
					}
					tg := p.Targets[0]
					if tg.Node != node || tg.Schema != schema || tg.Table != table || tg.Shard != shard {
						t.Errorf("key %d: got %s %s.%s #%d, want %s %s.%s #%d", k, tg.Node, tg.Schema, tg.Table, tg.Shard, node, schema, table, shard)
					}
					if !strings.Contains(tg.SQL, quoteName(schema)+"."+quoteName(table)) {
						t.Errorf("key %d: SQL %s", k, tg.SQL)
					}
				}
			}
			all := mustPlan(t, rt, "SELECT v FROM t_order", db)
			if all.Kind != RouteAll || len(all.Targets) != rt.rules[0].shards() {
				t.Errorf("scatter: %+v", all)
			}
			seen := map[string]bool{}
			for i, tg := range all.Targets {
				if tg.Shard != i {
					t.Errorf("targets not in shard order: %v", shardsOf(all))
				}
				seen[tg.Node+"/"+tg.Schema+"."+tg.Table] = true
			}
			if len(seen) != len(all.Targets) {
				t.Errorf("duplicate physical tables: %v", seen)
			}
		})
	}
}

func TestTableMatching(t *testing.T) {
	rt := mustRouter(t, tableRule("t_order", "mod", "id", 4), dbRule("t_user", "mod", "uid", "ds1", "ds2"))
	cases := []struct {
		sql, db string
		kind    RouteKind
	}{
		{"SELECT * FROM t_order WHERE id = 1", "db0", RouteSingle},
		{"SELECT * FROM t_order WHERE id = 1", "db1", RouteUnsharded},     // another db's t_order
		{"SELECT * FROM t_order WHERE id = 1", "", RouteUnsharded},        // no db: not ours
		{"SELECT * FROM db0.t_order WHERE id = 1", "", RouteSingle},       // qualified
		{"SELECT * FROM db9.t_order WHERE id = 1", "db0", RouteUnsharded}, // another db
		{"SELECT * FROM T_ORDER WHERE id = 1", "db0", RouteUnsharded},     // names are case-sensitive
		{"SELECT * FROM t_user WHERE uid = 1", "db2", RouteSingle},        // any datanode's db
		{"SELECT * FROM t_user WHERE UID = 1", "db1", RouteSingle},        // columns are not
		{"SELECT * FROM t_orders", "db0", RouteUnsharded},
		{"SET autocommit = 0", "db0", RouteUnsharded},
		{"BEGIN", "db0", RouteUnsharded},
		{"USE db0", "db0", RouteUnsharded},
		{"SELECT 1", "db0", RouteUnsharded},
		{"this is not sql", "db0", RouteUnsharded},
	}
	for _, c := range cases {
		p := mustPlan(t, rt, c.sql, c.db)
		if p.Kind != c.kind {
			t.Errorf("%q in %q: %v, want %v", c.sql, c.db, p.Kind, c.kind)
		}
		if p.Kind == RouteUnsharded && len(p.Targets) != 0 {
			t.Errorf("%q: unsharded with targets", c.sql)
		}
	}
	if _, err := rt.Plan("SELEC * FROM t_order", "db0"); !isRefusal(err) {
		t.Errorf("unparsable statement naming a sharded table: %v", err)
	}
}

func TestKeyExtraction(t *testing.T) {
	rt := mustRouter(t, tableRule("t_order", "mod", "id", 4))
	cases := []struct {
		where string
		want  []int
	}{
		{"id = 5", []int{1}},
		{"5 = id", []int{1}},
		{"o.id = 6", []int{2}},
		{"db0.o.id = 6", []int{2}},
		{"(id) = (7)", []int{3}},
		{"id <=> 4", []int{0}},
		{"id = '9'", []int{1}},
		{"id = '9x'", []int{0, 1, 2, 3}},
		{"id = 5.0", []int{1}},
		{"id = 5.5", []int{0, 1, 2, 3}},
		{"id = -1", []int{3}}, // two's complement: 2^64-1 mod 4
		{"id = NULL", []int{0, 1, 2, 3}},
		{"id IS NULL", []int{0, 1, 2, 3}},
		{"id IN (1, 5, 9)", []int{1}},
		{"id IN (1, 2)", []int{1, 2}},
		{"id IN (1, 'x')", []int{0, 1, 2, 3}},
		{"id NOT IN (1)", []int{0, 1, 2, 3}},
		{"id BETWEEN 5 AND 6", []int{1, 2}},
		{"id BETWEEN 6 AND 5", []int{0}}, // empty: one shard answers
		{"id BETWEEN 1 AND 100", []int{0, 1, 2, 3}},
		{"id BETWEEN '1' AND '2'", []int{0, 1, 2, 3}}, // strings compare as strings
		{"id NOT BETWEEN 1 AND 2", []int{0, 1, 2, 3}},
		{"id > 4 AND id < 7", []int{1, 2}},
		{"id >= 4 AND id <= 4", []int{0}},
		{"4 < id AND 7 > id", []int{1, 2}},
		{"id > 4", []int{0, 1, 2, 3}},
		{"id > 4 AND id < 100000", []int{0, 1, 2, 3}},
		{"id > 4.5 AND id < 7", []int{0, 1, 2, 3}}, // an unusable bound widens
		{"id = 1 AND id = 2", []int{0}},
		{"id = 1 AND v = 2", []int{1}},
		{"id = 1 OR id = 2", []int{1, 2}},
		{"id = 1 OR v = 2", []int{0, 1, 2, 3}},
		{"(id = 1 OR id = 2) AND (id = 2 OR id = 3)", []int{2}},
		{"NOT id = 1", []int{0, 1, 2, 3}},
		{"id <> 1", []int{0, 1, 2, 3}},
		{"id + 0 = 1", []int{0, 1, 2, 3}},
		{"v = 1", []int{0, 1, 2, 3}},
		{"id = 0x05", []int{0, 1, 2, 3}},
		{"id = TRUE", []int{1}},
		{"id = 18446744073709551615", []int{3}},
		{"id = -9223372036854775808", []int{0}},
	}
	for _, c := range cases {
		p, err := rt.Plan("SELECT v FROM t_order o WHERE "+c.where, "db0")
		if err != nil {
			t.Errorf("%s: %v", c.where, err)
			continue
		}
		if got := shardsOf(p); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: shards %v, want %v", c.where, got, c.want)
		}
	}
}

func TestDatabaseTableKeys(t *testing.T) {
	// db part: uid mod 2 over ds1, ds2; table part: id mod 3.
	rt := mustRouter(t, dbTableRule("t_item", "mod", "uid", "mod", "id", 3, "ds1", "ds2"))
	cases := []struct {
		where string
		want  []int
	}{
		{"uid = 1 AND id = 2", []int{5}},
		{"uid = 1", []int{3, 4, 5}},
		{"id = 2", []int{2, 5}},
		{"uid = 2 OR id = 1", []int{0, 1, 2, 4}},
		{"uid IN (1, 3) AND id BETWEEN 0 AND 1", []int{3, 4}},
	}
	for _, c := range cases {
		p := mustPlan(t, rt, "SELECT * FROM t_item WHERE "+c.where, "db1")
		if got := shardsOf(p); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: shards %v, want %v", c.where, got, c.want)
		}
	}
	p := mustPlan(t, rt, "SELECT * FROM t_item WHERE uid = 1 AND id = 2", "db1")
	if tg := p.Targets[0]; tg.Node != "ds2" || tg.Schema != "db2" || tg.Table != "t_item_00002" {
		t.Errorf("target %+v", tg)
	}
}
