package metrics

import "github.com/prometheus/client_golang/prometheus"

// Routing and discovery metrics (read/write splitting). They are
// registered by NewProxy with the others.
type routing struct {
	decisions     *prometheus.CounterVec
	lag           *prometheus.GaugeVec
	nodeState     *prometheus.GaugeVec
	probeFailures *prometheus.CounterVec
	writerChanges *prometheus.CounterVec
	// Failover ([proxy.config.failover]): delayed retries and replays.
	delayedRetries *prometheus.CounterVec
	delayedWaiting *prometheus.GaugeVec
	delayedWait    *prometheus.HistogramVec
	txReplays      *prometheus.CounterVec
}

// NodeStates are the values of the state label of pisa_proxy_node_state.
var NodeStates = []string{"writer", "reader", "lagging", "down", "standby"}

func newRouting() *routing {
	return &routing{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "route_decisions_total",
			Help: "Statements routed by read/write splitting, by target role (read, readwrite) and rule.",
		}, []string{LabelDomain, "target", "rule"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "replica_lag_seconds",
			Help: "Seconds_Behind_Master of a replica as the discovery monitor last read it (-1 when NULL or unreadable).",
		}, []string{LabelDomain, "node"}),
		nodeState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "node_state",
			Help: "1 for the state the discovery monitor gives a node (writer, reader, lagging, down, standby), 0 for the others.",
		}, []string{LabelDomain, "node", "state"}),
		probeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "discovery_probe_failures_total",
			Help: "Failed discovery probes by node and monitor (connect, ping, read_only, replication_lag).",
		}, []string{LabelDomain, "node", "monitor"}),
		writerChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "writer_changes_total",
			Help: "Times the discovery monitor changed the writer (failover).",
		}, []string{LabelDomain}),
		delayedRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "failover_delayed_statements_total",
			Help: "Statements that waited for a backend (failover.delayed_retry), by outcome: " +
				"recovered (a backend came back in time), timed_out (the client got the error after delayed_retry_timeout), " +
				"overflow (delayed_retry_max_waiting statements were waiting: failed at once).",
		}, []string{LabelDomain, "outcome"}),
		delayedWaiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "failover_delayed_statements",
			Help: "Statements waiting for a backend right now (failover.delayed_retry).",
		}, []string{LabelDomain}),
		delayedWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "failover_delay_seconds",
			Help:    "How long statements waited for a backend (failover.delayed_retry), recovered or not.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{LabelDomain}),
		txReplays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "failover_transaction_replays_total",
			Help: "Transactions whose backend connection died (failover.transaction_replay), by outcome: " +
				"replayed (every result matched; the client noticed nothing), mismatch (a result differed), " +
				"too_large (over transaction_replay_max_size), not_replayable (a statement that cannot be replayed, " +
				"or the statement in flight may have committed), failed (no backend in time, or it failed again).",
		}, []string{LabelDomain, "outcome"}),
	}
}

func (r *routing) collectors() []prometheus.Collector {
	return []prometheus.Collector{r.decisions, r.lag, r.nodeState, r.probeFailures, r.writerChanges,
		r.delayedRetries, r.delayedWaiting, r.delayedWait, r.txReplays}
}

// DelayedStatement records the end of a statement's wait for a backend
// (outcome recovered, timed_out or overflow) and how long it waited.
func (p *Proxy) DelayedStatement(domain, outcome string, waited float64) {
	p.routing.delayedRetries.WithLabelValues(domain, outcome).Inc()
	if outcome != "overflow" {
		p.routing.delayedWait.WithLabelValues(domain).Observe(waited)
	}
}

// DelayedWaiting moves the number of statements waiting for a backend.
func (p *Proxy) DelayedWaiting(domain string, delta int) {
	p.routing.delayedWaiting.WithLabelValues(domain).Add(float64(delta))
}

// TransactionReplay records the outcome of a lost transaction's replay.
func (p *Proxy) TransactionReplay(domain, outcome string) {
	p.routing.txReplays.WithLabelValues(domain, outcome).Inc()
}

type routeKey struct{ domain, target, rule string }

// RouteDecision counts one read/write splitting decision. Cached: no
// allocation once a (domain, target, rule) was seen.
func (p *Proxy) RouteDecision(domain, target, rule string) {
	k := routeKey{domain, target, rule}
	v, ok := p.routes.Load(k)
	if !ok {
		v, _ = p.routes.LoadOrStore(k, p.routing.decisions.WithLabelValues(domain, target, rule))
	}
	v.(prometheus.Counter).Inc()
}

// Discovery returns the discovery monitor's metrics sink for a listener.
func (p *Proxy) Discovery(domain string) *DiscoveryMetrics {
	return &DiscoveryMetrics{p: p, domain: domain}
}

// DiscoveryMetrics implements the discovery monitor's Metrics interface.
type DiscoveryMetrics struct {
	p      *Proxy
	domain string
}

// ProbeResult counts failed probes.
func (d *DiscoveryMetrics) ProbeResult(node, monitor string, ok bool) {
	if !ok {
		d.p.routing.probeFailures.WithLabelValues(d.domain, node, monitor).Inc()
	}
}

// ReplicationLag records a replica's lag.
func (d *DiscoveryMetrics) ReplicationLag(node string, seconds float64, known bool) {
	if !known {
		seconds = -1
	}
	d.p.routing.lag.WithLabelValues(d.domain, node).Set(seconds)
}

// NodeState records a node's state.
func (d *DiscoveryMetrics) NodeState(node, state string) {
	for _, s := range NodeStates {
		v := 0.0
		if s == state {
			v = 1
		}
		d.p.routing.nodeState.WithLabelValues(d.domain, node, s).Set(v)
	}
}

// WriterChanged counts failovers.
func (d *DiscoveryMetrics) WriterChanged(from, to string) {
	d.p.routing.writerChanges.WithLabelValues(d.domain).Inc()
}
