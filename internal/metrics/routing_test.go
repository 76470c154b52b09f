package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRoutingMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	p := NewProxy(reg)
	p.RouteDecision("shop", "read", "generic")
	p.RouteDecision("shop", "read", "generic")
	p.RouteDecision("shop", "readwrite", "readwrite-required")
	d := p.Discovery("shop")
	d.ReplicationLag("r1", 3, true)
	d.ReplicationLag("r2", 0, false)
	d.NodeState("r1", "lagging")
	d.ProbeResult("r2", "ping", false)
	d.ProbeResult("r2", "ping", true)
	d.WriterChanged("p", "r1")
	want := `
# HELP pisa_proxy_route_decisions_total Statements routed by read/write splitting, by target role (read, readwrite) and rule.
# TYPE pisa_proxy_route_decisions_total counter
pisa_proxy_route_decisions_total{domain="shop",rule="generic",target="read"} 2
pisa_proxy_route_decisions_total{domain="shop",rule="readwrite-required",target="readwrite"} 1
# HELP pisa_proxy_replica_lag_seconds Seconds_Behind_Master of a replica as the discovery monitor last read it (-1 when NULL or unreadable).
# TYPE pisa_proxy_replica_lag_seconds gauge
pisa_proxy_replica_lag_seconds{domain="shop",node="r1"} 3
pisa_proxy_replica_lag_seconds{domain="shop",node="r2"} -1
# HELP pisa_proxy_discovery_probe_failures_total Failed discovery probes by node and monitor (connect, ping, read_only, replication_lag).
# TYPE pisa_proxy_discovery_probe_failures_total counter
pisa_proxy_discovery_probe_failures_total{domain="shop",monitor="ping",node="r2"} 1
# HELP pisa_proxy_writer_changes_total Times the discovery monitor changed the writer (failover).
# TYPE pisa_proxy_writer_changes_total counter
pisa_proxy_writer_changes_total{domain="shop"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"pisa_proxy_route_decisions_total", "pisa_proxy_replica_lag_seconds",
		"pisa_proxy_discovery_probe_failures_total", "pisa_proxy_writer_changes_total"); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(p.routing.nodeState.WithLabelValues("shop", "r1", "lagging")); v != 1 {
		t.Fatalf("node_state lagging = %v", v)
	}
	if v := testutil.ToFloat64(p.routing.nodeState.WithLabelValues("shop", "r1", "reader")); v != 0 {
		t.Fatalf("node_state reader = %v", v)
	}
	if n := testing.AllocsPerRun(100, func() { p.RouteDecision("shop", "read", "generic") }); n != 0 {
		t.Fatalf("RouteDecision allocates %v", n)
	}
}
