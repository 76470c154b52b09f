// Package proxy is pisa-proxy's MySQL front end: listeners, client sessions
// and command dispatch, on top of the backend pools and balancers.
package proxy

import (
	"context"

	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/database-mesh/pisanix-go/internal/backoff"
	"github.com/database-mesh/pisanix-go/internal/metrics"
	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
	"github.com/database-mesh/pisanix-go/internal/proxy/crypt"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/breaker"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/govmetrics"
	"github.com/database-mesh/pisanix-go/internal/proxy/route"
	"github.com/database-mesh/pisanix-go/internal/proxy/route/discovery"
	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// Proxy runs the MySQL listeners of one configuration and swaps in new
// configurations atomically.
type Proxy struct {
	logger  *slog.Logger
	metrics *metrics.Proxy
	// xa coordinates the listeners' XA transactions (xa.go); nil until a
	// listener needs it.
	xa *xaCoord

	mu        sync.Mutex
	listeners map[string]*Listener
	pools     map[string]*backend.Pool // by pool key, shared across reloads

	sessions registry
	nextID   atomic.Uint32
	closed   atomic.Bool
	draining atomic.Bool
	warming  atomic.Int32 // endpoints being connected to for the first time
	stopc    chan struct{}
	parser   *sqlparse.Parser // shared statement classifier (cached)
	// budget bounds the memory of large client packets being read, for
	// the whole process (proxy.max_packet_memory).
	budget *mysql.Budget

	// Governance state that survives reloads, per listener name.
	govMetrics *govmetrics.Metrics
	// secMetrics are the security claim's metrics (nil: not registered).
	secMetrics *crypt.Metrics
	govStates  map[string]*govern.State
	breakers   map[string]*breaker.Breaker
}

// EnableGovernanceMetrics registers the governance metrics (rule
// rejections, concurrency, breakers, top fingerprints, audit) with reg.
// Call it before the first Apply.
func (p *Proxy) EnableGovernanceMetrics(reg prometheus.Registerer) {
	p.govMetrics = govmetrics.New(reg)
}

// New creates a proxy with no listeners; call Apply.
func New(logger *slog.Logger, m *metrics.Proxy) *Proxy {
	if logger == nil {
		logger = slog.Default()
	}
	if m == nil {
		m = metrics.NewProxy(nil)
	}
	p := &Proxy{
		logger:    logger,
		metrics:   m,
		listeners: map[string]*Listener{},
		pools:     map[string]*backend.Pool{},
		sessions:  registry{m: map[uint32]*session{}},
		stopc:     make(chan struct{}),
		parser:    sqlparse.New(sqlparse.Options{}),
		budget:    mysql.NewBudget(proxyconfig.DefaultMaxPacketMemory),
		govStates: map[string]*govern.State{},
		breakers:  map[string]*breaker.Breaker{},
	}
	go p.watchHealth()
	return p
}

// watchHealth keeps pisa_proxy_backend_endpoint_up current.
func (p *Proxy) watchHealth() {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		p.mu.Lock()
		for key, pl := range p.pools {
			p.metrics.SetEndpointUp(key[:strings.IndexByte(key, '|')], pl.Endpoint().Name, pl.Endpoint().Addr, pl.Healthy())
		}
		p.mu.Unlock()
		select {
		case <-p.stopc:
			return
		case <-t.C:
		}
	}
}

// PacketMemory reports the packet memory budget: bytes in use and the limit.
func (p *Proxy) PacketMemory() (used, limit int64) { return p.budget.Used(), p.budget.Limit() }

// registry maps proxy connection ids to sessions, for KILL.
type registry struct {
	mu sync.RWMutex
	m  map[uint32]*session
}

func (r *registry) add(s *session) {
	r.mu.Lock()
	r.m[s.id] = s
	r.mu.Unlock()
}

func (r *registry) remove(id uint32) {
	r.mu.Lock()
	delete(r.m, id)
	r.mu.Unlock()
}

func (r *registry) get(id uint32) *session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.m[id]
}

// Sessions returns the number of open client sessions.
func (p *Proxy) Sessions() int {
	p.sessions.mu.RLock()
	defer p.sessions.mu.RUnlock()
	return len(p.sessions.m)
}

