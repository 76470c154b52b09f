// Package metrics defines pisa-proxy's Prometheus metrics.
//
// All metric names start with "pisa_proxy_". The three SQL metrics keep the
// names Pisanix used (sql_processed_total, sql_under_processing; the
// histogram gains the "_seconds" unit suffix); docs/metrics.md lists every
// metric with its labels and example queries.
//
// The session hot path must not pay for label hashing on every statement:
// it calls [Proxy.Command] once per (domain, type, server) and gets cached
// collectors, so recording a statement is one map load plus atomic updates.
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Namespace is the prefix of every metric name.
const Namespace = "pisa_proxy"

// Label names.
const (
	LabelDomain = "domain" // proxy (listener) name from the config
	LabelType   = "type"   // command type, e.g. COM_QUERY
	LabelServer = "server" // backend endpoint host:port
	LabelNode   = "node"   // backend node name ([[mysql.node]] name)
	LabelReason = "reason" // why a backend connection was pinned
	LabelCode   = "code"   // MySQL error code sent to the client
)

// Command types used as the "type" label. They are the MySQL protocol
// command names (Pisanix used COM_PREPARE and COM_EXECUTE for the two
// prepared-statement commands).
const (
	TypeQuery       = "COM_QUERY"
	TypeInitDB      = "COM_INIT_DB"
	TypeFieldList   = "COM_FIELD_LIST"
	TypeStmtPrepare = "COM_STMT_PREPARE"
	TypeStmtExecute = "COM_STMT_EXECUTE"
	TypeStmtFetch   = "COM_STMT_FETCH"
	TypeChangeUser  = "COM_CHANGE_USER"
	TypeResetConn   = "COM_RESET_CONNECTION"
)

// Pin reasons used as the "reason" label of pisa_proxy_backend_pins_total.
// The label is a free string; these are the values the proxy uses.
const (
	PinTransaction    = "transaction"     // the server reports an open transaction
	PinUserVariable   = "user_variable"   // SET @v / SELECT ... INTO @v
	PinTemporaryTable = "temporary_table" // CREATE TEMPORARY TABLE
	PinLock           = "lock"            // LOCK TABLES, GET_LOCK()
	PinCursor         = "cursor"          // a prepared statement's open cursor
	PinLongData       = "long_data"       // COM_STMT_SEND_LONG_DATA until the execute
	// PinPreparedStatement is no longer used: prepared statements do not
	// pin (SQL-level PREPARE pins as session_state).
	PinPreparedStatement = "prepared_statement"
	PinSessionVariable   = "session_variable" // SET of a variable that cannot be replayed
)

// DurationBuckets are the buckets of pisa_proxy_sql_processed_duration_seconds:
// 100µs to 10s, roughly ×2.5 per step, suited to a proxy in front of MySQL.
var DurationBuckets = []float64{
	0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05,
	0.1, 0.25, 0.5,
	1, 2.5, 5, 10,
}

// Proxy holds the proxy's collectors. Its methods are safe for concurrent
// use.
type Proxy struct {
	sqlProcessed       *prometheus.CounterVec
	sqlDuration        *prometheus.HistogramVec
	sqlUnderProcessing *prometheus.GaugeVec

	clientConnections      *prometheus.GaugeVec
	clientConnectionsTotal *prometheus.CounterVec
	clientAuthFailures     *prometheus.CounterVec
	clientHandshakes       *prometheus.GaugeVec
	clientRefusals         *prometheus.CounterVec
	clientTimeouts         *prometheus.CounterVec
	packetMemoryRefusals   *prometheus.CounterVec
	stmtReprepares         *prometheus.CounterVec
	stmtEvictions          *prometheus.CounterVec
	configReloads          *prometheus.CounterVec
	shardStatements        *prometheus.CounterVec
	shardTargets           *prometheus.HistogramVec
	shardMergedRows        *prometheus.CounterVec
	shardRefusals          *prometheus.CounterVec

	backendPins          *prometheus.CounterVec
	routing              *routing
	xa                   *xaMetrics
	routes               sync.Map // routeKey → prometheus.Counter
	errors               *prometheus.CounterVec
	backendConnectErrors *prometheus.CounterVec
	backendEndpointUp    *prometheus.GaugeVec

	pisanix  *pisanixMetrics // Pisanix's names too; nil unless EnablePisanixNames
	commands sync.Map        // commandKey -> *CommandMetrics
	pins     sync.Map        // pairKey -> prometheus.Counter
	errCodes sync.Map        // errKey -> prometheus.Counter
}

