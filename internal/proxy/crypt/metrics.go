package crypt

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the security claim's Prometheus metrics, shared by every
// listener (labelled by domain, the listener name).
type Metrics struct {
	ops      *prometheus.CounterVec
	refusals *prometheus.CounterVec
	failures *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pisa_proxy",
			Name:      "security_claim_operations_total",
			Help:      "Values processed by the security claim, by domain and operation: encrypt, decrypt, assist (HMAC of an assisted column), mask.",
		}, []string{"domain", "op"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pisa_proxy",
			Name:      "security_claim_refusals_total",
			Help:      "Statements refused with ERR 1235 because they cannot be answered on encrypted columns, by domain.",
		}, []string{"domain"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pisa_proxy",
			Name:      "security_claim_decrypt_failures_total",
			Help:      "Stored values that did not decrypt (not ciphertext, unknown key id, failed authentication), by domain; the client got an error, never the stored bytes.",
		}, []string{"domain"}),
	}
	if reg != nil {
		reg.MustRegister(m.ops, m.refusals, m.failures)
	}
	return m
}

// counter is a Prometheus counter or nothing (no metrics configured).
type counter struct{ c prometheus.Counter }

func (c counter) add(n int) {
	if c.c != nil && n > 0 {
		c.c.Add(float64(n))
	}
}

// Bind makes the schema count its operations in m under domain.
func (s *Schema) Bind(m *Metrics, domain string) {
	if s == nil || m == nil {
		return
	}
	s.cEncrypt = counter{m.ops.WithLabelValues(domain, "encrypt")}
	s.cDecrypt = counter{m.ops.WithLabelValues(domain, "decrypt")}
	s.cAssist = counter{m.ops.WithLabelValues(domain, "assist")}
	s.cMask = counter{m.ops.WithLabelValues(domain, "mask")}
	s.cRefusal = counter{m.refusals.WithLabelValues(domain)}
	s.cFailure = counter{m.failures.WithLabelValues(domain)}
}

// CountRefusal counts a refused statement.
func (s *Schema) CountRefusal() { s.cRefusal.add(1) }

// CountDecryptFailure counts a stored value that did not decrypt.
func (s *Schema) CountDecryptFailure() { s.cFailure.add(1) }

// CountTransformed counts the values a Transformer decrypted and masked
// since its counters were reset.
func (s *Schema) CountTransformed(t *Transformer) {
	s.cDecrypt.add(int(t.Decrypted))
	s.cMask.add(int(t.MaskedN))
}

// Forget drops the series of a listener that is gone.
func (m *Metrics) Forget(domain string) {
	if m == nil {
		return
	}
	match := prometheus.Labels{"domain": domain}
	m.ops.DeletePartialMatch(match)
	m.refusals.DeletePartialMatch(match)
	m.failures.DeletePartialMatch(match)
}
