package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PoolStats is a snapshot of one backend connection pool: the pool of
// node (its [[mysql.node]] name) at server (host:port) used by domain.
// Several nodes may share one server (a schema per node on one MariaDB), so
// the node name is part of the identity.
type PoolStats struct {
	Domain, Node, Server string

	MaxOpen int // maximum open connections; 0 means unlimited
	Open    int // open connections, in use or idle
	Idle    int // idle connections
	InUse   int // connections lent to sessions

	WaitCount    int64         // total times a session waited for a connection
	WaitDuration time.Duration // total time sessions waited
	Timeouts     int64         // total waits that gave up
	Closed       int64         // total connections closed by the pool
}

type poolCollector struct {
	src func() []PoolStats

	maxOpen, open, idle, inUse           *prometheus.Desc
	waits, waitSeconds, timeouts, closed *prometheus.Desc
}

// NewPoolCollector returns a collector that calls src on every scrape and
// exports the pisa_proxy_backend_pool_* metrics, labelled {domain, node,
// server}. src must be safe for concurrent use and return at most one entry
// per (domain, node) pair; it may return nil.
func NewPoolCollector(src func() []PoolStats) prometheus.Collector {
	labels := []string{LabelDomain, LabelNode, LabelServer}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "backend_pool", name), help, labels, nil)
	}
	return &poolCollector{
		src:         src,
		maxOpen:     d("max_open_connections", "Maximum open connections of the pool (0 = unlimited)."),
		open:        d("open_connections", "Open connections of the pool, in use or idle."),
		idle:        d("idle_connections", "Idle connections of the pool."),
		inUse:       d("in_use_connections", "Connections of the pool in use by sessions."),
		waits:       d("wait_total", "Times a session waited for a connection from the pool."),
		waitSeconds: d("wait_duration_seconds_total", "Total time sessions waited for a connection from the pool, in seconds."),
		timeouts:    d("wait_timeouts_total", "Waits for a connection from the pool that timed out."),
		closed:      d("closed_total", "Connections closed by the pool."),
	}
}

// Describe implements prometheus.Collector.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.maxOpen, c.open, c.idle, c.inUse, c.waits, c.waitSeconds, c.timeouts, c.closed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.src() {
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, s.Domain, s.Node, s.Server)
		}
		counter := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, s.Domain, s.Node, s.Server)
		}
		gauge(c.maxOpen, float64(s.MaxOpen))
		gauge(c.open, float64(s.Open))
		gauge(c.idle, float64(s.Idle))
		gauge(c.inUse, float64(s.InUse))
		counter(c.waits, float64(s.WaitCount))
		counter(c.waitSeconds, s.WaitDuration.Seconds())
		counter(c.timeouts, float64(s.Timeouts))
		counter(c.closed, float64(s.Closed))
	}
}
