// Package discovery watches the nodes of a read/write splitting listener the
// way Pisanix's MHA discovery does (spec §4.2, §4.11): connect, ping,
// read_only and replication-lag monitors, each with its own period, timeout
// and failure threshold, and a reconcile loop that turns their results into a
// Topology (the writer and the read set). The data path never waits for a
// monitor: it reads the last published Topology (the router holds it in an
// atomic pointer).
//
// Rules (see docs/rwsplit.md):
//   - a node is alive while both the connect (TCP) and ping (MySQL login +
//     COM_PING) monitors have fewer consecutive failures than their
//     thresholds;
//   - the writer stays while it is alive (sticky); when it dies, an alive node
//     reporting read_only=OFF becomes the writer (configured readwrite nodes
//     first, then in node order); with no such node there is no writer;
//   - readers are the alive nodes other than the writer that report
//     read_only=ON (or, with read_only_enabled=false, the configured read
//     nodes) and are not lagging;
//   - a replica lags after failure_threshold consecutive checks where
//     Seconds_Behind_Master > max_replication_lag (SECONDS, Pisanix quirk) or
//     is NULL (replication threads stopped or not connected), or the check
//     failed; one good check brings it back.
package discovery

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// Node is one monitored node; its position in the list given to New is its
// index in Topology.
type Node struct {
	Name string
	Addr string // host:port
	// Role is the configured role, "read" or "readwrite".
	Role string
}

// Probe is the schedule of one monitor.
type Probe struct {
	Period  time.Duration
	Timeout time.Duration
	// FailureThreshold is the number of consecutive failed checks after which
	// the node is considered failed by this monitor (at least 1).
	FailureThreshold int
}

// Config is the discovery configuration (proxyconfig.Discovery with units).
type Config struct {
	User, Password string
	// MonitorPeriod is the reconcile period. Monitors also trigger a
	// reconcile as soon as a node changes state.
	MonitorPeriod  time.Duration
	Connect, Ping  Probe
	ReadOnly       Probe
	ReplicationLag Probe
	// ReadOnlyEnabled and ReplicationLagEnabled switch those monitors.
	ReadOnlyEnabled       bool
	ReplicationLagEnabled bool
	// MaxReplicationLag is compared with Seconds_Behind_Master, in SECONDS
	// (Pisanix compares the max_replication_lag key with seconds although its
	// docs say milliseconds; we keep the comparison).
	MaxReplicationLag int64
}

// Defaults (Pisanix): periods 1 s, timeouts 6 s, thresholds 1.
const (
	DefaultPeriod            = time.Second
	DefaultTimeout           = 6 * time.Second
	DefaultFailureThreshold  = 1
	DefaultMaxReplicationLag = 10000
)

func ms(v int, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return time.Duration(v) * time.Millisecond
}

func probe(period, timeout, threshold int) Probe {
	if threshold <= 0 {
		threshold = DefaultFailureThreshold
	}
	return Probe{Period: ms(period, DefaultPeriod), Timeout: ms(timeout, DefaultTimeout), FailureThreshold: threshold}
}

// ConfigFrom converts [proxy.config.read_write_splitting.dynamic.discovery]
// (integer milliseconds) and fills zero values with the defaults.
func ConfigFrom(d *proxyconfig.Discovery) (Config, error) {
	if d == nil {
		return Config{}, fmt.Errorf("discovery: no discovery configuration")
	}
	if d.Type != "" && d.Type != "mha" {
		return Config{}, fmt.Errorf("discovery: unknown type %q (only \"mha\")", d.Type)
	}
	c := Config{
		User: d.User, Password: d.Password,
		MonitorPeriod:         ms(d.MonitorPeriod, DefaultPeriod),
		Connect:               probe(d.ConnectPeriod, d.ConnectTimeout, d.ConnectFailureThreshold),
		Ping:                  probe(d.PingPeriod, d.PingTimeout, d.PingFailureThreshold),
		ReadOnly:              probe(d.ReadOnlyPeriod, d.ReadOnlyTimeout, d.ReadOnlyFailureThreshold),
		ReplicationLag:        probe(d.ReplicationLagPeriod, d.ReplicationLagTimeout, d.ReplicationLagFailureThreshold),
		ReadOnlyEnabled:       d.ReadOnlyMonitorEnabled(),
		ReplicationLagEnabled: d.ReplicationLagMonitorEnabled(),
		MaxReplicationLag:     int64(d.MaxReplicationLag),
	}
	if d.MaxReplicationLag <= 0 {
		c.MaxReplicationLag = DefaultMaxReplicationLag
	}
	return c, nil
}

