package backend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/database-mesh/pisanix-go/internal/backoff"
	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// Pool holds the connections to one endpoint: idle lists per Variant (LIFO),
// one MaxOpen shared by all variants, and a FIFO queue of waiting Gets.
//
// Invariants (under mu): open counts idle conns, conns handed out and dials
// in progress (a "slot" each). A slot freed while Gets wait goes to the first
// waiter instead of being released, so waiters are served in order and no
// wakeup is lost.
type Pool struct {
	domain  string
	ep      Endpoint
	opts    PoolOptions
	maxIdle int // resolved: < 0 unlimited
	tls     *tls.Config
	log     *slog.Logger

	mu       sync.Mutex
	idle     [2][]*Conn // per Variant.index(), oldest first
	nIdle    int
	open     int
	waiters  waitList // FIFO
	closed   bool
	probing  bool
	waitN    int64
	timeouts int64
	waitDur  time.Duration

	// children are the pools of client accounts (accountPool), under mu;
	// child marks such a pool.
	children map[string]*Pool
	child    bool

	closedN  atomic.Int64
	healthy  atomic.Bool
	defaults atomic.Pointer[ServerDefaults] // read by the first dial

	ctx    context.Context // cancelled by Close: stops background work
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// waiter is one Get waiting for a connection or a slot. Waiters are
// reused (waiterPool): a Get that waits allocates nothing.
type waiter struct {
	variant int
	ch      chan handoff // buffered 1; written once, under mu; empty when reused
	queued  bool         // in the pool's list (under mu)
	start   time.Time    // when it began waiting (wait time is added by whoever serves it)
	timer   *time.Timer  // WaitTimeout, stopped when not waiting

	prev, next *waiter
}

var waiterPool = sync.Pool{New: func() any { return &waiter{ch: make(chan handoff, 1)} }}

// waitList is an intrusive FIFO of waiters.
type waitList struct {
	head, tail *waiter
}

func (l *waitList) front() *waiter { return l.head }

func (l *waitList) pushBack(w *waiter) {
	w.prev, w.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
	w.queued = true
}

func (l *waitList) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next = nil, nil
	w.queued = false
}

// handoff is what a waiter receives: a ready conn, a slot to dial with, or
// an error (the pool closed).
type handoff struct {
	c    *Conn
	slot bool
	err  error
}

// NewPool creates the pool of endpoint ep for the proxy listener domain. A
// nil logger means slog.Default(). Connections are dialed on demand.
func NewPool(domain string, ep Endpoint, opts PoolOptions, logger *slog.Logger) *Pool {
	if logger == nil {
		logger = slog.Default()
	}
	p := &Pool{
		domain: domain,
		ep:     ep,
		opts:   opts,
		log:    logger.With("domain", domain, "endpoint", ep.Name, "addr", ep.Addr),
	}
	switch {
	case opts.MaxIdle < 0:
		p.maxIdle = 0
	case opts.MaxIdle > 0:
		p.maxIdle = opts.MaxIdle
	case opts.MaxOpen > 0:
		p.maxIdle = opts.MaxOpen
	default:
		p.maxIdle = -1
	}
	if ep.TLS != nil {
		p.tls = ep.TLS.Clone()
		if p.tls.ServerName == "" {
			if host, _, err := net.SplitHostPort(ep.Addr); err == nil {
				p.tls.ServerName = host
			}
		}
	}
	p.healthy.Store(true)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if iv := reapInterval(opts); iv > 0 {
		p.wg.Add(1)
		go p.reaper(iv)
	}
	return p
}

// reapInterval is how often expired idle conns are closed in the background
// (0: never, nothing expires).
func reapInterval(o PoolOptions) time.Duration {
	d := o.IdleTimeout
	if o.MaxLifetime > 0 && (d <= 0 || o.MaxLifetime < d) {
		d = o.MaxLifetime
	}
	if d <= 0 {
		return 0
	}
	return min(max(d/2, 10*time.Millisecond), time.Minute)
}

// Endpoint returns the endpoint the pool connects to.
func (p *Pool) Endpoint() Endpoint { return p.ep }

