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
	}
}

func (r *routing) collectors() []prometheus.Collector {
	return []prometheus.Collector{r.decisions, r.lag, r.nodeState, r.probeFailures, r.writerChanges}
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