func (c *Config) fill() {
	fix := func(p *Probe) {
		if p.Period <= 0 {
			p.Period = DefaultPeriod
		}
		if p.Timeout <= 0 {
			p.Timeout = DefaultTimeout
		}
		if p.FailureThreshold <= 0 {
			p.FailureThreshold = DefaultFailureThreshold
		}
	}
	fix(&c.Connect)
	fix(&c.Ping)
	fix(&c.ReadOnly)
	fix(&c.ReplicationLag)
	if c.MonitorPeriod <= 0 {
		c.MonitorPeriod = DefaultPeriod
	}
}

// ReadOnlyState is what a node's read_only variable says.
type ReadOnlyState int8

const (
	ReadOnlyUnknown ReadOnlyState = iota
	ReadOnlyOn
	ReadOnlyOff
)

func (s ReadOnlyState) String() string {
	switch s {
	case ReadOnlyOn:
		return "ON"
	case ReadOnlyOff:
		return "OFF"
	}
	return "unknown"
}

// Node states reported to Metrics.NodeState.
const (
	StateWriter  = "writer"
	StateReader  = "reader"
	StateLagging = "lagging" // alive replica left out for lag
	StateDown    = "down"    // connect or ping failed
	StateStandby = "standby" // alive, neither writer nor reader
)

// NodeStatus is the monitors' view of one node.
type NodeStatus struct {
	Name string
	// Reachable: the connect monitor is below its failure threshold.
	Reachable bool
	// PingOK: the ping monitor is below its failure threshold.
	PingOK   bool
	ReadOnly ReadOnlyState
	// Replica: SHOW SLAVE STATUS returned a row.
	Replica bool
	// LagSeconds is the last Seconds_Behind_Master, -1 when NULL or unknown.
	LagSeconds int64
	// Lagging: the replication-lag monitor reached its failure threshold.
	Lagging bool
	// State is one of the State* constants.
	State string
}

// Alive reports Reachable && PingOK.
func (s NodeStatus) Alive() bool { return s.Reachable && s.PingOK }

// Topology is a published result of the monitors.
type Topology struct {
	// Writer is the index of the writer, -1 when there is none.
	Writer int
	// Readers are the indexes of the read set, sorted.
	Readers []int
	// Nodes are the node statuses, indexed like the node list.
	Nodes []NodeStatus
}

// Writers returns the writer as a set (empty when there is none), the shape
// route.RWRouter.SetMembership takes.
func (t *Topology) Writers() []int {
	if t.Writer < 0 {
		return nil
	}
	return []int{t.Writer}
}

func (t *Topology) sameMembership(o *Topology) bool {
	return o != nil && t.Writer == o.Writer && slices.Equal(t.Readers, o.Readers)
}

func (t *Topology) clone() Topology {
	return Topology{Writer: t.Writer, Readers: slices.Clone(t.Readers), Nodes: slices.Clone(t.Nodes)}
}

// Metrics receives the monitors' observations; the proxy backs it with
// Prometheus gauges and counters. Calls come from monitor goroutines and must
// not block.
type Metrics interface {
	// ProbeResult is called after every check; monitor is "connect",
	// "ping", "read_only" or "replication_lag".
	ProbeResult(node, monitor string, ok bool)
	// ReplicationLag reports Seconds_Behind_Master after each lag check;
	// known is false when it was NULL or could not be read.
	ReplicationLag(node string, seconds float64, known bool)
	// NodeState is called for every node after each reconcile with one of
	// the State* constants.
	NodeState(node, state string)
	// WriterChanged is called when the writer changes ("" for none).
	WriterChanged(from, to string)
}

// NopMetrics ignores everything.
type NopMetrics struct{}

func (NopMetrics) ProbeResult(string, string, bool)     {}
func (NopMetrics) ReplicationLag(string, float64, bool) {}
func (NopMetrics) NodeState(string, string)             {}
func (NopMetrics) WriterChanged(string, string)         {}

// Options are optional parts of a Monitor.
type Options struct {
	// OnChange is called (from the reconcile goroutine, one call at a time)
	// with the new topology whenever the writer or the read set changes,
	// and once at Start with the initial topology.
	OnChange func(Topology)
	Metrics  Metrics
	Logger   *slog.Logger
	// Seed is the topology of a previous Monitor (config reload): the
	// writer is carried over by node name, so a failover survives a reload.
	Seed *Topology
	// SeedNames are the node names of Seed's node list (required with Seed).
	SeedNames []string
	// Dial replaces the connect monitor's TCP dial (tests).
	Dial func(ctx context.Context, addr string) error
}

