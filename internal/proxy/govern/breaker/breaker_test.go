package breaker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/govmetrics"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newTest(t *testing.T, cfg proxyconfig.EndpointBreaker) (*Breaker, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	b, err := New("d", cfg, clk.Now, quiet)
	if err != nil {
		t.Fatal(err)
	}
	return b, clk
}

var errNet = errors.New("read tcp: connection reset by peer")

const ep = "10.0.0.1:3306"

func TestStateMachine(t *testing.T) {
	b, clk := newTest(t, proxyconfig.EndpointBreaker{ErrorRate: 0.5, MinRequests: 4, Window: proxyconfig.D(10 * time.Second),
		OpenFor: proxyconfig.D(5 * time.Second), HalfOpenMax: 2})
	step := func(name string, want State) {
		t.Helper()
		if got := b.State(ep); got != want {
			t.Fatalf("%s: state = %s, want %s", name, got, want)
		}
	}
	step("new", Closed)
	// 3 failures: below min_requests, stays closed.
	for range 3 {
		if !b.Allow(ep) {
			t.Fatal("closed refused")
		}
		b.Report(ep, errNet, time.Millisecond)
	}
	step("below min_requests", Closed)
	// 4th failure: 4/4 >= 0.5 → open.
	b.Report(ep, errNet, time.Millisecond)
	step("tripped", Open)
	if b.Allow(ep) {
		t.Fatal("open allowed")
	}
	clk.Advance(4 * time.Second)
	if b.Allow(ep) {
		t.Fatal("open allowed before open_for")
	}
	clk.Advance(time.Second)
	step("open_for passed", HalfOpen)
	// Half-open: at most 2 trials at once.
	first, second := b.Allow(ep), b.Allow(ep)
	if !first || !second {
		t.Fatal("trial refused")
	}
	if b.Allow(ep) {
		t.Fatal("third concurrent trial allowed")
	}
	// A failed trial re-opens.
	b.Report(ep, errNet, 0)
	step("trial failed", Open)
	b.Report(ep, nil, 0) // the other trial finishing late changes nothing
	step("late success while open", Open)
	clk.Advance(5 * time.Second)
	if !b.Allow(ep) {
		t.Fatal("trial refused")
	}
	b.Report(ep, nil, 0)
	step("one success of two", HalfOpen)
	if !b.Allow(ep) {
		t.Fatal("trial refused after a success")
	}
	b.Report(ep, nil, 0)
	step("two successes", Closed)
	// Closed again with a fresh window: 1 failure + 3 successes = 25%.
	b.Report(ep, errNet, 0)
	for range 3 {
		b.Report(ep, nil, 0)
	}
	step("25% errors", Closed)
}

func TestWindowSlides(t *testing.T) {
	b, clk := newTest(t, proxyconfig.EndpointBreaker{ErrorRate: 0.5, MinRequests: 4, Window: proxyconfig.D(10 * time.Second)})
	// Two failures, then 11 s later two more: the first two have left
	// the window, so only 2 requests count (< min_requests).
	b.Report(ep, errNet, 0)
	b.Report(ep, errNet, 0)
	clk.Advance(11 * time.Second)
	b.Report(ep, errNet, 0)
	b.Report(ep, errNet, 0)
	if s := b.State(ep); s != Closed {
		t.Fatalf("state = %s; old failures still counted", s)
	}
	clk.Advance(5 * time.Second) // still inside the window of the last two
	b.Report(ep, nil, 0)
	b.Report(ep, errNet, 0) // the rate is evaluated when a failure is reported
	if s := b.State(ep); s != Open {
		t.Fatalf("state = %s; want open (3/4 failed)", s)
	}
}