// CommandMetrics are the collectors of one (domain, type, server) tuple.
// Get it with [Proxy.Command]; keep it as long as the tuple is in use.
type CommandMetrics struct {
	Processed prometheus.Counter  // pisa_proxy_sql_processed_total
	Duration  prometheus.Observer // pisa_proxy_sql_processed_duration_seconds
	InFlight  prometheus.Gauge    // pisa_proxy_sql_under_processing
	pisanix   *pisanixCommand     // Pisanix's series, when enabled
}

// Begin marks a command as in flight and returns its start time, to be
// passed to [CommandMetrics.End].
func (c *CommandMetrics) Begin() time.Time {
	c.InFlight.Inc()
	if c.pisanix != nil {
		c.pisanix.inFlight.Inc()
	}
	return time.Now()
}

// End records a command started by [CommandMetrics.Begin]: it is no longer
// in flight, it is counted, and its duration is observed.
func (c *CommandMetrics) End(start time.Time) {
	d := time.Since(start).Seconds()
	c.Duration.Observe(d)
	c.Processed.Inc()
	c.InFlight.Dec()
	if pc := c.pisanix; pc != nil {
		pc.duration.Observe(d)
		pc.durationMaster.Observe(d)
		pc.processed.Inc()
		pc.inFlight.Dec()
	}
}

type commandKey struct {
	domain, typ, server string
}

type pairKey struct {
	a, b string
}

type errKey struct {
	domain string
	code   uint16
}