type nodeState struct {
	reachable, pingOK bool
	ro                ReadOnlyState
	replica           bool
	lag               int64
	lagging           bool

	connFails, pingFails, roFails, lagFails int
}

// Monitor runs the monitors of one listener.
type Monitor struct {
	cfg   Config
	nodes []Node
	opts  Options
	dbs   []*sql.DB

	mu     sync.Mutex
	states []nodeState
	writer int
	last   *Topology // last published (guarded by mu)

	cur    atomic.Pointer[Topology]
	kick   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New prepares a Monitor over nodes; nothing runs before Start. The initial
// topology follows the configured roles (all nodes assumed healthy): the
// first readwrite node writes, the read nodes read.
func New(cfg Config, nodes []Node, opts Options) (*Monitor, error) {
	if len(nodes) == 0 {
		return nil, fmt.Errorf("discovery: no nodes")
	}
	cfg.fill()
	if opts.Metrics == nil {
		opts.Metrics = NopMetrics{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{cfg: cfg, nodes: slices.Clone(nodes), opts: opts, writer: -1, kick: make(chan struct{}, 1)}
	m.states = make([]nodeState, len(nodes))
	for i, n := range nodes {
		st := &m.states[i]
		st.reachable, st.pingOK, st.lag = true, true, 0
		switch n.Role {
		case "read":
			st.ro = ReadOnlyOn
			st.replica = true
		case "readwrite", "":
			st.ro = ReadOnlyOff
			if m.writer < 0 {
				m.writer = i
			}
		default:
			return nil, fmt.Errorf("discovery: node %q has unknown role %q", n.Name, n.Role)
		}
	}
	if opts.Seed != nil && opts.Seed.Writer >= 0 && opts.Seed.Writer < len(opts.SeedNames) {
		name := opts.SeedNames[opts.Seed.Writer]
		for i, n := range nodes {
			if n.Name == name {
				m.writer = i
				m.states[i].ro = ReadOnlyOff
				m.states[i].replica = false
			}
		}
	}
	timeout := max(cfg.Ping.Timeout, cfg.ReadOnly.Timeout, cfg.ReplicationLag.Timeout)
	for _, n := range nodes {
		mc := mysql.NewConfig()
		mc.User, mc.Passwd, mc.Net, mc.Addr = cfg.User, cfg.Password, "tcp", n.Addr
		mc.Timeout = cfg.Ping.Timeout
		mc.ReadTimeout, mc.WriteTimeout = timeout, timeout
		mc.Logger = &mysql.NopLogger{}
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			m.closeDBs()
			return nil, fmt.Errorf("discovery: node %q: %w", n.Name, err)
		}
		db := sql.OpenDB(conn)
		db.SetMaxIdleConns(3)
		db.SetConnMaxIdleTime(time.Minute)
		m.dbs = append(m.dbs, db)
	}
	t := m.computeLocked()
	m.last = &t
	m.cur.Store(&t)
	return m, nil
}

func (m *Monitor) closeDBs() {
	for _, db := range m.dbs {
		db.Close()
	}
}

// Topology returns the last computed topology (a copy).
func (m *Monitor) Topology() Topology { return m.cur.Load().clone() }

// Start runs the monitors until ctx ends or Stop is called. It does not
// block. OnChange is called at once with the initial topology.
func (m *Monitor) Start(ctx context.Context) {
	ctx, m.cancel = context.WithCancel(ctx)
	if f := m.opts.OnChange; f != nil {
		f(m.Topology())
	}
	for i := range m.nodes {
		m.spawn(ctx, m.cfg.Connect.Period, func(ctx context.Context) { m.checkConnect(ctx, i) })
		m.spawn(ctx, m.cfg.Ping.Period, func(ctx context.Context) { m.checkPing(ctx, i) })
		if m.cfg.ReadOnlyEnabled {
			m.spawn(ctx, m.cfg.ReadOnly.Period, func(ctx context.Context) { m.checkReadOnly(ctx, i) })
		}
		if m.cfg.ReplicationLagEnabled {
			m.spawn(ctx, m.cfg.ReplicationLag.Period, func(ctx context.Context) { m.checkLag(ctx, i) })
		}
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(m.cfg.MonitorPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-m.kick:
			}
			m.reconcile()
		}
	}()
}

// Stop stops the monitors, waits for them and closes their connections.
func (m *Monitor) Stop() {
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	m.closeDBs()
}

func (m *Monitor) spawn(ctx context.Context, period time.Duration, check func(context.Context)) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			check(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// wake asks for a reconcile without waiting.
func (m *Monitor) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Monitor) checkConnect(ctx context.Context, i int) {
	cctx, cancel := context.WithTimeout(ctx, m.cfg.Connect.Timeout)
	defer cancel()
	var err error
	if m.opts.Dial != nil {
		err = m.opts.Dial(cctx, m.nodes[i].Addr)
	} else {
		var d net.Dialer
		var c net.Conn
		if c, err = d.DialContext(cctx, "tcp", m.nodes[i].Addr); err == nil {
			c.Close()
		}
	}
	if ctx.Err() != nil {
		return
	}
	m.opts.Metrics.ProbeResult(m.nodes[i].Name, "connect", err == nil)
	m.update(i, func(st *nodeState) bool {
		return flag(&st.reachable, &st.connFails, err == nil, m.cfg.Connect.FailureThreshold)
	}, "connect", err)
}

func (m *Monitor) checkPing(ctx context.Context, i int) {
	cctx, cancel := context.WithTimeout(ctx, m.cfg.Ping.Timeout)
	defer cancel()
	err := m.dbs[i].PingContext(cctx)
	if ctx.Err() != nil {
		return
	}
	m.opts.Metrics.ProbeResult(m.nodes[i].Name, "ping", err == nil)
	m.update(i, func(st *nodeState) bool {
		return flag(&st.pingOK, &st.pingFails, err == nil, m.cfg.Ping.FailureThreshold)
	}, "ping", err)
}

func (m *Monitor) checkReadOnly(ctx context.Context, i int) {
	cctx, cancel := context.WithTimeout(ctx, m.cfg.ReadOnly.Timeout)
	defer cancel()
	var ro int
	err := m.dbs[i].QueryRowContext(cctx, "SELECT @@GLOBAL.read_only").Scan(&ro)
	if ctx.Err() != nil {
		return
	}
	m.opts.Metrics.ProbeResult(m.nodes[i].Name, "read_only", err == nil)
	m.update(i, func(st *nodeState) bool {
		old := st.ro
		if err == nil {
			st.roFails = 0
			st.ro = ReadOnlyOff
			if ro != 0 {
				st.ro = ReadOnlyOn
			}
		} else if st.roFails++; st.roFails >= m.cfg.ReadOnly.FailureThreshold {
			st.ro = ReadOnlyUnknown
		}
		return st.ro != old
	}, "read_only", err)
}

// slaveStatus reads SHOW SLAVE STATUS: replica is false when it returns no
// row; lag is -1 when Seconds_Behind_Master is NULL.
func slaveStatus(ctx context.Context, db *sql.DB) (replica bool, lag int64, err error) {
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return false, -1, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return false, -1, err
	}
	if !rows.Next() {
		return false, 0, rows.Err()
	}
	vals := make([]sql.NullInt64, len(cols))
	raw := make([]any, len(cols))
	col := -1
	for i, c := range cols {
		if c == "Seconds_Behind_Master" {
			col = i
			raw[i] = &vals[i]
		} else {
			raw[i] = new(sql.RawBytes)
		}
	}
	if col < 0 {
		return true, -1, fmt.Errorf("SHOW SLAVE STATUS has no Seconds_Behind_Master column")
	}
	if err := rows.Scan(raw...); err != nil {
		return true, -1, err
	}
	lag = -1
	if vals[col].Valid {
		lag = vals[col].Int64
	}
	return true, lag, rows.Err()
}

