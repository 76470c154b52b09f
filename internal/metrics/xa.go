package metrics

import "github.com/prometheus/client_golang/prometheus"

// xaMetrics are the metrics of cross-shard (XA) transactions.
type xaMetrics struct {
	transactions *prometheus.CounterVec
	recovered    *prometheus.CounterVec
	inDoubt      prometheus.Gauge
	logSync      prometheus.Histogram
}

func newXA() *xaMetrics {
	return &xaMetrics{
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "xa_transactions_total",
			Help: "Transactions on sharding listeners run with XA branches, by outcome: started, committed (two-phase), " +
				"committed_one_phase (one branch), rolled_back, failed (the commit failed before the decision: rolled back).",
		}, []string{LabelDomain, "outcome"}),
		recovered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace,
			Name:      "xa_recovered_branches_total",
			Help:      "Prepared XA branches of this proxy found by XA RECOVER and resolved, by decision (commit, rollback).",
		}, []string{"decision"}),
		inDoubt: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "xa_in_doubt_branches",
			Help:      "Prepared XA branches of this proxy left to recovery (a node failed during the commit phase), as of the last recovery pass.",
		}),
		logSync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "xa_decision_log_sync_seconds",
			Help:      "Time to write and fsync a commit decision to the XA decision log.",
			Buckets:   []float64{0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5},
		}),
	}
}

func (x *xaMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{x.transactions, x.recovered, x.inDoubt, x.logSync}
}

// XATransaction records an XA transaction event (see xa_transactions_total).
func (p *Proxy) XATransaction(domain, outcome string) {
	p.xa.transactions.WithLabelValues(domain, outcome).Inc()
}

// XARecovered records a prepared branch resolved by recovery.
func (p *Proxy) XARecovered(decision string) { p.xa.recovered.WithLabelValues(decision).Inc() }

// XAInDoubt sets the number of prepared branches awaiting recovery.
func (p *Proxy) XAInDoubt(n int) { p.xa.inDoubt.Set(float64(n)) }

// XALogSync records a decision log write.
func (p *Proxy) XALogSync(seconds float64) { p.xa.logSync.Observe(seconds) }
