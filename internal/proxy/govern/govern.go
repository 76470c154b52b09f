// Package govern is the governance chain of a listener, run by the session
// for every statement, in a fixed order (like a CoreDNS plugin chain):
//
//	access control → circuit break → concurrency control → (route) → audit/metrics
//
// Each rule type lives in its own package (access, circuit, concurrency,
// audit, breaker, topn) with its table tests and fuzz test; the rules
// themselves are plain data in internal/proxyconfig. This package compiles
// a listener's [proxyconfig.Governance] into an immutable [Chain] and keeps, in a
// [State], what must survive reloads: concurrency slots and queues (keyed
// by rule name), top-fingerprint counters and metric sources.
//
// Per statement the session calls [Chain.Check] before routing and
// [Chain.Finish] after the response was sent. A statement that matches no
// rule costs no allocation and no lock.
//
// Reload: build the new chain with Compile(newCfg, sameState), swap it in
// atomically, then Close the old chain. A failed Compile changes nothing.
package govern

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/access"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/audit"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/circuit"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/concurrency"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/govmetrics"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/topn"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// DefaultTopFingerprints is the default of
// proxyconfig.Governance.TopFingerprints: the number of fingerprints
// exported by pisa_proxy_top_fingerprint_duration_seconds_total.
const DefaultTopFingerprints = 20

// Request is one command as seen by the chain. The session can keep one
// Request per connection and refill it for each command.
type Request struct {
	User   string
	Schema string // the session's current schema
	// SQL is the statement text (COM_QUERY, COM_STMT_PREPARE, and for
	// COM_STMT_EXECUTE the prepared text); the schema name for COM_INIT_DB;
	// the table for COM_FIELD_LIST. It may alias a reused buffer: the chain
	// copies what it keeps.
	SQL        string
	Facts      *sqlparse.Facts // nil when unknown
	Command    byte            // mysql.ComQuery...
	ClientAddr string
}

// Rejection is why a statement is refused. Send Err to the client; the
// session stays usable.
type Rejection struct {
	Rule   string
	Reason string // a govmetrics.Reason* value
	Err    *mysql.Error
}

func (r *Rejection) Error() string { return r.Err.Error() }

// Verdict is what the chain decided for an admitted statement. Pass it to
// Finish (or call Release) when the statement's response has been sent.
type Verdict struct {
	// MaxRows > 0: the user may read at most that many rows with this
	// SELECT (access max_rows); the session enforces it.
	MaxRows uint64

	permit   concurrency.Permit
	concRule string
	dryRun   string
}

// Release returns the concurrency slot held by the statement, if any. It
// is idempotent.
func (v *Verdict) Release() {
	v.permit.Release()
	v.permit = concurrency.Permit{}
}

// ConcurrencyRule is the concurrency_control rule whose slot the
// statement holds ("" if none).
func (v *Verdict) ConcurrencyRule() string { return v.concRule }

// DryRun is the first dry_run rule that would have rejected the statement
// ("" if none).
func (v *Verdict) DryRun() string { return v.dryRun }

// AppendRules appends the rule hits of v (for audit).
func (v *Verdict) AppendRules(dst []string) []string {
	if v.concRule != "" {
		dst = append(dst, v.concRule)
	}
	if v.dryRun != "" && v.dryRun != v.concRule {
		dst = append(dst, v.dryRun+" (dry_run)")
	}
	return dst
}

// Outcome is how an admitted statement ended.
type Outcome struct {
	Start    time.Time
	Duration time.Duration
	Rows     uint64   // rows returned or affected
	Err      error    // error sent to the client, nil on success
	Backend  string   // endpoint host:port
	Route    string   // routing decision, e.g. "read", "readwrite", "shard ds001"
	Masking  []string // masking rules applied to the results (security claim)
}

// StateOptions tune a State.
type StateOptions struct {
	Clock  func() time.Time // nil: time.Now
	Logger *slog.Logger     // nil: slog.Default()
}

// State is the part of governance that survives reloads. One per listener.
type State struct {
	domain  string
	metrics *govmetrics.Metrics
	log     *slog.Logger
	clock   func() time.Time
	conc    *concurrency.Registry
	top     *topn.Tracker
	remove  []func()
}

// NewState creates the state of listener domain and registers its live
// metrics with m (may be nil).
func NewState(domain string, m *govmetrics.Metrics, o StateOptions) *State {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &State{
		domain: domain, metrics: m, log: o.Logger, clock: o.Clock,
		conc: concurrency.NewRegistry(domain, o.Clock),
		top:  topn.New(domain, DefaultTopFingerprints),
	}
	s.remove = append(s.remove, m.AddSource(s.conc), m.AddSource(s.top))
	return s
}