func (m *Monitor) checkLag(ctx context.Context, i int) {
	cctx, cancel := context.WithTimeout(ctx, m.cfg.ReplicationLag.Timeout)
	defer cancel()
	replica, lag, err := slaveStatus(cctx, m.dbs[i])
	if ctx.Err() != nil {
		return
	}
	name := m.nodes[i].Name
	m.opts.Metrics.ProbeResult(name, "replication_lag", err == nil)
	if err == nil && !replica {
		m.opts.Metrics.ReplicationLag(name, 0, true)
	} else {
		m.opts.Metrics.ReplicationLag(name, float64(lag), err == nil && lag >= 0)
	}
	good := err == nil && (!replica || (lag >= 0 && lag <= m.cfg.MaxReplicationLag))
	m.update(i, func(st *nodeState) bool {
		old := st.lagging
		if err == nil {
			st.replica, st.lag = replica, lag
		} else {
			st.lag = -1
		}
		if good {
			st.lagFails = 0
			st.lagging = false
		} else if st.lagFails++; st.lagFails >= m.cfg.ReplicationLag.FailureThreshold {
			st.lagging = true
		}
		return st.lagging != old
	}, "replication_lag", err)
}

// flag applies one check result to a consecutive-failure counter: ok clears
// it and sets *up; a failure counts and clears *up at threshold. It reports
// whether *up changed.
func flag(up *bool, fails *int, ok bool, threshold int) bool {
	old := *up
	if ok {
		*fails = 0
		*up = true
	} else if *fails++; *fails >= threshold {
		*up = false
	}
	return *up != old
}

