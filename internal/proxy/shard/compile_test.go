package shard

import (
	"testing"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

func TestCompile(t *testing.T) {
	cfg, l := testConfig()
	if rt, err := Compile(cfg, l); rt != nil || err != nil {
		t.Errorf("no rules: %v %v", rt, err)
	}
	bad := []proxyconfig.Sharding{
		{TableName: "t", ActualDatanodes: []string{"nope"}, TableStrategy: &proxyconfig.TableStrategy{TableShardingAlgorithmName: "mod", TableShardingColumn: "id", ShardingCount: 2}},
		{TableName: "t", ActualDatanodes: []string{"ds0"}},
		{TableName: "t", ActualDatanodes: []string{"ds0"}, TableStrategy: &proxyconfig.TableStrategy{TableShardingAlgorithmName: "hash", TableShardingColumn: "id", ShardingCount: 2}},
		{TableName: "t", ActualDatanodes: []string{"ds0"}, TableStrategy: &proxyconfig.TableStrategy{TableShardingAlgorithmName: "mod", TableShardingColumn: "id"}},
		{TableName: "t", ActualDatanodes: []string{"ds0"}, TableStrategy: &proxyconfig.TableStrategy{TableShardingAlgorithmName: "mod", ShardingCount: 2}},
	}
	for i, r := range bad {
		cfg, l := testConfig(r)
		if _, err := Compile(cfg, l); err == nil {
			t.Errorf("bad rule %d compiled", i)
		}
	}
	cfg, l = testConfig(tableRule("t", "mod", "id", 2), tableRule("t", "mod", "id", 3))
	if _, err := Compile(cfg, l); err == nil {
		t.Error("two rules for one table compiled")
	}
	cfg, l = testConfig(tableRule("t", "mod", "id", 2))
	cfg.MySQL.Nodes[0].DB = ""
	if _, err := Compile(cfg, l); err == nil {
		t.Error("datanode without db compiled")
	}

	// Node groups: the group's readwrite node's db; targets name the group.
	cfg, l = testConfig(dbRule("t", "mod", "id", "g1", "g2"))
	cfg.NodeGroup.Members = []proxyconfig.NodeGroupMember{{Name: "g1", ReadWrite: "ds1", Reads: []string{"ds0"}}, {Name: "g2", ReadWrite: "ds2"}}
	rt, err := Compile(cfg, l)
	if err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, rt, "SELECT * FROM t WHERE id = 3", "db1")
	if tg := p.Targets[0]; tg.Node != "g2" || tg.Schema != "db2" || tg.Table != "t" {
		t.Errorf("node group target %+v", tg)
	}
}