// Concurrency exposes the concurrency registry (tests, admin).
func (s *State) Concurrency() *concurrency.Registry { return s.conc }

// Top exposes the top-fingerprint tracker (tests, admin).
func (s *State) Top() *topn.Tracker { return s.top }

// Close unregisters the state's metrics (listener removed).
func (s *State) Close() {
	for _, f := range s.remove {
		f()
	}
}

// Options tune Compile.
type Options struct {
	// Normalize turns configured fingerprints into sqlparse's form
	// (typically the fingerprint of the text parsed as SQL). Nil: used as
	// written.
	Normalize func(string) string
}

// Chain is a compiled, immutable governance config bound to a State.
type Chain struct {
	st      *State
	access  *access.Policy
	circuit *circuit.Set
	conc    *concurrency.Set
	audit   *audit.Logger

	circuitRej []Rejection              // per circuit rule, shared
	lastLog    map[string]*atomic.Int64 // dry-run log rate limit, by rule
}

// Compile builds the chain of cfg (nil: an empty chain that allows
// everything) on st. On error st is unchanged. It refuses what
// cfg.Validate refuses, and what only the data path can tell: a
// fingerprint that o.Normalize turns into nothing, an audit output that
// cannot be opened.
func Compile(cfg *proxyconfig.Governance, st *State, o Options) (*Chain, error) {
	if cfg == nil {
		cfg = &proxyconfig.Governance{}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Chain{st: st, lastLog: map[string]*atomic.Int64{}}
	var err error
	if cfg.Access != nil && len(cfg.Access.Users) > 0 {
		if c.access, err = access.Compile(cfg.Access, access.Options{Domain: st.domain, Metrics: st.metrics}); err != nil {
			return nil, err
		}
	}
	if c.circuit, err = circuit.Compile(cfg.CircuitBreak, circuit.Options{Domain: st.domain, Metrics: st.metrics, Normalize: o.Normalize}); err != nil {
		return nil, err
	}
	c.circuitRej = make([]Rejection, c.circuit.Len())
	for i := range c.circuitRej {
		r := c.circuit.Rule(i)
		c.circuitRej[i] = Rejection{Rule: r.Name, Reason: govmetrics.ReasonCircuitBreak, Err: r.Err}
		c.lastLog[r.Name] = new(atomic.Int64)
	}
	if c.audit, err = audit.Open(cfg.Audit, st.domain, st.metrics); err != nil {
		return nil, err
	}
	// Last: binds rules to the shared state; cannot fail after Validate.
	if c.conc, err = concurrency.Compile(cfg.ConcurrencyControl, st.conc, concurrency.Options{Metrics: st.metrics, Normalize: o.Normalize}); err != nil {
		c.audit.Close()
		return nil, err
	}
	for i := 0; i < c.conc.Len(); i++ {
		c.lastLog[c.conc.Rule(i).Name] = new(atomic.Int64)
	}
	n := cfg.TopFingerprints
	if n == 0 {
		n = DefaultTopFingerprints
	}
	st.top.SetN(n)
	return c, nil
}

// Close releases what the chain holds (its audit writer). Call it after
// the chain has been replaced.
func (c *Chain) Close() error {
	if c == nil {
		return nil
	}
	return c.audit.Close()
}

// Audit returns the chain's audit logger (nil when off).
func (c *Chain) Audit() *audit.Logger { return c.audit }

// AllowsAdmin reports whether the access rules let user run administrative
// commands (COM_REFRESH, COM_DEBUG). A nil chain allows everything.
func (c *Chain) AllowsAdmin(user string) bool { return c == nil || c.access.AllowsAdmin(user) }

// Password returns the password of a user listed in access.users.
func (c *Chain) Password(user string) (string, bool) { return c.access.Lookup(user) }

// CheckSchema checks that user may use schema (handshake, COM_INIT_DB,
// COM_CHANGE_USER).
func (c *Chain) CheckSchema(user, clientAddr, schema string) *Rejection {
	if d := c.access.CheckSchema(user, clientAddr, schema); d != nil {
		return &Rejection{Rule: d.Rule, Reason: d.Reason, Err: d.Err}
	}
	return nil
}

func isStatement(cmd byte) bool {
	return cmd == mysql.ComQuery || cmd == mysql.ComStmtPrepare || cmd == mysql.ComStmtExecute
}

// Check runs access control, circuit break and concurrency control for r.
// On rejection the statement must not be sent (nothing is held); the
// Rejection may be shared between calls and must not be modified. Otherwise
// the returned Verdict may hold a concurrency slot: pass it to Finish. It
// blocks only for a concurrency rule with wait_timeout, at most that long
// or until ctx is done. The pass path does not allocate.
func (c *Chain) Check(ctx context.Context, r *Request) (v Verdict, rej *Rejection) {
	if c.access != nil {
		mr, d := c.access.Check(r.User, r.Schema, r.ClientAddr, r.Command, r.SQL, r.Facts)
		if d != nil {
			rej = &Rejection{Rule: d.Rule, Reason: d.Reason, Err: d.Err}
			c.auditRejection(r, rej, &v)
			return Verdict{}, rej
		}
		v.MaxRows = mr
	}
	if !isStatement(r.Command) || r.SQL == "" {
		return v, nil
	}
	if c.circuit.Len() > 0 {
		cr, dry := c.circuit.Check(r.SQL, r.Facts)
		if dry != nil {
			v.dryRun = dry.Name
			c.logDryRun(r, dry.Name, govmetrics.ReasonCircuitBreak)
		}
		if cr != nil {
			rej = &c.circuitRej[cr.Index]
			c.auditRejection(r, rej, &v)
			return Verdict{}, rej
		}
	}
	if c.conc.Len() > 0 {
		p, rule, dry, cr := c.conc.Acquire(ctx, r.SQL, r.Facts)
		if cr != nil {
			rej = &Rejection{Rule: cr.Rule.Name, Reason: cr.Reason, Err: cr.Err}
			c.auditRejection(r, rej, &v)
			return Verdict{}, rej
		}
		v.permit = p
		if rule != nil {
			v.concRule = rule.Name
		}
		if dry && v.dryRun == "" {
			v.dryRun = rule.Name
			c.logDryRun(r, rule.Name, govmetrics.ReasonConcurrency)
		}
	}
	return v, nil
}

// Finish ends an admitted statement: it releases its concurrency slot,
// adds its time to its fingerprint and writes its audit record (if
// selected). It does not block.
func (c *Chain) Finish(r *Request, v *Verdict, o *Outcome) {
	v.Release()
	if r.Facts != nil && r.Facts.Digest != "" {
		c.st.top.Observe(r.Facts.Digest, o.Duration)
	}
	if c.audit == nil {
		return
	}
	want, slow := c.audit.Want(o.Duration, o.Err != nil)
	if !want {
		return
	}
	rec := c.record(r, v, o.Start)
	rec.Duration = float64(o.Duration) / float64(time.Millisecond)
	rec.Rows = o.Rows
	if o.Err != nil {
		rec.Error = o.Err.Error()
	}
	rec.Backend, rec.Route, rec.Slow = o.Backend, o.Route, slow
	rec.Masking = o.Masking
	c.audit.Log(&rec, r.SQL, fingerprint(r))
}

func fingerprint(r *Request) string {
	if r.Facts != nil {
		return r.Facts.Fingerprint
	}
	return ""
}

func (c *Chain) record(r *Request, v *Verdict, start time.Time) audit.Record {
	rec := audit.Record{
		Time: start, Domain: c.st.domain, User: r.User, Client: r.ClientAddr, Schema: r.Schema,
		Command: mysql.CommandName(r.Command), Rules: v.AppendRules(nil),
	}
	if r.Facts != nil {
		rec.Digest = r.Facts.Digest
	}
	return rec
}

func (c *Chain) auditRejection(r *Request, rej *Rejection, v *Verdict) {
	if c.audit == nil {
		return
	}
	if want, _ := c.audit.Want(0, true); !want {
		return
	}
	rec := c.record(r, v, c.st.clock())
	rec.Error = rej.Err.Error()
	rec.Rejected = true
	rec.Rules = append(rec.Rules, rej.Rule)
	c.audit.Log(&rec, r.SQL, fingerprint(r))
}

// logDryRun logs a would-be rejection, at most once per second per rule.
func (c *Chain) logDryRun(r *Request, rule, reason string) {
	last := c.lastLog[rule]
	if last == nil {
		return
	}
	now := c.st.clock().UnixNano()
	prev := last.Load()
	if now-prev < int64(time.Second) || !last.CompareAndSwap(prev, now) {
		return
	}
	var digest, fp string
	if r.Facts != nil {
		digest, fp = r.Facts.Digest, r.Facts.Fingerprint
	}
	c.st.log.Info("dry_run rule would reject statement", "domain", c.st.domain, "rule", rule, "reason", reason,
		"user", r.User, "client", r.ClientAddr, "digest", digest, "fingerprint", fp)
}
