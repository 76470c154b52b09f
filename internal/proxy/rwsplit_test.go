package proxy

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// rwConfig is a listener over a primary (readwrite) and replicas (read).
func rwConfig(r *testutil.Replication) *proxyconfig.Config {
	addrs := []string{r.Primary.Addr}
	for _, m := range r.Replicas {
		addrs = append(addrs, m.Addr)
	}
	cfg := baseConfig(addrs...)
	for i := range cfg.MySQL.Nodes {
		if i == 0 {
			cfg.MySQL.Nodes[i].Role = "readwrite"
		} else {
			cfg.MySQL.Nodes[i].Role = "read"
		}
	}
	cfg.Proxy.Config[0].ReadWriteSplitting = &proxyconfig.ReadWriteSplitting{
		Static: &proxyconfig.RWSplittingStatic{
			DefaultTarget: "readwrite",
			Rules:         []proxyconfig.Rule{{Name: "generic", Type: "generic", AlgorithmName: "roundrobin"}},
		},
	}
	return cfg
}

func serverIDs(r *testutil.Replication) (primary int, replicas map[int]bool) {
	replicas = map[int]bool{}
	for _, m := range r.Replicas {
		replicas[r.ServerID(m)] = true
	}
	return r.ServerID(r.Primary), replicas
}

// Static read/write splitting through the proxy against real GTID
// replication: where each statement really ran is read from @@server_id.
func TestReadWriteSplittingStatic(t *testing.T) {
	r := testutil.StartReplication(t, 2)
	primary, replicas := serverIDs(r)
	tp := startProxy(t, rwConfig(r))
	db := openDB(t, tp.dsn(""))
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	id := func(q string) int {
		t.Helper()
		var v int
		if err := conn.QueryRowContext(ctx, q).Scan(&v); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return v
	}
	seen := map[int]int{}
	for i := 0; i < 10; i++ {
		seen[id("/* read */ SELECT @@server_id")]++
	}
	for sid, n := range seen {
		if !replicas[sid] {
			t.Fatalf("a plain read ran on server %d (primary %d)", sid, primary)
		}
		if n != 5 {
			t.Fatalf("roundrobin over 2 replicas: %v", seen)
		}
	}
	if got := id("SELECT @@server_id FROM DUAL FOR UPDATE"); got != primary {
		t.Fatalf("locking read ran on %d, want primary %d", got, primary)
	}
	if _, err := conn.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS rw_t (id INT PRIMARY KEY, sid INT)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO rw_t VALUES (1, @@server_id)"); err != nil {
		t.Fatal(err)
	}
	r.WaitSynced()
	if got := id("SELECT sid FROM rw_t WHERE id = 1"); got != primary {
		t.Fatalf("write ran on %d, want primary %d", got, primary)
	}
	// Reads inside a transaction stay on the writer's connection.
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if got := id("SELECT @@server_id"); got != primary {
			t.Fatalf("read in a transaction ran on %d", got)
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	// autocommit=0 keeps everything on the writer.
	if _, err := conn.ExecContext(ctx, "SET autocommit = 0"); err != nil {
		t.Fatal(err)
	}
	if got := id("SELECT @@server_id"); got != primary {
		t.Fatalf("read with autocommit=0 ran on %d", got)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "SET autocommit = 1"); err != nil {
		t.Fatal(err)
	}
	if got := id("SELECT @@server_id"); !replicas[got] {
		t.Fatalf("read after autocommit=1 ran on %d", got)
	}
	// A session pinned by state (prepared statements, user variables) is
	// pinned to the writer: its writes never reach a replica.
	st, err := conn.PrepareContext(ctx, "SELECT @@server_id + ?")
	if err != nil {
		t.Fatal(err)
	}
	var psid int
	if err := st.QueryRowContext(ctx, 0).Scan(&psid); err != nil || psid != primary {
		t.Fatalf("prepared statement ran on %d (%v), want primary %d", psid, err, primary)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO rw_t VALUES (2, @@server_id)"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := conn.ExecContext(ctx, "SET @marker = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO rw_t VALUES (3, @@server_id)"); err != nil {
		t.Fatal(err)
	}
	r.WaitSynced()
	for _, id := range []int{2, 3} {
		var sid int
		if err := root(r).QueryRow("SELECT sid FROM rw_t WHERE id = ?", id).Scan(&sid); err != nil || sid != primary {
			t.Fatalf("write %d ran on %d (%v), want primary %d", id, sid, err, primary)
		}
	}
}

