package controller

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are pisa-controller's own metrics (docs/metrics.md).
type Metrics struct {
	version  *prometheus.GaugeVec
	sidecars *prometheus.GaugeVec
	builds   *prometheus.CounterVec
}

// NewMetrics returns unregistered metrics; Register adds them to a registry.
func NewMetrics() *Metrics {
	return &Metrics{
		version: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pisa_controller_proxy_config_version",
			Help: "Version of the proxy configuration currently served for an application.",
		}, []string{"namespace", "app"}),
		sidecars: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pisa_controller_sidecars",
			Help: "Sidecars of an application by state: current (applied the served version), stale (run an older one), rejected (refused their last configuration).",
		}, []string{"namespace", "app", "state"}),
		builds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pisa_controller_config_builds_total",
			Help: "Proxy configuration builds by result: changed, unchanged, held (a service could not be built, the last configuration keeps serving) or error.",
		}, []string{"namespace", "app", "result"}),
	}
}

// Register adds the metrics to reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.version, m.sidecars, m.builds} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// forget drops the series of a removed application.
func (m *Metrics) forget(ns, app string) {
	l := prometheus.Labels{"namespace": ns, "app": app}
	m.version.DeletePartialMatch(l)
	m.sidecars.DeletePartialMatch(l)
	m.builds.DeletePartialMatch(l)
}
