// Package topn keeps the time spent per statement fingerprint for the top
// N fingerprints by time, with bounded metric cardinality: at most N
// digest series plus one digest="other" series per domain.
//
// A fingerprint gets its own series when there is room (the first N seen)
// or, at a rebalance (every scrape), when it spent more time since the
// last rebalance than the weakest tracked one, which is then dropped
// (its series disappears). Time spent by untracked fingerprints is added to
// "other". Every exported series is a monotonic counter while it exists.
//
// Observe on a tracked fingerprint is a map lookup and two atomic adds,
// with no lock and no allocation.
package topn

import (
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxy/govern/govmetrics"
)

// Other is the digest label of the aggregate series.
const Other = "other"

// Tracker tracks one domain. Safe for concurrent use.
type Tracker struct {
	domain string
	n      atomic.Int64

	tracked atomic.Pointer[map[string]*series] // copy on write, under mu
	other   atomic.Int64                       // ns

	mu   sync.Mutex
	cand map[string]int64 // untracked digest -> ns since the last rebalance
}

type series struct {
	total  atomic.Int64 // ns
	recent atomic.Int64 // ns since the last rebalance
}

// New creates a tracker keeping n fingerprints (n <= 0: none, only
// "other").
func New(domain string, n int) *Tracker {
	t := &Tracker{domain: domain, cand: map[string]int64{}}
	t.n.Store(int64(max(n, 0)))
	m := map[string]*series{}
	t.tracked.Store(&m)
	return t
}

// SetN changes the number of tracked fingerprints (reload); surplus
// series are dropped at the next rebalance.
func (t *Tracker) SetN(n int) { t.n.Store(int64(max(n, 0))) }

func (t *Tracker) maxCand() int { return max(4*int(t.n.Load()), 64) }

// Observe adds d to digest's time. An empty digest is ignored.
func (t *Tracker) Observe(digest string, d time.Duration) {
	if t == nil || digest == "" || d <= 0 {
		return
	}
	if s := (*t.tracked.Load())[digest]; s != nil {
		s.total.Add(int64(d))
		s.recent.Add(int64(d))
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.tracked.Load()
	if s := old[digest]; s != nil { // tracked meanwhile
		s.total.Add(int64(d))
		s.recent.Add(int64(d))
		return
	}
	if int64(len(old)) < t.n.Load() {
		s := &series{}
		s.total.Store(int64(d))
		s.recent.Store(int64(d))
		t.store(old, strings.Clone(digest), s, "")
		return
	}
	t.other.Add(int64(d))
	if v, ok := t.cand[digest]; ok {
		t.cand[digest] = v + int64(d)
	} else if len(t.cand) < t.maxCand() {
		t.cand[strings.Clone(digest)] = int64(d)
	}
}

// store publishes old + (add, s) - drop.
func (t *Tracker) store(old map[string]*series, add string, s *series, drop string) {
	m := make(map[string]*series, len(old)+1)
	for k, v := range old {
		if k != drop {
			m[k] = v
		}
	}
	if s != nil {
		m[add] = s
	}
	t.tracked.Store(&m)
}

// Rebalance swaps in the candidates that spent more time since the last
// rebalance than the weakest tracked fingerprints, and trims to N.
func (t *Tracker) Rebalance() {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.tracked.Load()
	type kv struct {
		k string
		v int64
	}
	tr := make([]kv, 0, len(old))
	for k, s := range old {
		tr = append(tr, kv{k, s.recent.Load()})
	}
	sort.Slice(tr, func(i, j int) bool { return tr[i].v < tr[j].v || tr[i].v == tr[j].v && tr[i].k < tr[j].k })
	cs := make([]kv, 0, len(t.cand))
	for k, v := range t.cand {
		cs = append(cs, kv{k, v})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].v > cs[j].v || cs[i].v == cs[j].v && cs[i].k < cs[j].k })

	m := make(map[string]*series, len(old))
	for k, v := range old {
		m[k] = v
	}
	n := int(t.n.Load())
	for len(m) > n && len(tr) > 0 { // trimmed by SetN
		delete(m, tr[0].k)
		tr = tr[1:]
	}
	for _, c := range cs {
		if len(m) < n {
			m[c.k] = &series{}
			continue
		}
		if len(tr) == 0 || c.v <= tr[0].v {
			break
		}
		delete(m, tr[0].k)
		tr = tr[1:]
		m[c.k] = &series{} // its earlier time stays in "other"
	}
	for _, s := range m {
		s.recent.Store(0)
	}
	clear(t.cand)
	t.tracked.Store(&m)
}

// Snapshot returns the tracked totals and the "other" total.
func (t *Tracker) Snapshot() (tracked map[string]time.Duration, other time.Duration) {
	m := *t.tracked.Load()
	tracked = make(map[string]time.Duration, len(m))
	for k, s := range m {
		tracked[k] = time.Duration(s.total.Load())
	}
	return tracked, time.Duration(t.other.Load())
}

// AppendSamples implements govmetrics.Source; it rebalances first.
func (t *Tracker) AppendSamples(dst []govmetrics.Sample) []govmetrics.Sample {
	t.Rebalance()
	m := *t.tracked.Load()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		dst = append(dst, govmetrics.Sample{Metric: govmetrics.TopFingerprint, Domain: t.domain, Label: k,
			Value: time.Duration(m[k].total.Load()).Seconds()})
	}
	return append(dst, govmetrics.Sample{Metric: govmetrics.TopFingerprint, Domain: t.domain, Label: Other,
		Value: time.Duration(t.other.Load()).Seconds()})
}