// runtime is the compiled configuration of one listener. Sessions take the
// current one when they start; a reload stores a new one.
type runtime struct {
	name          string
	db            string
	serverVersion string
	authPlugin    string
	users         map[string]string
	tls           *tls.Config
	requireTLS    bool
	extCaps       uint32
	idleTimeout   time.Duration
	// idleTxTimeout closes a session idle inside a transaction;
	// netReadTimeout bounds the rest of a packet; connectTimeout the login.
	idleTxTimeout  time.Duration
	netReadTimeout time.Duration
	connectTimeout time.Duration
	maxConns       int
	maxHandshakes  int
	maxPacket      int // max_allowed_packet
	pools          []*backend.Pool
	balancer       route.Balancer
	// rw routes statements to readers or the writer when
	// read_write_splitting is configured; nil otherwise.
	rw *route.RWRouter
	// monitor is the dynamic discovery (discovery.type = "mha"), if any.
	monitor *discovery.Monitor
	parser  *sqlparse.Parser
	// causal is the read-your-writes option of read/write splitting.
	causal route.CausalOptions
	// failover: delayed retry and transaction replay ([proxy.config.failover]).
	failover failoverOpts
	// chain is the governance chain (access, circuit break, concurrency,
	// audit); nil when the listener configures none.
	chain *govern.Chain
	// breaker is the per-endpoint error breaker; nil when not configured.
	breaker *breaker.Breaker
	// names are the endpoint names, by pool index.
	names []string
	// shard routes statements on sharded tables ([[proxy.config.sharding]]);
	// nil when the listener has none. shardPools are the datanodes' pools.
	shard      *shard.Router
	shardPools map[string]*backend.Pool
	// shardGroups are the datanodes that are node groups (sharding with
	// read/write splitting inside each shard): reads may go to a reader.
	shardGroups map[string]*nodeGroup
	// txMode is how transactions reaching several nodes run (sharded_tx.go);
	// xa is the proxy's XA coordinator in xa mode.
	txMode txMode
	xa     *xaCoord
	// shardDefault, on a sharding listener without read/write splitting
	// whose balancer has several nodes, is where pick sends everything that
	// is not routed to a shard (the first balancer node).
	shardDefault *backend.Pool
	// collations caches the string columns' collations of physical tables
	// (see fixCollations).
	collations sync.Map
	// accounts are the backend's accounts (backend_accounts); nil when off.
	accounts *accountStore
	// sec is the security claim (column encryption, masking); nil when
	// the listener has none.
	sec *crypt.Schema
	// stmtMeta answers clients' prepares from cached responses
	// (stmtmeta.go); nil when off. A reload starts an empty one.
	stmtMeta *stmtMetaCache
}

// nodeGroup is a [[node_group.member]] used as a sharding datanode: its
// readwrite node's pool (also in shardPools under the group's name) and its
// readers'.
type nodeGroup struct {
	writer  *backend.Pool
	readers []*backend.Pool
	next    atomic.Uint32
}

// reader picks a healthy reader round-robin (nil when there is none).
func (g *nodeGroup) reader() *backend.Pool {
	n := len(g.readers)
	start := int(g.next.Add(1))
	for i := 0; i < n; i++ {
		if pl := g.readers[(start+i)%n]; pl.Healthy() {
			return pl
		}
	}
	return nil
}

// reportConnect tells the endpoint breaker about a failure to get a
// connection (a pool wait timeout is not the endpoint's fault).
func (rt *runtime) reportConnect(i int, err error) {
	if rt.breaker != nil && errors.Is(err, backend.ErrConnect) {
		rt.breaker.Report(rt.names[i], err, 0)
	}
}

// usable reports whether endpoint i may be picked: healthy (unless any
// endpoint will do) and not cut off by the endpoint breaker.
func (rt *runtime) usable(i int, anyHealth bool) bool {
	if rt.breaker != nil && rt.breaker.State(rt.names[i]) == breaker.Open {
		return false
	}
	return anyHealth || rt.pools[i].Healthy()
}

func (rt *runtime) authPluginName() string {
	if rt.authPlugin == "" {
		return mysql.AuthNativePassword
	}
	return rt.authPlugin
}

// pick returns a connection from a balanced, healthy endpoint, trying the
// others when one cannot be reached.
func (rt *runtime) pick(d *route.Decision, v backend.Variant) (*backend.Conn, error) {
	if d != nil {
		return rt.pickRW(*d, v)
	}
	if rt.shardDefault != nil {
		return getConn(rt.shardDefault, v)
	}
	if len(rt.pools) == 1 {
		c, err := rt.pools[0].Get(context.Background(), v)
		if err != nil && errors.Is(err, backend.ErrConnect) {
			return nil, fmt.Errorf("%w: %w", errNoBackend, err)
		}
		return c, err
	}
	var tried uint64
	c, _, err := rt.pickFrom(rt.balancer.Next, &tried, v)
	return c, noBackend(c, err)
}