func (m *Monitor) update(i int, f func(*nodeState) bool, monitor string, err error) {
	m.mu.Lock()
	changed := f(&m.states[i])
	m.mu.Unlock()
	if changed {
		m.opts.Logger.Info("discovery: node state changed", "node", m.nodes[i].Name, "monitor", monitor, "err", err)
		m.wake()
	}
}

func (st *nodeState) alive() bool { return st.reachable && st.pingOK }

// computeLocked derives the topology from the node states (m.mu held or not
// yet shared) and updates m.writer.
func (m *Monitor) computeLocked() Topology {
	w := m.writer
	if m.cfg.ReadOnlyEnabled {
		otherOff := func(except int) int {
			best := -1
			for i := range m.states {
				st := &m.states[i]
				if i == except || !st.alive() || st.ro != ReadOnlyOff {
					continue
				}
				if best < 0 || (m.nodes[i].Role != "read" && m.nodes[best].Role == "read") {
					best = i
				}
			}
			return best
		}
		switch {
		case w >= 0 && m.states[w].alive() && m.states[w].ro != ReadOnlyOn:
			// keep the writer (sticky)
		case w >= 0 && m.states[w].alive():
			// The writer reports read_only=ON: move to a node reporting OFF
			// if there is one, else keep it.
			if o := otherOff(w); o >= 0 {
				w = o
			}
		default:
			w = otherOff(-1)
		}
	} else if w < 0 || !m.states[w].alive() {
		w = -1
		for i := range m.states {
			if m.nodes[i].Role != "read" && m.states[i].alive() {
				w = i
				break
			}
		}
	}
	m.writer = w
	t := Topology{Writer: w, Nodes: make([]NodeStatus, len(m.nodes))}
	for i := range m.states {
		st := &m.states[i]
		ns := NodeStatus{
			Name: m.nodes[i].Name, Reachable: st.reachable, PingOK: st.pingOK, ReadOnly: st.ro,
			Replica: st.replica, LagSeconds: st.lag, Lagging: st.lagging && m.cfg.ReplicationLagEnabled,
		}
		switch {
		case i == w:
			ns.State = StateWriter
		case !st.alive():
			ns.State = StateDown
		case m.cfg.ReadOnlyEnabled && st.ro != ReadOnlyOn, !m.cfg.ReadOnlyEnabled && m.nodes[i].Role != "read":
			ns.State = StateStandby
		case ns.Lagging:
			ns.State = StateLagging
		default:
			ns.State = StateReader
			t.Readers = append(t.Readers, i)
		}
		t.Nodes[i] = ns
	}
	return t
}

func (m *Monitor) reconcile() {
	m.mu.Lock()
	prevWriter := m.writer
	t := m.computeLocked()
	changed := !t.sameMembership(m.last)
	m.last = &t
	m.cur.Store(&t)
	m.mu.Unlock()

	for _, ns := range t.Nodes {
		m.opts.Metrics.NodeState(ns.Name, ns.State)
	}
	if !changed {
		return
	}
	if prevWriter != t.Writer {
		from, to := "", ""
		if prevWriter >= 0 {
			from = m.nodes[prevWriter].Name
		}
		if t.Writer >= 0 {
			to = m.nodes[t.Writer].Name
		}
		m.opts.Logger.Warn("discovery: writer changed", "from", from, "to", to)
		m.opts.Metrics.WriterChanged(from, to)
	}
	m.opts.Logger.Info("discovery: topology changed", "writer", t.Writer, "readers", t.Readers)
	if f := m.opts.OnChange; f != nil {
		f(t.clone())
	}
}
