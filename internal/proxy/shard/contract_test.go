package shard_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
	"github.com/database-mesh/pisanix-go/internal/proxy/shard/merge"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// TestMergerAcceptsPlans: the merger builds a Merger from every Merge the
// planner produces for these statements (all columns DECIMAL).
func TestMergerAcceptsPlans(t *testing.T) {
	cfg := &proxyconfig.Config{}
	cfg.MySQL.Nodes = []proxyconfig.Node{{Name: "ds0", DB: "db0"}}
	l := &proxyconfig.Listener{Sharding: []proxyconfig.Sharding{{TableName: "t", ActualDatanodes: []string{"ds0"},
		TableStrategy: &proxyconfig.TableStrategy{TableShardingAlgorithmName: "mod", TableShardingColumn: "id", ShardingCount: 3}}}}
	rt, err := shard.Compile(cfg, l)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		sql   string
		ncols int // columns the shards return
	}{
		{"select id, v from t order by v desc, id limit 2, 3", 2},
		{"select id from t order by v", 2},
		{"select * from t order by v", 4},
		{"select count(*), sum(n), min(n), max(n), avg(n) from t", 7},
		{"select v, count(*) from t group by v", 2},
		{"select count(*) c from t group by v, w order by v desc limit 3", 3},
		{"select v, avg(n) a from t group by v having count(*) > 1 and a <= 2 order by a desc", 5},
		{"select id, count(distinct v) from t group by id having count(*) > 1 limit 2", 2},
		{"select distinct v, w from t order by w desc", 2},
		{"select v, count(*) from t group by v having v > 2 and 3 > count(*)", 2},
	} {
		p, err := rt.Plan(q.sql, "db0")
		if err != nil || p.Merge == nil {
			t.Fatalf("%s: %v %+v", q.sql, err, p)
		}
		cols := make([]merge.Column, q.ncols)
		for i := range cols {
			cols[i] = merge.Column{Name: "c", Type: 246 /* NEWDECIMAL */, Collation: 63, Decimals: 4}
		}
		spec := p.Merge.Resolve(q.ncols)
		if _, err := merge.New(spec, cols, false, nil); err != nil {
			t.Errorf("%s: merger refuses %+v: %v", q.sql, spec, err)
		}
	}
}

// TestSelectCombinations plans many SELECT shapes: never an internal
// error, refusals are 1235, and the merger accepts every Merge.
func TestSelectCombinations(t *testing.T) {
	cfg := &proxyconfig.Config{}
	cfg.MySQL.Nodes = []proxyconfig.Node{{Name: "ds0", DB: "db0"}}
	l := &proxyconfig.Listener{Sharding: []proxyconfig.Sharding{{TableName: "t", ActualDatanodes: []string{"ds0"},
		TableStrategy: &proxyconfig.TableStrategy{TableShardingAlgorithmName: "mod", TableShardingColumn: "id", ShardingCount: 3}}}}
	rt, _ := shard.Compile(cfg, l)
	fields := []string{"*", "id, v", "v AS x, COUNT(*)", "COUNT(*), AVG(n)", "DISTINCT v", "t.*, v", "v, SUM(n) s, MAX(id)", "COUNT(DISTINCT id)", "id, COUNT(DISTINCT v)", "v + 1, MIN(n)"}
	wheres := []string{"", " WHERE id = 1", " WHERE id IN (1, 2)", " WHERE v > 3"}
	groups := []string{"", " GROUP BY v", " GROUP BY id", " GROUP BY 1", " GROUP BY v, id", " GROUP BY x"}
	havings := []string{"", " HAVING COUNT(*) > 1", " HAVING x = 3", " HAVING SUM(n) <= 2 AND MIN(n) > 0"}
	orders := []string{"", " ORDER BY v", " ORDER BY v DESC, id", " ORDER BY 2", " ORDER BY COUNT(*) DESC", " ORDER BY n", " ORDER BY x"}
	limits := []string{"", " LIMIT 3", " LIMIT 2, 3"}
	n, refused := 0, 0
	for _, f := range fields {
		for _, w := range wheres {
			for _, g := range groups {
				for _, h := range havings {
					for _, o := range orders {
						for _, li := range limits {
							q := "SELECT " + f + " FROM t" + w + g + h + o + li
							p, err := rt.Plan(q, "db0")
							n++
							if err != nil {
								var me *mysql.Error
								if !errors.As(err, &me) || (me.Code != 1235 && me.Code != 1054) || strings.Contains(me.Message, "internal") {
									t.Fatalf("%s: %v", q, err)
								}
								refused++
								continue
							}
							if p.Merge == nil {
								continue
							}
							ncols := 12
							cols := make([]merge.Column, ncols)
							for i := range cols {
								cols[i] = merge.Column{Name: "c", Type: 246, Collation: 63, Decimals: 4}
							}
							if p.Merge.Columns > ncols-p.Merge.Derived {
								t.Fatalf("%s: %+v", q, p.Merge)
							}
							spec := *p.Merge.Resolve(ncols)
							if p.Merge.Columns >= 0 {
								// Only the real columns.
								cols = cols[:p.Merge.Columns+p.Merge.Derived]
							}
							if _, err := merge.New(&spec, cols, false, nil); err != nil {
								t.Errorf("%s: merger refuses %+v: %v", q, spec, err)
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d statements, %d refused", n, refused)
}
