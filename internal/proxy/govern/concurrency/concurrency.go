// Package concurrency implements concurrency-control rules: at most
// max_concurrency statements matching a rule execute at the same time.
//
// Matching is the same as for circuit-break rules (regexps on the
// statement text, fingerprints). Only the first matching rule applies, as
// in Pisanix. A statement that finds the rule full is rejected with ERR 1047
// (08S01) naming the rule, or, when wait_timeout > 0, waits in a FIFO queue
// of at most max_queue statements for up to wait_timeout.
//
// # Duration
//
// duration (integer seconds, Pisanix's key) is the rule's window:
//
//   - duration = 0: the limit always applies; every running matching
//     statement counts.
//   - duration > 0: the first matching statement opens a window of
//     duration seconds; within it at most max_concurrency matching
//     statements run at once. When the window has expired, the next
//     matching statement opens a new window and the count starts again
//     from zero: statements still running from an earlier window no longer
//     count against the limit (Pisanix replaced its semaphore the same
//     way). Unlike Pisanix, the statement that opens the new window takes a
//     slot like any other (Pisanix let it through without one).
//
// # State across reloads
//
// Running counts and wait queues live in a [Registry], keyed by rule name,
// which outlives compiled rule sets: a reload that keeps a rule's name
// keeps its running count and waiters, and applies the new
// max_concurrency and duration to them.
package concurrency

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/govmetrics"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/internal/rxmatch"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// Reason values returned with a rejection (also the metrics reason label).
const (
	ReasonLimit    = govmetrics.ReasonConcurrency
	ReasonFull     = govmetrics.ReasonQueueFull
	ReasonTimeout  = govmetrics.ReasonQueueTimeout
	ReasonCanceled = govmetrics.ReasonCanceled
)

// Registry keeps the live state of rules by name across reloads. Create
// one per listener and pass it to every Compile of that listener.
type Registry struct {
	domain string
	clock  func() time.Time
	epoch  time.Time

	mu       sync.Mutex
	limiters map[string]*limiter
}

// NewRegistry creates a registry. clock may be nil (time.Now).
func NewRegistry(domain string, clock func() time.Time) *Registry {
	if clock == nil {
		clock = time.Now
	}
	return &Registry{domain: domain, clock: clock, epoch: clock(), limiters: map[string]*limiter{}}
}

// AppendSamples implements govmetrics.Source: in-flight count and queue
// length of every current rule.
func (r *Registry) AppendSamples(dst []govmetrics.Sample) []govmetrics.Sample {
	r.mu.Lock()
	names := make([]string, 0, len(r.limiters))
	for n := range r.limiters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l := r.limiters[n]
		dst = append(dst,
			govmetrics.Sample{Metric: govmetrics.InFlight, Domain: r.domain, Label: n, Value: float64(l.InFlight())},
			govmetrics.Sample{Metric: govmetrics.QueueLength, Domain: r.domain, Label: n, Value: float64(l.nwait.Load())})
	}
	r.mu.Unlock()
	return dst
}

// InFlight returns the running count of the named rule (current window).
func (r *Registry) InFlight(name string) int {
	r.mu.Lock()
	l := r.limiters[name]
	r.mu.Unlock()
	if l == nil {
		return 0
	}
	return l.InFlight()
}

// Waiting returns the number of statements queued on the named rule.
func (r *Registry) Waiting(name string) int {
	r.mu.Lock()
	l := r.limiters[name]
	r.mu.Unlock()
	if l == nil {
		return 0
	}
	return int(l.nwait.Load())
}

func (r *Registry) now() int64 {
	return int64(r.clock().Sub(r.epoch))
}

// Compiled is a compiled rule.
type Compiled struct {
	Name           string
	DryRun         bool
	MaxConcurrency int
	WaitTimeout    time.Duration
	MaxQueue       int

	lim        *limiter
	metrics    *govmetrics.Metrics
	dryRunHits prometheus.Counter
}

var reasons = [4]string{ReasonLimit, ReasonFull, ReasonTimeout, ReasonCanceled}

// Set is a compiled list of rules.
type Set struct {
	rules []Compiled
	m     *rxmatch.Set
	reg   *Registry
}

// Options are the compile-time dependencies of a Set.
type Options struct {
	Metrics   *govmetrics.Metrics // may be nil
	Normalize func(string) string // see circuit.Options
}

