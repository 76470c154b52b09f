package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/database-mesh/pisanix-go/internal/metrics"
)

// parserCollector exports the statement classifier's cache and error
// counters at scrape time (nothing is counted per statement).
type parserCollector struct {
	p                                 *Proxy
	hits, normHits, misses, evictions *prometheus.Desc
	errs, rewr, entries, bytes        *prometheus.Desc
}

// ParserCollector returns a collector for the SQL parser cache:
// pisa_proxy_sqlparse_cache_{hits,normalized_hits,misses,evictions}_total,
// pisa_proxy_sqlparse_errors_total (statements the parser rejected; they are
// still forwarded, routed as writes), pisa_proxy_sqlparse_rewrites_total,
// pisa_proxy_sqlparse_cache_entries and _bytes.
func (p *Proxy) ParserCollector() prometheus.Collector { return p.parserCollector() }

// StmtMetaCollector returns a collector for the listeners' prepare metadata
// caches, pisa_proxy_stmt_metadata_cache_* (stmtmeta.go).
func (p *Proxy) StmtMetaCollector() prometheus.Collector { return newStmtMetaCollector(p) }

func (p *Proxy) parserCollector() *parserCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(metrics.Namespace+"_sqlparse_"+name, help, nil, nil)
	}
	return &parserCollector{p: p,
		hits:      d("cache_hits_total", "SQL texts classified from the cache (normalized hits included)."),
		normHits:  d("cache_normalized_hits_total", "SQL texts classified from the cache entry of a text that differs from them only in literal values."),
		misses:    d("cache_misses_total", "SQL texts parsed (not in the cache)."),
		evictions: d("cache_evictions_total", "Entries evicted from the parser cache."),
		errs:      d("errors_total", "Statements the SQL parser rejected (forwarded anyway and routed as writes)."),
		rewr:      d("rewrites_total", "MariaDB-only syntax rewritten before parsing."),
		entries:   d("cache_entries", "Entries in the parser cache."),
		bytes:     d("cache_bytes", "Estimated memory held by the parser cache."),
	}
}

func (c *parserCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hits, c.normHits, c.misses, c.evictions, c.errs, c.rewr, c.entries, c.bytes} {
		ch <- d
	}
}

func (c *parserCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.p.parser.Stats()
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(st.Hits))
	ch <- prometheus.MustNewConstMetric(c.normHits, prometheus.CounterValue, float64(st.NormalizedHits))
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(st.Misses))
	ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(st.Evictions))
	ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(st.Errors))
	ch <- prometheus.MustNewConstMetric(c.rewr, prometheus.CounterValue, float64(st.Rewrites))
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(st.Entries))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes))
}
