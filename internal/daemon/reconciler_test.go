package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/database-mesh/pisanix-go/internal/daemonconfig"
)

func TestPreferredMinorRange(t *testing.T) {
	for i := range 5000 {
		m := PreferredMinor(ClassKey{fmt.Sprint("app", i), "svc"})
		if m < MinMinor || m > MaxMinor {
			t.Fatalf("minor %#x out of range", m)
		}
	}
}

// collidingKeys finds two keys with the same preferred minor, in sorted
// order.
func collidingKeys(t *testing.T) (ClassKey, ClassKey) {
	seen := map[uint16]ClassKey{}
	for i := 0; ; i++ {
		k := ClassKey{"app", fmt.Sprint("svc", i)}
		m := PreferredMinor(k)
		if prev, ok := seen[m]; ok {
			if prev.compare(k) > 0 {
				return k, prev
			}
			return prev, k
		}
		seen[m] = k
	}
}

var quiet = slog.New(slog.DiscardHandler)

func TestAllocateMinors(t *testing.T) {
	a, b := collidingKeys(t)
	c := ClassKey{"other", "svc"}
	pa := PreferredMinor(a)

	got := AllocateMinors([]ClassKey{b, a, c}, nil, nil)
	if got[a] != pa || got[b] != pa+1 || got[c] != PreferredMinor(c) {
		t.Errorf("fresh: %v (preferred %#x)", got, pa)
	}
	// b already owns the preferred minor (it came first in an earlier run):
	// both keep what they have, a takes the next free one.
	owned := map[uint16]ClassKey{pa: b}
	got = AllocateMinors([]ClassKey{a, b}, owned, nil)
	if got[b] != pa || got[a] != pa+1 {
		t.Errorf("owned: %v", got)
	}
	// Foreign classes are never taken.
	got = AllocateMinors([]ClassKey{a}, nil, map[uint16]bool{pa: true, pa + 1: true})
	if got[a] != pa+2 {
		t.Errorf("foreign: %v", got)
	}
	// Owned by a key that is going away: not reused in the same round.
	got = AllocateMinors([]ClassKey{a}, map[uint16]ClassKey{pa: {"gone", "x"}}, nil)
	if got[a] != pa+1 {
		t.Errorf("stale owner: %v", got)
	}
	// Wrap around at the top.
	foreign := map[uint16]bool{}
	for m := int(MinMinor); m <= int(MaxMinor); m++ {
		if uint16(m) != MinMinor {
			foreign[uint16(m)] = true
		}
	}
	got = AllocateMinors([]ClassKey{a}, nil, foreign)
	if got[a] != MinMinor {
		t.Errorf("wrap: %v", got)
	}
	foreign[MinMinor] = true
	if got = AllocateMinors([]ClassKey{a}, nil, foreign); len(got) != 0 {
		t.Errorf("full: %v", got)
	}
}

// fakeDataplane keeps state across "restarts" like the pinned maps do.
type fakeDataplane struct {
	mu      sync.Mutex
	owned   map[uint16]ClassKey
	foreign map[uint16]bool
	classes map[uint16]DesiredClass
	eps     map[netip.AddrPort]uint16
	syncs   int
	fail    error
}

func newFakeDataplane() *fakeDataplane {
	return &fakeDataplane{owned: map[uint16]ClassKey{}, foreign: map[uint16]bool{},
		classes: map[uint16]DesiredClass{}, eps: map[netip.AddrPort]uint16{}}
}

func (f *fakeDataplane) Inventory() (Inventory, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Inventory{Owned: maps.Clone(f.owned), Foreign: maps.Clone(f.foreign)}, nil
}

func (f *fakeDataplane) Sync(d Desired) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	if f.fail != nil {
		return f.fail
	}
	f.owned = map[uint16]ClassKey{}
	f.classes = map[uint16]DesiredClass{}
	for _, c := range d.Classes {
		f.owned[c.Minor] = c.Key
		f.classes[c.Minor] = c
	}
	f.eps = maps.Clone(d.Endpoints)
	return nil
}

func (f *fakeDataplane) Stats() ([]ClassStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ClassStats
	for m, c := range f.classes {
		out = append(out, ClassStats{Key: c.Key, Minor: m, Device: "eth0", Bytes: 1000, Packets: 10, Drops: 1, Overlimits: 2})
	}
	return out, nil
}

func oneService(rate string, eps ...daemonconfig.Endpoint) *daemonconfig.Config {
	return &daemonconfig.Config{App: []daemonconfig.App{{Name: "shop", Service: []daemonconfig.Service{svc("db", rate, "", eps...)}}}}
}