func TestTimeoutAndClassification(t *testing.T) {
	b, _ := newTest(t, proxyconfig.EndpointBreaker{ErrorRate: 1, MinRequests: 2, Timeout: proxyconfig.D(time.Second)})
	// Statement errors are not failures.
	for range 10 {
		b.Report(ep, mysql.NewError(1064, "42000", "syntax"), 0)
		b.Report(ep, mysql.NewError(1062, "23000", "dup"), 0)
		b.Report(ep, context.Canceled, 0)
	}
	if s := b.State(ep); s != Closed {
		t.Fatalf("statement errors tripped the breaker: %s", s)
	}
	// Slow requests are.
	b2, _ := newTest(t, proxyconfig.EndpointBreaker{ErrorRate: 1, MinRequests: 2, Timeout: proxyconfig.D(time.Second)})
	b2.Report(ep, nil, 2*time.Second)
	b2.Report(ep, nil, 3*time.Second)
	if s := b2.State(ep); s != Open {
		t.Fatalf("slow requests: %s", s)
	}
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{io.EOF, true},
		{fmt.Errorf("wrapped: %w", mysql.NewError(mysql.ErrCodeTooManyConnections, "08004", "too many")), true},
		{mysql.NewError(mysql.ErrCodeServerGone, "HY000", "gone"), true},
		{mysql.NewError(1146, "42S02", "no such table"), false},
		{fmt.Errorf("x: %w", context.Canceled), false},
	}
	for _, tt := range tests {
		if got := DefaultIsFailure(tt.err); got != tt.want {
			t.Errorf("DefaultIsFailure(%v) = %v", tt.err, got)
		}
	}
}

func TestConfigureKeepsState(t *testing.T) {
	b, _ := newTest(t, proxyconfig.EndpointBreaker{MinRequests: 1, ErrorRate: 1})
	b.Report(ep, errNet, 0)
	if b.State(ep) != Open {
		t.Fatal("not open")
	}
	if err := b.Configure(proxyconfig.EndpointBreaker{MinRequests: 100, OpenFor: proxyconfig.D(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if b.State(ep) != Open {
		t.Fatal("reload closed the breaker")
	}
	got := b.AppendSamples(nil)
	want := []govmetrics.Sample{{Metric: govmetrics.BreakerState, Domain: "d", Label: ep, Value: 2}}
	if len(got) != 1 || got[0] != want[0] {
		t.Errorf("samples = %+v", got)
	}
	b.Retain(nil)
	if b.State(ep) != Closed || len(b.AppendSamples(nil)) != 0 {
		t.Error("Retain did not forget the endpoint")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		c    proxyconfig.EndpointBreaker
		want string
	}{
		{proxyconfig.EndpointBreaker{ErrorRate: 1.5}, "error_rate"},
		{proxyconfig.EndpointBreaker{ErrorRate: -0.1}, "error_rate"},
		{proxyconfig.EndpointBreaker{MinRequests: -1}, "min_requests"},
		{proxyconfig.EndpointBreaker{Window: proxyconfig.D(time.Microsecond)}, "window"},
		{proxyconfig.EndpointBreaker{OpenFor: proxyconfig.D(-time.Second)}, "open_for"},
		{proxyconfig.EndpointBreaker{HalfOpenMax: -1}, "half_open_max"},
		{proxyconfig.EndpointBreaker{Timeout: proxyconfig.D(-1)}, "timeout"},
	}
	for _, tt := range tests {
		if err := tt.c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v", tt.c, err)
		}
	}
	if err := (proxyconfig.EndpointBreaker{}).Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}

func TestConcurrentReports(t *testing.T) {
	b, clk := newTest(t, proxyconfig.EndpointBreaker{ErrorRate: 0.9, MinRequests: 10, HalfOpenMax: 3})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				if b.Allow(ep) {
					var err error
					if (i+g)%2 == 0 {
						err = errNet
					}
					b.Report(ep, err, 0)
				}
				if i%100 == 0 {
					clk.Advance(time.Second)
				}
				b.State(ep)
			}
		}()
	}
	wg.Wait()
}

func BenchmarkAllowReportClosed(b *testing.B) {
	br, err := New("d", proxyconfig.EndpointBreaker{}, nil, quiet)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if br.Allow(ep) {
			br.Report(ep, nil, time.Millisecond)
		}
	}
}
