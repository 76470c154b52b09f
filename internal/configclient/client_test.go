package configclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// fakeController serves versioned configs with long polling.
type fakeController struct {
	mu       sync.Mutex
	version  int
	body     string // without version
	changed  chan struct{}
	reports  []Status
	failures int // answer 503 this many times first
}

func newFake(body string) *fakeController {
	return &fakeController{version: 1, body: body, changed: make(chan struct{})}
}

func (f *fakeController) set(body string) {
	f.mu.Lock()
	f.version++
	f.body = body
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/apis/configs.database-mesh.io/v1alpha1/namespaces/ns/proxyconfigs/app") {
		http.Error(w, "no such app", http.StatusNotFound)
		return
	}
	if strings.HasSuffix(r.URL.Path, "/status") {
		var st Status
		json.NewDecoder(r.Body).Decode(&st)
		f.mu.Lock()
		f.reports = append(f.reports, st)
		f.mu.Unlock()
		return
	}
	f.mu.Lock()
	if f.failures > 0 {
		f.failures--
		f.mu.Unlock()
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	ch := f.changed
	v := f.version
	f.mu.Unlock()
	if r.URL.Query().Get("watch") == "true" && r.URL.Query().Get("version") == fmt.Sprint(v) {
		select {
		case <-ch:
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
			return
		}
	}
	f.mu.Lock()
	body := strings.Replace(f.body, "{", fmt.Sprintf(`{"version":"%d",`, f.version), 1)
	f.mu.Unlock()
	w.Write([]byte(body))
}

func (f *fakeController) lastReport() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reports) == 0 {
		return Status{}
	}
	return f.reports[len(f.reports)-1]
}

const goodConfig = `{"admin":{"host":"127.0.0.1","port":5591,"log_level":"INFO"},
 "mysql":{"node":[{"name":"ds001","db":"test","user":"root","password":"","host":"127.0.0.1","port":3306,"weight":1,"role":"readwrite"}]},
 "proxy":{"config":[{"backend_type":"mysql","name":"%s","listen_addr":"127.0.0.1:0","user":"u","password":"p","db":"test",
   "simple_loadbalance":{"balance_type":"random","nodes":["ds001"]}}]}}`

func TestRunAppliesAndWatches(t *testing.T) {
	fc := newFake(fmt.Sprintf(goodConfig, "first"))
	fc.failures = 2
	srv := httptest.NewServer(fc)
	defer srv.Close()
	c := &Client{Base: srv.URL, Namespace: "ns", App: "app", Pod: "pod-1"}
	applied := make(chan string, 10)
	var failNext bool
	var mu sync.Mutex
	apply := func(cfg *proxyconfig.Config) error {
		mu.Lock()
		defer mu.Unlock()
		if failNext {
			failNext = false
			return errors.New("listen: address in use")
		}
		applied <- cfg.Proxy.Config[0].Name
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx, apply, RunOptions{MinBackoff: 10 * time.Millisecond}); close(done) }()
	defer func() { cancel(); <-done }()

	expect := func(name string) {
		t.Helper()
		select {
		case got := <-applied:
			if got != name {
				t.Fatalf("applied %q, want %q", got, name)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("config %q not applied", name)
		}
	}
	expect("first") // after two 503s
	waitReport := func(version, errPart string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			r := fc.lastReport()
			if r.Version == version && strings.Contains(r.Error, errPart) && (errPart != "" || r.Error == "") {
				if r.Pod != "pod-1" {
					t.Fatalf("report pod %q", r.Pod)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no report for version %s with error %q; last %+v", version, errPart, r)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitReport("1", "")
	start := time.Now()
	fc.set(fmt.Sprintf(goodConfig, "second"))
	expect("second")
	if d := time.Since(start); d > time.Second {
		t.Fatalf("change took %v to arrive (long poll should deliver at once)", d)
	}
	waitReport("2", "")
	// An invalid config is rejected whole and reported.
	fc.set(`{"proxy":{"config":[{"name":"x","listen_addr":"nonsense"}]}}`)
	waitReport("3", "listen_addr")
	// An apply failure is reported too; the next good version applies.
	mu.Lock()
	failNext = true
	mu.Unlock()
	fc.set(fmt.Sprintf(goodConfig, "third"))
	waitReport("4", "address in use")
	fc.set(fmt.Sprintf(goodConfig, "fourth"))
	expect("fourth")
}