// Healthy reports whether the last attempt to connect succeeded. While
// unhealthy, a background prober redials with backoff until it works.
func (p *Pool) Healthy() bool { return p.healthy.Load() }

// Get returns an idle connection of variant v (most recently used first) or
// dials a new one while fewer than MaxOpen are open; otherwise it waits, in
// FIFO order, up to WaitTimeout (or ctx) for one to be returned.
func (p *Pool) Get(ctx context.Context, v Variant) (*Conn, error) {
	if v.Account != nil && !p.child {
		cp, err := p.accountPool(v.Account)
		if err != nil {
			return nil, err
		}
		return cp.Get(ctx, v)
	}
	vi := v.index()
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrPoolClosed
		}
		if c := p.popIdleLocked(vi); c != nil {
			p.mu.Unlock()
			now := time.Now()
			if p.expired(c, now) {
				p.discard(c)
				continue
			}
			if now.Sub(c.lastUsed) > livenessAfter && !c.Alive() {
				p.log.Debug("discarding dead idle backend connection", "thread_id", c.Info.ConnectionID)
				p.discard(c)
				continue
			}
			return c, nil
		}
		if p.opts.MaxOpen <= 0 || p.open < p.opts.MaxOpen {
			p.open++
			p.mu.Unlock()
			return p.dialSlot(ctx, v)
		}
		// At capacity: an idle conn of the other variant gives its slot up.
		if o := p.popOldestLocked(1 - vi); o != nil {
			p.mu.Unlock()
			p.closeConn(o)
			return p.dialSlot(ctx, v)
		}
		w := waiterPool.Get().(*waiter)
		w.variant = vi
		w.start = time.Now()
		p.waiters.pushBack(w)
		p.waitN++
		p.mu.Unlock()

		h, err := p.wait(ctx, w)
		waiterPool.Put(w)
		switch {
		case err != nil:
			return nil, err
		case h.err != nil:
			return nil, h.err
		case h.c != nil:
			return h.c, nil
		default:
			return p.dialSlot(ctx, v)
		}
	}
}

// wait blocks until w is served or gives up. The one who serves w (under
// mu) adds the time it waited to waitDur. w's channel is empty on return.
func (p *Pool) wait(ctx context.Context, w *waiter) (handoff, error) {
	var timeout <-chan time.Time
	if p.opts.WaitTimeout > 0 {
		if w.timer == nil {
			w.timer = time.NewTimer(p.opts.WaitTimeout)
		} else {
			w.timer.Reset(p.opts.WaitTimeout)
		}
		defer w.timer.Stop()
		timeout = w.timer.C
	}
	var cause error
	select {
	case h := <-w.ch:
		return h, nil
	case <-timeout:
	case <-ctx.Done():
		cause = ctx.Err()
	}
	p.mu.Lock()
	if !w.queued {
		// Served while we were giving up: take what we were given.
		p.mu.Unlock()
		return <-w.ch, nil
	}
	p.waiters.remove(w)
	waited := time.Since(w.start)
	p.waitDur += waited
	if cause == nil || errors.Is(cause, context.DeadlineExceeded) {
		p.timeouts++
	}
	p.mu.Unlock()
	if cause != nil && !errors.Is(cause, context.DeadlineExceeded) {
		return handoff{}, fmt.Errorf("waiting for a connection to %s: %w", p.ep.Addr, cause)
	}
	msg := fmt.Errorf("%w: the pool of %s is exhausted (max_open %d) after %v",
		ErrPoolTimeout, p.ep.Addr, p.opts.MaxOpen, waited.Round(time.Millisecond))
	if cause != nil {
		return handoff{}, fmt.Errorf("%w (%w)", msg, cause)
	}
	return handoff{}, msg
}

// dialSlot dials with a slot already counted in open.
func (p *Pool) dialSlot(ctx context.Context, v Variant) (*Conn, error) {
	c, err := p.dial(ctx, v)
	if err != nil {
		p.mu.Lock()
		p.releaseSlotLocked()
		p.mu.Unlock()
		if ctx.Err() == nil {
			p.markUnhealthy(err)
		}
		return nil, fmt.Errorf("%w: %s (%s): %w", ErrConnect, p.ep.Name, p.ep.Addr, err)
	}
	p.markHealthy()
	p.mu.Lock()
	if p.closed {
		p.releaseSlotLocked()
		p.mu.Unlock()
		p.closeConn(c)
		return nil, ErrPoolClosed
	}
	p.mu.Unlock()
	return c, nil
}

