package inject

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Values of the result label of pisa_controller_webhook_requests_total.
const (
	// ResultInjected: the pod was admitted with the sidecar patch.
	ResultInjected = "injected"
	// ResultSkipped: admitted without a patch (already injected, not a pod creation).
	ResultSkipped = "skipped"
	// ResultError: the pod was refused (undecodable, no application name) or the request was
	// malformed (HTTP 4xx/5xx).
	ResultError = "error"
)

// Metrics counts the webhook's admission requests by outcome:
//
//	pisa_controller_webhook_requests_total{result="injected|skipped|error"}
//
// It is a prometheus.Collector: register it once (pisa-controller registers it on
// controller-runtime's metrics.Registry) and pass it in Options.Metrics. A nil *Metrics counts
// nothing.
type Metrics struct {
	requests *prometheus.CounterVec
}

// NewMetrics returns the webhook's collectors, every result already present at 0 so that rates
// and alerts work before the first request of a kind.
func NewMetrics() *Metrics {
	m := &Metrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pisa_controller_webhook_requests_total",
		Help: "Admission requests answered by the sidecar injection webhook, by result: " +
			"injected (patched), skipped (admitted unchanged) or error (refused or malformed).",
	}, []string{"result"})}
	for _, r := range []string{ResultInjected, ResultSkipped, ResultError} {
		m.requests.WithLabelValues(r)
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { m.requests.Describe(ch) }

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) { m.requests.Collect(ch) }

// Requests returns the counter of one result (for tests and callers that read it directly).
func (m *Metrics) Requests(result string) prometheus.Counter {
	return m.requests.WithLabelValues(result)
}

func (m *Metrics) count(result string) {
	if m != nil {
		m.requests.WithLabelValues(result).Inc()
	}
}
