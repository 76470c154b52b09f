package concurrency

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/govmetrics"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mustCompile(t testing.TB, rules []proxyconfig.ConcurrencyControl, reg *Registry) *Set {
	t.Helper()
	s, err := Compile(rules, reg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMatch(t *testing.T) {
	facts := &sqlparse.Facts{Fingerprint: "select sleep(?)", Digest: strings.Repeat("ab", 32)}
	tests := []struct {
		name  string
		rules []proxyconfig.ConcurrencyControl
		sql   string
		facts *sqlparse.Facts
		want  string
	}{
		{"none", []proxyconfig.ConcurrencyControl{{MatchSpec: regexSpec("aaa"), MaxConcurrency: 1}}, "select 1", nil, ""},
		{"regex", []proxyconfig.ConcurrencyControl{{MatchSpec: regexSpec("aaa"), MaxConcurrency: 1}}, "select aaa", nil, "concurrency_control[0]"},
		{"case", []proxyconfig.ConcurrencyControl{{MatchSpec: regexSpec("AAA"), MaxConcurrency: 1}}, "select aaa", nil, ""},
		{"case insensitive", []proxyconfig.ConcurrencyControl{{MatchSpec: proxyconfig.MatchSpec{Regex: []string{"AAA"}, CaseInsensitive: true}, MaxConcurrency: 1}}, "select aaa", nil, "concurrency_control[0]"},
		{"first matching rule only", []proxyconfig.ConcurrencyControl{{Name: "a", MatchSpec: regexSpec("x")}, {Name: "b", MatchSpec: regexSpec("x")}}, "x", nil, "a"},
		{"fingerprint", []proxyconfig.ConcurrencyControl{{Name: "f", MatchSpec: proxyconfig.MatchSpec{Fingerprint: []string{"select sleep(?)"}}}}, "select sleep(1)", facts, "f"},
		{"digest", []proxyconfig.ConcurrencyControl{{Name: "f", MatchSpec: proxyconfig.MatchSpec{Fingerprint: []string{strings.Repeat("AB", 32)}}}}, "q", facts, "f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustCompile(t, tt.rules, NewRegistry("d", nil))
			c := s.Match(tt.sql, tt.facts)
			got := ""
			if c != nil {
				got = c.Name
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLimit(t *testing.T) {
	reg := NewRegistry("d", nil)
	s := mustCompile(t, []proxyconfig.ConcurrencyControl{{Name: "x", MatchSpec: regexSpec("slow"), MaxConcurrency: 2}}, reg)
	ctx := context.Background()
	p1, _, _, rej := s.Acquire(ctx, "slow 1", nil)
	p2, _, _, rej2 := s.Acquire(ctx, "slow 2", nil)
	if rej != nil || rej2 != nil || !p1.Held() || !p2.Held() {
		t.Fatal("first two must pass")
	}
	if p, _, _, _ := s.Acquire(ctx, "fast", nil); p.Held() {
		t.Fatal("non-matching statement took a slot")
	}
	_, _, _, rej = s.Acquire(ctx, "slow 3", nil)
	if rej == nil {
		t.Fatal("third must be rejected")
	}
	if rej.Reason != ReasonLimit || rej.Err.Code != mysql.ErrCodeUnknownCom || rej.Err.SQLState != "08S01" ||
		rej.Err.Message != `concurrency control plugin rejected: concurrency_control rule "x": 2 statements already running` {
		t.Errorf("rej = %+v %+v", rej, rej.Err)
	}
	if n := reg.InFlight("x"); n != 2 {
		t.Errorf("in flight = %d", n)
	}
	p1.Release()
	p3, _, _, rej := s.Acquire(ctx, "slow 3", nil)
	if rej != nil {
		t.Fatal("slot not given back")
	}
	p2.Release()
	p3.Release()
	if n := reg.InFlight("x"); n != 0 {
		t.Errorf("in flight = %d", n)
	}
}

func TestZeroRejectsAll(t *testing.T) {
	s := mustCompile(t, []proxyconfig.ConcurrencyControl{{MatchSpec: regexSpec("x"), MaxConcurrency: 0}}, NewRegistry("d", nil))
	if _, _, _, rej := s.Acquire(context.Background(), "x", nil); rej == nil {
		t.Fatal("max_concurrency 0 must reject")
	}
}

func TestDryRun(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := govmetrics.New(reg)
	r := NewRegistry("d", nil)
	s, err := Compile([]proxyconfig.ConcurrencyControl{{Name: "x", MatchSpec: regexSpec("x"), MaxConcurrency: 1, DryRun: true}}, r, Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	var ps []Permit
	var dries int
	for range 3 {
		p, _, dry, rej := s.Acquire(context.Background(), "x", nil)
		if rej != nil {
			t.Fatal("dry run rejected")
		}
		if dry {
			dries++
		}
		ps = append(ps, p)
	}
	if dries != 2 || r.InFlight("x") != 3 {
		t.Errorf("dries = %d, in flight = %d", dries, r.InFlight("x"))
	}
	for _, p := range ps {
		p.Release()
	}
	if r.InFlight("x") != 0 {
		t.Errorf("in flight = %d", r.InFlight("x"))
	}
	want := `
# HELP pisa_proxy_rule_dry_run_hits_total Statements a dry_run rule would have rejected (they were let through), by rule and reason.
# TYPE pisa_proxy_rule_dry_run_hits_total counter
pisa_proxy_rule_dry_run_hits_total{domain="d",reason="concurrency_limit",rule="x"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pisa_proxy_rule_dry_run_hits_total"); err != nil {
		t.Error(err)
	}
}

func TestWaitQueue(t *testing.T) {
	reg := NewRegistry("d", nil)
	s := mustCompile(t, []proxyconfig.ConcurrencyControl{{Name: "q", MatchSpec: regexSpec("x"), MaxConcurrency: 1,
		WaitTimeout: proxyconfig.D(5 * time.Second), MaxQueue: 2}}, reg)
	ctx := context.Background()
	p0, _, _, _ := s.Acquire(ctx, "x", nil)

	order := make(chan int, 2)
	var wg sync.WaitGroup
	for i := 1; i <= 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, _, _, rej := s.Acquire(ctx, "x", nil)
			if rej != nil {
				t.Errorf("waiter %d rejected: %v", i, rej.Err)
				return
			}
			order <- i
			p.Release()
		}()
		waitFor(t, func() bool { return reg.Waiting("q") == i })
	}
	// Queue full: the third waiter is refused at once.
	_, _, _, rej := s.Acquire(ctx, "x", nil)
	if rej == nil || rej.Reason != ReasonFull || !strings.Contains(rej.Err.Message, "1 statements already running and 2 waiting") {
		t.Fatalf("rej = %+v", rej)
	}
	p0.Release()
	wg.Wait()
	if a, b := <-order, <-order; a != 1 || b != 2 {
		t.Errorf("order = %d, %d; want FIFO", a, b)
	}
	if reg.InFlight("q") != 0 || reg.Waiting("q") != 0 {
		t.Errorf("in flight %d waiting %d", reg.InFlight("q"), reg.Waiting("q"))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWaitTimeoutAndCancel(t *testing.T) {
	reg := NewRegistry("d", nil)
	s := mustCompile(t, []proxyconfig.ConcurrencyControl{{Name: "q", MatchSpec: regexSpec("x"), MaxConcurrency: 1, WaitTimeout: proxyconfig.D(20 * time.Millisecond)}}, reg)
	p0, _, _, _ := s.Acquire(context.Background(), "x", nil)
	start := time.Now()
	_, _, _, rej := s.Acquire(context.Background(), "x", nil)
	if rej == nil || rej.Reason != ReasonTimeout || !strings.Contains(rej.Err.Message, "no slot free within 20ms") {
		t.Fatalf("rej = %+v", rej)
	}
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Errorf("returned after %s", el)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		waitFor(t, func() bool { return reg.Waiting("q") == 1 })
		cancel()
	}()
	s2 := mustCompile(t, []proxyconfig.ConcurrencyControl{{Name: "q", MatchSpec: regexSpec("x"), MaxConcurrency: 1, WaitTimeout: proxyconfig.D(time.Minute)}}, reg)
	_, _, _, rej = s2.Acquire(ctx, "x", nil)
	if rej == nil || rej.Reason != ReasonCanceled {
		t.Fatalf("rej = %+v", rej)
	}
	if reg.Waiting("q") != 0 {
		t.Errorf("waiting = %d", reg.Waiting("q"))
	}
	p0.Release()
	if reg.InFlight("q") != 0 {
		t.Errorf("in flight = %d", reg.InFlight("q"))
	}
}

// TestDuration pins the documented window semantics with a fake clock.
func TestDuration(t *testing.T) {
	clk := newClock()
	reg := NewRegistry("d", clk.Now)
	s := mustCompile(t, []proxyconfig.ConcurrencyControl{{Name: "w", MatchSpec: regexSpec("x"), MaxConcurrency: 1, Duration: 10}}, reg)
	ctx := context.Background()

	// The first match opens the window and takes the only slot.
	p1, _, _, rej := s.Acquire(ctx, "x", nil)
	if rej != nil {
		t.Fatal(rej.Err)
	}
	clk.Advance(9 * time.Second)
	if _, _, _, rej := s.Acquire(ctx, "x", nil); rej == nil {
		t.Fatal("within the window: must be rejected")
	}
	// The window expired: the next match opens a new one; p1 (still
	// running) no longer counts, the new statement takes a slot.
	clk.Advance(time.Second)
	p2, _, _, rej := s.Acquire(ctx, "x", nil)
	if rej != nil {
		t.Fatalf("new window: %v", rej.Err)
	}
	if _, _, _, rej := s.Acquire(ctx, "x", nil); rej == nil {
		t.Fatal("the statement opening a window takes a slot (Pisanix did not)")
	}
	// Releasing a permit of the old window does not free a slot of the new.
	p1.Release()
	if _, _, _, rej := s.Acquire(ctx, "x", nil); rej == nil {
		t.Fatal("old permit freed a new slot")
	}
	p2.Release()
	p3, _, _, rej := s.Acquire(ctx, "x", nil)
	if rej != nil {
		t.Fatal(rej.Err)
	}
	p3.Release()
	if n := reg.InFlight("w"); n != 0 {
		t.Errorf("in flight = %d", n)
	}
	// Long idle: the next match simply opens a fresh window.
	clk.Advance(time.Hour)
	p4, _, _, rej := s.Acquire(ctx, "x", nil)
	if rej != nil {
		t.Fatal(rej.Err)
	}
	p4.Release()
}

// TestDurationZero: the limit applies all the time.
func TestDurationZero(t *testing.T) {
	clk := newClock()
	reg := NewRegistry("d", clk.Now)
	s := mustCompile(t, []proxyconfig.ConcurrencyControl{{Name: "w", MatchSpec: regexSpec("x"), MaxConcurrency: 1}}, reg)
	p, _, _, _ := s.Acquire(context.Background(), "x", nil)
	clk.Advance(1000 * time.Hour)
	if _, _, _, rej := s.Acquire(context.Background(), "x", nil); rej == nil {
		t.Fatal("duration 0 must always limit")
	}
	p.Release()
}

func TestReloadKeepsState(t *testing.T) {
	reg := NewRegistry("d", nil)
	ctx := context.Background()
	s1 := mustCompile(t, []proxyconfig.ConcurrencyControl{{Name: "keep", MatchSpec: regexSpec("x"), MaxConcurrency: 1}, {Name: "gone", MatchSpec: regexSpec("y"), MaxConcurrency: 1}}, reg)
	p1, _, _, _ := s1.Acquire(ctx, "x", nil)
	py, _, _, _ := s1.Acquire(ctx, "y", nil)

	// Same name, higher limit: the running statement still counts.
	s2 := mustCompile(t, []proxyconfig.ConcurrencyControl{{Name: "keep", MatchSpec: regexSpec("x"), MaxConcurrency: 2}}, reg)
	if reg.InFlight("keep") != 1 {
		t.Fatalf("in flight = %d after reload", reg.InFlight("keep"))
	}
	p2, _, _, rej := s2.Acquire(ctx, "x", nil)
	if rej != nil {
		t.Fatal(rej.Err)
	}
	if _, _, _, rej := s2.Acquire(ctx, "x", nil); rej == nil {
		t.Fatal("limit 2 exceeded")
	}
	// The removed rule is gone from the registry; releasing its permit
	// is harmless.
	py.Release()
	if reg.InFlight("gone") != 0 {
		t.Error("removed rule still reported")
	}
	// A failed compile leaves the state alone.
	if _, err := Compile([]proxyconfig.ConcurrencyControl{{Name: "keep", MatchSpec: regexSpec("("), MaxConcurrency: 9}}, reg, Options{}); err == nil {
		t.Fatal("bad regex accepted")
	}
	if _, _, _, rej := s2.Acquire(ctx, "x", nil); rej == nil {
		t.Fatal("failed compile changed the limit")
	}
	p1.Release()
	p2.Release()
}

func TestReloadRaisesLimitWakesWaiters(t *testing.T) {
	reg := NewRegistry("d", nil)
	rule := proxyconfig.ConcurrencyControl{Name: "q", MatchSpec: regexSpec("x"), MaxConcurrency: 1, WaitTimeout: proxyconfig.D(5 * time.Second)}
	s := mustCompile(t, []proxyconfig.ConcurrencyControl{rule}, reg)
	p0, _, _, _ := s.Acquire(context.Background(), "x", nil)
	done := make(chan *Rejected, 1)
	go func() {
		p, _, _, rej := s.Acquire(context.Background(), "x", nil)
		p.Release()
		done <- rej
	}()
	waitFor(t, func() bool { return reg.Waiting("q") == 1 })
	rule.MaxConcurrency = 2
	mustCompile(t, []proxyconfig.ConcurrencyControl{rule}, reg)
	select {
	case rej := <-done:
		if rej != nil {
			t.Fatal(rej.Err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("waiter not woken by the higher limit")
	}
	p0.Release()
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		rule proxyconfig.ConcurrencyControl
		want string
	}{
		{proxyconfig.ConcurrencyControl{}, "needs at least one regex or fingerprint"},
		{proxyconfig.ConcurrencyControl{MatchSpec: regexSpec("x"), MaxConcurrency: -1}, "max_concurrency: must be >= 0"},
		{proxyconfig.ConcurrencyControl{MatchSpec: regexSpec("x"), Duration: -1}, "duration: must be >= 0 seconds"},
		{proxyconfig.ConcurrencyControl{MatchSpec: regexSpec("x"), WaitTimeout: proxyconfig.D(-1)}, "wait_timeout"},
		{proxyconfig.ConcurrencyControl{MatchSpec: regexSpec("x"), MaxQueue: -1}, "max_queue: must be >= 0"},
		{proxyconfig.ConcurrencyControl{MatchSpec: regexSpec("x"), MaxQueue: 3}, "max_queue: needs wait_timeout"},
		{proxyconfig.ConcurrencyControl{MatchSpec: regexSpec("[")}, "concurrency_control[0].regex[0]: invalid regular expression"},
	}
	for _, tt := range tests {
		err := proxyconfig.ValidateConcurrencyControls([]proxyconfig.ConcurrencyControl{tt.rule})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v, want %q", tt.rule, err, tt.want)
		}
	}
	if err := proxyconfig.ValidateConcurrencyControls([]proxyconfig.ConcurrencyControl{{Name: "a", MatchSpec: regexSpec("x")}, {Name: "a", MatchSpec: regexSpec("y")}}); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("duplicate: %v", err)
	}
}

// TestConcurrentLimit hammers one rule from many goroutines (run with
// -race) and checks the limit is never exceeded.
func TestConcurrentLimit(t *testing.T) {
	for _, wait := range []time.Duration{0, time.Second} {
		reg := NewRegistry("d", nil)
		s := mustCompile(t, []proxyconfig.ConcurrencyControl{{Name: "c", MatchSpec: regexSpec("x"), MaxConcurrency: 3, WaitTimeout: proxyconfig.D(wait)}}, reg)
		var running, peak, ok, rejected atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 200 {
					p, _, _, rej := s.Acquire(context.Background(), "x", nil)
					if rej != nil {
						rejected.Add(1)
						continue
					}
					n := running.Add(1)
					for {
						pk := peak.Load()
						if n <= pk || peak.CompareAndSwap(pk, n) {
							break
						}
					}
					ok.Add(1)
					running.Add(-1)
					p.Release()
				}
			}()
		}
		wg.Wait()
		if peak.Load() > 3 {
			t.Errorf("wait=%s: peak %d > 3", wait, peak.Load())
		}
		if wait > 0 && rejected.Load() != 0 {
			t.Errorf("wait=%s: %d rejected", wait, rejected.Load())
		}
		if reg.InFlight("c") != 0 || reg.Waiting("c") != 0 {
			t.Errorf("wait=%s: leaked in flight %d waiting %d", wait, reg.InFlight("c"), reg.Waiting("c"))
		}
	}
}

func TestSamples(t *testing.T) {
	reg := NewRegistry("d", nil)
	s := mustCompile(t, []proxyconfig.ConcurrencyControl{{Name: "a", MatchSpec: regexSpec("a"), MaxConcurrency: 5}, {Name: "b", MatchSpec: regexSpec("b"), MaxConcurrency: 5}}, reg)
	p, _, _, _ := s.Acquire(context.Background(), "a", nil)
	defer p.Release()
	got := reg.AppendSamples(nil)
	want := []govmetrics.Sample{
		{Metric: govmetrics.InFlight, Domain: "d", Label: "a", Value: 1},
		{Metric: govmetrics.QueueLength, Domain: "d", Label: "a", Value: 0},
		{Metric: govmetrics.InFlight, Domain: "d", Label: "b", Value: 0},
		{Metric: govmetrics.QueueLength, Domain: "d", Label: "b", Value: 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	s := mustCompile(b, []proxyconfig.ConcurrencyControl{{MatchSpec: regexSpec("^select sleep"), MaxConcurrency: 1 << 20}}, NewRegistry("d", nil))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, _, _, _ := s.Acquire(ctx, "select sleep(1)", nil)
			p.Release()
		}
	})
}

// regexSpec is a match spec of regexps only.
func regexSpec(res ...string) proxyconfig.MatchSpec { return proxyconfig.MatchSpec{Regex: res} }
