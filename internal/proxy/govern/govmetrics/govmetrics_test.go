package govmetrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type src []Sample

func (s src) AppendSamples(dst []Sample) []Sample { return append(dst, s...) }

func TestLiveSources(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	rm := m.AddSource(src{
		{Metric: InFlight, Domain: "d", Label: "r", Value: 2},
		{Metric: QueueLength, Domain: "d", Label: "r", Value: 1},
		{Metric: BreakerState, Domain: "d", Label: "h:1", Value: 2},
		{Metric: TopFingerprint, Domain: "d", Label: "other", Value: 1.5},
	})
	// A duplicate series from a second source (reload overlap) is dropped.
	rm2 := m.AddSource(src{{Metric: InFlight, Domain: "d", Label: "r", Value: 9}})
	m.Rejection("d", "r", ReasonCircuitBreak).Inc()
	want := `
# HELP pisa_proxy_concurrency_in_flight Statements holding a concurrency_control slot right now, by rule.
# TYPE pisa_proxy_concurrency_in_flight gauge
pisa_proxy_concurrency_in_flight{domain="d",rule="r"} 2
# HELP pisa_proxy_concurrency_queue_length Statements waiting for a concurrency_control slot right now, by rule.
# TYPE pisa_proxy_concurrency_queue_length gauge
pisa_proxy_concurrency_queue_length{domain="d",rule="r"} 1
# HELP pisa_proxy_endpoint_breaker_state Error breaker state of a backend endpoint: 0 closed, 1 half-open, 2 open.
# TYPE pisa_proxy_endpoint_breaker_state gauge
pisa_proxy_endpoint_breaker_state{domain="d",server="h:1"} 2
# HELP pisa_proxy_rule_rejections_total Statements rejected by a governance rule (access, circuit_break, concurrency_control), by rule and reason.
# TYPE pisa_proxy_rule_rejections_total counter
pisa_proxy_rule_rejections_total{domain="d",reason="circuit_break",rule="r"} 1
# HELP pisa_proxy_top_fingerprint_duration_seconds_total Time spent executing statements, for the top fingerprints by time (bounded; the rest is digest="other").
# TYPE pisa_proxy_top_fingerprint_duration_seconds_total counter
pisa_proxy_top_fingerprint_duration_seconds_total{digest="other",domain="d"} 1.5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	rm()
	rm2()
	rm()
	if n, err := testutil.GatherAndCount(reg, "pisa_proxy_concurrency_in_flight"); err != nil || n != 0 {
		t.Errorf("after remove: %d %v", n, err)
	}
	m.AddSource(src{{Metric: TopFingerprint, Domain: "d", Label: "other", Value: 1}})
	if problems, err := testutil.CollectAndLint(m.live); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestNil(t *testing.T) {
	var m *Metrics
	m.Rejection("a", "b", "c").Inc()
	m.DryRunHit("a", "b", "c").Inc()
	m.AuditRecords("a").Inc()
	m.AuditDropped("a").Inc()
	m.AddSource(src{})()
}