// pickRW picks an endpoint of the target a read/write splitting decision
// names, preferring healthy ones, trying the others of that target when one
// cannot be reached. A read target with no reachable reader falls back to
// the writer.
func (rt *runtime) pickRW(d route.Decision, v backend.Variant) (*backend.Conn, error) {
	var tried uint64
	var lastErr error
	for _, dec := range []route.Decision{d, d.ToWriter()} {
		c, stop, err := rt.pickFrom(func(accept func(int) bool) (int, bool) {
			ep, ok := dec.Pick(accept)
			return ep.Index, ok
		}, &tried, v)
		if c != nil || stop {
			return c, err
		}
		if err != nil {
			lastErr = err
		}
		if d.Target == route.TargetReadWrite {
			break
		}
	}
	return nil, noBackend(nil, lastErr)
}

// pickFrom tries the endpoints next offers, healthy ones first, then any,
// each at most once (tried marks those already tried, by index). It
// returns a connection, or the last connect error (nil when next offered
// none); stop is set when a pool wait timed out: then no other endpoint is
// tried.
func (rt *runtime) pickFrom(next func(accept func(int) bool) (int, bool), tried *uint64, v backend.Variant) (c *backend.Conn, stop bool, err error) {
	var lastErr error
	for pass := 0; pass < 2; pass++ {
		for {
			i, ok := next(func(i int) bool {
				if i < 64 && *tried&(1<<i) != 0 {
					return false
				}
				return rt.usable(i, pass == 1)
			})
			if !ok {
				break
			}
			*tried |= 1 << i
			c, err := rt.pools[i].Get(context.Background(), v)
			if err == nil {
				return c, false, nil
			}
			rt.reportConnect(i, err)
			lastErr = err
			if errors.Is(err, backend.ErrPoolTimeout) {
				return nil, true, err
			}
		}
	}
	return nil, false, lastErr
}

// noBackend is the error of a pick that got no connection: a pool wait
// timeout as it is, else "no healthy backend" (wrapping the last connect
// error, if any).
func noBackend(c *backend.Conn, err error) error {
	switch {
	case c != nil:
		return nil
	case err == nil:
		return errNoBackend
	case errors.Is(err, backend.ErrPoolTimeout):
		return err
	}
	return fmt.Errorf("%w: %w", errNoBackend, err)
}

// Listener accepts MySQL clients on one address.
type Listener struct {
	proxy     *Proxy
	name      string
	addr      string
	ln        net.Listener
	rt        atomic.Pointer[runtime]
	sha2Cache sync.Map
	metrics   *metrics.Proxy
	logger    *slog.Logger
	active    atomic.Int64 // connections being served (handshaking or logged in)
	authed    atomic.Int64 // logged-in sessions (max_connections)
	hs        handshakes   // connections in their handshake (max_handshakes)
	delayed   atomic.Int64 // statements waiting for a backend (failover)
	backAgain wakeup       // wakes them when one of them got a backend
	logLimit  *logLimiter
	// stmtMetaStats count the runtimes' prepare metadata caches.
	stmtMetaStats stmtMetaStats
	wg            sync.WaitGroup
	ctx           context.Context
	cancel        context.CancelFunc
}

// Addr is the bound address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Listener returns a running listener by name.
func (p *Proxy) Listener(name string) *Listener {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.listeners[name]
}

