package configserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/configclient"
	"github.com/database-mesh/pisanix-go/internal/daemon"
	"github.com/database-mesh/pisanix-go/internal/daemonconfig"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

const proxyPath = APIPrefix + "/namespaces/demo/proxyconfigs/shop"

func testConfig(db string) *proxyconfig.Config {
	w := 1
	return &proxyconfig.Config{
		Admin: proxyconfig.Admin{Host: "0.0.0.0", Port: 5591, LogLevel: "INFO"},
		Proxy: proxyconfig.Proxy{Config: []proxyconfig.Listener{{Name: "db", ListenAddr: "127.0.0.1:3306",
			User: "u", Password: "p", DB: db, BackendType: "mysql",
			SimpleLoadBalance: &proxyconfig.SimpleLoadBalance{BalanceType: "random", Nodes: []string{"n1"}}}}},
		MySQL: proxyconfig.MySQL{Nodes: []proxyconfig.Node{{Name: "n1", Host: "db", Port: 3306, User: "r",
			Password: "p", DB: db, Weight: &w, Role: "readwrite"}}},
		NodeGroup: proxyconfig.NodeGroup{Members: []proxyconfig.NodeGroupMember{}},
	}
}

func newServer(t *testing.T, srv *Server) (*httptest.Server, *Store) {
	t.Helper()
	if srv.Store == nil {
		srv.Store = NewStoreAt(0)
	}
	if srv.Logger == nil {
		srv.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts, srv.Store
}

type response struct {
	code    int
	body    []byte
	version string // the body's "version"
	elapsed time.Duration
}

func get(t *testing.T, url string) response {
	t.Helper()
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{code: resp.StatusCode, body: body, elapsed: time.Since(start)}
	var head struct {
		Version string `json:"version"`
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &head); err != nil {
			t.Fatalf("body is not JSON: %v: %s", err, body)
		}
		if resp.Header.Get("X-Config-Version") != head.Version {
			t.Errorf("X-Config-Version %q != body version %q", resp.Header.Get("X-Config-Version"), head.Version)
		}
	}
	r.version = head.Version
	if resp.StatusCode == http.StatusNotModified {
		if len(body) != 0 {
			t.Errorf("304 with a body: %q", body)
		}
		r.version = resp.Header.Get("X-Config-Version")
	}
	return r
}

func TestGetAndNotFound(t *testing.T) {
	ts, st := newServer(t, &Server{})
	if r := get(t, ts.URL+proxyPath); r.code != http.StatusNotFound || !strings.Contains(string(r.body), `"reason":"NotFound"`) {
		t.Fatalf("unknown app: %d %s", r.code, r.body)
	}
	v, changed, err := st.Set("demo", "shop", testConfig("a"))
	if err != nil || !changed || v != 1 {
		t.Fatalf("Set = %d %v %v", v, changed, err)
	}
	r := get(t, ts.URL+proxyPath)
	if r.code != http.StatusOK || r.version != "1" {
		t.Fatalf("get: %d %q %s", r.code, r.version, r.body)
	}
	// The body is what a sidecar accepts, version included.
	cfg, err := proxyconfig.Parse(r.body, proxyconfig.JSON)
	if err != nil || cfg.Version != "1" || cfg.Proxy.Config[0].DB != "a" {
		t.Fatalf("parse: %v %+v", err, cfg)
	}
	if r := get(t, ts.URL+APIPrefix+"/namespaces/other/proxyconfigs/shop"); r.code != http.StatusNotFound {
		t.Fatalf("other namespace: %d", r.code)
	}
	// A stale version is answered at once.
	if r := get(t, ts.URL+proxyPath+"?watch=true&version=0"); r.code != 200 || r.version != "1" || r.elapsed > time.Second {
		t.Fatalf("stale watch: %+v", r)
	}
	// watch without version: at once.
	if r := get(t, ts.URL+proxyPath+"?watch=true"); r.code != 200 || r.elapsed > time.Second {
		t.Fatalf("watch without version: %+v", r)
	}
	if r := get(t, ts.URL+proxyPath+"?watch=maybe"); r.code != http.StatusBadRequest {
		t.Fatalf("bad watch: %d", r.code)
	}
	if r := get(t, ts.URL+proxyPath+"?watch=true&version=1&timeoutSeconds=-1"); r.code != http.StatusBadRequest {
		t.Fatalf("bad timeout: %d", r.code)
	}
}

