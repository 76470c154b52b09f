package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/daemonconfig"
)

func TestControllerURL(t *testing.T) {
	for in, want := range map[string]string{
		"pisa-controller.pisa-system:8080": "http://pisa-controller.pisa-system:8080" + DaemonConfigsPath,
		"https://ctl:8443/":                "https://ctl:8443" + DaemonConfigsPath,
	} {
		if got := ControllerURL(in); got != want {
			t.Errorf("ControllerURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeController serves daemonconfigs with versions and long-poll watches.
type fakeController struct {
	mu       sync.Mutex
	version  int
	rate     string
	changed  chan struct{}
	fail     atomic.Int32 // fail the next n requests with 500
	requests atomic.Int32
	lastNode atomic.Value
}

func newFakeController() *fakeController {
	return &fakeController{version: 1, rate: "10mbit", changed: make(chan struct{})}
}

func (c *fakeController) set(rate string) {
	c.mu.Lock()
	c.version++
	c.rate = rate
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *fakeController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.requests.Add(1)
	if r.URL.Path != DaemonConfigsPath {
		http.NotFound(w, r)
		return
	}
	c.lastNode.Store(r.URL.Query().Get("node"))
	if c.fail.Load() > 0 {
		c.fail.Add(-1)
		http.Error(w, "etcd unavailable", http.StatusInternalServerError)
		return
	}
	q := r.URL.Query()
	if q.Get("watch") == "true" {
		since, _ := strconv.Atoi(q.Get("version"))
		c.mu.Lock()
		v, ch := c.version, c.changed
		c.mu.Unlock()
		if v == since {
			select {
			case <-ch:
			case <-time.After(300 * time.Millisecond):
				w.WriteHeader(http.StatusNotModified)
				return
			case <-r.Context().Done():
				return
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(w, `{"version": %d, "app": [{"name": "shop", "service": [{"name": "db",
		"qos_group": {"rate": %q}, "endpoints": [{"ip": "10.0.0.1", "port": 3306}]}]}]}`, c.version, c.rate)
}

func collect(t *testing.T) (func(*daemonconfig.Config), func(n int) []*daemonconfig.Config) {
	var mu sync.Mutex
	var got []*daemonconfig.Config
	publish := func(c *daemonconfig.Config) {
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
	}
	wait := func(n int) []*daemonconfig.Config {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			if len(got) >= n {
				out := append([]*daemonconfig.Config(nil), got...)
				mu.Unlock()
				return out
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %d configs", n)
		return nil
	}
	return publish, wait
}

func TestHTTPSourceWatch(t *testing.T) {
	ctl := newFakeController()
	srv := httptest.NewServer(ctl)
	defer srv.Close()
	var fetchErrs atomic.Int32
	src := &HTTPSource{URL: srv.URL + DaemonConfigsPath, Node: "node-1", Logger: quiet,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		OnError: func(error) { fetchErrs.Add(1) }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	publish, wait := collect(t)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, publish) }()

	got := wait(1)
	if got[0].Version != "1" || got[0].App[0].Service[0].QoSGroup.Rate != "10mbit" {
		t.Fatalf("first config %+v", got[0])
	}
	if n := ctl.lastNode.Load(); n != "node-1" {
		t.Errorf("node = %v", n)
	}
	// Watches time out with 304 a few times: nothing is published.
	time.Sleep(700 * time.Millisecond)
	if got := wait(1); len(got) != 1 {
		t.Fatalf("published %d configs without a change", len(got))
	}
	ctl.set("20mbit")
	got = wait(2)
	if got[1].Version != "2" || got[1].App[0].Service[0].QoSGroup.Rate != "20mbit" {
		t.Fatalf("second config %+v", got[1])
	}
	// Errors: nothing published, retried with backoff, then recovers.
	ctl.fail.Store(3)
	for deadline := time.Now().Add(5 * time.Second); ctl.fail.Load() > 0; {
		if time.Now().After(deadline) {
			t.Fatal("failures not consumed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := wait(2); len(got) != 2 {
		t.Fatalf("published %d configs on errors", len(got))
	}
	ctl.set("30mbit")
	got = wait(3)
	if got[2].App[0].Service[0].QoSGroup.Rate != "30mbit" || len(got) != 3 {
		t.Fatalf("after errors: %d configs, last %+v", len(got), got[len(got)-1])
	}
	if fetchErrs.Load() != 3 {
		t.Error("fetch errors not reported")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
}

// A controller without versions (Pisanix) is polled; identical bodies are
// not published again.
func TestHTTPSourcePollsWithoutVersion(t *testing.T) {
	var rate atomic.Value
	rate.Store("10mbit")
	var watched atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("watch") != "" {
			watched.Store(true)
		}
		fmt.Fprintf(w, `{"app": [{"name": "a", "service": [{"name": "s", "qos_group": {"rate": %q}}]}]}`, rate.Load())
	}))
	defer srv.Close()
	src := &HTTPSource{URL: srv.URL + DaemonConfigsPath, Logger: quiet, PollInterval: 30 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	publish, wait := collect(t)
	go src.Run(ctx, publish)
	wait(1)
	time.Sleep(200 * time.Millisecond)
	if got := wait(1); len(got) != 1 {
		t.Fatalf("unchanged body published %d times", len(got))
	}
	rate.Store("20mbit")
	if got := wait(2); got[1].App[0].Service[0].QoSGroup.Rate != "20mbit" {
		t.Fatalf("got %+v", got[1])
	}
	if watched.Load() {
		t.Error("watched a server without versions")
	}
}

// Bad responses are errors, never an empty config.
func TestHTTPSourceBadResponses(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			http.Error(w, `{"kind":"Status","message":"forbidden"}`, http.StatusForbidden)
		case 2:
			fmt.Fprint(w, `{"app": [`)
		default:
			fmt.Fprint(w, `{"version": "v1", "app": []}`)
		}
	}))
	defer srv.Close()
	var errs []string
	var mu sync.Mutex
	// The undecodable body has no version: it is rejected and the server polled again.
	src := &HTTPSource{URL: srv.URL + DaemonConfigsPath, Logger: quiet, MinBackoff: 5 * time.Millisecond,
		PollInterval: 5 * time.Millisecond,
		OnError:      func(err error) { mu.Lock(); errs = append(errs, err.Error()); mu.Unlock() }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	publish, wait := collect(t)
	go src.Run(ctx, publish)
	got := wait(1)
	if got[0].Version != "v1" {
		t.Errorf("got %+v", got[0])
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) != 2 {
		t.Fatalf("errors %v", errs)
	}
}

func TestFileSourceReload(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.toml")
	write := func(rate string) {
		t.Helper()
		body := fmt.Sprintf("[[app]]\nname = \"a\"\n[[app.service]]\nname = \"s\"\n[app.service.qos_group]\nrate = %q\n", rate)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("10mbit")
	reload := make(chan os.Signal, 1)
	var errs atomic.Int32
	src := &FileSource{Path: p, Interval: 20 * time.Millisecond, Reload: reload, Logger: quiet,
		OnError: func(error) { errs.Add(1) }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	publish, wait := collect(t)
	go src.Run(ctx, publish)
	wait(1)
	// A broken file is reported and not published.
	if err := os.WriteFile(p, []byte("[[app]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reload <- os.Interrupt
	deadline := time.Now().Add(5 * time.Second)
	for errs.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if errs.Load() == 0 {
		t.Fatal("broken file not reported")
	}
	// An empty file (a write caught half-way) is refused too.
	before := errs.Load()
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	reload <- os.Interrupt
	for deadline := time.Now().Add(5 * time.Second); errs.Load() == before && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if errs.Load() == before {
		t.Fatal("empty file not reported")
	}
	write("20mbit")
	reload <- os.Interrupt
	got := wait(2)
	for i, c := range got {
		if len(c.App) != 1 {
			t.Fatalf("config %d has %d apps: a bad or empty file was published", i, len(c.App))
		}
	}
	if last := got[len(got)-1]; last.App[0].Service[0].QoSGroup.Rate != "20mbit" {
		t.Fatalf("last config %+v", last)
	}
}

type chanSource struct{ ch chan *daemonconfig.Config }

func (s chanSource) Run(ctx context.Context, publish func(*daemonconfig.Config)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case c, ok := <-s.ch:
			if !ok {
				return nil
			}
			publish(c)
		}
	}
}

func TestRun(t *testing.T) {
	dp := newFakeDataplane()
	rec := NewReconciler(dp, ReconcilerOptions{Logger: quiet})
	src := chanSource{ch: make(chan *daemonconfig.Config)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, src, rec, 20*time.Millisecond) }()
	src.ch <- oneService("10mbit", ep("10.0.0.1", 3306))
	deadline := time.Now().Add(5 * time.Second)
	for {
		dp.mu.Lock()
		n, syncs := len(dp.classes), dp.syncs
		dp.mu.Unlock()
		if n == 1 && syncs >= 3 { // applied, then resynced
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("classes %d syncs %d", n, syncs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
	// A source that stops ends Run with an error.
	src = chanSource{ch: make(chan *daemonconfig.Config)}
	close(src.ch)
	if err := Run(context.Background(), src, rec, time.Hour); err == nil {
		t.Error("Run after the source stopped: nil error")
	}
}