// Apply compiles cfg and makes it current: new listeners start, changed ones
// get the new runtime (existing sessions keep theirs until they end),
// removed ones stop. Pools whose settings did not change are kept. Either
// the whole config is applied or nothing is.
func (p *Proxy) Apply(cfg *proxyconfig.Config) error {
	if p.closed.Load() {
		return errors.New("proxy is closed")
	}
	p.mu.Lock()
	defer p.mu.Unlock()

	newPools := map[string]*backend.Pool{}
	created := []*backend.Pool{}
	rts := map[string]*runtime{}
	fail := func(err error) error {
		for _, pl := range created {
			pl.Close()
		}
		return err
	}
	for _, w := range cfg.Warnings() {
		p.logger.Warn("configuration: " + w)
	}
	for i := range cfg.Proxy.Config {
		lc := &cfg.Proxy.Config[i]
		rt, err := p.compile(cfg, lc, newPools, &created)
		if err != nil {
			return fail(fmt.Errorf("listener %q: %w", lc.Name, err))
		}
		rts[lc.Name] = rt
	}
	if err := p.setupXA(cfg, rts); err != nil {
		return fail(err)
	}
	// Bind new listeners before touching running ones.
	started := map[string]*Listener{}
	for i := range cfg.Proxy.Config {
		lc := &cfg.Proxy.Config[i]
		if old, ok := p.listeners[lc.Name]; ok && old.addr == lc.ListenAddr {
			continue
		}
		ln, err := net.Listen("tcp", lc.ListenAddr)
		if err != nil {
			for _, l := range started {
				_ = l.ln.Close()
			}
			return fail(fmt.Errorf("listener %q: listen on %s: %w", lc.Name, lc.ListenAddr, err))
		}
		ctx, cancel := context.WithCancel(context.Background())
		l := &Listener{proxy: p, name: lc.Name, addr: lc.ListenAddr, ln: ln, metrics: p.metrics,
			logger: p.logger.With("listener", lc.Name), ctx: ctx, cancel: cancel, logLimit: newLogLimiter(time.Second)}
		started[lc.Name] = l
	}
	// Commit.
	for name, l := range p.listeners {
		if _, keep := rts[name]; !keep || started[name] != nil {
			if prev := l.rt.Load(); prev != nil && prev.monitor != nil {
				prev.monitor.Stop()
			}
			l.stop()
			delete(p.listeners, name)
			p.metrics.ForgetDomain(name)
			if !keep {
				// A listener restarted keeps its (already bound) series.
				p.secMetrics.Forget(name)
			}
		}
	}
	for name, rt := range rts {
		if rt.monitor != nil {
			rt.monitor.Start(context.Background())
		}
		if old, ok := p.listeners[name]; ok && started[name] == nil {
			if prev := old.rt.Load(); prev != nil && prev.monitor != nil {
				prev.monitor.Stop()
			}
		}
		if l, ok := started[name]; ok {
			l.rt.Store(rt)
			p.listeners[name] = l
			l.wg.Add(1)
			go l.acceptLoop()
			l.logger.Info("mysql listener started", "addr", l.ln.Addr().String(),
				"server_version", rt.serverVersion, "backends", len(rt.pools))
			continue
		}
		prev := p.listeners[name].rt.Swap(rt)
		if prev != nil && prev.chain != nil && prev.chain != rt.chain {
			// Statements already checked by the old chain finish on it.
			old := prev.chain
			time.AfterFunc(30*time.Second, func() { _ = old.Close() })
		}
	}
	for key, pl := range p.pools {
		if _, keep := newPools[key]; !keep {
			pl.Close()
			p.metrics.ForgetEndpoint(key[:strings.IndexByte(key, '|')], pl.Endpoint().Addr)
		}
	}
	p.pools = newPools
	if m := cfg.Proxy.MaxPacketMemory; m > 0 {
		p.budget.SetLimit(m)
	} else {
		p.budget.SetLimit(proxyconfig.DefaultMaxPacketMemory)
	}
	// Open one connection to every new endpoint now, so that an unreachable
	// one is known (and /readyz says so) before the first client needs it.
	for _, pl := range created {
		p.warming.Add(1)
		go func() {
			defer p.warming.Add(-1)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if c, err := pl.Get(ctx, backend.Variant{}); err == nil {
				pl.Put(c)
			}
		}()
	}
	return nil
}

func poolKey(listener string, n *proxyconfig.Node, po backend.PoolOptions) string {
	return fmt.Sprintf("%s|%s|%s|%s|%s|%s|%d|%+v|%+v", listener, n.Name, n.Addr(), n.User, n.Password, n.DB, n.EffectiveWeight(), n.TLS, po)
}

