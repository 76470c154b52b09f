package proxy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/admin"
	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// shardedCluster is two throwaway MariaDB servers behind one sharding
// listener: t_order by database_strategy (mod on id over ds001, ds002),
// t_item by table_strategy (crc32mod on id, 4 tables on ds001) and t_user
// by database_table_strategy (mod on uid over the two nodes, mod on id
// into 2 tables each).
type shardedCluster struct {
	m1, m2 *testutil.MariaDB
	tp     *testProxy
	db     *sql.DB
}

func node(name string, m *testutil.MariaDB) proxyconfig.Node {
	host, port, _ := net.SplitHostPort(m.Addr)
	p, _ := strconv.Atoi(port)
	return proxyconfig.Node{Name: name, Host: host, Port: p, User: "root", DB: "test"}
}

func startSharded(t *testing.T) *shardedCluster {
	t.Helper()
	return startShardedWith(t, nil)
}

// startShardedWith is startSharded with the configuration changed by modify
// before it is applied.
func startShardedWith(t *testing.T, modify func(*proxyconfig.Config)) *shardedCluster {
	t.Helper()
	sc := &shardedCluster{m1: testutil.StartMariaDB(t), m2: testutil.StartMariaDB(t)}
	cfg := shardedConfig(t, sc.m1, sc.m2)
	if modify != nil {
		modify(cfg)
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sc.tp = startProxy(t, cfg)
	sc.db = openDB(t, sc.tp.dsn(""))
	return sc
}

// shardedConfig is the configuration of startSharded over m1 and m2.
func shardedConfig(t *testing.T, m1, m2 *testutil.MariaDB) *proxyconfig.Config {
	cfg := &proxyconfig.Config{}
	cfg.MySQL.Nodes = []proxyconfig.Node{node("ds001", m1), node("ds002", m2)}
	cfg.Proxy.Config = []proxyconfig.Listener{{
		Name: "shard", ListenAddr: "127.0.0.1:0", User: "proxy", Password: "proxypass", DB: "test",
		SimpleLoadBalance: &proxyconfig.SimpleLoadBalance{Nodes: []string{"ds001"}},
		Sharding: []proxyconfig.Sharding{
			{TableName: "t_order", ActualDatanodes: []string{"ds001", "ds002"},
				DatabaseStrategy: &proxyconfig.DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"}},
			{TableName: "t_item", ActualDatanodes: []string{"ds001"},
				TableStrategy: &proxyconfig.TableStrategy{TableShardingAlgorithmName: "crc32mod", TableShardingColumn: "id", ShardingCount: 4}},
			{TableName: "t_user", ActualDatanodes: []string{"ds001", "ds002"},
				DatabaseTableStrategy: &proxyconfig.DatabaseTableStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "uid",
					TableShardingAlgorithmName: "mod", TableShardingColumn: "id", ShardingCount: 2}},
		},
	}}
	cfg.Proxy.XA = proxyconfig.XA{ProxyID: "t" + strconv.Itoa(m1.Port), LogFile: t.TempDir() + "/xa.log"}
	return cfg
}

func (sc *shardedCluster) exec(t *testing.T, q string, args ...any) sql.Result {
	t.Helper()
	res, err := sc.db.Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return res
}

// rowsOf returns a query's rows as strings ("NULL" for NULL), one string
// per row with columns joined by "|".
func rowsOf(t *testing.T, q interface {
	Query(string, ...any) (*sql.Rows, error)
}, query string, args ...any) []string {
	t.Helper()
	rows, err := q.Query(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
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
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

func TestShardingDatabaseStrategy(t *testing.T) {
	sc := startSharded(t)
	// DDL on the logical table reaches every shard.
	sc.exec(t, "CREATE TABLE t_order (id BIGINT PRIMARY KEY, uid INT, amount DECIMAL(10,2), note VARCHAR(20))")
	for _, m := range []*testutil.MariaDB{sc.m1, sc.m2} {
		if got := rowsOf(t, m.Open(t, "test"), "SHOW TABLES LIKE 't_order'"); len(got) != 1 {
			t.Fatalf("t_order not created on %s: %v", m.Addr, got)
		}
	}
	// Ten rows, one multi-row INSERT split per shard and single ones.
	res := sc.exec(t, "INSERT INTO t_order (id, uid, amount, note) VALUES (1, 10, 1.50, 'a'), (2, 20, 2.50, 'b'), (3, 10, 3.50, 'c'), (4, 20, 4.50, 'd')")
	if n, _ := res.RowsAffected(); n != 4 {
		t.Fatalf("multi-row insert affected %d rows, want 4", n)
	}
	for id := 5; id <= 10; id++ {
		sc.exec(t, "INSERT INTO t_order (id, uid, amount, note) VALUES (?, ?, ?, ?)", id, id%3*10, fmt.Sprintf("%d.25", id), string(rune('a'+id-1)))
	}
	// Each row is where mod puts it: even ids on ds001, odd on ds002.
	even := rowsOf(t, sc.m1.Open(t, "test"), "SELECT id FROM t_order ORDER BY id")
	odd := rowsOf(t, sc.m2.Open(t, "test"), "SELECT id FROM t_order ORDER BY id")
	if strings.Join(even, ",") != "2,4,6,8,10" || strings.Join(odd, ",") != "1,3,5,7,9" {
		t.Fatalf("placement: ds001 %v, ds002 %v", even, odd)
	}
	for i := 0; i < 5; i++ {
		if got := rowsOf(t, sc.db, "SELECT note FROM t_order WHERE id = 3"); len(got) != 1 || got[0] != "c" {
			t.Fatalf("SELECT by key: %v", got)
		}
	}
	checks := []struct{ q, want string }{
		{"SELECT COUNT(*) FROM t_order", "10"},
		{"SELECT id FROM t_order ORDER BY id DESC LIMIT 3", "10,9,8"},
		{"SELECT id FROM t_order ORDER BY id LIMIT 2, 3", "3,4,5"},
		{"SELECT id FROM t_order WHERE id IN (3, 4, 7) ORDER BY id", "3,4,7"},
		{"SELECT id FROM t_order WHERE id BETWEEN 4 AND 6 ORDER BY id", "4,5,6"},
		{"SELECT SUM(amount), MIN(id), MAX(id) FROM t_order", "58.50|1|10"},
		{"SELECT uid, COUNT(*), SUM(amount) FROM t_order GROUP BY uid ORDER BY uid", "0|2|15.50,10|4|22.50,20|4|20.50"},
		{"SELECT AVG(amount) FROM t_order", "5.850000"},
		{"SELECT DISTINCT uid FROM t_order ORDER BY uid", "0,10,20"},
		{"SELECT note FROM t_order WHERE id = 2 OR id = 9 ORDER BY note", "b,i"},
	}
	for _, c := range checks {
		if got := strings.Join(rowsOf(t, sc.db, c.q), ","); got != c.want {
			t.Errorf("%s: got %s, want %s", c.q, got, c.want)
		}
	}
	// UPDATE and DELETE without a key reach every shard; counts add up.
	if n, _ := sc.exec(t, "UPDATE t_order SET note = 'z' WHERE amount > 5").RowsAffected(); n != 6 {
		t.Errorf("UPDATE across shards affected %d, want 6", n)
	}
	if n, _ := sc.exec(t, "DELETE FROM t_order WHERE id = 10").RowsAffected(); n != 1 {
		t.Errorf("DELETE by key affected %d, want 1", n)
	}
	if got := rowsOf(t, sc.db, "SELECT COUNT(*) FROM t_order WHERE note = 'z'"); got[0] != "5" {
		t.Errorf("after update and delete: %v", got)
	}
	// The admin API explains a statement's route.
	ex, err := sc.tp.p.ShardRoute("", "SELECT note FROM t_order WHERE id = 3", "")
	if err != nil {
		t.Fatal(err)
	}
	e := ex.(*shard.Explanation)
	if e.Route != "single" || len(e.Targets) != 1 || e.Targets[0].Node != "ds002" || e.DB != "test" {
		t.Errorf("explain: %+v", e)
	}
	if _, err := sc.tp.p.ShardRoute("nope", "SELECT 1", ""); !errors.Is(err, admin.ErrNotFound) {
		t.Errorf("unknown listener: %v", err)
	}
	// A string column whose character set is not the result's cannot be
	// compared on the converted values: refused, naming the column.
	latin := openDB(t, sc.tp.dsn("charset=latin1"))
	if _, err := latin.Exec("SELECT id FROM t_order ORDER BY note"); mysqlErrCode(err) != 1235 ||
		!strings.Contains(err.Error(), "column note is utf8mb4 but the result is sent in latin1") {
		t.Errorf("ORDER BY a utf8mb4 column through a latin1 connection: %v", err)
	}
	// What cannot be answered exactly is refused with 1235.
	for _, q := range []string{
		"UPDATE t_order SET id = 11 WHERE id = 1",
		"SELECT * FROM t_order o JOIN t_order p ON o.uid = p.id",
	} {
		if _, err := sc.db.Exec(q); mysqlErrCode(err) != 1235 {
			t.Errorf("%s: want ERR 1235, got %v", q, err)
		}
	}
}

// A transaction whose statements go to one datanode runs there, whatever
// the balancer would pick for BEGIN; one that reaches another datanode
// gets a branch there (XA: sharding_xa_test.go has the rest).
func TestShardingTransactions(t *testing.T) {
	sc := startSharded(t)
	sc.exec(t, "CREATE TABLE t_order (id BIGINT PRIMARY KEY, note VARCHAR(20))")
	ctx := context.Background()
	tx, err := sc.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{1, 3, 5} { // all odd: ds002, not the balancer's ds001
		if _, err := tx.Exec("INSERT INTO t_order (id, note) VALUES (?, 'tx')", id); err != nil {
			t.Fatalf("insert %d in transaction: %v", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, sc.m2.Open(t, "test"), "SELECT COUNT(*) FROM t_order"); got[0] != "3" {
		t.Fatalf("committed rows on ds002: %v", got)
	}
	tx, err = sc.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t_order (id, note) VALUES (7, 'x')"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t_order (id, note) VALUES (8, 'x')"); err != nil {
		t.Fatalf("second datanode in a transaction: %v", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, sc.db, "SELECT COUNT(*) FROM t_order WHERE note = 'x'"); got[0] != "0" {
		t.Fatalf("rows of a rolled back cross-shard transaction: %v", got)
	}
	// With autocommit off, a statement on several shards opens a branch on
	// each; ROLLBACK ends them all.
	c := sqlConn(t, sc.db)
	if _, err := c.ExecContext(ctx, "SET autocommit = 0"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(ctx, "UPDATE t_order SET note = 'lost'"); err != nil {
		t.Fatalf("UPDATE on every shard with autocommit off: %v", err)
	}
	if _, err := c.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(ctx, "INSERT INTO t_order (id, note) VALUES (9, 'ac0')"); err != nil {
		t.Fatalf("one-shard INSERT with autocommit off: %v", err)
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, sc.db, "SELECT note FROM t_order WHERE id = 9"); len(got) != 1 || got[0] != "ac0" {
		t.Fatalf("a committed one-shard INSERT with autocommit off: %v", got)
	}
}

func TestShardingTableStrategies(t *testing.T) {
	sc := startSharded(t)
	sc.exec(t, "CREATE TABLE t_item (id BIGINT PRIMARY KEY, name VARCHAR(20))")
	sc.exec(t, "CREATE TABLE t_user (uid INT, id INT, name VARCHAR(20), PRIMARY KEY (uid, id))")
	names := rowsOf(t, sc.m1.Open(t, "test"), "SHOW TABLES")
	if got := strings.Join(names, ","); got != "t_item_00000,t_item_00001,t_item_00002,t_item_00003,t_user_00000,t_user_00001" {
		t.Fatalf("physical tables on ds001: %s", got)
	}
	for id := 1; id <= 20; id++ {
		sc.exec(t, "INSERT INTO t_item (id, name) VALUES (?, ?)", id, fmt.Sprintf("item%02d", id))
		sc.exec(t, "INSERT INTO t_user (uid, id, name) VALUES (?, ?, ?)", id%5, id, fmt.Sprintf("user%02d", id))
	}
	total := 0
	for i := 0; i < 4; i++ {
		n := rowsOf(t, sc.m1.Open(t, "test"), fmt.Sprintf("SELECT COUNT(*) FROM t_item_%05d", i))
		c, _ := strconv.Atoi(n[0])
		total += c
	}
	if total != 20 {
		t.Fatalf("t_item rows over its 4 tables: %d", total)
	}
	// Through the proxy the logical tables show, not their physical ones.
	if got := strings.Join(rowsOf(t, sc.db, "SHOW TABLES"), ","); got != "t_item,t_user" {
		t.Errorf("SHOW TABLES through the proxy: %s", got)
	}
	if got := rowsOf(t, sc.db, "SHOW CREATE TABLE t_item"); len(got) != 1 || !strings.HasPrefix(got[0], "t_item|CREATE TABLE `t_item` (") {
		t.Errorf("SHOW CREATE TABLE through the proxy: %q", got)
	}
	if got := rowsOf(t, sc.db, "DESCRIBE t_item"); len(got) != 2 || !strings.HasPrefix(got[0], "id|bigint(20)|NO|PRI") {
		t.Errorf("DESCRIBE through the proxy: %q", got)
	}
	// COM_FIELD_LIST (clients' table completion) lists a logical table's
	// columns.
	pc := pdialProxy(t, sc.tp.addr, 0, 0)
	pc.send(t, append([]byte{mysql.ComFieldList}, "t_item\x00"...))
	var fields []string
	for {
		p := pc.read(t)
		if p[0] == mysql.ERRHeader {
			t.Fatalf("COM_FIELD_LIST t_item: %v", mysql.ParseErr(p))
		}
		if pc.isEnd(p) {
			break
		}
		name, _, _ := columnDef(t, p, false)
		fields = append(fields, name)
	}
	if strings.Join(fields, ",") != "id,name" {
		t.Errorf("COM_FIELD_LIST t_item: %v", fields)
	}
	for _, c := range []struct{ q, want string }{
		{"SELECT COUNT(*) FROM t_item", "20"},
		{"SELECT name FROM t_item WHERE id = 17", "item17"},
		{"SELECT id FROM t_item ORDER BY name DESC LIMIT 2", "20,19"},
		{"SELECT COUNT(*) FROM t_user", "20"},
		{"SELECT name FROM t_user WHERE uid = 2 AND id = 12", "user12"},
		{"SELECT uid, COUNT(*) FROM t_user GROUP BY uid ORDER BY uid", "0|4,1|4,2|4,3|4,4|4"},
	} {
		if got := strings.Join(rowsOf(t, sc.db, c.q), ","); got != c.want {
			t.Errorf("%s: got %s, want %s", c.q, got, c.want)
		}
	}
}

// Sharding with read/write splitting inside each shard (node groups):
// reads outside a transaction go to the group's reader, writes and every
// statement of a transaction to its readwrite node. The reader holds rows
// marked 'replica' so the test sees which server answered.
func TestShardingNodeGroups(t *testing.T) {
	m1, m2, m3 := testutil.StartMariaDB(t), testutil.StartMariaDB(t), testutil.StartMariaDB(t)
	cfg := &proxyconfig.Config{}
	reader := node("ds003", m3)
	reader.Role = proxyconfig.RoleRead
	cfg.MySQL.Nodes = []proxyconfig.Node{node("ds001", m1), node("ds002", m2), reader}
	cfg.NodeGroup.Members = []proxyconfig.NodeGroupMember{
		{Name: "g1", ReadWrite: "ds001", Reads: []string{"ds003"}},
		{Name: "g2", ReadWrite: "ds002", Reads: []string{"ds003"}},
	}
	cfg.Proxy.Config = []proxyconfig.Listener{{
		Name: "groups", ListenAddr: "127.0.0.1:0", User: "proxy", Password: "proxypass", DB: "test",
		ReadWriteSplitting: &proxyconfig.ReadWriteSplitting{Static: &proxyconfig.RWSplittingStatic{
			DefaultTarget: "readwrite",
			Rules: []proxyconfig.Rule{
				// g2's reads stay on its readwrite node (node_group_name).
				{Name: "g2-primary", Type: "regex", Regex: []string{"^SELECT"}, Target: "readwrite", NodeGroupName: []string{"g2"}},
				{Name: "reads", Type: "regex", Regex: []string{"^SELECT"}, Target: "read"},
			},
		}},
		Sharding: []proxyconfig.Sharding{{TableName: "t_order", ActualDatanodes: []string{"g1", "g2"},
			DatabaseStrategy: &proxyconfig.DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"}}},
	}}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tp := startProxy(t, cfg)
	db := openDB(t, tp.dsn(""))
	for _, m := range []*testutil.MariaDB{m1, m2, m3} {
		m.Exec(t, "CREATE TABLE t_order (id INT PRIMARY KEY, note VARCHAR(20))")
	}
	m3.Exec(t, "INSERT INTO t_order VALUES (1, 'replica'), (2, 'replica')")
	if _, err := db.Exec("INSERT INTO t_order (id, note) VALUES (1, 'primary'), (2, 'primary')"); err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, m2.Open(t, "test"), "SELECT note FROM t_order WHERE id = 1"); len(got) != 1 || got[0] != "primary" {
		t.Fatalf("the write did not reach g2's readwrite node: %v", got)
	}
	if got := rowsOf(t, db, "SELECT note FROM t_order WHERE id = 2"); len(got) != 1 || got[0] != "replica" {
		t.Fatalf("a read by key on g1 outside a transaction: %v, want the reader's row", got)
	}
	if got := rowsOf(t, db, "SELECT note FROM t_order WHERE id = 1"); len(got) != 1 || got[0] != "primary" {
		t.Fatalf("a read by key on g2, whose rule keeps reads on its readwrite node: %v", got)
	}
	if got := strings.Join(rowsOf(t, db, "SELECT note FROM t_order ORDER BY id"), ","); got != "primary,primary" {
		// g2's rule keeps the scatter on the readwrite nodes.
		t.Fatalf("a scatter read over g1 and g2: %v", got)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var note string
	if err := tx.QueryRow("SELECT note FROM t_order WHERE id = 2").Scan(&note); err != nil || note != "primary" {
		t.Fatalf("a read inside a transaction: %q, %v; want the readwrite node's row", note, err)
	}
	_ = tx.Rollback()
}

// killIdle kills every sleeping connection on m but the caller's own: the
// proxy's pooled backend connections die while idle.
func killIdle(t *testing.T, m *testutil.MariaDB) int {
	t.Helper()
	db := m.Open(t, "test")
	db.SetMaxOpenConns(1)
	ids := rowsOf(t, db, "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Sleep' AND ID <> CONNECTION_ID()")
	for _, id := range ids {
		_, _ = db.Exec("KILL " + id)
	}
	return len(ids)
}

// Pooled connections that died while idle are replaced without the client
// seeing an error: for a scatter, a one-shard statement and a prepared one.
func TestShardingStalePooledConnections(t *testing.T) {
	sc := startSharded(t)
	sc.exec(t, "CREATE TABLE t_order (id BIGINT PRIMARY KEY, note VARCHAR(20))")
	sc.exec(t, "INSERT INTO t_order (id, note) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
	sc.db.SetMaxIdleConns(0) // the client side reconnects; the proxy's pool keeps its connections
	for i := 0; i < 3; i++ {
		for _, q := range []string{"SELECT COUNT(*) FROM t_order", "SELECT note FROM t_order WHERE id = 3"} {
			if got := rowsOf(t, sc.db, q); len(got) != 1 {
				t.Fatalf("%s: %v", q, got)
			}
		}
		if got := rowsOf(t, sc.db, "SELECT note FROM t_order WHERE id = ?", 2); len(got) != 1 || got[0] != "b" {
			t.Fatalf("prepared: %v", got)
		}
		if killIdle(t, sc.m1)+killIdle(t, sc.m2) == 0 {
			t.Fatal("no idle pooled backend connection to kill")
		}
		time.Sleep(50 * time.Millisecond) // let the kills land
	}
}

// On a sharding listener whose balancer names several nodes, statements on
// unsharded tables all go to the first one: balanced over nodes holding
// different data, rows would seem to come and go.
func TestShardingUnshardedTablesOnOneNode(t *testing.T) {
	m1, m2 := testutil.StartMariaDB(t), testutil.StartMariaDB(t)
	cfg := &proxyconfig.Config{}
	cfg.MySQL.Nodes = []proxyconfig.Node{node("ds001", m1), node("ds002", m2)}
	cfg.Proxy.Config = []proxyconfig.Listener{{
		Name: "lb", ListenAddr: "127.0.0.1:0", User: "proxy", Password: "proxypass", DB: "test",
		SimpleLoadBalance: &proxyconfig.SimpleLoadBalance{BalanceType: "roundrobin", Nodes: []string{"ds001", "ds002"}},
		Sharding: []proxyconfig.Sharding{{TableName: "t_order", ActualDatanodes: []string{"ds001", "ds002"},
			DatabaseStrategy: &proxyconfig.DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"}},
			{TableName: "t_item", ActualDatanodes: []string{"ds002"},
				TableStrategy: &proxyconfig.TableStrategy{TableShardingAlgorithmName: "mod", TableShardingColumn: "id", ShardingCount: 2}}},
	}}
	cfg.ApplyDefaults()
	tp := startProxy(t, cfg)
	db := openDB(t, tp.dsn(""))
	for _, q := range []string{"CREATE TABLE plain (id INT PRIMARY KEY)", "INSERT INTO plain VALUES (1), (2)",
		"CREATE TABLE t_order (id INT PRIMARY KEY)", "CREATE TABLE t_item (id INT PRIMARY KEY)"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for i := 0; i < 6; i++ {
		if got := rowsOf(t, db, "SELECT COUNT(*) FROM plain"); got[0] != "2" {
			t.Fatalf("query %d: %v", i, got)
		}
		if got := rowsOf(t, db, "SELECT COUNT(*) FROM plain WHERE id = ?", 1); got[0] != "1" {
			t.Fatalf("prepared query %d: %v", i, got)
		}
	}
	if got := rowsOf(t, m1.Open(t, "test"), "SELECT COUNT(*) FROM plain"); got[0] != "2" {
		t.Fatalf("the unsharded table is not on the first node: %v", got)
	}
	// SHOW TABLES answers from the first node, and also lists t_item whose
	// physical tables are all on the second.
	if got := strings.Join(rowsOf(t, db, "SHOW TABLES"), ","); got != "plain,t_item,t_order" {
		t.Fatalf("SHOW TABLES: %s", got)
	}
	if got := strings.Join(rowsOf(t, db, "SHOW FULL TABLES"), ","); got != "plain|BASE TABLE,t_item|BASE TABLE,t_order|BASE TABLE" {
		t.Fatalf("SHOW FULL TABLES: %s", got)
	}
	if got := strings.Join(rowsOf(t, db, "SHOW TABLES LIKE 'p%'"), ","); got != "plain" {
		t.Fatalf("SHOW TABLES LIKE: %s", got)
	}
}
