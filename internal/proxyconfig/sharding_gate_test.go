package proxyconfig

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// The other tests check how sharding rules parse and validate; they run as
// if the data path routed them. TestShardingRefusedUntilRouted checks the
// gate itself.
func TestMain(m *testing.M) {
	shardingRouted = true
	os.Exit(m.Run())
}

func TestShardingRefusedUntilRouted(t *testing.T) {
	shardingRouted = false
	defer func() { shardingRouted = true }()
	_, err := Parse([]byte(`
[[proxy.config]]
name = "shard"
listen_addr = "127.0.0.1:0"
user = "u"
password = "p"
[proxy.config.simple_loadbalance]
nodes = ["ds001", "ds002"]
[[proxy.config.sharding]]
table_name = "t_order"
actual_datanodes = ["ds001", "ds002"]
[proxy.config.sharding.database_strategy]
database_sharding_algorithm_name = "mod"
database_sharding_column = "id"
[[mysql.node]]
name = "ds001"
db = "test"
user = "root"
password = ""
[[mysql.node]]
name = "ds002"
db = "test2"
user = "root"
password = ""
`), TOML)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("a sharding rule must be refused while sharding is not routed, got %v", err)
	}
	if len(ve.Problems) != 1 || !strings.HasPrefix(ve.Problems[0], "proxy.config[0].sharding[0]: ") ||
		!strings.Contains(ve.Problems[0], `"t_order"`) {
		t.Fatalf("the problem must name the key and the table: %q", ve.Problems)
	}
}
