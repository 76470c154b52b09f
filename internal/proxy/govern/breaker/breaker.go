// Package breaker is an error-driven circuit breaker per backend endpoint,
// so that a sick replica stops receiving traffic before its health check
// notices.
//
// Each endpoint is closed (traffic flows), open (no traffic) or half-open
// (a few trial requests). Closed → open when, over the last window, at
// least min_requests requests were reported and the share of failures is
// at least error_rate. Open → half-open after open_for. Half-open admits
// at most half_open_max requests at once; one failure re-opens, and
// half_open_max successes close the breaker.
//
// A failure is a connection-level error (network error, timeout, server
// gone, too many connections, shutdown...), not a statement error such as a
// syntax error or a duplicate key, or a request slower than timeout.
//
// Usage: route asks Allow(endpoint) before choosing an endpoint and reports
// every request it sent with Report. Every Allow that returned true must be
// followed by exactly one Report for the same endpoint. Allow in the
// closed state and Report of a success do not allocate or lock.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/govmetrics"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// State of an endpoint; the values are those of the
// pisa_proxy_endpoint_breaker_state gauge.
type State int32

const (
	Closed   State = 0
	HalfOpen State = 1
	Open     State = 2
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

const numBuckets = 10

type settings struct {
	errorRate   float64
	minRequests int64
	width       int64 // bucket width, ns
	openFor     int64
	halfOpenMax int32
	timeout     time.Duration
}

// Breaker holds the breakers of all endpoints of one domain. Its state
// survives Configure (reloads). Safe for concurrent use.
type Breaker struct {
	domain string
	clock  func() time.Time
	epoch  time.Time
	log    *slog.Logger
	set    atomic.Pointer[settings]

	// IsFailure classifies reported errors; default DefaultIsFailure.
	// Set it before use.
	IsFailure func(error) bool

	mu  sync.Mutex
	eps atomic.Pointer[map[string]*endpoint] // copy on write
}

// New creates a Breaker. clock may be nil (time.Now), log may be nil
// (slog.Default()).
func New(domain string, cfg proxyconfig.EndpointBreaker, clock func() time.Time, log *slog.Logger) (*Breaker, error) {
	if clock == nil {
		clock = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	b := &Breaker{domain: domain, clock: clock, epoch: clock(), log: log, IsFailure: DefaultIsFailure}
	m := map[string]*endpoint{}
	b.eps.Store(&m)
	if err := b.Configure(cfg); err != nil {
		return nil, err
	}
	return b, nil
}

// Configure applies a new config; endpoint states are kept.
func (b *Breaker) Configure(cfg proxyconfig.EndpointBreaker) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.WithDefaults()
	b.set.Store(&settings{
		errorRate:   cfg.ErrorRate,
		minRequests: int64(cfg.MinRequests),
		width:       int64(cfg.Window.Duration) / numBuckets,
		openFor:     int64(cfg.OpenFor.Duration),
		halfOpenMax: int32(cfg.HalfOpenMax),
		timeout:     cfg.Timeout.Duration,
	})
	return nil
}

func (b *Breaker) now() int64 { return int64(b.clock().Sub(b.epoch)) }

type bucket struct {
	epoch atomic.Int64 // bucket number (now/width) + 1; 0 = unused
	reqs  atomic.Int64
	errs  atomic.Int64
}

type endpoint struct {
	name      string
	state     atomic.Int32
	openUntil atomic.Int64
	probes    atomic.Int32 // trial requests in flight (half-open)
	successes atomic.Int32 // successful trials (half-open)
	mu        sync.Mutex
	buckets   [numBuckets]bucket
}

func (b *Breaker) get(name string) *endpoint {
	if e := (*b.eps.Load())[name]; e != nil {
		return e
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.eps.Load()
	if e := old[name]; e != nil {
		return e
	}
	m := make(map[string]*endpoint, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	e := &endpoint{name: name}
	m[name] = e
	b.eps.Store(&m)
	return e
}

// Retain forgets endpoints not in names (removed from the config).
func (b *Breaker) Retain(names []string) {
	keep := make(map[string]bool, len(names))
	for _, n := range names {
		keep[n] = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	m := map[string]*endpoint{}
	for k, v := range *b.eps.Load() {
		if keep[k] {
			m[k] = v
		}
	}
	b.eps.Store(&m)
}

// State returns the state of endpoint (closed if never seen). An open
// breaker whose open_for has passed reports half-open.
func (b *Breaker) State(endpoint string) State {
	e := (*b.eps.Load())[endpoint]
	if e == nil {
		return Closed
	}
	s := State(e.state.Load())
	if s == Open && b.now() >= e.openUntil.Load() {
		return HalfOpen
	}
	return s
}

// Allow reports whether a request may be sent to endpoint. In the
// half-open state a true answer reserves a trial slot: Report must follow.
func (b *Breaker) Allow(endpoint string) bool {
	if b == nil {
		return true
	}
	e := (*b.eps.Load())[endpoint]
	if e == nil {
		return true
	}
	switch State(e.state.Load()) {
	case Closed:
		return true
	case Open:
		if b.now() < e.openUntil.Load() {
			return false
		}
		e.mu.Lock()
		if State(e.state.Load()) == Open {
			e.probes.Store(0)
			e.successes.Store(0)
			e.state.Store(int32(HalfOpen))
			b.log.Info("endpoint breaker half-open", "domain", b.domain, "server", endpoint)
		}
		e.mu.Unlock()
		if State(e.state.Load()) == Closed {
			return true
		}
	}
	max := b.set.Load().halfOpenMax
	for {
		n := e.probes.Load()
		if n >= max {
			return false
		}
		if e.probes.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Report records the outcome of a request sent to endpoint.
func (b *Breaker) Report(endpoint string, err error, latency time.Duration) {
	if b == nil {
		return
	}
	st := b.set.Load()
	failed := b.IsFailure(err) || (st.timeout > 0 && latency > st.timeout)
	e := b.get(endpoint)
	switch State(e.state.Load()) {
	case Closed:
		now := b.now()
		bk := e.bucket(now/st.width + 1)
		bk.reqs.Add(1)
		if !failed {
			return
		}
		bk.errs.Add(1)
		b.evaluate(e, st, now)
	case HalfOpen:
		if failed {
			b.open(e, st, "trial request failed")
			return
		}
		if e.successes.Add(1) >= st.halfOpenMax {
			e.mu.Lock()
			if State(e.state.Load()) == HalfOpen {
				e.resetBuckets()
				e.state.Store(int32(Closed))
				b.log.Info("endpoint breaker closed", "domain", b.domain, "server", endpoint)
			}
			e.mu.Unlock()
			return
		}
		for { // the trial slot is free for the next request
			n := e.probes.Load()
			if n <= 0 || e.probes.CompareAndSwap(n, n-1) {
				break
			}
		}
	case Open:
		// A request admitted before the breaker opened: nothing to learn.
	}
}

func (e *endpoint) bucket(n int64) *bucket {
	bk := &e.buckets[n%numBuckets]
	if bk.epoch.Load() != n {
		e.mu.Lock()
		if bk.epoch.Load() != n {
			bk.reqs.Store(0)
			bk.errs.Store(0)
			bk.epoch.Store(n)
		}
		e.mu.Unlock()
	}
	return bk
}

func (e *endpoint) resetBuckets() {
	for i := range e.buckets {
		e.buckets[i].epoch.Store(0)
		e.buckets[i].reqs.Store(0)
		e.buckets[i].errs.Store(0)
	}
}

func (b *Breaker) evaluate(e *endpoint, st *settings, now int64) {
	cur := now/st.width + 1
	var reqs, errs int64
	for i := range e.buckets {
		bk := &e.buckets[i]
		if n := bk.epoch.Load(); n > cur-numBuckets && n <= cur {
			reqs += bk.reqs.Load()
			errs += bk.errs.Load()
		}
	}
	if reqs == 0 || reqs < st.minRequests || float64(errs)/float64(reqs) < st.errorRate {
		return
	}
	b.open(e, st, fmt.Sprintf("%d of %d requests failed", errs, reqs))
}

func (b *Breaker) open(e *endpoint, st *settings, why string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if State(e.state.Load()) == Open {
		return
	}
	e.openUntil.Store(b.now() + st.openFor)
	e.resetBuckets()
	e.state.Store(int32(Open))
	b.log.Warn("endpoint breaker open", "domain", b.domain, "server", e.name, "reason", why,
		"open_for", time.Duration(st.openFor))
}

// AppendSamples implements govmetrics.Source.
func (b *Breaker) AppendSamples(dst []govmetrics.Sample) []govmetrics.Sample {
	m := *b.eps.Load()
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		dst = append(dst, govmetrics.Sample{Metric: govmetrics.BreakerState, Domain: b.domain, Label: n, Value: float64(b.State(n))})
	}
	return dst
}

// DefaultIsFailure: nil, context cancellation and statement errors from
// the server are not failures; network and protocol errors, and server
// errors that mean the server itself is unwell, are.
func DefaultIsFailure(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var me *mysql.Error
	if errors.As(err, &me) {
		switch me.Code {
		case mysql.ErrCodeTooManyConnections, 1041 /* out of memory */, 1053, /* server shutdown */
			mysql.ErrCodeNetReadError, 1159 /* net read timeout */, 1160, 1161, /* net write */
			1927 /* connection killed */, mysql.ErrCodeConnectionError, 2003, /* can't connect */
			mysql.ErrCodeServerGone, mysql.ErrCodeServerLost:
			return true
		}
		return false
	}
	return true
}