// Dynamic read/write splitting: a replica that lags leaves the read set,
// comes back when it caught up, and a promoted replica becomes the writer.
func TestReadWriteSplittingDynamic(t *testing.T) {
	r := testutil.StartReplication(t, 2)
	primary, _ := serverIDs(r)
	cfg := rwConfig(r)
	static := cfg.Proxy.Config[0].ReadWriteSplitting.Static
	cfg.Proxy.Config[0].ReadWriteSplitting = &proxyconfig.ReadWriteSplitting{Dynamic: &proxyconfig.RWSplittingDynamic{
		DefaultTarget: static.DefaultTarget, Rules: static.Rules,
		Discovery: &proxyconfig.Discovery{Type: "mha", User: "root", Password: "",
			MonitorPeriod: 100, ConnectPeriod: 100, ConnectTimeout: 500, ConnectFailureThreshold: 1,
			PingPeriod: 100, PingTimeout: 500, PingFailureThreshold: 1,
			ReplicationLagPeriod: 100, ReplicationLagTimeout: 500, ReplicationLagFailureThreshold: 1, MaxReplicationLag: 5,
			ReadOnlyPeriod: 100, ReadOnlyTimeout: 500, ReadOnlyFailureThreshold: 1},
	}}
	tp := startProxy(t, cfg)
	db := openDB(t, tp.dsn(""))
	db.SetMaxOpenConns(1)
	lagging := r.ServerID(r.Replicas[0])
	healthy := r.ServerID(r.Replicas[1])
	readsOn := func() map[int]int {
		seen := map[int]int{}
		for i := 0; i < 6; i++ {
			var v int
			if err := db.QueryRow("SELECT @@server_id").Scan(&v); err != nil {
				t.Fatal(err)
			}
			seen[v]++
		}
		return seen
	}
	eventually := func(what string, ok func(map[int]int) bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			seen := readsOn()
			if ok(seen) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: reads went to %v", what, seen)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	eventually("both replicas read", func(m map[int]int) bool { return m[lagging] > 0 && m[healthy] > 0 })
	r.StopSQLThread(0)
	eventually("lagging replica left the read set", func(m map[int]int) bool { return m[lagging] == 0 && m[healthy] == 6 })
	r.StartSQLThread(0)
	eventually("replica back in the read set", func(m map[int]int) bool { return m[lagging] > 0 })
	// Failover: the primary dies, replica 1 is promoted (read_only=OFF) and
	// becomes the writer.
	r.Primary.Stop()
	r.Promote(1)
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := db.Exec("CREATE TABLE IF NOT EXISTS rw_failover (sid INT)")
		if err == nil {
			var sid int
			if err := db.QueryRow("SELECT @@server_id FOR UPDATE").Scan(&sid); err == nil && sid == healthy {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not move to the promoted replica %d (old primary %d): %v", healthy, primary, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Read-your-writes (causal_reads = "gtid"): with one replica's SQL thread
// stopped, a session's reads after its writes never return stale data: they
// run on the replica that applied the write, or on the writer.
func TestCausalReadsGTID(t *testing.T) {
	r := testutil.StartReplication(t, 2)
	primary, _ := serverIDs(r)
	cfg := rwConfig(r)
	rw := cfg.Proxy.Config[0].ReadWriteSplitting
	rw.CausalReads = "gtid"
	rw.CausalReadsWaitTimeout = proxyconfig.D(200 * time.Millisecond)
	tp := startProxy(t, cfg)
	db := openDB(t, tp.dsn(""))
	db.SetMaxOpenConns(1)
	if _, err := db.Exec("CREATE TABLE causal_t (id INT PRIMARY KEY, v INT)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO causal_t VALUES (1, 0)"); err != nil {
		t.Fatal(err)
	}
	r.WaitSynced()
	r.StopSQLThread(0)
	stalled := r.ServerID(r.Replicas[0])
	ranOn := map[int]int{}
	for i := 1; i <= 20; i++ {
		if _, err := db.Exec("UPDATE causal_t SET v = ? WHERE id = 1", i); err != nil {
			t.Fatal(err)
		}
		var v, sid int
		if err := db.QueryRow("SELECT v, @@server_id FROM causal_t WHERE id = 1").Scan(&v, &sid); err != nil {
			t.Fatal(err)
		}
		if v != i {
			t.Fatalf("stale read after write %d: got %d from server %d", i, v, sid)
		}
		if sid == stalled {
			t.Fatalf("read ran on the stalled replica %d", sid)
		}
		ranOn[sid]++
	}
	t.Logf("reads after writes ran on %v (primary %d, stalled %d)", ranOn, primary, stalled)
	if len(ranOn) == 1 && ranOn[primary] == 20 {
		t.Fatalf("every read went to the writer: the caught-up replica was never used")
	}
}

// root opens the primary directly.
func root(r *testutil.Replication) *sql.DB {
	db, _ := sql.Open("mysql", r.Primary.DSN("test"))
	return db
}