// NewProxy creates the proxy's collectors and registers them with reg.
// reg may be nil (nothing is registered, useful in tests). Registering
// twice with the same registry panics, like [prometheus.Registerer.MustRegister].
func NewProxy(reg prometheus.Registerer) *Proxy {
	cmdLabels := []string{LabelDomain, LabelType, LabelServer}
	p := &Proxy{
		sqlProcessed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "sql_processed_total",
			Help:      "Commands forwarded to a backend and answered, by domain, command type and backend server.",
		}, cmdLabels),
		sqlDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "sql_processed_duration_seconds",
			Help:      "Time from receiving a command to having sent its whole response to the client, in seconds.",
			Buckets:   DurationBuckets,
		}, cmdLabels),
		sqlUnderProcessing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "sql_under_processing",
			Help:      "Commands being processed right now.",
		}, cmdLabels),
		clientConnections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "client_connections",
			Help:      "Client connections currently open.",
		}, []string{LabelDomain}),
		clientConnectionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "client_connections_total",
			Help:      "Client connections accepted.",
		}, []string{LabelDomain}),
		clientAuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "client_auth_failures_total",
			Help:      "Client handshakes rejected because authentication failed.",
		}, []string{LabelDomain}),
		clientHandshakes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "client_handshakes",
			Help:      "Client connections currently in their handshake (not logged in yet); limited by max_handshakes, apart from max_connections.",
		}, []string{LabelDomain}),
		clientRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "client_refusals_total",
			Help:      "Client connections refused or cut before login, by reason: max_connections, max_handshakes, handshake_evicted (the oldest handshake closed to make room).",
		}, []string{LabelDomain, LabelReason}),
		clientTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "client_timeouts_total",
			Help:      "Client connections closed by a timeout, by kind: connect (handshake), idle (idle_client_timeout), idle_in_transaction (transaction rolled back), net_read (packet stalled).",
		}, []string{LabelDomain, "kind"}),
		packetMemoryRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "packet_memory_refusals_total",
			Help:      "Client packets dropped with ERR 1037 because max_packet_memory stayed in use by other clients.",
		}, []string{LabelDomain}),
		shardStatements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "sharding_statements_total",
			Help:      "Statements on a sharding listener by route: unsharded, single, multi (some shards) or all.",
		}, []string{LabelDomain, "route"}),
		shardTargets: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "sharding_shards_per_statement",
			Help:      "Physical shards a statement on a sharded table ran on.",
			Buckets:   []float64{1, 2, 4, 8, 16, 32, 64, 128},
		}, []string{LabelDomain}),
		shardMergedRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "sharding_merged_rows_total",
			Help:      "Rows sent to clients from results merged across shards.",
		}, []string{LabelDomain}),
		shardRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "sharding_refusals_total",
			Help:      "Statements on sharded tables refused with ERR 1235 because they cannot be answered exactly, by reason.",
		}, []string{LabelDomain, LabelReason}),
		configReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "config_reloads_total",
			Help:      "Configurations offered after the first (file changes, SIGHUP, the controller), by result: applied or rejected.",
		}, []string{"result"}),
		stmtReprepares: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "stmt_reprepares_total",
			Help:      "Client prepared statements prepared on a backend connection that did not have them yet (the one the pool handed out for an execute, also after a lost connection).",
		}, []string{LabelDomain}),
		stmtEvictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "stmt_evictions_total",
			Help:      "Statements closed on a backend connection because its statement cache was full (least recently used first).",
		}, []string{LabelDomain}),
		backendPins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "backend_pins_total",
			Help:      "Times a session pinned its backend connection instead of returning it to the pool, by reason.",
		}, []string{LabelDomain, LabelReason}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "errors_total",
			Help:      "MySQL errors sent to clients, by error code (errors from backends and from the proxy itself).",
		}, []string{LabelDomain, LabelCode}),
		backendConnectErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "backend_connect_errors_total",
			Help:      "Failed attempts to open a connection to a backend (dial, handshake or authentication).",
		}, []string{LabelServer}),
		backendEndpointUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "backend_endpoint_up",
			Help:      "1 if the backend endpoint is healthy and used for routing, 0 if it is ejected.",
		}, []string{LabelDomain, LabelNode, LabelServer}),
		routing: newRouting(),
		xa:      newXA(),
	}
	if reg != nil {
		reg.MustRegister(p.Collectors()...)
		reg.MustRegister(p.xa.collectors()...) // xa.go
	}
	return p
}

// Collectors returns every collector of p (not the pool collector, which is
// registered separately).
func (p *Proxy) Collectors() []prometheus.Collector {
	return append([]prometheus.Collector{
		p.sqlProcessed, p.sqlDuration, p.sqlUnderProcessing,
		p.clientConnections, p.clientConnectionsTotal, p.clientAuthFailures, p.stmtReprepares, p.stmtEvictions, p.configReloads,
		p.clientHandshakes, p.clientRefusals, p.clientTimeouts, p.packetMemoryRefusals,
		p.shardStatements, p.shardTargets, p.shardMergedRows, p.shardRefusals,
		p.backendPins, p.errors, p.backendConnectErrors, p.backendEndpointUp,
	}, p.routing.collectors()...)
}

// Command returns the collectors for one (domain, type, server) tuple.
// After the first call for a tuple it costs one map load and does not
// allocate, so it may be called per statement.
func (p *Proxy) Command(domain, typ, server string) *CommandMetrics {
	k := commandKey{domain, typ, server}
	if v, ok := p.commands.Load(k); ok {
		return v.(*CommandMetrics)
	}
	return p.newCommand(k)
}

