package testutil

import (
	"fmt"
	"testing"
	"time"
)

func TestReplication(t *testing.T) {
	start := time.Now()
	r := StartReplication(t, 2)
	t.Logf("primary %s, replicas %s %s in %v", r.Primary.Addr, r.Replicas[0].Addr, r.Replicas[1].Addr,
		time.Since(start).Round(time.Millisecond))

	if id := r.ServerID(r.Primary); id != r.Primary.Port {
		t.Fatalf("primary server_id %d, want %d", id, r.Primary.Port)
	}
	for _, m := range r.Replicas {
		if ro := r.Query(m, "SELECT @@read_only"); ro != "1" {
			t.Fatalf("replica %s read_only=%s", m.Addr, ro)
		}
	}

	r.Primary.Exec(t, "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1)")
	r.WaitSynced()
	for _, m := range r.Replicas {
		if n := r.Query(m, "SELECT COUNT(*) FROM test.t"); n != "1" {
			t.Fatalf("replica %s has %s rows, want 1", m.Addr, n)
		}
	}

	// A stopped SQL thread makes a replica fall behind.
	r.StopSQLThread(0)
	r.Primary.Exec(t, "INSERT INTO t VALUES (2)")
	pos := r.GTIDPos()
	if v := r.Query(r.Replicas[0], fmt.Sprintf("SELECT MASTER_GTID_WAIT('%s', 0.3)", pos)); v != "-1" {
		t.Fatalf("MASTER_GTID_WAIT on a stopped replica = %q, want -1 (timeout)", v)
	}
	if v := r.Query(r.Replicas[0], "SELECT COUNT(*) FROM test.t"); v != "1" {
		t.Fatalf("stopped replica has %s rows, want 1", v)
	}
	r.StartSQLThread(0)
	r.WaitSynced()

	// Kill the primary, promote replica 1; replica 0 follows it.
	old := r.Primary
	want := r.Replicas[1]
	old.Stop()
	r.Promote(1)
	if r.Primary != want || len(r.Replicas) != 1 {
		t.Fatalf("after Promote: primary %s, %d replicas", r.Primary.Addr, len(r.Replicas))
	}
	if ro := r.Query(r.Primary, "SELECT @@read_only"); ro != "0" {
		t.Fatalf("promoted read_only=%s", ro)
	}
	r.Primary.Exec(t, "INSERT INTO t VALUES (3)")
	r.WaitSynced()
	if n := r.Query(r.Replicas[0], "SELECT COUNT(*) FROM test.t"); n != "3" {
		t.Fatalf("remaining replica has %s rows after promotion, want 3", n)
	}
}
