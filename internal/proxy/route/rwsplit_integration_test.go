package route

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/route/discovery"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// rawConn is a backend protocol connection like the proxy's: CLIENT_SESSION_TRACK
// negotiated and every system variable tracked.
type rawConn struct {
	c    *mysql.Conn
	caps uint32
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := mysql.NewConn(nc)
	nc.SetDeadline(time.Now().Add(time.Minute))
	si, err := mysql.ClientHandshake(c, &mysql.ClientConfig{User: "root", DB: "test"})
	if err != nil {
		t.Fatal(err)
	}
	r := &rawConn{c: c, caps: si.Capabilities}
	r.exec(t, "SET SESSION session_track_system_variables='*', session_track_state_change=ON")
	return r
}

// exec runs a statement without a result set and returns its OK.
func (r *rawConn) exec(t *testing.T, q string) mysql.OK {
	t.Helper()
	r.c.ResetSeq()
	if err := r.c.WritePacketFlush(append([]byte{mysql.ComQuery}, q...)); err != nil {
		t.Fatal(err)
	}
	p, err := r.c.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	if len(p) == 0 || p[0] != mysql.OKHeader {
		t.Fatalf("%q: not an OK: %v", q, mysql.ParseErr(p))
	}
	ok, err := mysql.ParseOK(p, r.caps)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

type replSet struct {
	repl   *testutil.Replication
	nodes  []NodeInfo
	ports  []int
	dbs    []*sql.DB
	router *RWRouter
	mon    *discovery.Monitor
}

func queryInt(t *testing.T, db *sql.DB, q string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var v int
	if err := db.QueryRowContext(ctx, q).Scan(&v); err != nil {
		t.Fatalf("%q: %v", q, err)
	}
	return v
}

// ranOn picks a node for d and returns the server_id that answered there.
func (s *replSet) ranOn(t *testing.T, d Decision) (Endpoint, int) {
	t.Helper()
	ep, ok := d.Pick(nil)
	if !ok {
		w, r := s.router.Membership()
		t.Fatalf("no node for %v (rule %s); writers %v readers %v", d.Target, d.Rule, w, r)
	}
	return ep, queryInt(t, s.dbs[ep.Index], "SELECT @@server_id")
}

func (s *replSet) waitMembership(t *testing.T, what string, writers, readers []int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		w, r := s.router.Membership()
		if slices.Equal(w, writers) && slices.Equal(r, readers) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: writers %v readers %v, want %v %v; topology %+v", what, w, r, writers, readers, s.mon.Topology())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startReplSet(t *testing.T) *replSet {
	repl := testutil.StartReplication(t, 2)
	s := &replSet{repl: repl}
	var dnodes []discovery.Node
	for i, m := range append([]*testutil.MariaDB{repl.Primary}, repl.Replicas...) {
		role := RoleRead
		if i == 0 {
			role = RoleReadWrite
		}
		name := fmt.Sprintf("n%d", i)
		s.nodes = append(s.nodes, NodeInfo{Name: name, Role: role, Weight: 1})
		dnodes = append(dnodes, discovery.Node{Name: name, Addr: m.Addr, Role: role})
		s.ports = append(s.ports, m.Port)
		db := m.Open(t, "test")
		db.SetConnMaxLifetime(time.Second) // survive the kill of a server
		s.dbs = append(s.dbs, db)
	}
	s.router = mustRouter(t, RWConfig{DefaultTarget: "readwrite",
		Rules: []RWRule{{Name: "generic", Type: RuleGeneric, AlgorithmName: KindRoundRobin}}}, s.nodes)
	p := func(threshold int) discovery.Probe {
		return discovery.Probe{Period: 100 * time.Millisecond, Timeout: time.Second, FailureThreshold: threshold}
	}
	cfg := discovery.Config{User: "root", MonitorPeriod: 100 * time.Millisecond,
		Connect: p(1), Ping: p(2), ReadOnly: p(1), ReplicationLag: p(2),
		ReadOnlyEnabled: true, ReplicationLagEnabled: true, MaxReplicationLag: 1}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	mon, err := discovery.New(cfg, dnodes, discovery.Options{OnChange: s.router.ApplyTopology, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	s.mon = mon
	mon.Start(context.Background())
	t.Cleanup(mon.Stop)
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestRWSplitReplication(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three MariaDB servers")
	}
	s := startReplSet(t)
	primary, r0, r1 := s.ports[0], s.ports[1], s.ports[2]
	s.waitMembership(t, "start", []int{0}, []int{1, 2})

	w := s.router.Writer()
	_, id := s.ranOn(t, w)
	if id != primary {
		t.Fatalf("writer is server %d, want %d", id, primary)
	}
	s.repl.Primary.Exec(t, "CREATE TABLE kv (k INT PRIMARY KEY, v INT); INSERT INTO kv VALUES (1, 0)")
	s.repl.WaitSynced()

	t.Run("split", func(t *testing.T) {
		seen := map[int]int{}
		for range 10 {
			ep, id := s.ranOn(t, s.router.Route("SELECT @@server_id", factSelect, false))
			if ep.Role != RoleRead {
				t.Fatalf("read picked %+v", ep)
			}
			seen[id]++
		}
		if seen[r0] != 5 || seen[r1] != 5 {
			t.Fatalf("reads ran on %v, want 5 on %d and %d", seen, r0, r1)
		}
		for _, c := range []struct {
			sql  string
			f    *sqlparse.Facts
			inTx bool
		}{
			{"UPDATE kv SET v = v", factUpdate, false},
			{"SELECT @@server_id FOR UPDATE", factSelectUpdate, false},
			{"SELECT @@server_id", factSelect, true},
			{"SET autocommit = 0", factAutocommit0, false},
		} {
			if _, id := s.ranOn(t, s.router.Route(c.sql, c.f, c.inTx)); id != primary {
				t.Fatalf("%q (inTx %v) ran on %d, want the primary %d", c.sql, c.inTx, id, primary)
			}
		}
	})

	t.Run("lag", func(t *testing.T) {
		// A stopped SQL thread: Seconds_Behind_Master is NULL, counted as lagging.
		s.repl.StopSQLThread(0)
		s.repl.Primary.Exec(t, "UPDATE kv SET v = 1 WHERE k = 1")
		s.waitMembership(t, "replica 0 lagging", []int{0}, []int{2})
		if n := s.mon.Topology().Nodes[1]; !n.Lagging || n.LagSeconds != -1 || n.State != discovery.StateLagging {
			t.Fatalf("node status %+v", n)
		}
		for range 6 {
			if _, id := s.ranOn(t, s.router.Route("SELECT @@server_id", factSelect, false)); id != r1 {
				t.Fatalf("read ran on %d while replica %d lags", id, r0)
			}
		}
		s.repl.StartSQLThread(0)
		s.waitMembership(t, "replica 0 back", []int{0}, []int{1, 2})
		if n := s.mon.Topology().Nodes[1]; n.Lagging || n.LagSeconds < 0 {
			t.Fatalf("node status %+v", n)
		}
	})

	t.Run("causal", func(t *testing.T) { testCausal(t, s) })

	t.Run("failover", func(t *testing.T) {
		s.repl.WaitSynced()
		s.repl.Primary.Stop() // SIGKILL
		// No node reports read_only=OFF: no writer. (The replicas also leave
		// the read set: their IO threads cannot connect, which makes
		// Seconds_Behind_Master NULL, counted as lagging.)
		deadline := time.Now().Add(15 * time.Second)
		for {
			if w, _ := s.router.Membership(); len(w) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the dead primary is still the writer: %+v", s.mon.Topology())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if ep, ok := s.router.Writer().Pick(nil); ok {
			t.Fatalf("a writer was picked with the primary dead: %+v", ep)
		}
		s.repl.Promote(1) // replica 1 = node 2
		s.waitMembership(t, "promoted", []int{2}, []int{1})
		if st := s.mon.Topology().Nodes[0].State; st != discovery.StateDown {
			t.Fatalf("old primary state %q", st)
		}
		ep, id := s.ranOn(t, s.router.Route("INSERT INTO kv VALUES (2, 2)", factInsert, false))
		if id != r1 || ep.Index != 2 {
			t.Fatalf("write ran on %d (%+v), want the promoted %d", id, ep, r1)
		}
		if _, err := s.dbs[ep.Index].Exec("INSERT INTO kv VALUES (2, 2)"); err != nil {
			t.Fatal(err)
		}
		s.repl.WaitSynced()
		d := s.router.Route("SELECT v FROM kv WHERE k = 2", factSelect, false)
		ep, id = s.ranOn(t, d)
		if id != r0 || ep.Role != RoleRead {
			t.Fatalf("read ran on %d (%+v), want the remaining replica %d", id, ep, r0)
		}
		if v := queryInt(t, s.dbs[ep.Index], "SELECT v FROM kv WHERE k = 2"); v != 2 {
			t.Fatalf("v = %d on the replica", v)
		}
	})
}

func testCausal(t *testing.T, s *replSet) {
	s.repl.WaitSynced()
	opts := CausalOptions{Mode: CausalGTID, WaitTimeout: 300 * time.Millisecond}
	if err := opts.Normalize(); err != nil {
		t.Fatal(err)
	}
	tr := NewCausalTracker(opts)
	w := dialRaw(t, s.repl.Primary.Addr)
	replicas := []*rawConn{nil, dialRaw(t, s.repl.Replicas[0].Addr), dialRaw(t, s.repl.Replicas[1].Addr)}

	// The server reports last_gtid in the OK of a write (session tracking '*').
	s.repl.StopSQLThread(0)
	ok := w.exec(t, "UPDATE kv SET v = 100 WHERE k = 1")
	tr.ObserveOK(&ok, true, time.Now())
	pos := s.repl.GTIDPos()
	if tr.GTID() == "" || tr.GTID() != pos {
		t.Fatalf("last_gtid from the OK = %q, primary gtid_binlog_pos %q", tr.GTID(), pos)
	}
	if a := tr.BeforeRead(time.Now()); a != CausalWait || !tr.NeedsWait(1) || !tr.NeedsWait(2) {
		t.Fatalf("BeforeRead = %v", a)
	}

	// Replica 0 (SQL thread stopped) times out; replica 1 catches up.
	start := time.Now()
	caught, err := WaitGTIDPackets(replicas[1].c, replicas[1].caps, tr.WaitQuery(), nil)
	if err != nil || caught {
		t.Fatalf("stopped replica: caught up %v, %v", caught, err)
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Fatalf("MASTER_GTID_WAIT returned after %v, before its timeout", el)
	}
	caught, err = WaitGTIDPackets(replicas[2].c, replicas[2].caps, tr.WaitQuery(), nil)
	if err != nil || !caught {
		t.Fatalf("running replica: caught up %v, %v", caught, err)
	}
	tr.CaughtUp(2)
	if tr.NeedsWait(2) || !tr.NeedsWait(1) {
		t.Fatal("CaughtUp not recorded")
	}
	if v := queryInt(t, s.dbs[2], "SELECT v FROM kv WHERE k = 1"); v != 100 {
		t.Fatalf("caught-up replica reads %d", v)
	}
	// The connection stays usable after a timed-out wait; database/sql too.
	if caught, err := WaitGTID(context.Background(), s.dbs[1], tr.GTID(), 100*time.Millisecond); err != nil || caught {
		t.Fatalf("WaitGTID on the stopped replica: %v %v", caught, err)
	}
	s.repl.StartSQLThread(0)
	if caught, err := WaitGTIDPackets(replicas[1].c, replicas[1].caps, tr.WaitQuery(), nil); err != nil || !caught {
		t.Fatalf("restarted replica: caught up %v, %v", caught, err)
	}
	if caught, err := WaitGTID(context.Background(), s.dbs[1], tr.GTID(), time.Second); err != nil || !caught {
		t.Fatalf("WaitGTID on the restarted replica: %v %v", caught, err)
	}

	// Never stale: replica 0 stalls; a static router keeps sending reads to
	// both replicas; every read sees the session's last write.
	s.repl.StopSQLThread(0)
	defer s.repl.StartSQLThread(0)
	static := mustRouter(t, RWConfig{Rules: []RWRule{{Name: "g", Type: RuleGeneric, AlgorithmName: KindRoundRobin}}}, s.nodes)
	served := map[string]int{}
	for i := 1; i <= 20; i++ {
		ok := w.exec(t, "UPDATE kv SET v = "+strconv.Itoa(1000+i)+" WHERE k = 1")
		tr.ObserveOK(&ok, true, time.Now())
		d := static.Route("SELECT v FROM kv WHERE k = 1", factSelect, false)
		if tr.BeforeRead(time.Now()) == CausalWriter {
			d = d.ToWriter()
		}
		ep, _ := d.Pick(nil)
		if ep.Role == RoleRead && tr.NeedsWait(ep.Index) {
			caught, err := WaitGTIDPackets(replicas[ep.Index].c, replicas[ep.Index].caps, tr.WaitQuery(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if caught {
				tr.CaughtUp(ep.Index)
			} else {
				ep, _ = d.ToWriter().Pick(nil)
			}
		}
		served[fmt.Sprint(ep.Index)]++
		if v := queryInt(t, s.dbs[ep.Index], "SELECT v FROM kv WHERE k = 1"); v != 1000+i {
			t.Fatalf("read %d on node %d saw %d: stale", i, ep.Index, v)
		}
	}
	t.Logf("reads served by node: %v", served)
	if served["1"] != 0 || served["2"] == 0 || served["0"] == 0 {
		t.Fatalf("reads served %v: want none on the stalled replica 1, some on 2 and some on the writer 0", served)
	}
}