func compile(rules []proxyconfig.ConcurrencyControl, o Options) ([]Compiled, *rxmatch.Set, error) {
	if err := proxyconfig.ValidateConcurrencyControls(rules); err != nil {
		return nil, nil, err
	}
	cs := make([]Compiled, len(rules))
	mr := make([]proxyconfig.MatchSpec, len(rules))
	for i, r := range rules {
		name := r.Name
		if name == "" {
			name = proxyconfig.ConcurrencyControlName(i)
		}
		mr[i] = r.MatchSpec
		cs[i] = Compiled{
			Name: name, DryRun: r.DryRun, MaxConcurrency: r.MaxConcurrency,
			WaitTimeout: r.WaitTimeout.Duration, MaxQueue: r.MaxQueue,
		}
	}
	m, err := rxmatch.Compile(mr, proxyconfig.ConcurrencyControlName, o.Normalize)
	if err != nil {
		return nil, nil, err
	}
	return cs, m, nil
}

// Compile compiles rules and binds them to reg's state (rules keep the
// state of the same-named rules of earlier compiles; state of rules that
// are gone is dropped from reg, statements still holding it release it
// normally). Nothing in reg changes if Compile fails.
func Compile(rules []proxyconfig.ConcurrencyControl, reg *Registry, o Options) (*Set, error) {
	if reg == nil {
		return nil, fmt.Errorf("concurrency: nil registry")
	}
	cs, m, err := compile(rules, o)
	if err != nil {
		return nil, err
	}
	reg.mu.Lock()
	keep := make(map[string]*limiter, len(cs))
	for i := range cs {
		c := &cs[i]
		l := reg.limiters[c.Name]
		if l == nil {
			l = &limiter{reg: reg}
		}
		l.configure(int64(rules[i].MaxConcurrency), rules[i].Window())
		keep[c.Name] = l
		c.lim = l
		c.metrics = o.Metrics
		if c.DryRun {
			c.dryRunHits = o.Metrics.DryRunHit(reg.domain, c.Name, ReasonLimit)
		}
	}
	reg.limiters = keep
	reg.mu.Unlock()
	return &Set{rules: cs, m: m, reg: reg}, nil
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

// Match returns the rule that applies to the statement (the first that
// matches), or nil.
func (s *Set) Match(sql string, f *sqlparse.Facts) *Compiled {
	if s == nil || s.m.Empty() {
		return nil
	}
	if i := s.m.Next(sql, f, 0); i >= 0 {
		return &s.rules[i]
	}
	return nil
}

// Permit is a slot held by a running statement. The zero Permit holds
// nothing. Release it exactly once when the statement's response has been
// sent.
type Permit struct {
	l   *limiter
	gen uint32
}

// Held reports whether p holds a slot.
func (p Permit) Held() bool { return p.l != nil }

// Release gives the slot back.
func (p Permit) Release() {
	if p.l != nil {
		p.l.release(p.gen)
	}
}

// Rejected describes a refused statement.
type Rejected struct {
	Rule   *Compiled
	Reason string // ReasonLimit, ReasonFull, ReasonTimeout or ReasonCanceled
	Err    *mysql.Error
}

// Acquire finds the rule that applies to the statement and takes a slot.
// It returns the zero Permit and nil when no rule applies. It blocks only
// for a rule with wait_timeout, at most that long or until ctx is done.
// A dry_run rule always grants a slot (so that in-flight counts stay
// true) and counts the statements it would have refused; dry is then
// that rule.
func (s *Set) Acquire(ctx context.Context, sql string, f *sqlparse.Facts) (p Permit, rule *Compiled, dry bool, rej *Rejected) {
	c := s.Match(sql, f)
	if c == nil {
		return Permit{}, nil, false, nil
	}
	p, dry, rej = c.Acquire(ctx)
	return p, c, dry, rej
}

// Acquire takes a slot of rule c (see Set.Acquire).
func (c *Compiled) Acquire(ctx context.Context) (p Permit, dry bool, rej *Rejected) {
	l := c.lim
	l.roll()
	if c.DryRun {
		gen, before := l.force()
		if before >= l.limit.Load() {
			c.dryRunHits.Inc()
			dry = true
		}
		return Permit{l, gen}, dry, nil
	}
	if l.nwait.Load() == 0 {
		if gen, ok := l.tryAcquire(); ok {
			return Permit{l, gen}, false, nil
		}
	}
	if c.WaitTimeout <= 0 {
		// Someone may be queued from an earlier config with a wait
		// timeout; without one ourselves we only try once.
		if gen, ok := l.tryAcquire(); ok {
			return Permit{l, gen}, false, nil
		}
		return Permit{}, false, c.reject(0, l)
	}
	return c.wait(ctx, l)
}

func (c *Compiled) wait(ctx context.Context, l *limiter) (Permit, bool, *Rejected) {
	l.mu.Lock()
	l.nwait.Add(1)
	if len(l.waiters) == 0 {
		if gen, ok := l.tryAcquire(); ok {
			l.nwait.Add(-1)
			l.mu.Unlock()
			return Permit{l, gen}, false, nil
		}
	}
	if c.MaxQueue > 0 && len(l.waiters) >= c.MaxQueue {
		l.nwait.Add(-1)
		l.mu.Unlock()
		return Permit{}, false, c.reject(1, l)
	}
	w := &waiter{ch: make(chan struct{})}
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()

	t := time.NewTimer(c.WaitTimeout)
	defer t.Stop()
	reason := 2
	select {
	case <-w.ch:
		return Permit{l, w.gen}, false, nil
	case <-t.C:
	case <-ctx.Done():
		reason = 3
	}
	l.mu.Lock()
	if w.granted { // granted while we were timing out: keep it
		l.mu.Unlock()
		return Permit{l, w.gen}, false, nil
	}
	for i, x := range l.waiters {
		if x == w {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			break
		}
	}
	l.nwait.Add(-1)
	l.mu.Unlock()
	return Permit{}, false, c.reject(reason, l)
}

func (c *Compiled) reject(reason int, l *limiter) *Rejected {
	c.metrics.Rejection(l.reg.domain, c.Name, reasons[reason]).Inc()
	running := l.InFlight()
	var msg string
	switch reason {
	case 0:
		msg = fmt.Sprintf("%d statements already running", running)
	case 1:
		msg = fmt.Sprintf("%d statements already running and %d waiting", running, l.nwait.Load())
	case 2:
		msg = fmt.Sprintf("no slot free within %s (%d statements running)", c.WaitTimeout, running)
	default:
		msg = "canceled while waiting for a slot"
	}
	return &Rejected{
		Rule:   c,
		Reason: reasons[reason],
		Err:    mysql.NewError(mysql.ErrCodeUnknownCom, "08S01", "concurrency control plugin rejected: concurrency_control rule %q: %s", c.Name, msg),
	}
}

// limiter is the live state of one rule. word packs the window generation
// (high 32 bits) and the running count of that window (low 32 bits), so a
// permit of an old window never decrements the new window's count.
type limiter struct {
	reg   *Registry
	limit atomic.Int64
	dur   atomic.Int64 // window length in ns; 0 = no windows
	word  atomic.Uint64
	start atomic.Int64 // window start (registry clock ns) + 1; 0 = none open
	nwait atomic.Int64 // statements queued (incremented before trying, see wait)

	mu      sync.Mutex
	waiters []*waiter
}

type waiter struct {
	ch      chan struct{}
	gen     uint32
	granted bool
}

func (l *limiter) configure(limit int64, dur time.Duration) {
	old := l.limit.Swap(limit)
	l.dur.Store(int64(dur))
	if dur == 0 {
		l.start.Store(0)
	}
	if limit > old {
		l.mu.Lock()
		l.grantLocked()
		l.mu.Unlock()
	}
}

// InFlight is the running count of the current window.
func (l *limiter) InFlight() int { return int(uint32(l.word.Load())) }

func (l *limiter) tryAcquire() (uint32, bool) {
	for {
		w := l.word.Load()
		if int64(uint32(w)) >= l.limit.Load() {
			return 0, false
		}
		if l.word.CompareAndSwap(w, w+1) {
			return uint32(w >> 32), true
		}
	}
}

// force takes a slot regardless of the limit (dry run); it returns the
// count before.
func (l *limiter) force() (gen uint32, before int64) {
	w := l.word.Add(1)
	return uint32(w >> 32), int64(uint32(w)) - 1
}

func (l *limiter) release(gen uint32) {
	for {
		w := l.word.Load()
		if uint32(w>>32) != gen || uint32(w) == 0 {
			break // a slot of an expired window: nothing to give back
		}
		if l.word.CompareAndSwap(w, w-1) {
			break
		}
	}
	if l.nwait.Load() > 0 {
		l.mu.Lock()
		l.grantLocked()
		l.mu.Unlock()
	}
}

// grantLocked hands free slots to queued statements in FIFO order.
func (l *limiter) grantLocked() {
	for len(l.waiters) > 0 {
		gen, ok := l.tryAcquire()
		if !ok {
			return
		}
		w := l.waiters[0]
		l.waiters[0] = nil
		l.waiters = l.waiters[1:]
		l.nwait.Add(-1)
		w.gen, w.granted = gen, true
		close(w.ch)
	}
}

// roll opens a new window when windows are on and none is open or the
// current one has expired.
func (l *limiter) roll() {
	d := l.dur.Load()
	if d == 0 {
		return
	}
	now := l.reg.now()
	if st := l.start.Load(); st != 0 && now-(st-1) < d {
		return
	}
	l.mu.Lock()
	if st := l.start.Load(); st == 0 || now-(st-1) >= d {
		l.start.Store(now + 1)
		for {
			w := l.word.Load()
			if l.word.CompareAndSwap(w, (w>>32+1)<<32) {
				break
			}
		}
		l.grantLocked()
	}
	l.mu.Unlock()
}
