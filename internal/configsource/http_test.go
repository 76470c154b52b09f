package configsource

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server is a config API: versioned bodies, long polls held until a change or hold, then
// answered unchanged with 304 (notModified) or with 200 and the same version (an older
// controller).
type server struct {
	mu          sync.Mutex
	version     int
	body        string
	changed     chan struct{}
	hold        time.Duration
	notModified bool
	fail        atomic.Int32
	requests    []string // query strings
}

func newServer(body string) *server {
	// Held over a second: a shorter answer is taken for a server that does not hold requests.
	return &server{version: 1, body: body, changed: make(chan struct{}), hold: 1100 * time.Millisecond}
}

func (s *server) set(body string) {
	s.mu.Lock()
	s.version++
	s.body = body
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *server) queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.URL.RawQuery)
	v, ch := s.version, s.changed
	s.mu.Unlock()
	if s.fail.Load() > 0 {
		s.fail.Add(-1)
		http.Error(w, "etcd unavailable", http.StatusServiceUnavailable)
		return
	}
	q := r.URL.Query()
	if q.Get("watch") == "true" && q.Get("version") == strconv.Itoa(v) {
		select {
		case <-ch:
		case <-time.After(s.hold):
			if s.notModified {
				w.Header().Set("X-Config-Version", strconv.Itoa(v))
				w.WriteHeader(http.StatusNotModified)
				return
			}
		case <-r.Context().Done():
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("X-Config-Version", strconv.Itoa(s.version))
	fmt.Fprint(w, s.body)
}

// Both ways of answering "unchanged" (304, and 200 with the same version) deliver nothing;
// each new version is delivered once, at once; the node query is kept in every request.
func TestHTTPWatch(t *testing.T) {
	for _, notModified := range []bool{true, false} {
		t.Run(fmt.Sprintf("304=%v", notModified), func(t *testing.T) {
			srv := newServer("a")
			srv.notModified = notModified
			ts := httptest.NewServer(srv)
			defer ts.Close()
			src := &HTTP{URL: ts.URL + "/cfg?node=n1", WatchTimeout: 7 * time.Second, Logger: quiet}
			var got recorder[Config]
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- src.Run(ctx, func(c Config) error { got.add(c); return nil }) }()
			if c := waitLen(t, &got, 1, "first")[0]; string(c.Body) != "a" || c.Version != "1" {
				t.Fatalf("first %+v", c)
			}
			time.Sleep(2500 * time.Millisecond) // two unchanged answers
			if n := len(got.all()); n != 1 {
				t.Fatalf("unchanged delivered: %d", n)
			}
			start := time.Now()
			srv.set("b")
			if c := waitLen(t, &got, 2, "second")[1]; string(c.Body) != "b" || c.Version != "2" {
				t.Fatalf("second %+v", c)
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Fatalf("a change took %v to arrive", d)
			}
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("Run returned %v", err)
			}
			qs := srv.queries()
			if qs[0] != "node=n1" {
				t.Fatalf("first request %q", qs[0])
			}
			for _, q := range qs[1:] {
				if !strings.Contains(q, "node=n1") || !strings.Contains(q, "watch=true") || !strings.Contains(q, "timeoutSeconds=7") {
					t.Fatalf("watch request %q", q)
				}
			}
		})
	}
}

// Failed fetches are reported and retried with backoff; a rejected version is not delivered
// again, and the next version is.
func TestHTTPErrorsAndRejections(t *testing.T) {
	srv := newServer("bad")
	srv.fail.Store(3)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	var fetchErrs recorder[error]
	src := &HTTP{URL: ts.URL, Logger: quiet, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		OnError: fetchErrs.add}
	var calls recorder[string]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go src.Run(ctx, func(c Config) error {
		calls.add(string(c.Body))
		if string(c.Body) == "bad" {
			return errors.New("invalid")
		}
		return nil
	})
	waitLen(t, &calls, 1, "first after errors")
	errs := fetchErrs.all()
	var se *StatusError
	if len(errs) != 3 || !errors.As(errs[0], &se) || se.Status != 503 || !strings.Contains(se.Body, "etcd unavailable") {
		t.Fatalf("fetch errors %v", errs)
	}
	time.Sleep(700 * time.Millisecond)
	if got := calls.all(); len(got) != 1 {
		t.Fatalf("rejected version delivered again: %v", got)
	}
	srv.set("good")
	if got := waitLen(t, &calls, 2, "next version"); got[1] != "good" {
		t.Fatalf("got %v", got)
	}
}

// A server without versions (Pisanix) is polled, never watched; an identical body is not
// delivered again.
func TestHTTPWithoutVersions(t *testing.T) {
	var body atomic.Value
	body.Store(`{"app":[]}`)
	var watched atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("watch") != "" {
			watched.Store(true)
		}
		fmt.Fprint(w, body.Load())
	}))
	defer ts.Close()
	src := &HTTP{URL: ts.URL, Logger: quiet, PollInterval: 20 * time.Millisecond}
	var got recorder[Config]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go src.Run(ctx, func(c Config) error { got.add(c); return nil })
	waitLen(t, &got, 1, "first")
	time.Sleep(150 * time.Millisecond)
	if n := len(got.all()); n != 1 {
		t.Fatalf("same body delivered %d times", n)
	}
	body.Store(`{"app":[{"name":"a"}]}`)
	if c := waitLen(t, &got, 2, "changed body")[1]; c.Version != "" || !strings.Contains(string(c.Body), `"a"`) {
		t.Fatalf("got %+v", c)
	}
	if watched.Load() {
		t.Fatal("watched a server without versions")
	}
}

func TestBodyVersion(t *testing.T) {
	for body, want := range map[string]string{
		`{"version":"7","x":1}`: "7",
		`{"version":8}`:         "8",
		`{"x":1}`:               "",
		`not json`:              "",
		`{"version":null}`:      "",
	} {
		if got := bodyVersion([]byte(body)); got != want {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
	}
}
