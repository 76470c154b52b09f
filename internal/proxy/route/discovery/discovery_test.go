package discovery

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

func testNodes() []Node {
	return []Node{
		{Name: "rw", Addr: "127.0.0.1:1", Role: "readwrite"},
		{Name: "r1", Addr: "127.0.0.1:2", Role: "read"},
		{Name: "r2", Addr: "127.0.0.1:3", Role: "read"},
	}
}

type recMetrics struct {
	mu      sync.Mutex
	states  map[string]string
	writers [][2]string
	lags    map[string]float64
	probes  int
}

func (r *recMetrics) ProbeResult(string, string, bool) {
	r.mu.Lock()
	r.probes++
	r.mu.Unlock()
}

func (r *recMetrics) ReplicationLag(node string, s float64, known bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lags == nil {
		r.lags = map[string]float64{}
	}
	if !known {
		s = -1
	}
	r.lags[node] = s
}

func (r *recMetrics) NodeState(node, state string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.states == nil {
		r.states = map[string]string{}
	}
	r.states[node] = state
}

func (r *recMetrics) WriterChanged(from, to string) {
	r.mu.Lock()
	r.writers = append(r.writers, [2]string{from, to})
	r.mu.Unlock()
}

func newTest(t *testing.T, cfg Config, opts Options) *Monitor {
	t.Helper()
	m, err := New(cfg, testNodes(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.closeDBs)
	return m
}

func enabled() Config {
	return Config{ReadOnlyEnabled: true, ReplicationLagEnabled: true, MaxReplicationLag: 5}
}

func check(t *testing.T, what string, got Topology, writer int, readers ...int) {
	t.Helper()
	if got.Writer != writer || !slices.Equal(got.Readers, readers) {
		t.Fatalf("%s: writer %d readers %v, want %d %v", what, got.Writer, got.Readers, writer, readers)
	}
}

func TestComputeFailover(t *testing.T) {
	m := newTest(t, enabled(), Options{})
	check(t, "initial", m.Topology(), 0, 1, 2)

	// The writer dies, nobody reports read_only=OFF: no writer.
	m.states[0].pingOK = false
	check(t, "writer dead", m.computeLocked(), -1, 1, 2)
	if m.computeLocked().Nodes[0].State != StateDown {
		t.Fatal("dead writer not down")
	}

	// r2 is promoted (read_only=OFF): it becomes the writer and leaves the read set.
	m.states[2].ro = ReadOnlyOff
	m.states[2].replica = false
	check(t, "promoted", m.computeLocked(), 2, 1)

	// The old writer comes back with read_only=OFF: the writer is sticky,
	// the old one is neither writer nor reader.
	m.states[0].pingOK = true
	tp := m.computeLocked()
	check(t, "old writer back", tp, 2, 1)
	if tp.Nodes[0].State != StateStandby {
		t.Fatalf("old writer state %q", tp.Nodes[0].State)
	}
	// Reconfigured as a replica (read_only=ON), it reads.
	m.states[0].ro = ReadOnlyOn
	check(t, "old writer as replica", m.computeLocked(), 2, 0, 1)

	// The writer sets read_only=ON while another node reports OFF: move.
	m.states[0].ro = ReadOnlyOff
	m.states[2].ro = ReadOnlyOn
	check(t, "writer demoted", m.computeLocked(), 0, 1, 2)
	// ... but a read_only writer with no alternative stays.
	m.states[0].ro = ReadOnlyOn
	check(t, "read_only writer, no alternative", m.computeLocked(), 0, 1, 2)
	m.states[0].ro = ReadOnlyOff

	// Configured readwrite nodes are preferred as the new writer.
	m.writer = -1
	m.states[1].ro = ReadOnlyOff
	check(t, "preference", m.computeLocked(), 0, 2)
}

func TestComputeReaders(t *testing.T) {
	m := newTest(t, enabled(), Options{})
	m.states[1].lagging = true
	tp := m.computeLocked()
	check(t, "lagging", tp, 0, 2)
	if tp.Nodes[1].State != StateLagging {
		t.Fatalf("state %q", tp.Nodes[1].State)
	}
	m.states[1].lagging = false
	m.states[2].reachable = false
	check(t, "unreachable", m.computeLocked(), 0, 1)
	m.states[2].reachable = true
	m.states[2].ro = ReadOnlyUnknown
	check(t, "read_only unknown", m.computeLocked(), 0, 1)
	m.states[2].ro = ReadOnlyOn

	// Lag monitor off: lag is ignored.
	m.cfg.ReplicationLagEnabled = false
	m.states[1].lagging = true
	check(t, "lag monitor off", m.computeLocked(), 0, 1, 2)
}

func TestComputeReadOnlyDisabled(t *testing.T) {
	cfg := enabled()
	cfg.ReadOnlyEnabled = false
	m := newTest(t, cfg, Options{})
	// Roles come from the config; read_only values do not matter.
	m.states[1].ro = ReadOnlyOff
	check(t, "configured roles", m.computeLocked(), 0, 1, 2)
	m.states[0].reachable = false
	check(t, "writer dead: no failover without read_only", m.computeLocked(), -1, 1, 2)
	m.states[0].reachable = true
	check(t, "writer back", m.computeLocked(), 0, 1, 2)
}

func TestThresholds(t *testing.T) {
	up, fails := true, 0
	var changes int
	for i, ok := range []bool{false, false, true, false, false, false} {
		if flag(&up, &fails, ok, 3) {
			changes++
		}
		want := i != 5
		if up != want {
			t.Fatalf("step %d: up=%v", i, up)
		}
	}
	if changes != 1 {
		t.Fatalf("changes %d", changes)
	}
}

func TestSeed(t *testing.T) {
	prev := Topology{Writer: 1}
	m := newTest(t, enabled(), Options{Seed: &prev, SeedNames: []string{"x", "r2", "rw"}})
	check(t, "seeded", m.Topology(), 2, 1)
}

func TestReconcilePublishes(t *testing.T) {
	met := &recMetrics{}
	var got []Topology
	m := newTest(t, enabled(), Options{Metrics: met, OnChange: func(tp Topology) { got = append(got, tp) }})
	m.reconcile()
	if len(got) != 0 {
		t.Fatal("OnChange without a change")
	}
	m.states[0].pingOK = false
	m.states[1].ro = ReadOnlyOff
	m.reconcile()
	if len(got) != 1 {
		t.Fatalf("OnChange called %d times", len(got))
	}
	check(t, "published", got[0], 1, 2)
	check(t, "Topology()", m.Topology(), 1, 2)
	if len(met.writers) != 1 || met.writers[0] != [2]string{"rw", "r1"} {
		t.Fatalf("WriterChanged %v", met.writers)
	}
	if met.states["rw"] != StateDown || met.states["r1"] != StateWriter || met.states["r2"] != StateReader {
		t.Fatalf("states %v", met.states)
	}
	// The published value is a copy.
	got[0].Readers[0] = 99
	check(t, "copy", m.Topology(), 1, 2)
}

func TestConfigFrom(t *testing.T) {
	f := false
	d := &proxyconfig.Discovery{Type: "mha", User: "u", Password: "p", MonitorPeriod: 200,
		PingPeriod: 100, PingTimeout: 50, PingFailureThreshold: 3, MaxReplicationLag: 7, ReadOnlyEnabled: &f}
	c, err := ConfigFrom(d)
	if err != nil {
		t.Fatal(err)
	}
	if c.MonitorPeriod != 200*time.Millisecond || c.Ping != (Probe{100 * time.Millisecond, 50 * time.Millisecond, 3}) ||
		c.Connect != (Probe{DefaultPeriod, DefaultTimeout, 1}) || c.MaxReplicationLag != 7 ||
		c.ReadOnlyEnabled || !c.ReplicationLagEnabled || c.User != "u" {
		t.Fatalf("ConfigFrom = %+v", c)
	}
	if _, err := ConfigFrom(&proxyconfig.Discovery{Type: "zk"}); err == nil {
		t.Fatal("type zk accepted")
	}
	if _, err := ConfigFrom(nil); err == nil {
		t.Fatal("nil accepted")
	}
	if _, err := New(Config{}, nil, Options{}); err == nil {
		t.Fatal("no nodes accepted")
	}
	if _, err := New(Config{}, []Node{{Name: "a", Role: "primary"}}, Options{}); err == nil {
		t.Fatal("bad role accepted")
	}
}

// The connect monitor alone (ping and the others fail against closed ports):
// a fake dialer decides reachability; the monitor marks the node down and up
// again, publishing each change, and Stop returns promptly.
func TestMonitorLoopConnect(t *testing.T) {
	var mu sync.Mutex
	down := map[string]bool{}
	dial := func(ctx context.Context, addr string) error {
		mu.Lock()
		defer mu.Unlock()
		if down[addr] {
			return errors.New("refused")
		}
		return nil
	}
	cfg := Config{MonitorPeriod: 20 * time.Millisecond,
		Connect:        Probe{Period: 10 * time.Millisecond, Timeout: 100 * time.Millisecond, FailureThreshold: 2},
		Ping:           Probe{Period: time.Hour, Timeout: time.Millisecond, FailureThreshold: 1000},
		ReadOnly:       Probe{Period: time.Hour, Timeout: time.Millisecond, FailureThreshold: 1000},
		ReplicationLag: Probe{Period: time.Hour, Timeout: time.Millisecond, FailureThreshold: 1000},
	}
	changes := make(chan Topology, 100)
	m, err := New(cfg, testNodes(), Options{Dial: dial, OnChange: func(tp Topology) { changes <- tp }})
	if err != nil {
		t.Fatal(err)
	}
	m.Start(context.Background())
	defer m.Stop()
	wait := func(what string, writer int, readers ...int) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case tp := <-changes:
				if tp.Writer == writer && slices.Equal(tp.Readers, readers) {
					return
				}
			case <-deadline:
				t.Fatalf("%s: no topology writer %d readers %v; have %+v", what, writer, readers, m.Topology())
			}
		}
	}
	wait("initial", 0, 1, 2)
	mu.Lock()
	down["127.0.0.1:2"] = true
	mu.Unlock()
	wait("r1 down", 0, 2)
	mu.Lock()
	down["127.0.0.1:2"] = false
	mu.Unlock()
	wait("r1 back", 0, 1, 2)
}
