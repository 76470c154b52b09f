// Package govmetrics holds the Prometheus collectors of the governance
// chain (access control, circuit break, concurrency control, endpoint
// breakers, audit and top fingerprints).
//
// Counters are ordinary CounterVecs: they move only when a rule rejects or a
// dry-run rule hits, never on the pass path. Gauges that follow live state
// (statements in flight per rule, wait-queue length, breaker state, top
// fingerprints) are not updated per statement at all: the packages that own
// that state register a [Source] and are read at scrape time.
//
// A nil *Metrics is valid everywhere and records nothing.
package govmetrics

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Namespace is the prefix of every metric name.
const Namespace = "pisa_proxy"

// Label names.
const (
	LabelDomain = "domain" // listener name
	LabelRule   = "rule"   // rule name
	LabelReason = "reason" // why a statement was rejected
	LabelServer = "server" // backend endpoint host:port
	LabelDigest = "digest" // statement fingerprint digest, or "other"
)

// Rejection reasons (the "reason" label).
const (
	ReasonCircuitBreak = "circuit_break"     // circuit_break rule matched
	ReasonConcurrency  = "concurrency_limit" // max_concurrency reached, no wait queue
	ReasonQueueFull    = "queue_full"        // max_concurrency reached and max_queue waiting
	ReasonQueueTimeout = "queue_timeout"     // waited wait_timeout without getting a slot
	ReasonCanceled     = "canceled"          // the client went away while waiting
	ReasonSchema       = "access_schema"     // schema not allowed for the user
	ReasonTable        = "access_table"      // table not allowed for the user
	ReasonKind         = "access_kind"       // statement kind not allowed for the user
	ReasonUnparsed     = "access_unparsed"   // statement could not be analysed for a restricted user
)

// Gauge identifies a live-state series reported by a [Source].
type Gauge uint8

const (
	// InFlight is pisa_proxy_concurrency_in_flight{domain,rule}.
	InFlight Gauge = iota
	// QueueLength is pisa_proxy_concurrency_queue_length{domain,rule}.
	QueueLength
	// BreakerState is pisa_proxy_endpoint_breaker_state{domain,server}.
	BreakerState
	// TopFingerprint is pisa_proxy_top_fingerprint_duration_seconds_total{domain,digest}
	// (a counter).
	TopFingerprint
	numGauges
)

// Sample is one value of a live series. Label is the rule, server or digest
// depending on Metric.
type Sample struct {
	Metric Gauge
	Domain string
	Label  string
	Value  float64
}

// Source reports live series at scrape time. AppendSamples must be safe
// for concurrent use with the data path.
type Source interface {
	AppendSamples(dst []Sample) []Sample
}

// Metrics is the set of governance collectors. Create one per process with
// [New]; share it between listeners (series carry the domain label).
type Metrics struct {
	rejections   *prometheus.CounterVec
	dryRunHits   *prometheus.CounterVec
	auditRecords *prometheus.CounterVec
	auditDropped *prometheus.CounterVec

	live *liveCollector
}

// New creates the collectors and registers them with reg (nil: not
// registered, useful in tests). It panics if registration fails, like
// MustRegister.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "rule_rejections_total",
			Help:      "Statements rejected by a governance rule (access, circuit_break, concurrency_control), by rule and reason.",
		}, []string{LabelDomain, LabelRule, LabelReason}),
		dryRunHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "rule_dry_run_hits_total",
			Help:      "Statements a dry_run rule would have rejected (they were let through), by rule and reason.",
		}, []string{LabelDomain, LabelRule, LabelReason}),
		auditRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "audit_records_total",
			Help:      "Audit records queued for writing.",
		}, []string{LabelDomain}),
		auditDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "audit_dropped_total",
			Help:      "Audit records dropped because the audit writer could not keep up.",
		}, []string{LabelDomain}),
		live: newLiveCollector(),
	}
	if reg != nil {
		reg.MustRegister(m.rejections, m.dryRunHits, m.auditRecords, m.auditDropped, m.live)
	}
	return m
}

var discard = prometheus.NewCounter(prometheus.CounterOpts{Name: "discard", Help: "unregistered"})