// Put returns a connection to the pool. Broken connections are closed; dirty
// ones (or ones left in a transaction) are reset first and closed if that
// fails; beyond MaxIdle or MaxLifetime they are closed.
func (p *Pool) Put(c *Conn) {
	if c == nil {
		return
	}
	if !c.broken && (c.dirty || c.status&mysql.StatusInTrans != 0) {
		if err := c.reset(); err != nil {
			p.log.Debug("closing backend connection: reset failed", "thread_id", c.Info.ConnectionID, "err", err)
			c.broken = true
		}
	}
	now := time.Now()
	if !c.broken && c.Buffered() > 0 {
		c.broken = true // unread response data: the stream is out of step
	}
	// A buffer grown for a large packet does not stay with an idle
	// connection.
	c.ShrinkBuffers()
	lifeOver := p.opts.MaxLifetime > 0 && now.Sub(c.created) >= p.opts.MaxLifetime

	p.mu.Lock()
	if c.pooled {
		p.mu.Unlock()
		p.log.Warn("backend connection put twice", "thread_id", c.Info.ConnectionID)
		return
	}
	if c.broken || lifeOver || p.closed {
		p.releaseSlotLocked()
		p.mu.Unlock()
		p.closeConn(c)
		return
	}
	c.lastUsed = now
	if w := p.waiters.front(); w != nil {
		p.popWaiterLocked(w, now)
		if w.variant == c.variant.index() {
			w.ch <- handoff{c: c}
			p.mu.Unlock()
			return
		}
		// The waiter wants the other variant: it gets c's slot.
		w.ch <- handoff{slot: true}
		p.mu.Unlock()
		p.closeConn(c)
		return
	}
	if p.maxIdle >= 0 && p.nIdle >= p.maxIdle {
		p.open--
		p.mu.Unlock()
		p.closeConn(c)
		return
	}
	vi := c.variant.index()
	p.idle[vi] = append(p.idle[vi], c)
	p.nIdle++
	c.pooled = true
	p.mu.Unlock()
}

// Stats returns a snapshot of the pool's counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{
		MaxOpen:      p.opts.MaxOpen,
		Open:         p.open,
		Idle:         p.nIdle,
		InUse:        p.open - p.nIdle,
		WaitCount:    p.waitN,
		Timeouts:     p.timeouts,
		Closed:       p.closedN.Load(),
		WaitDuration: p.waitDur,
	}
}

// Kill opens a separate short-lived connection to the endpoint and runs
// KILL [QUERY] threadID on it.
func (p *Pool) Kill(ctx context.Context, threadID uint32, queryOnly bool) error {
	c, err := p.dial(ctx, Variant{})
	if err != nil {
		return fmt.Errorf("%w: %s (%s): %w", ErrConnect, p.ep.Name, p.ep.Addr, err)
	}
	defer c.quit()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	_, err = c.exec(killSQL(threadID, queryOnly), false)
	return err
}

// Close closes the idle connections, wakes waiting Gets with ErrPoolClosed
// and stops background work. Connections in use are closed when Put.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	children := p.children
	p.children = nil
	for _, c := range children {
		defer c.Close()
	}
	var conns []*Conn
	for vi := range p.idle {
		for _, c := range p.idle[vi] {
			c.pooled = false
			conns = append(conns, c)
		}
		p.idle[vi] = nil
	}
	p.open -= p.nIdle
	p.nIdle = 0
	for w := p.waiters.front(); w != nil; w = p.waiters.front() {
		p.popWaiterLocked(w, time.Now())
		w.ch <- handoff{err: ErrPoolClosed}
	}
	p.mu.Unlock()
	p.cancel()
	for _, c := range conns {
		p.closeConn(c)
	}
	p.wg.Wait()
}