func TestReconcilerLifecycle(t *testing.T) {
	dp := newFakeDataplane()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, dp.Stats, quiet)
	r := NewReconciler(dp, ReconcilerOptions{Metrics: m, Resolver: fakeResolver{}, Logger: quiet})
	ctx := context.Background()
	if err := r.Ready(); err == nil {
		t.Error("ready before the first reconcile")
	}

	cfg := oneService("10mbit", ep("10.0.0.1", 3306), ep("fd00::1", 3306))
	cfg.Version = "7"
	if err := r.Reconcile(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := r.Ready(); err != nil {
		t.Errorf("not ready: %v", err)
	}
	key := ClassKey{"shop", "db"}
	minor := PreferredMinor(key)
	if c := dp.classes[minor]; c.Rate != 10e6 || c.Ceil != 10e6 || len(dp.eps) != 2 || dp.eps[netip.MustParseAddrPort("[fd00::1]:3306")] != minor {
		t.Fatalf("after first reconcile: classes %v eps %v", dp.classes, dp.eps)
	}

	// Change in place: same minor, new rate.
	if err := r.Reconcile(ctx, oneService("20mbit", ep("10.0.0.1", 3306))); err != nil {
		t.Fatal(err)
	}
	if c := dp.classes[minor]; len(dp.classes) != 1 || c.Rate != 20e6 || len(dp.eps) != 1 {
		t.Fatalf("after change: classes %v eps %v", dp.classes, dp.eps)
	}

	// A restarted daemon (new reconciler, same dataplane state) keeps ids.
	r2 := NewReconciler(dp, ReconcilerOptions{Resolver: fakeResolver{}, Logger: quiet})
	if err := r2.Reconcile(ctx, oneService("20mbit", ep("10.0.0.1", 3306))); err != nil {
		t.Fatal(err)
	}
	if _, ok := dp.classes[minor]; !ok || len(dp.classes) != 1 {
		t.Fatalf("after restart: %v", dp.classes)
	}

	// Invalid rate: reported and skipped, the class goes.
	if err := r.Reconcile(ctx, oneService("1mps", ep("10.0.0.1", 3306))); err != nil {
		t.Fatal(err)
	}
	if len(dp.classes) != 0 || len(dp.eps) != 0 {
		t.Errorf("invalid rate kept %v %v", dp.classes, dp.eps)
	}
	st := r.Status()
	if len(st.Problems) != 1 || !strings.Contains(st.Problems[0], `unknown unit "mps"`) {
		t.Errorf("status problems %v", st.Problems)
	}
	if got := testutil.ToFloat64(m.reconcileErrors.WithLabelValues("invalid_rate")); got != 1 {
		t.Errorf("invalid_rate errors %v", got)
	}
	if got := testutil.ToFloat64(m.reconciles); got != 3 {
		t.Errorf("reconciles %v", got)
	}
	if got := testutil.ToFloat64(m.problems); got != 1 {
		t.Errorf("problems gauge %v", got)
	}

	// Dataplane failure: error, counted, not ready.
	dp.fail = errors.New("boom")
	if err := r.Reconcile(ctx, oneService("10mbit")); err == nil {
		t.Fatal("no error")
	}
	if r.Ready() == nil || testutil.ToFloat64(m.reconcileErrors.WithLabelValues("apply")) != 1 {
		t.Error("failure not reported")
	}
	dp.fail = nil
	if err := r.Reconcile(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.version); got != 7 {
		t.Errorf("version gauge %v", got)
	}
	st = r.Status()
	if st.Version != "7" || len(st.Classes) != 1 || st.Classes[0].Rate != "10Mbit" || len(st.Classes[0].Endpoints) != 2 {
		t.Errorf("status %+v", st)
	}

	// Class metrics from the dataplane's stats at scrape.
	n, err := testutil.GatherAndCount(reg, "pisa_daemon_class_bytes_total", "pisa_daemon_class_drops_total",
		"pisa_daemon_class_overlimits_total", "pisa_daemon_class_rate_bits")
	if err != nil || n != 4 {
		t.Errorf("class metrics: %d, %v", n, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP pisa_daemon_class_bytes_total Bytes sent through the service's HTB class.
# TYPE pisa_daemon_class_bytes_total counter
pisa_daemon_class_bytes_total{app="shop",device="eth0",service="db"} 1000
`), "pisa_daemon_class_bytes_total"); err != nil {
		t.Error(err)
	}
}

type flakyResolver struct {
	mu   sync.Mutex
	fail bool
}

func (f *flakyResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return nil, errors.New("server misbehaving")
	}
	return []netip.Addr{netip.MustParseAddr("10.1.1.1")}, nil
}

// A DNS failure keeps the last addresses, so the limit is not lifted.
func TestReconcilerKeepsLastResolution(t *testing.T) {
	dp := newFakeDataplane()
	res := &flakyResolver{}
	r := NewReconciler(dp, ReconcilerOptions{Resolver: res, Logger: quiet})
	cfg := oneService("10mbit", ep("mysql.db.svc", 3306))
	if err := r.Reconcile(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	res.fail = true
	if err := r.Reconcile(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if len(dp.eps) != 1 {
		t.Errorf("endpoints after a DNS failure: %v", dp.eps)
	}
	if st := r.Status(); len(st.Problems) != 1 || !strings.Contains(st.Problems[0], "keeping the last addresses") {
		t.Errorf("problems %v", st.Problems)
	}
	if h := r.res.knownHosts(); len(h) != 1 || h[0] != "mysql.db.svc" {
		t.Errorf("known hosts %v", h)
	}
}

// Foreign classes (not created by the daemon) are avoided.
func TestReconcilerAvoidsForeign(t *testing.T) {
	dp := newFakeDataplane()
	key := ClassKey{"shop", "db"}
	dp.foreign[PreferredMinor(key)] = true
	r := NewReconciler(dp, ReconcilerOptions{Logger: quiet})
	if err := r.Reconcile(context.Background(), oneService("1mbit", ep("10.0.0.1", 1))); err != nil {
		t.Fatal(err)
	}
	if _, ok := dp.classes[PreferredMinor(key)]; ok || len(dp.classes) != 1 {
		t.Errorf("classes %v", dp.classes)
	}
}

func (l *lastGoodResolver) knownHosts() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(maps.Keys(l.last))
}
