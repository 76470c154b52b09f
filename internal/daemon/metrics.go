package daemon

import (
	"log/slog"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/database-mesh/pisanix-go/internal/daemonconfig"
)

// Metrics are pisa-daemon's Prometheus metrics. A nil *Metrics is valid
// and records nothing.
//
//	pisa_daemon_class_bytes_total{app,service,device}       bytes sent through the class
//	pisa_daemon_class_packets_total{app,service,device}     packets sent through the class
//	pisa_daemon_class_drops_total{app,service,device}       packets dropped by the class
//	pisa_daemon_class_overlimits_total{app,service,device}  times the class was throttled
//	pisa_daemon_class_rate_bits{app,service}                configured rate, bits/s
//	pisa_daemon_class_ceil_bits{app,service}                configured ceil, bits/s
//	pisa_daemon_reconciles_total                            reconciles run
//	pisa_daemon_reconcile_errors_total{reason}              skipped config parts and apply failures
//	pisa_daemon_config_problems                             config parts skipped by the last reconcile
//	pisa_daemon_config_version                              last applied controller version (numeric ones)
//	pisa_daemon_config_fetch_errors_total                   failed controller fetches or file reloads
//
// The class counters are read from the kernel (netlink class statistics)
// at scrape time.
type Metrics struct {
	reconciles      prometheus.Counter
	reconcileErrors *prometheus.CounterVec
	problems        prometheus.Gauge
	version         prometheus.Gauge
	fetchErrors     prometheus.Counter
	rate, ceil      *prometheus.GaugeVec

	mu      sync.Mutex
	current map[ClassKey]bool
}

// NewMetrics registers the metrics on reg. stats, if non-nil, is called at
// each scrape for the class counters.
func NewMetrics(reg prometheus.Registerer, stats func() ([]ClassStats, error), log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.Default()
	}
	m := &Metrics{
		reconciles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pisa_daemon_reconciles_total", Help: "Reconciles run."}),
		reconcileErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pisa_daemon_reconcile_errors_total",
			Help: "Configuration parts skipped (invalid_rate, invalid_endpoint, resolve, conflict, …) and failed applies (apply), per reconcile."},
			[]string{"reason"}),
		problems: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pisa_daemon_config_problems", Help: "Configuration parts skipped by the last reconcile."}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pisa_daemon_config_version", Help: "Version of the last applied controller configuration (0 if not numeric or standalone)."}),
		fetchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pisa_daemon_config_fetch_errors_total", Help: "Failed configuration fetches from the controller or reloads of the file."}),
		rate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pisa_daemon_class_rate_bits", Help: "Configured class rate in bits per second."}, []string{"app", "service"}),
		ceil: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pisa_daemon_class_ceil_bits", Help: "Configured class ceil in bits per second."}, []string{"app", "service"}),
		current: map[ClassKey]bool{},
	}
	reg.MustRegister(m.reconciles, m.reconcileErrors, m.problems, m.version, m.fetchErrors, m.rate, m.ceil)
	if stats != nil {
		reg.MustRegister(&classCollector{stats: stats, log: log})
	}
	return m
}

func (m *Metrics) reconciled(cfg *daemonconfig.Config, problems int) {
	if m == nil {
		return
	}
	m.reconciles.Inc()
	m.problems.Set(float64(problems))
	v := 0.0
	if cfg != nil {
		if f, err := strconv.ParseFloat(cfg.Version, 64); err == nil {
			v = f
		}
	}
	m.version.Set(v)
}

func (m *Metrics) reconcileError(reason string) {
	if m == nil {
		return
	}
	m.reconcileErrors.WithLabelValues(reason).Inc()
}

// FetchError counts a failed fetch or reload of the configuration.
func (m *Metrics) FetchError() {
	if m == nil {
		return
	}
	m.fetchErrors.Inc()
}

func (m *Metrics) setClasses(classes []DesiredClass) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	next := map[ClassKey]bool{}
	for _, c := range classes {
		next[c.Key] = true
		m.rate.WithLabelValues(c.Key.App, c.Key.Service).Set(float64(c.Rate))
		m.ceil.WithLabelValues(c.Key.App, c.Key.Service).Set(float64(c.Ceil))
	}
	for k := range m.current {
		if !next[k] {
			m.rate.DeleteLabelValues(k.App, k.Service)
			m.ceil.DeleteLabelValues(k.App, k.Service)
		}
	}
	m.current = next
}

var (
	descBytes = prometheus.NewDesc("pisa_daemon_class_bytes_total",
		"Bytes sent through the service's HTB class.", []string{"app", "service", "device"}, nil)
	descPackets = prometheus.NewDesc("pisa_daemon_class_packets_total",
		"Packets sent through the service's HTB class.", []string{"app", "service", "device"}, nil)
	descDrops = prometheus.NewDesc("pisa_daemon_class_drops_total",
		"Packets dropped by the service's HTB class.", []string{"app", "service", "device"}, nil)
	descOverlimits = prometheus.NewDesc("pisa_daemon_class_overlimits_total",
		"Times the service's HTB class was over its limit (throttled).", []string{"app", "service", "device"}, nil)
)

type classCollector struct {
	stats func() ([]ClassStats, error)
	log   *slog.Logger
}

func (c *classCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBytes
	ch <- descPackets
	ch <- descDrops
	ch <- descOverlimits
}

func (c *classCollector) Collect(ch chan<- prometheus.Metric) {
	stats, err := c.stats()
	if err != nil {
		c.log.Warn("read class statistics", "err", err)
	}
	for _, s := range stats {
		l := []string{s.Key.App, s.Key.Service, s.Device}
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(s.Bytes), l...)
		ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(s.Packets), l...)
		ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(s.Drops), l...)
		ch <- prometheus.MustNewConstMetric(descOverlimits, prometheus.CounterValue, float64(s.Overlimits), l...)
	}
}