func (p *Proxy) compile(cfg *proxyconfig.Config, lc *proxyconfig.Listener, pools map[string]*backend.Pool, created *[]*backend.Pool) (*runtime, error) {
	if lc.BackendType != "" && lc.BackendType != "mysql" {
		return nil, fmt.Errorf("backend_type %q is not supported", lc.BackendType)
	}
	rt := &runtime{
		name:           lc.Name,
		db:             lc.DB,
		serverVersion:  lc.ServerVersion,
		users:          map[string]string{},
		idleTimeout:    lc.IdleClientTimeout.Duration,
		idleTxTimeout:  lc.IdleTransactionTimeout.Duration,
		netReadTimeout: lc.NetReadTimeout.Duration,
		connectTimeout: lc.ConnectTimeout.Duration,
		maxConns:       lc.MaxConnections,
		maxHandshakes:  lc.MaxHandshakes,
		maxPacket:      lc.MaxAllowedPacket,
		requireTLS:     lc.TLS.Required,
	}
	if rt.maxPacket <= 0 {
		rt.maxPacket = proxyconfig.DefaultMaxAllowedPacket
	}
	rt.failover = compileFailover(lc.Failover)
	if rt.connectTimeout <= 0 {
		rt.connectTimeout = proxyconfig.DefaultConnectTimeout
	}
	// The listener's own account; without one (and without extra
	// accounts) the empty user, which Validate refuses unless the listener
	// says allow_passwordless.
	if lc.User != "" || (len(lc.Users) == 0 && !lc.BackendAccounts && (lc.Access == nil || len(lc.Access.Users) == 0)) {
		rt.users[lc.User] = lc.Password
	}
	if rt.serverVersion == "" {
		rt.serverVersion = mysql.DefaultServerVersion
	}
	for _, u := range lc.Users {
		rt.users[u.User] = u.Password
	}
	if lc.BackendAccounts {
		defer func() { rt.accounts = &accountStore{pools: rt.pools} }()
	}
	if strings.HasPrefix(rt.serverVersion, "8.") {
		rt.authPlugin = mysql.AuthCachingSha2
	}
	if strings.Contains(rt.serverVersion, "MariaDB") {
		rt.extCaps = mysql.MariaDBClientStmtBulkOps | mysql.MariaDBClientExtendedMetadata | mysql.MariaDBClientProgress
	}
	tc, err := listenerTLS(&lc.TLS, p.logger.With("listener", lc.Name))
	if err != nil {
		return nil, err
	}
	rt.tls = tc
	po := backend.PoolOptions{
		MaxOpen:        lc.Pool.MaxOpen,
		MaxIdle:        lc.Pool.MaxIdle,
		IdleTimeout:    lc.Pool.IdleTimeout.Duration,
		MaxLifetime:    lc.Pool.MaxLifetime.Duration,
		WaitTimeout:    lc.Pool.WaitTimeout.Duration,
		ConnectTimeout: lc.Pool.ConnectTimeout.Duration,
		// Progress reports are passed to clients that ask for them.
		ExtCaps:  mysql.MariaDBClientStmtBulkOps | mysql.MariaDBClientExtendedMetadata | mysql.MariaDBClientProgress,
		MaxStmts: lc.PreparedStatements.StmtsPerConnection(),
	}
	rt.stmtMeta = newStmtMetaCache(lc.PreparedStatements.MetadataCache())
	// pool returns the listener's pool of node n: kept from the running
	// config when its settings did not change, else new.
	pool := func(n *proxyconfig.Node) (*backend.Pool, error) {
		key := poolKey(lc.Name, n, po)
		pl := pools[key]
		if pl == nil {
			pl = p.pools[key]
		}
		if pl == nil {
			ntls, err := nodeTLS(n)
			if err != nil {
				return nil, fmt.Errorf("node %q: %w", n.Name, err)
			}
			ep := backend.Endpoint{Name: n.Name, Addr: n.Addr(), User: n.User, Password: n.Password,
				DB: n.DB, TLS: ntls, Weight: n.EffectiveWeight(), Role: n.Role,
				TLSPreferred: n.TLS.EffectiveMode() == proxyconfig.TLSPreferred}
			pl = backend.NewPool(lc.Name, ep, po, p.logger.With("listener", lc.Name))
			*created = append(*created, pl)
		}
		pools[key] = pl
		return pl, nil
	}
	// Read/write splitting's nodes come first (their indexes are the
	// router's), then the balancer's others; the balancer picks only its
	// own (simple_loadbalance.nodes), the others have weight 0 there.
	var weights []int
	balanced := map[string]bool{}
	for _, name := range lc.NodeNames(cfg) {
		balanced[name] = true
	}
	for _, name := range lc.PoolNodeNames(cfg) {
		n := cfg.Node(name)
		if n == nil {
			return nil, fmt.Errorf("unknown node %q", name)
		}
		pl, err := pool(n)
		if err != nil {
			return nil, err
		}
		rt.pools = append(rt.pools, pl)
		rt.names = append(rt.names, n.Name)
		w := 0
		if balanced[name] {
			w = n.EffectiveWeight()
		}
		weights = append(weights, w)
	}
	if len(lc.Sharding) > 0 {
		router, err := shard.Compile(cfg, lc)
		if err != nil {
			return nil, fmt.Errorf("sharding: %w", err)
		}
		rt.shard = router
		rt.shardPools = map[string]*backend.Pool{}
		for _, rule := range lc.Sharding {
			for _, name := range rule.ActualDatanodes {
				if n := cfg.Node(name); n != nil {
					pl, err := pool(n)
					if err != nil {
						return nil, err
					}
					rt.shardPools[name] = pl
					continue
				}
				g, err := compileGroup(cfg, name, pool)
				if err != nil {
					return nil, fmt.Errorf("sharding: datanode %q: %w", name, err)
				}
				if rt.shardGroups == nil {
					rt.shardGroups = map[string]*nodeGroup{}
				}
				rt.shardGroups[name] = g
				rt.shardPools[name] = g.writer
			}
		}
		rt.parser = p.parser
	}
	if len(rt.pools) == 0 {
		return nil, errors.New("no backend nodes")
	}
	if lc.ReadWriteSplitting != nil {
		var nodes []proxyconfig.Node
		for _, name := range lc.RWNodeNames(cfg) {
			nodes = append(nodes, *cfg.Node(name))
		}
		rwcfg, disc := route.RWConfigFrom(lc.ReadWriteSplitting)
		router, err := route.NewRWRouter(rwcfg, route.NodeInfos(nodes))
		if err != nil {
			return nil, fmt.Errorf("read_write_splitting: %w", err)
		}
		rt.rw = router
		rt.parser = p.parser
		rt.causal = route.CausalOptions{Mode: lc.ReadWriteSplitting.CausalReads,
			Window: lc.ReadWriteSplitting.CausalReadsWindow.Duration, WaitTimeout: lc.ReadWriteSplitting.CausalReadsWaitTimeout.Duration}
		if err := rt.causal.Normalize(); err != nil {
			return nil, fmt.Errorf("read_write_splitting: %w", err)
		}
		if disc != nil {
			dc, err := discovery.ConfigFrom(disc)
			if err != nil {
				return nil, fmt.Errorf("read_write_splitting.dynamic.discovery: %w", err)
			}
			mon, err := discovery.New(dc, route.DiscoveryNodes(nodes), discovery.Options{
				OnChange: router.ApplyTopology,
				Metrics:  p.metrics.Discovery(lc.Name),
				Logger:   p.logger.With("listener", lc.Name, "component", "discovery"),
			})
			if err != nil {
				return nil, fmt.Errorf("read_write_splitting.dynamic.discovery: %w", err)
			}
			rt.monitor = mon
		}
	}
	if err := p.compileGovernance(lc, rt); err != nil {
		return nil, err
	}
	if err := p.compileSecurity(lc, rt); err != nil {
		return nil, err
	}
	kind := "random"
	if lc.SimpleLoadBalance != nil && lc.SimpleLoadBalance.BalanceType != "" {
		kind = lc.SimpleLoadBalance.BalanceType
	}
	b, err := route.NewBalancer(kind, weights)
	if err != nil {
		return nil, err
	}
	rt.balancer = b
	if rt.shard != nil && rt.rw == nil && len(rt.pools) > 1 {
		// Unsharded tables live on one node: balancing their statements
		// over nodes holding different data would lose rows.
		rt.shardDefault = rt.pools[0]
		p.logger.Warn("sharding listener: statements on unsharded tables go to the first balancer node only",
			"listener", lc.Name, "node", rt.names[0], "balancer_nodes", rt.names)
	}
	rt.txMode = listenerTxMode(lc, rt)
	return rt, nil
}

