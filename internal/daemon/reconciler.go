package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/database-mesh/pisanix-go/internal/daemonconfig"
)

// DesiredClass is one HTB class 1:<Minor> to create on every device.
type DesiredClass struct {
	Minor uint16
	Key   ClassKey
	// Rate and Ceil are bits per second.
	Rate, Ceil uint64
}

// Desired is the complete state a Dataplane converges to: these classes
// (and no other class the daemon owns) and exactly these endpoint → class
// entries.
type Desired struct {
	Classes   []DesiredClass
	Endpoints map[netip.AddrPort]uint16
}

// Inventory is what the dataplane holds before a sync: class minors the
// daemon owns (recorded when it created them, so a restart adopts them)
// and minors used by classes it does not own, which it never touches.
type Inventory struct {
	Owned   map[uint16]ClassKey
	Foreign map[uint16]bool
}

// ClassStats are a class's kernel counters on one device.
type ClassStats struct {
	Key     ClassKey
	Minor   uint16
	Device  string
	Bytes   uint64
	Packets uint64
	Drops   uint64
	// Overlimits counts the times the class was throttled.
	Overlimits uint64
}

// Dataplane applies classes and endpoint maps to the kernel. The netlink
// and eBPF implementation is in internal/daemon/dataplane; tests use fakes.
type Dataplane interface {
	Inventory() (Inventory, error)
	// Sync converges the kernel to d. It applies what it can and returns
	// the errors of what it could not; the next Sync retries.
	Sync(d Desired) error
	// Stats returns the counters of the owned classes.
	Stats() ([]ClassStats, error)
}

// ReconcilerOptions configure a Reconciler.
type ReconcilerOptions struct {
	// Resolver resolves endpoint host names; nil means net.DefaultResolver.
	Resolver Resolver
	// ResolveTimeout bounds the host name lookups of one reconcile
	// (default 5 s).
	ResolveTimeout time.Duration
	Logger         *slog.Logger
	Metrics        *Metrics
}

// Reconciler turns configurations into dataplane state.
type Reconciler struct {
	dp      Dataplane
	res     *lastGoodResolver
	timeout time.Duration
	log     *slog.Logger
	m       *Metrics

	mu     sync.Mutex // serializes Reconcile
	status Status
	ok     bool // the last reconcile applied without dataplane errors
	done   bool // a reconcile has completed
}

// Status is the outcome of the last reconcile, served on the admin /config.
type Status struct {
	Version  string        `json:"version,omitempty"`
	Time     time.Time     `json:"time"`
	Classes  []ClassStatus `json:"classes"`
	Problems []string      `json:"problems,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// ClassStatus describes one applied class.
type ClassStatus struct {
	App       string   `json:"app"`
	Service   string   `json:"service"`
	ClassID   string   `json:"classid"`
	Rate      string   `json:"rate"`
	Ceil      string   `json:"ceil"`
	Endpoints []string `json:"endpoints"`
}

// NewReconciler returns a reconciler that applies configurations to dp.
func NewReconciler(dp Dataplane, opts ReconcilerOptions) *Reconciler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ResolveTimeout <= 0 {
		opts.ResolveTimeout = 5 * time.Second
	}
	return &Reconciler{
		dp:      dp,
		res:     newLastGoodResolver(opts.Resolver),
		timeout: opts.ResolveTimeout,
		log:     opts.Logger,
		m:       opts.Metrics,
	}
}

// Reconcile applies cfg: plans the classes (re-resolving host names),
// allocates class ids, and syncs the dataplane. Problems in cfg are logged,
// counted and skipped; the error is only about what could not be applied.
func (r *Reconciler) Reconcile(ctx context.Context, cfg *daemonconfig.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()

	rctx, cancel := context.WithTimeout(ctx, r.timeout)
	plans, problems := BuildPlan(rctx, cfg, r.res)
	cancel()

	st := Status{Time: start}
	if cfg != nil {
		st.Version = cfg.Version
	}
	err := r.apply(plans, &problems, &st)
	for _, p := range problems {
		r.log.Warn("skipped part of the QoS configuration", "app", p.App, "service", p.Service,
			"endpoint", p.Endpoint, "reason", p.Reason, "err", p.Err)
		st.Problems = append(st.Problems, p.Error())
		r.m.reconcileError(p.Reason)
	}
	r.m.reconciled(cfg, len(problems))
	if err != nil {
		r.m.reconcileError("apply")
		st.Error = err.Error()
		r.log.Error("reconcile failed", "err", err, "version", st.Version)
	} else {
		r.log.Debug("reconciled", "classes", len(st.Classes), "problems", len(problems),
			"version", st.Version, "took", time.Since(start))
	}
	r.status, r.ok, r.done = st, err == nil, true
	return err
}

func (r *Reconciler) apply(plans []ClassPlan, problems *[]Problem, st *Status) error {
	inv, err := r.dp.Inventory()
	if err != nil {
		return fmt.Errorf("read dataplane inventory: %w", err)
	}
	keys := make([]ClassKey, len(plans))
	for i, p := range plans {
		keys[i] = p.Key
	}
	minors := AllocateMinors(keys, inv.Owned, inv.Foreign)
	d := Desired{Endpoints: map[netip.AddrPort]uint16{}}
	st.Classes = []ClassStatus{}
	for _, p := range plans {
		m, ok := minors[p.Key]
		if !ok {
			*problems = append(*problems, Problem{App: p.Key.App, Service: p.Key.Service, Reason: "no_class_id",
				Err: errors.New("no free HTB class id")})
			continue
		}
		d.Classes = append(d.Classes, DesiredClass{Minor: m, Key: p.Key, Rate: p.Rate, Ceil: p.Ceil})
		cs := ClassStatus{App: p.Key.App, Service: p.Key.Service, ClassID: "1:" + strconv.FormatUint(uint64(m), 16),
			Rate: FormatRate(p.Rate), Ceil: FormatRate(p.Ceil), Endpoints: []string{}}
		for _, ap := range p.Endpoints {
			d.Endpoints[ap] = m
			cs.Endpoints = append(cs.Endpoints, ap.String())
		}
		st.Classes = append(st.Classes, cs)
	}
	r.m.setClasses(d.Classes)
	return r.dp.Sync(d)
}

// Ready is nil once a reconcile applied without dataplane errors.
func (r *Reconciler) Ready() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !r.done:
		return errors.New("no configuration applied yet")
	case !r.ok:
		return fmt.Errorf("last reconcile failed: %s", r.status.Error)
	}
	return nil
}

// Status returns the outcome of the last reconcile.
func (r *Reconciler) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.status
	st.Classes = slices.Clone(st.Classes)
	st.Problems = slices.Clone(st.Problems)
	return st
}

// lastGoodResolver re-resolves on every call but falls back to the last
// addresses a host resolved to when a lookup fails, so a DNS hiccup does
// not lift a limit.
type lastGoodResolver struct {
	res  Resolver
	mu   sync.Mutex
	last map[string][]netip.Addr
}

func newLastGoodResolver(res Resolver) *lastGoodResolver {
	if res == nil {
		res = defaultResolver{}
	}
	return &lastGoodResolver{res: res, last: map[string][]netip.Addr{}}
}

func (l *lastGoodResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	addrs, err := l.res.LookupNetIP(ctx, network, host)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && len(addrs) > 0 {
		l.last[host] = slices.Clone(addrs)
		return addrs, nil
	}
	if prev, ok := l.last[host]; ok {
		if err == nil {
			err = errors.New("no addresses")
		}
		return slices.Clone(prev), fmt.Errorf("%w (keeping the last addresses %v)", err, prev)
	}
	return addrs, err
}
