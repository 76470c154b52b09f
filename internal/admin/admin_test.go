package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/version"
	"github.com/prometheus/client_golang/prometheus"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs a server on 127.0.0.1:0 and returns its base URL.
func start(t *testing.T, opts Options) (*Server, string, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	opts.Addr = "127.0.0.1:0"
	s := New(opts)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s, "http://" + s.Addr().String(), logs
}

func get(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

func TestRoutes(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "pisa_proxy_test_total", Help: "test"})
	c.Add(7)
	reg.MustRegister(c)

	ready := errors.New("backends not connected yet")
	var mu sync.Mutex
	readyFn := func() error { mu.Lock(); defer mu.Unlock(); return ready }
	type cfg struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	_, base, _ := start(t, Options{
		Gatherer: reg,
		Ready:    readyFn,
		Config:   func() any { return cfg{Name: "shop", Password: "******"} },
	})

	tests := []struct {
		name        string
		method      string
		path        string
		before      func()
		code        int
		body        string // exact match unless contains is set
		contains    bool
		contentType string
	}{
		{name: "healthz", method: "GET", path: "/healthz", code: 200, body: "ok\n", contentType: "text/plain"},
		{name: "healthz HEAD", method: "HEAD", path: "/healthz", code: 200, body: ""},
		{name: "readyz not ready", method: "GET", path: "/readyz", code: 503, body: "backends not connected yet\n"},
		{name: "readyz ready", method: "GET", path: "/readyz", code: 200, body: "ok\n",
			before: func() { mu.Lock(); ready = nil; mu.Unlock() }},
		{name: "version", method: "GET", path: "/version", code: 200, body: version.String() + "\n"},
		{name: "metrics", method: "GET", path: "/metrics", code: 200, body: "pisa_proxy_test_total 7\n", contains: true, contentType: "text/plain"},
		{name: "config", method: "GET", path: "/config", code: 200, body: "{\n  \"name\": \"shop\",\n  \"password\": \"******\"\n}\n", contentType: "application/json"},
		{name: "unknown path", method: "GET", path: "/nope", code: 404, body: "404 page not found", contains: true},
		{name: "root", method: "GET", path: "/", code: 404, body: "404 page not found", contains: true},
		{name: "wrong method", method: "POST", path: "/healthz", code: 405, body: "", contains: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before()
			}
			code, hdr, body := get(t, tt.method, base+tt.path)
			if code != tt.code {
				t.Errorf("status %d, want %d (body %q)", code, tt.code, body)
			}
			if tt.contains {
				if !strings.Contains(body, tt.body) {
					t.Errorf("body %q does not contain %q", body, tt.body)
				}
			} else if body != tt.body {
				t.Errorf("body %q, want %q", body, tt.body)
			}
			if ct := hdr.Get("Content-Type"); tt.contentType != "" && !strings.HasPrefix(ct, tt.contentType) {
				t.Errorf("Content-Type %q, want %q", ct, tt.contentType)
			}
		})
	}
}

func TestConfigNotSet(t *testing.T) {
	_, base, _ := start(t, Options{Gatherer: prometheus.NewRegistry()})
	if code, _, _ := get(t, "GET", base+"/config"); code != 404 {
		t.Fatalf("status %d, want 404", code)
	}
	// Nil Ready means ready.
	if code, _, body := get(t, "GET", base+"/readyz"); code != 200 || body != "ok\n" {
		t.Fatalf("readyz: %d %q", code, body)
	}
}

func TestConfigEncodeError(t *testing.T) {
	_, base, logs := start(t, Options{
		Gatherer: prometheus.NewRegistry(),
		Config:   func() any { return map[string]any{"bad": func() {}} },
	})
	if code, _, _ := get(t, "GET", base+"/config"); code != 500 {
		t.Fatalf("status %d, want 500", code)
	}
	if !strings.Contains(logs.String(), "encode config") {
		t.Fatalf("error not logged: %s", logs)
	}
}

func TestConfigIsJSON(t *testing.T) {
	_, base, _ := start(t, Options{
		Gatherer: prometheus.NewRegistry(),
		Config:   func() any { return map[string]any{"proxies": []string{"a", "b"}, "port": 3306} },
	})
	_, _, body := get(t, "GET", base+"/config")
	var got struct {
		Proxies []string `json:"proxies"`
		Port    int      `json:"port"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Port != 3306 || len(got.Proxies) != 2 {
		t.Fatalf("got %+v", got)
	}
}

func TestPanicRecovered(t *testing.T) {
	_, base, logs := start(t, Options{
		Gatherer: prometheus.NewRegistry(),
		Ready:    func() error { panic("boom") },
		Config:   func() any { panic("kaboom") },
	})
	for _, path := range []string{"/readyz", "/config"} {
		code, _, body := get(t, "GET", base+path)
		if code != 500 {
			t.Errorf("%s: status %d, want 500", path, code)
		}
		if !strings.Contains(body, "internal server error") {
			t.Errorf("%s: body %q", path, body)
		}
	}
	if l := logs.String(); !strings.Contains(l, "boom") || !strings.Contains(l, "kaboom") || !strings.Contains(l, "admin handler panic") {
		t.Fatalf("panics not logged: %s", l)
	}
	// The server keeps serving.
	if code, _, _ := get(t, "GET", base+"/healthz"); code != 200 {
		t.Fatalf("healthz after panic: %d", code)
	}
}

func TestPanicAfterWriteKeepsStatus(t *testing.T) {
	s := New(Options{Gatherer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	h := s.recoverPanics(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		panic("late")
	}))
	rec := &recorder{header: http.Header{}}
	h.ServeHTTP(rec, &http.Request{Method: "GET", URL: mustURL("/x")})
	if rec.codes != 1 || rec.code != http.StatusAccepted {
		t.Fatalf("WriteHeader called %d times, last code %d", rec.codes, rec.code)
	}
}

type recorder struct {
	header http.Header
	code   int
	codes  int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *recorder) WriteHeader(code int)        { r.code = code; r.codes++ }

func TestStartErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	s := New(Options{Addr: ln.Addr().String(), Logger: slog.New(slog.DiscardHandler)})
	if err := s.Start(); err == nil {
		t.Fatal("Start on a used port succeeded")
	}
	if s.Addr() != nil {
		t.Fatal("Addr non-nil after failed Start")
	}

	s = New(Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Fatal("second Start succeeded")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		t.Fatal("Start after Shutdown succeeded")
	}
}

func TestShutdown(t *testing.T) {
	// Before Start: no-op.
	if err := New(Options{}).Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	s := New(Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()
	if code, _, _ := get(t, "GET", "http://"+addr+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Fatal("server still answering after Shutdown")
	}
}

func TestDefaultGatherer(t *testing.T) {
	_, base, _ := start(t, Options{})
	code, _, body := get(t, "GET", base+"/metrics")
	if code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("default gatherer: %d %.200q", code, body)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