// governed reports whether a listener configures any governance.
func governed(lc *proxyconfig.Listener) bool {
	return lc.Plugin != nil || lc.Access != nil || lc.Audit != nil || lc.TopFingerprints > 0
}

// compileGovernance builds the listener's governance chain and endpoint
// breaker. Their state (concurrency permits, breaker states) lives in the
// proxy per listener name, so a reload keeps it.
func (p *Proxy) compileGovernance(lc *proxyconfig.Listener, rt *runtime) error {
	if governed(lc) {
		st := p.govStates[lc.Name]
		if st == nil {
			st = govern.NewState(lc.Name, p.govMetrics, govern.StateOptions{Logger: p.logger.With("listener", lc.Name)})
			p.govStates[lc.Name] = st
		}
		chain, err := govern.Compile(lc.Governance(), st, govern.Options{
			Normalize: func(s string) string { return p.parser.Parse(s).Fingerprint },
		})
		if err != nil {
			return fmt.Errorf("governance: %w", err)
		}
		rt.chain = chain
		rt.parser = p.parser
		if lc.Access != nil {
			// Access-controlled accounts log in with their own passwords;
			// with backend_accounts, one without a password logs in with
			// the backend's account of that name.
			for _, u := range lc.Access.Users {
				if u.Password == "" && lc.BackendAccounts {
					continue
				}
				rt.users[u.User] = u.Password
			}
		}
	}
	if lc.EndpointBreaker != nil {
		b := p.breakers[lc.Name]
		if b == nil {
			nb, err := breaker.New(lc.Name, *lc.EndpointBreaker, nil, p.logger.With("listener", lc.Name))
			if err != nil {
				return fmt.Errorf("endpoint_breaker: %w", err)
			}
			b = nb
			p.breakers[lc.Name] = b
			p.govMetrics.AddSource(b)
		} else if err := b.Configure(*lc.EndpointBreaker); err != nil {
			return fmt.Errorf("endpoint_breaker: %w", err)
		}
		b.Retain(rt.names)
		rt.breaker = b
	}
	return nil
}