func TestVersionsChangeOnlyWithContent(t *testing.T) {
	st := NewStoreAt(100)
	v1, c1, _ := st.Set("n", "a", testConfig("a"))
	cfg := testConfig("a")
	cfg.Version = "999" // ignored
	v2, c2, _ := st.Set("n", "a", cfg)
	v3, c3, _ := st.Set("n", "a", testConfig("b"))
	if v1 != 101 || !c1 || v2 != 101 || c2 || v3 != 102 || !c3 {
		t.Fatalf("versions %d %v, %d %v, %d %v", v1, c1, v2, c2, v3, c3)
	}
	// One counter for the store: another key continues from it.
	if v, _, _ := st.Set("n", "b", testConfig("a")); v != 103 {
		t.Fatalf("second key version %d", v)
	}
	if v, ok := st.Version("n", "a"); !ok || v != 102 {
		t.Fatalf("Version = %d %v", v, ok)
	}
	st.Delete("n", "a")
	if _, ok := st.Version("n", "a"); ok {
		t.Fatal("deleted key still has a version")
	}
	// Re-created: a new, larger version even with the old content.
	if v, c, _ := st.Set("n", "a", testConfig("b")); v != 104 || !c {
		t.Fatalf("re-created: %d %v", v, c)
	}
	if NewStore().last < time.Now().Add(-time.Minute).UnixMilli() {
		t.Fatal("NewStore must seed versions from the clock")
	}
}