func (p *Proxy) newCommand(k commandKey) *CommandMetrics {
	c := &CommandMetrics{
		Processed: p.sqlProcessed.WithLabelValues(k.domain, k.typ, k.server),
		Duration:  p.sqlDuration.WithLabelValues(k.domain, k.typ, k.server),
		InFlight:  p.sqlUnderProcessing.WithLabelValues(k.domain, k.typ, k.server),
	}
	if p.pisanix != nil {
		c.pisanix = p.pisanix.command(k)
	}
	v, _ := p.commands.LoadOrStore(k, c)
	return v.(*CommandMetrics)
}

// ClientConnected records an accepted client connection.
func (p *Proxy) ClientConnected(domain string) {
	p.clientConnections.WithLabelValues(domain).Inc()
	p.clientConnectionsTotal.WithLabelValues(domain).Inc()
}

// ClientDisconnected records the end of a client connection counted by
// [Proxy.ClientConnected].
func (p *Proxy) ClientDisconnected(domain string) {
	p.clientConnections.WithLabelValues(domain).Dec()
}

// ClientAuthFailed records a client whose authentication failed.
func (p *Proxy) ClientAuthFailed(domain string) {
	p.clientAuthFailures.WithLabelValues(domain).Inc()
}

// ClientHandshaking moves the count of connections in their handshake by
// delta (+1 when accepted, -1 when logged in or gone).
func (p *Proxy) ClientHandshaking(domain string, delta float64) {
	p.clientHandshakes.WithLabelValues(domain).Add(delta)
}

// ClientRefused records a client connection refused or cut before login.
func (p *Proxy) ClientRefused(domain, reason string) {
	p.clientRefusals.WithLabelValues(domain, reason).Inc()
}

// ClientTimedOut records a client connection closed by a timeout of kind
// connect, idle, idle_in_transaction or net_read.
func (p *Proxy) ClientTimedOut(domain, kind string) {
	p.clientTimeouts.WithLabelValues(domain, kind).Inc()
}

// PacketMemoryRefused records a client packet dropped because the packet
// memory budget was exhausted.
func (p *Proxy) PacketMemoryRefused(domain string) {
	p.packetMemoryRefusals.WithLabelValues(domain).Inc()
}

// NewPacketMemoryCollector exports pisa_proxy_packet_memory_bytes (memory
// charged now for large client packets) and
// pisa_proxy_packet_memory_limit_bytes (proxy.max_packet_memory).
func NewPacketMemoryCollector(used, limit func() int64) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "packet_memory_bytes",
			Help:      "Memory charged now to proxy.max_packet_memory by client packets larger than 64 KiB being read.",
		}, func() float64 { return float64(used()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "packet_memory_limit_bytes",
			Help:      "proxy.max_packet_memory: the bound on memory for client packets being read.",
		}, func() float64 { return float64(limit()) }),
	}
}

// ShardStatement records a statement on a sharding listener: its route kind
// and, for statements on sharded tables, how many shards it ran on.
func (p *Proxy) ShardStatement(domain, route string, shards int) {
	p.shardStatements.WithLabelValues(domain, route).Inc()
	if shards > 0 {
		p.shardTargets.WithLabelValues(domain).Observe(float64(shards))
	}
}

// ShardMergedRows records rows sent from a merged cross-shard result.
func (p *Proxy) ShardMergedRows(domain string, n int64) {
	if n > 0 {
		p.shardMergedRows.WithLabelValues(domain).Add(float64(n))
	}
}

// ShardRefused records a statement refused with ERR 1235 (reason is one of
// a small fixed set of words).
func (p *Proxy) ShardRefused(domain, reason string) {
	p.shardRefusals.WithLabelValues(domain, reason).Inc()
}

// ConfigReload records a configuration offered after the first one, applied
// or rejected.
func (p *Proxy) ConfigReload(applied bool) {
	result := "rejected"
	if applied {
		result = "applied"
	}
	p.configReloads.WithLabelValues(result).Inc()
}

// Reprepared records a client statement prepared on a backend connection
// that did not have it.
func (p *Proxy) Reprepared(domain string) {
	p.stmtReprepares.WithLabelValues(domain).Inc()
}

