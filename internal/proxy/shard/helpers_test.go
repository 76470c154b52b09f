package shard

import (
	"errors"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// testConfig has nodes ds0..ds3 with databases db0..db3.
func testConfig(rules ...proxyconfig.Sharding) (*proxyconfig.Config, *proxyconfig.Listener) {
	cfg := &proxyconfig.Config{}
	for _, n := range []string{"0", "1", "2", "3"} {
		cfg.MySQL.Nodes = append(cfg.MySQL.Nodes, proxyconfig.Node{Name: "ds" + n, DB: "db" + n})
	}
	cfg.Proxy.Config = []proxyconfig.Listener{{Name: "l", Sharding: rules}}
	return cfg, &cfg.Proxy.Config[0]
}

func tableRule(table, alg, col string, count int) proxyconfig.Sharding {
	return proxyconfig.Sharding{TableName: table, ActualDatanodes: []string{"ds0"},
		TableStrategy: &proxyconfig.TableStrategy{TableShardingAlgorithmName: alg, TableShardingColumn: col, ShardingCount: count}}
}

func dbRule(table, alg, col string, nodes ...string) proxyconfig.Sharding {
	return proxyconfig.Sharding{TableName: table, ActualDatanodes: nodes,
		DatabaseStrategy: &proxyconfig.DatabaseStrategy{DatabaseShardingAlgorithmName: alg, DatabaseShardingColumn: col}}
}

func dbTableRule(table, dbAlg, dbCol, tAlg, tCol string, count int, nodes ...string) proxyconfig.Sharding {
	return proxyconfig.Sharding{TableName: table, ActualDatanodes: nodes,
		DatabaseTableStrategy: &proxyconfig.DatabaseTableStrategy{DatabaseShardingAlgorithmName: dbAlg, DatabaseShardingColumn: dbCol,
			TableShardingAlgorithmName: tAlg, TableShardingColumn: tCol, ShardingCount: count}}
}

func mustRouter(t testing.TB, rules ...proxyconfig.Sharding) *Router {
	t.Helper()
	cfg, l := testConfig(rules...)
	rt, err := Compile(cfg, l)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func mustPlan(t testing.TB, rt *Router, sql, db string) *Plan {
	t.Helper()
	p, err := rt.Plan(sql, db)
	if err != nil {
		t.Fatalf("Plan(%q): %v", sql, err)
	}
	return p
}

func shardsOf(p *Plan) []int {
	var out []int
	for _, t := range p.Targets {
		out = append(out, t.Shard)
	}
	return out
}

func isRefusal(err error) bool {
	var me *mysql.Error
	return errors.As(err, &me) && me.Code == ErrCodeNotSupported && me.SQLState == "42000"
}
