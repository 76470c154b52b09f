// Package circuit implements circuit-break rules: statements matching a
// rule are rejected with ERR 1047 (08S01) naming the rule.
//
// A rule matches a statement when any of its regexps matches the statement
// text (unanchored Go RE2 syntax; case_insensitive adds the (?i) flag), or
// when the statement's fingerprint or digest is one of its fingerprints.
// Rules are checked in order; the first matching rule that is not dry_run
// rejects. A dry_run rule that matches is counted
// (pisa_proxy_rule_dry_run_hits_total) and the statement goes on.
//
// The rules are proxyconfig.CircuitBreak ([[proxy.config.plugin.circuit_break]]:
// Pisanix's regex, case_insensitive, plus name, fingerprint and dry_run).
package circuit

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/govmetrics"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/internal/rxmatch"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// Options are the compile-time dependencies of a Set.
type Options struct {
	Domain  string              // listener name, the metrics "domain" label
	Metrics *govmetrics.Metrics // may be nil
	// Normalize turns a configured fingerprint that is not a digest into
	// the sqlparse fingerprint form (nil: used as written, trimmed).
	Normalize func(string) string
}

// Compiled is a compiled rule. It is immutable.
type Compiled struct {
	Index  int // position in the Set
	Name   string
	DryRun bool
	// Err is the error sent to the client (shared, do not modify).
	Err *mysql.Error

	rejections prometheus.Counter
	dryRunHits prometheus.Counter
}

// Set is a compiled list of rules, immutable and safe for concurrent use.
type Set struct {
	rules []Compiled
	m     *rxmatch.Set
}

// Compile compiles rules. It fails on what proxyconfig.ValidateCircuitBreaks
// refuses, and on a fingerprint that Normalize turns into nothing.
func Compile(rules []proxyconfig.CircuitBreak, o Options) (*Set, error) {
	if err := proxyconfig.ValidateCircuitBreaks(rules); err != nil {
		return nil, err
	}
	s := &Set{rules: make([]Compiled, len(rules))}
	mr := make([]proxyconfig.MatchSpec, len(rules))
	for i, r := range rules {
		name := r.Name
		if name == "" {
			name = proxyconfig.CircuitBreakName(i)
		}
		mr[i] = r.MatchSpec
		s.rules[i] = Compiled{
			Index:  i,
			Name:   name,
			DryRun: r.DryRun,
			Err:    mysql.NewError(mysql.ErrCodeUnknownCom, "08S01", "audit plugin rejected: circuit_break rule %q", name),
		}
	}
	m, err := rxmatch.Compile(mr, proxyconfig.CircuitBreakName, o.Normalize)
	if err != nil {
		return nil, err
	}
	s.m = m
	for i := range s.rules {
		c := &s.rules[i]
		// Only the series a rule can move exist (at 0 from the start).
		if c.DryRun {
			c.dryRunHits = o.Metrics.DryRunHit(o.Domain, c.Name, govmetrics.ReasonCircuitBreak)
		} else {
			c.rejections = o.Metrics.Rejection(o.Domain, c.Name, govmetrics.ReasonCircuitBreak)
		}
	}
	return s, nil
}

// Len is the number of rules.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Rule returns rule i.
func (s *Set) Rule(i int) *Compiled { return &s.rules[i] }

// Check returns the first matching rule that is not dry_run (nil: the
// statement passes); the rejection is counted. Dry-run rules that match
// before it are counted too;
// the first of them is returned as dry (for logging and audit). f may be
// nil. Check does not allocate.
func (s *Set) Check(sql string, f *sqlparse.Facts) (reject, dry *Compiled) {
	if s == nil || s.m.Empty() {
		return nil, nil
	}
	for i := s.m.Next(sql, f, 0); i >= 0; i = s.m.Next(sql, f, i+1) {
		c := &s.rules[i]
		if !c.DryRun {
			c.rejections.Inc()
			return c, dry
		}
		c.dryRunHits.Inc()
		if dry == nil {
			dry = c
		}
	}
	return nil, dry
}