// StmtEvicted records a statement closed on a backend connection whose
// statement cache was full.
func (p *Proxy) StmtEvicted(domain string) {
	p.stmtEvictions.WithLabelValues(domain).Inc()
}

// BackendPinned records that a session pinned its backend connection for
// reason (one of the Pin* constants). Cached like [Proxy.Command].
func (p *Proxy) BackendPinned(domain, reason string) {
	k := pairKey{domain, reason}
	v, ok := p.pins.Load(k)
	if !ok {
		v, _ = p.pins.LoadOrStore(k, p.backendPins.WithLabelValues(domain, reason))
	}
	v.(prometheus.Counter).Inc()
}

// Error records a MySQL error with the given code sent to a client.
// Cached like [Proxy.Command].
func (p *Proxy) Error(domain string, code uint16) {
	k := errKey{domain, code}
	v, ok := p.errCodes.Load(k)
	if !ok {
		v, _ = p.errCodes.LoadOrStore(k, p.errors.WithLabelValues(domain, strconv.Itoa(int(code))))
	}
	v.(prometheus.Counter).Inc()
}

// BackendConnectError records a failed attempt to connect to server.
func (p *Proxy) BackendConnectError(server string) {
	p.backendConnectErrors.WithLabelValues(server).Inc()
}

// SetEndpointUp sets pisa_proxy_backend_endpoint_up for node (at address
// server) in domain. Nodes may share an address (shards in schemas of one
// server), so the node names the series.
func (p *Proxy) SetEndpointUp(domain, node, server string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	p.backendEndpointUp.WithLabelValues(domain, node, server).Set(v)
}

// ForgetEndpoint deletes the series of server in domain (command metrics
// and endpoint_up), for when a config reload removes the endpoint.
// CommandMetrics already handed out keep working but are no longer
// exported.
func (p *Proxy) ForgetEndpoint(domain, server string) {
	p.commands.Range(func(key, _ any) bool {
		if k := key.(commandKey); k.domain == domain && k.server == server {
			p.commands.Delete(k)
		}
		return true
	})
	match := prometheus.Labels{LabelDomain: domain, LabelServer: server}
	p.sqlProcessed.DeletePartialMatch(match)
	p.sqlDuration.DeletePartialMatch(match)
	p.sqlUnderProcessing.DeletePartialMatch(match)
	p.backendEndpointUp.DeletePartialMatch(match)
	if p.pisanix != nil {
		p.pisanix.forget(match)
	}
}

// ForgetDomain deletes every series of domain, for when a config reload
// removes a proxy (listener). pisa_proxy_client_connections is kept: sessions
// of the removed proxy may still be open and will count it down to 0.
func (p *Proxy) ForgetDomain(domain string) {
	p.commands.Range(func(key, _ any) bool {
		if k := key.(commandKey); k.domain == domain {
			p.commands.Delete(k)
		}
		return true
	})
	p.pins.Range(func(key, _ any) bool {
		if key.(pairKey).a == domain {
			p.pins.Delete(key)
		}
		return true
	})
	p.errCodes.Range(func(key, _ any) bool {
		if key.(errKey).domain == domain {
			p.errCodes.Delete(key)
		}
		return true
	})
	match := prometheus.Labels{LabelDomain: domain}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{
		p.sqlProcessed, p.sqlDuration, p.sqlUnderProcessing,
		p.clientConnectionsTotal, p.clientAuthFailures, p.stmtReprepares, p.stmtEvictions,
		p.clientRefusals, p.clientTimeouts, p.packetMemoryRefusals,
		p.shardStatements, p.shardTargets, p.shardMergedRows, p.shardRefusals,
		p.backendPins, p.errors, p.backendEndpointUp,
	} {
		v.DeletePartialMatch(match)
	}
	if p.pisanix != nil {
		p.pisanix.forget(match)
	}
}