func TestLongPollWakesOnChange(t *testing.T) {
	ts, st := newServer(t, &Server{})
	st.Set("demo", "shop", testConfig("a"))
	done := make(chan response, 1)
	go func() { done <- get(t, ts.URL+proxyPath+"?watch=true&version=1&timeoutSeconds=10") }()
	time.Sleep(150 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("watch returned before any change: %+v", r)
	default:
	}
	set := time.Now()
	st.Set("demo", "shop", testConfig("b"))
	select {
	case r := <-done:
		if r.code != 200 || r.version != "2" || !strings.Contains(string(r.body), `"db":"b"`) {
			t.Fatalf("woken watch: %d %q %s", r.code, r.version, r.body)
		}
		if d := time.Since(set); d > 100*time.Millisecond {
			t.Errorf("watch answered %v after the change, want < 100ms", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("watch not woken by Set")
	}
}

func TestUnchangedSetDoesNotWake(t *testing.T) {
	ts, st := newServer(t, &Server{})
	st.Set("demo", "shop", testConfig("a"))
	done := make(chan response, 1)
	go func() { done <- get(t, ts.URL+proxyPath+"?watch=true&version=1&timeoutSeconds=1") }()
	time.Sleep(100 * time.Millisecond)
	if _, changed, _ := st.Set("demo", "shop", testConfig("a")); changed {
		t.Fatal("same content reported as changed")
	}
	r := <-done
	// The timeout answers 304 Not Modified with the unchanged version, as for daemons.
	if r.code != http.StatusNotModified || r.version != "1" {
		t.Fatalf("timeout: %d %q", r.code, r.version)
	}
	if r.elapsed < 900*time.Millisecond || r.elapsed > 3*time.Second {
		t.Fatalf("watch held %v, want ~1s", r.elapsed)
	}
}

func TestWatchTimeoutIsCapped(t *testing.T) {
	ts, st := newServer(t, &Server{MaxWatchTimeout: 200 * time.Millisecond, DefaultWatchTimeout: time.Hour})
	st.Set("demo", "shop", testConfig("a"))
	for _, q := range []string{"&timeoutSeconds=3600", ""} {
		r := get(t, ts.URL+proxyPath+"?watch=true&version=1"+q)
		if r.code != http.StatusNotModified || r.version != "1" || r.elapsed > 2*time.Second {
			t.Fatalf("%q: %d %q after %v", q, r.code, r.version, r.elapsed)
		}
	}
	// timeoutSeconds=0: answered at once.
	ts2, st2 := newServer(t, &Server{})
	st2.Set("demo", "shop", testConfig("a"))
	if r := get(t, ts2.URL+proxyPath+"?watch=true&version=1&timeoutSeconds=0"); r.code != http.StatusNotModified || r.elapsed > time.Second {
		t.Fatalf("timeoutSeconds=0: %+v", r)
	}
}

func TestDeleteWakesWatchersWith404(t *testing.T) {
	ts, st := newServer(t, &Server{})
	st.Set("demo", "shop", testConfig("a"))
	done := make(chan response, 1)
	go func() { done <- get(t, ts.URL+proxyPath+"?watch=true&version=1&timeoutSeconds=10") }()
	time.Sleep(100 * time.Millisecond)
	st.Delete("demo", "shop")
	select {
	case r := <-done:
		if r.code != http.StatusNotFound {
			t.Fatalf("after delete: %d %s", r.code, r.body)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("delete did not wake the watcher")
	}
}

func post(t *testing.T, url, body string) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestStatusReports(t *testing.T) {
	ts, st := newServer(t, &Server{})
	var hooked []string
	var mu sync.Mutex
	st.OnReport(func(ns, app string) {
		mu.Lock()
		hooked = append(hooked, ns+"/"+app)
		mu.Unlock()
	})
	url := ts.URL + proxyPath + "/status"
	if c := post(t, url, `{"pod":"p1","version":"1"}`); c != http.StatusNotFound {
		t.Fatalf("report for an unknown app: %d", c)
	}
	st.Set("demo", "shop", testConfig("a"))
	for body, want := range map[string]int{
		`{"pod":"p2","version":"1"}`:                            http.StatusNoContent,
		`{"pod":"p1","version":1,"error":"bad config"}`:         http.StatusNoContent,
		`{"version":"1"}`:                                       http.StatusBadRequest,
		`{"pod":"p3","version":true}`:                           http.StatusBadRequest,
		`not json`:                                              http.StatusBadRequest,
		`{"pod":"` + strings.Repeat("x", maxStatusBytes) + `"}`: http.StatusRequestEntityTooLarge,
	} {
		if c := post(t, url, body); c != want {
			t.Errorf("%.40s: %d, want %d", body, c, want)
		}
	}
	// A later report replaces the pod's earlier one.
	post(t, url, `{"pod":"p2","version":"1"}`)
	got := st.Reports("demo", "shop")
	if len(got) != 2 || got[0].Pod != "p1" || got[0].Version != "1" || got[0].Error != "bad config" ||
		got[1].Pod != "p2" || got[1].Error != "" || got[1].Time.IsZero() {
		t.Fatalf("reports: %+v", got)
	}
	mu.Lock()
	if len(hooked) != 3 || hooked[0] != "demo/shop" {
		t.Errorf("hook calls: %v", hooked)
	}
	mu.Unlock()
	st.PruneReports("demo", "shop", func(r Report) bool { return r.Pod == "p2" })
	if got := st.Reports("demo", "shop"); len(got) != 1 || got[0].Pod != "p2" {
		t.Fatalf("after prune: %+v", got)
	}
	st.Delete("demo", "shop")
	if got := st.Reports("demo", "shop"); len(got) != 0 {
		t.Fatalf("reports survive Delete: %+v", got)
	}
}

func TestReportsBounded(t *testing.T) {
	st := NewStoreAt(0)
	st.Set("n", "a", testConfig("a"))
	now := time.Unix(0, 0)
	st.now = func() time.Time { now = now.Add(time.Second); return now }
	for i := range MaxReportsPerApp + 5 {
		st.report("n", "a", Report{Pod: fmt.Sprintf("p%05d", i), Version: "1"})
	}
	got := st.Reports("n", "a")
	if len(got) != MaxReportsPerApp || got[0].Pod != "p00005" {
		t.Fatalf("%d reports, first %s", len(got), got[0].Pod)
	}
}

// Many watchers, concurrent Sets and reports: every watcher ends with the last version (run with
// -race).
func TestConcurrentWatchers(t *testing.T) {
	ts, st := newServer(t, &Server{})
	st.Set("demo", "shop", testConfig("v0"))
	const watchers, changes = 200, 20
	tr := &http.Transport{MaxIdleConnsPerHost: watchers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	errs := make(chan error, watchers)
	final := strconv.Itoa(1 + changes)
	for i := range watchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			version := "1"
			for version != final {
				resp, err := client.Get(ts.URL + proxyPath + "?watch=true&timeoutSeconds=5&version=" + version)
				if err != nil {
					errs <- err
					return
				}
				if resp.StatusCode == http.StatusNotModified {
					resp.Body.Close()
					continue
				}
				var head struct{ Version string }
				err = json.NewDecoder(resp.Body).Decode(&head)
				resp.Body.Close()
				if err != nil {
					errs <- err
					return
				}
				version = head.Version
			}
			if c := postWith(client, ts.URL+proxyPath+"/status", fmt.Sprintf(`{"pod":"p%d","version":%q}`, i, version)); c != 204 {
				errs <- fmt.Errorf("report: %d", c)
			}
		}()
	}
	for i := 1; i <= changes; i++ {
		time.Sleep(5 * time.Millisecond)
		st.Set("demo", "shop", testConfig(fmt.Sprintf("v%d", i)))
		st.Set("demo", "shop", testConfig(fmt.Sprintf("v%d", i))) // no-op
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(st.Reports("demo", "shop")); n != watchers {
		t.Errorf("%d reports, want %d", n, watchers)
	}
}

func postWith(c *http.Client, url, body string) int {
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The sidecar's own client against this server: it applies v1, then v2, and reports both.
func TestEndToEndConfigClient(t *testing.T) {
	ts, st := newServer(t, &Server{})
	st.Set("demo", "shop", testConfig("v1"))
	applied := make(chan string, 10)
	c := &configclient.Client{Base: ts.URL, Namespace: "demo", App: "shop", Pod: "shop-abc"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, func(cfg *proxyconfig.Config) error {
			applied <- cfg.Proxy.Config[0].DB + "@" + cfg.Version
			return nil
		}, configclient.RunOptions{MinBackoff: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-applied:
			if got != want {
				t.Fatalf("applied %s, want %s", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s not applied", want)
		}
	}
	expect("v1@1")
	waitReport(t, st, "1")
	st.Set("demo", "shop", testConfig("v2"))
	expect("v2@2")
	waitReport(t, st, "2")
	// A configuration the sidecar rejects is reported with its error.
	bad := testConfig("v3")
	bad.Proxy.Config[0].SimpleLoadBalance.BalanceType = "bogus"
	st.Set("demo", "shop", bad)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := st.Reports("demo", "shop")
		if len(r) == 1 && r[0].Version == "3" && r[0].Error != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rejection not reported: %+v", r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

func waitReport(t *testing.T, st *Store, version string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := st.Reports("demo", "shop")
		if len(r) == 1 && r[0].Pod == "shop-abc" && r[0].Version == version && r[0].Error == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("report of version %s missing: %+v", version, r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func daemonCfg(rate string) *daemonconfig.Config {
	return &daemonconfig.Config{App: []daemonconfig.App{{Name: "demo.shop", Service: []daemonconfig.Service{{Name: "db",
		QoSGroup: &daemonconfig.QoSGroup{Rate: rate}, Endpoints: []daemonconfig.Endpoint{{IP: "10.0.0.1", Port: 3306}}}}}}}
}

func TestDaemonConfigs(t *testing.T) {
	ts, st := newServer(t, &Server{})
	url := ts.URL + APIPrefix + "/daemonconfigs"
	if r := get(t, url+"?node=n1"); r.code != http.StatusNotFound {
		t.Fatalf("before any config: %d", r.code)
	}
	st.SetDaemon("", daemonCfg("1mbit"))
	r := get(t, url+"?node=n1")
	cfg, err := daemonconfig.ParseJSON(r.body)
	if r.code != 200 || err != nil || cfg.Version != "1" || cfg.App[0].Service[0].QoSGroup.Rate != "1mbit" {
		t.Fatalf("cluster-wide config: %d %v %s", r.code, err, r.body)
	}
	// A node's own configuration wins.
	st.SetDaemon("n2", daemonCfg("2mbit"))
	if r := get(t, url+"?node=n2"); !strings.Contains(string(r.body), "2mbit") {
		t.Fatalf("node config: %s", r.body)
	}
	if r := get(t, url); !strings.Contains(string(r.body), "1mbit") {
		t.Fatalf("no node: %s", r.body)
	}
	// Timeout unchanged: 304.
	if r := get(t, url+"?node=n1&watch=true&version=1&timeoutSeconds=1"); r.code != http.StatusNotModified || r.elapsed < 900*time.Millisecond {
		t.Fatalf("daemon timeout: %d after %v", r.code, r.elapsed)
	}
	// Woken by a change of the cluster-wide configuration.
	done := make(chan response, 1)
	go func() { done <- get(t, url+"?node=n1&watch=true&version=1&timeoutSeconds=10") }()
	time.Sleep(100 * time.Millisecond)
	st.SetDaemon("n2", daemonCfg("3mbit")) // another node's change: n1 keeps waiting
	time.Sleep(100 * time.Millisecond)
	set := time.Now()
	st.SetDaemon("", daemonCfg("4mbit"))
	select {
	case r := <-done:
		if r.code != 200 || !strings.Contains(string(r.body), "4mbit") || time.Since(set) > 100*time.Millisecond {
			t.Fatalf("woken daemon watch: %d %s after %v", r.code, r.body, time.Since(set))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("daemon watch not woken")
	}
	st.DeleteDaemon("n2")
	if r := get(t, url+"?node=n2"); !strings.Contains(string(r.body), "4mbit") {
		t.Fatalf("after DeleteDaemon the node gets the cluster-wide config: %s", r.body)
	}
}

// pisa-daemon's own source against this server: v1, then v2.
func TestEndToEndDaemonSource(t *testing.T) {
	ts, st := newServer(t, &Server{})
	st.SetDaemon("", daemonCfg("1mbit"))
	src := &daemon.HTTPSource{URL: daemon.ControllerURL(ts.URL), Node: "n1", WatchTimeout: 2 * time.Second,
		MinBackoff: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	got := make(chan *daemonconfig.Config, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = src.Run(ctx, func(c *daemonconfig.Config) { got <- c }) }()
	next := func() *daemonconfig.Config {
		select {
		case c := <-got:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no config published")
			return nil
		}
	}
	if c := next(); c.App[0].Service[0].QoSGroup.Rate != "1mbit" {
		t.Fatalf("first: %+v", c)
	}
	st.SetDaemon("", daemonCfg("2mbit"))
	if c := next(); c.App[0].Service[0].QoSGroup.Rate != "2mbit" {
		t.Fatalf("second: %+v", c)
	}
}

// fakeWorkers allocates worker ids by pod name and counts its calls.
type fakeWorkers struct {
	mu    sync.Mutex
	ids   map[string]int
	calls int
	err   error
}

func (f *fakeWorkers) KeyWorkerID(_ context.Context, ns, pod, uid string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return 0, f.err
	}
	if id, ok := f.ids[ns+"/"+pod]; ok {
		return id, nil
	}
	id := len(f.ids) + 7
	f.ids[ns+"/"+pod] = id
	return id, nil
}

func keyGenConfig(worker *int) *proxyconfig.Config {
	cfg := testConfig("test")
	cfg.Proxy.Config[0].Sharding = []proxyconfig.Sharding{{TableName: "t", ActualDatanodes: []string{"n1"},
		DatabaseStrategy: &proxyconfig.DatabaseStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "id"},
		KeyGenerator:     &proxyconfig.KeyGenerator{Type: "snowflake", WorkerID: worker}}}
	return cfg
}

// A configuration whose key generator has no worker id of its own is served to each pod that
// names itself with the worker id allocated to it; the sidecar's decoder accepts it.
func TestKeyWorkerIDPerPod(t *testing.T) {
	fw := &fakeWorkers{ids: map[string]int{}}
	ts, store := newServer(t, &Server{KeyWorkers: fw})
	if _, _, err := store.Set("demo", "shop", keyGenConfig(nil)); err != nil {
		t.Fatal(err)
	}
	workerOf := func(query string) (*int, response) {
		t.Helper()
		r := get(t, ts.URL+proxyPath+query)
		if r.code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", query, r.code, r.body)
		}
		cfg, err := proxyconfig.Parse(r.body, proxyconfig.JSON)
		if query == "" {
			if err == nil || !strings.Contains(err.Error(), "proxy.key_worker_id is not set") {
				t.Fatalf("served without a worker id, the sidecar must refuse it naming the key: %v", err)
			}
			return nil, r
		}
		if err != nil {
			t.Fatalf("GET %s: the sidecar refuses it: %v", query, err)
		}
		return cfg.Proxy.KeyWorkerID, r
	}
	a, ra := workerOf("?pod=shop-a&podUID=u-a")
	b, rb := workerOf("?pod=shop-b")
	a2, _ := workerOf("?pod=shop-a&podUID=u-a")
	if a == nil || b == nil || *a == *b || a2 == nil || *a2 != *a {
		t.Fatalf("worker ids: shop-a %v then %v, shop-b %v", a, a2, b)
	}
	if ra.version != rb.version {
		t.Fatalf("the pods' copies of one configuration have versions %s and %s", ra.version, rb.version)
	}
	if w, _ := workerOf(""); w != nil {
		t.Fatalf("a request without a pod got worker id %d", *w)
	}

	// A watch held for a pod answers the change with the pod's worker id.
	done := make(chan *int)
	go func() {
		r := get(t, ts.URL+proxyPath+"?pod=shop-b&watch=true&timeoutSeconds=20&version="+rb.version)
		cfg, err := proxyconfig.Parse(r.body, proxyconfig.JSON)
		if err != nil {
			t.Errorf("watch: %d %v", r.code, err)
			done <- nil
			return
		}
		done <- cfg.Proxy.KeyWorkerID
	}()
	time.Sleep(100 * time.Millisecond)
	changed := keyGenConfig(nil)
	changed.Proxy.Config[0].DB = "other"
	if _, _, err := store.Set("demo", "shop", changed); err != nil {
		t.Fatal(err)
	}
	if w := <-done; w == nil || *w != *b {
		t.Fatalf("watch answered worker id %v, want %d", w, *b)
	}

	// A generator with its own worker id needs no allocation.
	calls := fw.calls
	if _, _, err := store.Set("demo", "shop", keyGenConfig(new(3))); err != nil {
		t.Fatal(err)
	}
	r := get(t, ts.URL+proxyPath+"?pod=shop-c")
	if strings.Contains(string(r.body), "key_worker_id") || fw.calls != calls {
		t.Fatalf("explicit worker id: allocator called %d times, body %s", fw.calls-calls, r.body)
	}

	// An allocation that fails is a 503 naming the cause (the sidecar retries), never a
	// configuration without the id.
	if _, _, err := store.Set("demo", "shop", keyGenConfig(nil)); err != nil {
		t.Fatal(err)
	}
	fw.mu.Lock()
	fw.err = fmt.Errorf("apiserver unreachable")
	fw.mu.Unlock()
	r = get(t, ts.URL+proxyPath+"?pod=shop-d")
	if r.code != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "apiserver unreachable") {
		t.Fatalf("failed allocation: %d %s", r.code, r.body)
	}
}