func listenerTLS(c *proxyconfig.ListenerTLS, logger *slog.Logger) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.MinVersion == "1.3" {
		tc.MinVersion = tls.VersionTLS13
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
		return tc, nil
	}
	cert, err := selfSignedCert()
	if err != nil {
		return nil, fmt.Errorf("generate self-signed certificate: %w", err)
	}
	logger.Warn("no TLS certificate configured: clients that ask for TLS get a generated self-signed certificate (set [proxy.config.tls] cert_file/key_file)")
	tc.Certificates = []tls.Certificate{*cert}
	return tc, nil
}

// selfSignedCert is generated once per process.
var selfSignedCert = sync.OnceValues(selfSignedTLS)

func nodeTLS(n *proxyconfig.Node) (*tls.Config, error) {
	t := n.TLS
	mode := t.EffectiveMode()
	if mode == proxyconfig.TLSDisabled {
		return nil, nil
	}
	host, _, _ := net.SplitHostPort(n.Addr())
	// "preferred" verifies the certificate only against a configured CA,
	// as MariaDB clients do by default; "required" always verifies
	// (system roots without a CA) unless told not to.
	skip := t.InsecureSkipVerify || (mode == proxyconfig.TLSPreferred && t.CAFile == "")
	tc := &tls.Config{ServerName: host, InsecureSkipVerify: skip, MinVersion: tls.VersionTLS12}
	if t.ServerName != "" {
		tc.ServerName = t.ServerName
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no certificates", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (l *Listener) stop() {
	l.cancel()
	_ = l.ln.Close()
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	// Accept errors (EMFILE: out of file descriptors) are retried after a pause.
	b := backoff.New(5*time.Millisecond, time.Second)
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			wait := b.Next()
			l.logger.Warn("accept failed", "error", err, "retry_in", wait)
			backoff.Sleep(l.ctx, wait)
			continue
		}
		b.Reset()
		rt := l.rt.Load()
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
			_ = tc.SetKeepAlivePeriod(30 * time.Second)
		}
		if rt.maxConns > 0 && l.authed.Load() >= int64(rt.maxConns) {
			l.refuse(nc, rt, "max_connections")
			continue
		}
		if rt.maxHandshakes > 0 && l.hs.count() >= rt.maxHandshakes {
			// Full of connections that have not logged in: cut the oldest
			// (a silent socket, most likely) rather than the newcomer.
			if !l.hs.evictOldest() {
				l.refuse(nc, rt, "max_handshakes")
				continue
			}
			l.metrics.ClientRefused(rt.name, "handshake_evicted")
			l.metrics.ClientHandshaking(rt.name, -1)
		}
		id := l.proxy.nextID.Add(1)
		if id == 0 {
			id = l.proxy.nextID.Add(1)
		}
		l.hs.add(id, nc)
		l.metrics.ClientHandshaking(rt.name, 1)
		l.active.Add(1)
		l.wg.Add(1)
		go l.handle(nc, rt, id)
	}
}

func (l *Listener) refuse(nc net.Conn, rt *runtime, reason string) {
	c := mysql.NewConn(nc)
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.WritePacketFlush(mysql.AppendErr(nil, mysql.NewError(mysql.ErrCodeTooManyConnections, "08004", "Too many connections")))
	_ = nc.Close()
	l.metrics.Error(rt.name, mysql.ErrCodeTooManyConnections)
	l.metrics.ClientRefused(rt.name, reason)
	l.logRefusal(rt, reason, nc.RemoteAddr().String())
}