// popIdleLocked takes the most recently returned idle conn of variant vi.
func (p *Pool) popIdleLocked(vi int) *Conn {
	l := p.idle[vi]
	if len(l) == 0 {
		return nil
	}
	c := l[len(l)-1]
	l[len(l)-1] = nil
	p.idle[vi] = l[:len(l)-1]
	p.nIdle--
	c.pooled = false
	return c
}

// popOldestLocked takes the least recently returned idle conn of variant vi.
func (p *Pool) popOldestLocked(vi int) *Conn {
	l := p.idle[vi]
	if len(l) == 0 {
		return nil
	}
	c := l[0]
	copy(l, l[1:])
	l[len(l)-1] = nil
	p.idle[vi] = l[:len(l)-1]
	p.nIdle--
	c.pooled = false
	return c
}

// popWaiterLocked takes w, about to be served, off the list and counts
// the time it waited.
func (p *Pool) popWaiterLocked(w *waiter, now time.Time) {
	p.waiters.remove(w)
	p.waitDur += now.Sub(w.start)
}

// releaseSlotLocked gives up one slot: to the first waiter if any (it will
// dial), otherwise open shrinks.
func (p *Pool) releaseSlotLocked() {
	if !p.closed {
		if w := p.waiters.front(); w != nil {
			p.popWaiterLocked(w, time.Now())
			w.ch <- handoff{slot: true}
			return
		}
	}
	p.open--
}

func (p *Pool) expired(c *Conn, now time.Time) bool {
	return p.opts.IdleTimeout > 0 && now.Sub(c.lastUsed) >= p.opts.IdleTimeout ||
		p.opts.MaxLifetime > 0 && now.Sub(c.created) >= p.opts.MaxLifetime
}

// discard closes a conn that holds a slot.
func (p *Pool) discard(c *Conn) {
	p.mu.Lock()
	p.releaseSlotLocked()
	p.mu.Unlock()
	p.closeConn(c)
}

func (p *Pool) closeConn(c *Conn) {
	c.quit()
	p.closedN.Add(1)
}

// reaper closes expired idle conns in the background.
func (p *Pool) reaper(interval time.Duration) {
	defer p.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case now := <-t.C:
			p.reap(now)
		}
	}
}

func (p *Pool) reap(now time.Time) {
	var dead []*Conn
	p.mu.Lock()
	for vi := range p.idle {
		keep := p.idle[vi][:0]
		for _, c := range p.idle[vi] {
			if p.expired(c, now) {
				c.pooled = false
				dead = append(dead, c)
				p.nIdle--
				p.releaseSlotLocked()
			} else {
				keep = append(keep, c)
			}
		}
		clear(p.idle[vi][len(keep):])
		p.idle[vi] = keep
	}
	p.mu.Unlock()
	for _, c := range dead {
		p.closeConn(c)
	}
}

// markUnhealthy records a failed dial and starts the prober.
func (p *Pool) markUnhealthy(err error) {
	p.mu.Lock()
	was := p.healthy.Swap(false)
	if !p.probing && !p.closed {
		p.probing = true
		p.wg.Add(1)
		go p.probe()
	}
	p.mu.Unlock()
	if was {
		p.log.Warn("backend endpoint unhealthy: statements get ERR 2002 until a probe connects", "endpoint", p.ep.Name, "addr", p.ep.Addr, "err", err)
	}
}

func (p *Pool) markHealthy() {
	if !p.healthy.Load() && p.healthy.CompareAndSwap(false, true) {
		p.log.Info("backend endpoint healthy again")
	}
}

// probe redials with exponential backoff (200ms ×2 up to 10s, full jitter)
// until a connection succeeds or the pool closes.
func (p *Pool) probe() {
	defer p.wg.Done()
	b := backoff.New(probeStart, probeMax)
	for {
		p.mu.Lock()
		if p.healthy.Load() || p.closed {
			p.probing = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		if !backoff.Sleep(p.ctx, b.Next()) {
			p.mu.Lock()
			p.probing = false
			p.mu.Unlock()
			return
		}
		c, err := p.dial(p.ctx, Variant{})
		if err == nil {
			c.quit()
			p.markHealthy()
			continue
		}
		p.log.Debug("backend endpoint probe failed", "err", err, "next_within", b.Ceiling())
	}
}
