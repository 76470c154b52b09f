package shard_test

import (
	"testing"

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
