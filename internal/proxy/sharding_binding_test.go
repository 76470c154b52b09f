package proxy

import (
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// Binding tables: a JOIN of tables sharded alike, on their sharding
// columns, runs on each shard and merges; without the key equality it is
// refused.
func TestShardingBindingTables(t *testing.T) {
	sc := startShardedWith(t, func(cfg *proxyconfig.Config) {
		l := &cfg.Proxy.Config[0]
		l.Sharding[0].BindingTables = []string{"t_order_item"} // t_order: database_strategy, mod on id
		l.Sharding[1].BindingTables = []string{"t_item_ext"}   // t_item: table_strategy, crc32mod, 4 tables
		l.Sharding = append(l.Sharding,
			proxyconfig.Sharding{TableName: "t_order_item", ActualDatanodes: []string{"ds001", "ds002"},
				DatabaseStrategy: &proxyconfig.DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "order_id"}},
			proxyconfig.Sharding{TableName: "t_item_ext", ActualDatanodes: []string{"ds001"},
				TableStrategy: &proxyconfig.TableStrategy{TableShardingAlgorithmName: "crc32mod", TableShardingColumn: "item_id", ShardingCount: 4}})
	})
	for _, q := range []string{
		"CREATE TABLE t_order (id BIGINT PRIMARY KEY, note VARCHAR(20))",
		"CREATE TABLE t_order_item (item_id BIGINT PRIMARY KEY, order_id BIGINT, qty INT)",
		"CREATE TABLE t_item (id BIGINT PRIMARY KEY, name VARCHAR(20))",
		"CREATE TABLE t_item_ext (item_id BIGINT PRIMARY KEY, price INT)",
		"INSERT INTO t_order (id, note) VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')",
		"INSERT INTO t_order_item (item_id, order_id, qty) VALUES (10, 1, 1), (11, 1, 2), (20, 2, 5), (40, 4, 1), (41, 4, 7), (42, 4, 3)",
		"INSERT INTO t_item (id, name) VALUES (1, 'x'), (2, 'y'), (3, 'z'), (5, 'w')",
		"INSERT INTO t_item_ext (item_id, price) VALUES (1, 100), (2, 200), (5, 500), (6, 600)",
	} {
		sc.exec(t, q)
	}
	for _, tc := range []struct{ q, want string }{
		{"SELECT o.id, COUNT(i.item_id), SUM(i.qty) FROM t_order o LEFT JOIN t_order_item i ON i.order_id = o.id GROUP BY o.id ORDER BY o.id",
			"1|2|3,2|1|5,3|0|NULL,4|3|11"},
		{"SELECT o.note, i.qty FROM t_order o JOIN t_order_item i ON o.id = i.order_id WHERE o.id = 4 ORDER BY i.qty", "d|1,d|3,d|7"},
		{"SELECT t_order.id, t_order_item.item_id FROM t_order, t_order_item WHERE t_order_item.order_id = t_order.id AND t_order_item.qty > 2 ORDER BY 2",
			"2|20,4|41,4|42"},
		{"SELECT COUNT(*), SUM(e.price) FROM t_item it JOIN t_item_ext e ON e.item_id = it.id", "3|800"},
		{"SELECT it.name, e.price FROM t_item it LEFT JOIN t_item_ext e ON e.item_id = it.id ORDER BY it.id", "x|100,y|200,z|NULL,w|500"},
	} {
		if got := strings.Join(rowsOf(t, sc.db, tc.q), ","); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.q, got, tc.want)
		}
	}
	for _, q := range []string{
		"SELECT o.id FROM t_order o JOIN t_order_item i ON i.qty = o.id",             // not the key
		"SELECT o.id FROM t_order o JOIN t_order_item i ON i.order_id > o.id",        // not an equality
		"SELECT o.id FROM t_order o JOIN t_item it ON it.id = o.id",                  // not bound
		"UPDATE t_order o JOIN t_order_item i ON i.order_id = o.id SET o.note = 'u'", // a write
	} {
		if _, err := sc.db.Exec(q); mysqlErrCode(err) != 1235 {
			t.Errorf("%s: want 1235, got %v", q, err)
		}
	}
}
