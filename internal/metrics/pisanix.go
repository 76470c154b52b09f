package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Pisanix's series, exported as well when EnablePisanixNames is called (the
// compatibility switch --pisanix-metrics): dashboards and alerts written for
// Pisanix keep working unchanged.
//
//	sql_processed_total               counter    (Pisanix ≤ v0.3.2)
//	sql_processed_duration            histogram  (Pisanix ≤ v0.3.2, seconds, Prometheus default buckets)
//	sql_under_processing              gauge      (Pisanix ≤ v0.3.2)
//	pisa_proxy_sql_processed_duration histogram  (Pisanix master's name of the histogram)
//
// All have the labels domain, type and server with Pisanix's values: type is
// COM_PREPARE and COM_EXECUTE where pisa-proxy says COM_STMT_PREPARE and
// COM_STMT_EXECUTE. Pisanix master's counter and gauge names are the ones
// pisa-proxy uses anyway (pisa_proxy_sql_processed_total,
// pisa_proxy_sql_under_processing).
type pisanixMetrics struct {
	processed      *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	underProc      *prometheus.GaugeVec
	durationMaster *prometheus.HistogramVec
}

// PisanixType returns Pisanix's value of the type label for a command type.
func PisanixType(typ string) string {
	switch typ {
	case TypeStmtPrepare:
		return "COM_PREPARE"
	case TypeStmtExecute:
		return "COM_EXECUTE"
	}
	return typ
}

// EnablePisanixNames registers Pisanix's series with reg and records every
// command in them too from now on. Call it once, before the first command.
func (p *Proxy) EnablePisanixNames(reg prometheus.Registerer) {
	labels := []string{LabelDomain, LabelType, LabelServer}
	m := &pisanixMetrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sql_processed_total",
			Help: "Pisanix name of pisa_proxy_sql_processed_total (--pisanix-metrics).",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sql_processed_duration",
			Help:    "Pisanix name of pisa_proxy_sql_processed_duration_seconds, in seconds with Pisanix's buckets (--pisanix-metrics).",
			Buckets: prometheus.DefBuckets,
		}, labels),
		underProc: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sql_under_processing",
			Help: "Pisanix name of pisa_proxy_sql_under_processing (--pisanix-metrics).",
		}, labels),
		durationMaster: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "sql_processed_duration",
			Help:      "Pisanix master's name of pisa_proxy_sql_processed_duration_seconds, in seconds with Pisanix's buckets (--pisanix-metrics).",
			Buckets:   prometheus.DefBuckets,
		}, labels),
	}
	if reg != nil {
		reg.MustRegister(m.processed, m.duration, m.underProc, m.durationMaster)
	}
	p.pisanix = m
}

func (m *pisanixMetrics) command(k commandKey) *pisanixCommand {
	typ := PisanixType(k.typ)
	return &pisanixCommand{
		processed:      m.processed.WithLabelValues(k.domain, typ, k.server),
		duration:       m.duration.WithLabelValues(k.domain, typ, k.server),
		inFlight:       m.underProc.WithLabelValues(k.domain, typ, k.server),
		durationMaster: m.durationMaster.WithLabelValues(k.domain, typ, k.server),
	}
}

func (m *pisanixMetrics) forget(match prometheus.Labels) {
	m.processed.DeletePartialMatch(match)
	m.duration.DeletePartialMatch(match)
	m.underProc.DeletePartialMatch(match)
	m.durationMaster.DeletePartialMatch(match)
}

type pisanixCommand struct {
	processed      prometheus.Counter
	duration       prometheus.Observer
	inFlight       prometheus.Gauge
	durationMaster prometheus.Observer
}