// Rejection returns the rejection counter of (domain, rule, reason).
func (m *Metrics) Rejection(domain, rule, reason string) prometheus.Counter {
	if m == nil {
		return discard
	}
	return m.rejections.WithLabelValues(domain, rule, reason)
}

// DryRunHit returns the dry-run counter of (domain, rule, reason).
func (m *Metrics) DryRunHit(domain, rule, reason string) prometheus.Counter {
	if m == nil {
		return discard
	}
	return m.dryRunHits.WithLabelValues(domain, rule, reason)
}

// AuditRecords returns the counter of queued audit records of domain.
func (m *Metrics) AuditRecords(domain string) prometheus.Counter {
	if m == nil {
		return discard
	}
	return m.auditRecords.WithLabelValues(domain)
}

// AuditDropped returns the counter of dropped audit records of domain.
func (m *Metrics) AuditDropped(domain string) prometheus.Counter {
	if m == nil {
		return discard
	}
	return m.auditDropped.WithLabelValues(domain)
}

// AddSource registers a live-state source; the returned function removes
// it. Safe to call on a nil *Metrics.
func (m *Metrics) AddSource(s Source) (remove func()) {
	if m == nil || s == nil {
		return func() {}
	}
	return m.live.add(s)
}

// liveCollector turns Sources into const metrics at scrape time.
type liveCollector struct {
	descs [numGauges]*prometheus.Desc
	types [numGauges]prometheus.ValueType

	mu      sync.Mutex
	next    uint64
	sources map[uint64]Source
}

func newLiveCollector() *liveCollector {
	c := &liveCollector{sources: map[uint64]Source{}}
	c.descs[InFlight] = prometheus.NewDesc(Namespace+"_concurrency_in_flight",
		"Statements holding a concurrency_control slot right now, by rule.",
		[]string{LabelDomain, LabelRule}, nil)
	c.descs[QueueLength] = prometheus.NewDesc(Namespace+"_concurrency_queue_length",
		"Statements waiting for a concurrency_control slot right now, by rule.",
		[]string{LabelDomain, LabelRule}, nil)
	c.descs[BreakerState] = prometheus.NewDesc(Namespace+"_endpoint_breaker_state",
		"Error breaker state of a backend endpoint: 0 closed, 1 half-open, 2 open.",
		[]string{LabelDomain, LabelServer}, nil)
	c.descs[TopFingerprint] = prometheus.NewDesc(Namespace+"_top_fingerprint_duration_seconds_total",
		"Time spent executing statements, for the top fingerprints by time (bounded; the rest is digest=\"other\").",
		[]string{LabelDomain, LabelDigest}, nil)
	c.types = [numGauges]prometheus.ValueType{prometheus.GaugeValue, prometheus.GaugeValue, prometheus.GaugeValue, prometheus.CounterValue}
	return c
}

func (c *liveCollector) add(s Source) func() {
	c.mu.Lock()
	id := c.next
	c.next++
	c.sources[id] = s
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			delete(c.sources, id)
			c.mu.Unlock()
		})
	}
}

func (c *liveCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *liveCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	ids := make([]uint64, 0, len(c.sources))
	for id := range c.sources {
		ids = append(ids, id)
	}
	// Oldest source first, so that "keep the first" is deterministic.
	slices.Sort(ids)
	srcs := make([]Source, 0, len(ids))
	for _, id := range ids {
		srcs = append(srcs, c.sources[id])
	}
	c.mu.Unlock()
	var buf []Sample
	seen := map[[3]string]bool{}
	for _, s := range srcs {
		buf = s.AppendSamples(buf[:0])
		for _, smp := range buf {
			if smp.Metric >= numGauges {
				continue
			}
			// Two sources may report the same series during a reload
			// (old and new runtime); the registry rejects duplicates, so
			// keep the first.
			k := [3]string{string(rune('0' + smp.Metric)), smp.Domain, smp.Label}
			if seen[k] {
				continue
			}
			seen[k] = true
			ch <- prometheus.MustNewConstMetric(c.descs[smp.Metric], c.types[smp.Metric], smp.Value, smp.Domain, smp.Label)
		}
	}
}