func (l *Listener) handle(nc net.Conn, rt *runtime, id uint32) {
	defer l.wg.Done()
	defer l.active.Add(-1)
	s := &session{
		l:      l,
		rt:     rt,
		id:     id,
		client: mysql.NewConn(nc),
		logger: l.logger.With("conn_id", id, "client", nc.RemoteAddr().String()),
	}
	l.proxy.sessions.add(s)
	l.metrics.ClientConnected(rt.name)
	start := time.Now()
	s.serve(l.ctx)
	l.proxy.sessions.remove(id)
	l.metrics.ClientDisconnected(rt.name)
	if l.hs.remove(id) {
		l.metrics.ClientHandshaking(rt.name, -1)
	}
	if s.admitted {
		l.authed.Add(-1)
	}
	if s.user != "" {
		s.logger.Info("client disconnected", "duration", time.Since(start).Round(time.Millisecond))
	}
}

// Ready reports nil when every listener is accepting and has at least one
// healthy backend.
func (p *Proxy) Ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.listeners) == 0 {
		return errors.New("no listeners configured")
	}
	if n := p.warming.Load(); n > 0 {
		return fmt.Errorf("connecting to %d backend endpoint(s)", n)
	}
	for name, l := range p.listeners {
		rt := l.rt.Load()
		healthy := false
		for _, pl := range rt.pools {
			if pl.Healthy() {
				healthy = true
				break
			}
		}
		if !healthy {
			return fmt.Errorf("listener %q has no healthy backend", name)
		}
	}
	return nil
}

// PoolStats reports every pool for the metrics collector.
func (p *Proxy) PoolStats() []metrics.PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]metrics.PoolStats, 0, len(p.pools))
	for key, pl := range p.pools {
		st := pl.Stats()
		domain := key[:strings.IndexByte(key, '|')]
		addr := pl.Endpoint().Addr
		out = append(out, metrics.PoolStats{Domain: domain, Node: pl.Endpoint().Name, Server: addr, MaxOpen: st.MaxOpen,
			Open: st.Open, Idle: st.Idle, InUse: st.InUse, WaitCount: st.WaitCount,
			WaitDuration: st.WaitDuration, Timeouts: st.Timeouts, Closed: st.Closed})
	}
	return out
}

// Close stops accepting, waits for sessions to finish until ctx ends, then
// closes the remaining ones and all pools.
func (p *Proxy) Close(ctx context.Context) error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(p.stopc)
	p.mu.Lock()
	ls := make([]*Listener, 0, len(p.listeners))
	for _, l := range p.listeners {
		_ = l.ln.Close()
		ls = append(ls, l)
	}
	p.mu.Unlock()
	// Sessions waiting for a command with nothing pinned end now; the
	// others end after their transaction or statement (or at ctx's end).
	p.draining.Store(true)
	p.sessions.mu.RLock()
	for _, s := range p.sessions.m {
		if s.idle.Load() {
			_ = s.client.TCPConn().SetReadDeadline(time.Now())
		}
	}
	p.sessions.mu.RUnlock()
	done := make(chan struct{})
	go func() {
		for _, l := range ls {
			l.wg.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		for _, l := range ls {
			l.cancel()
		}
		p.sessions.mu.RLock()
		for _, s := range p.sessions.m {
			_ = s.client.TCPConn().Close()
		}
		p.sessions.mu.RUnlock()
		<-done
	}
	p.mu.Lock()
	for _, l := range p.listeners {
		if rt := l.rt.Load(); rt != nil && rt.monitor != nil {
			rt.monitor.Stop()
		}
	}
	for _, pl := range p.pools {
		pl.Close()
	}
	x := p.xa
	p.mu.Unlock()
	if x != nil {
		x.close()
	}
	return nil
}

// compileGroup builds the node group name's pools.
func compileGroup(cfg *proxyconfig.Config, name string, pool func(*proxyconfig.Node) (*backend.Pool, error)) (*nodeGroup, error) {
	for _, m := range cfg.NodeGroup.Members {
		if m.Name != name {
			continue
		}
		g := &nodeGroup{}
		w := cfg.Node(m.ReadWrite)
		if w == nil {
			return nil, fmt.Errorf("node group readwrite node %q is not a [[mysql.node]]", m.ReadWrite)
		}
		var err error
		if g.writer, err = pool(w); err != nil {
			return nil, err
		}
		for _, rn := range m.Reads {
			n := cfg.Node(rn)
			if n == nil {
				return nil, fmt.Errorf("node group read node %q is not a [[mysql.node]]", rn)
			}
			pl, err := pool(n)
			if err != nil {
				return nil, err
			}
			g.readers = append(g.readers, pl)
		}
		return g, nil
	}
	return nil, errors.New("neither a [[mysql.node]] nor a [[node_group.member]]")
}
