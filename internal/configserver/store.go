// Package configserver serves the configurations pisa-controller builds to the pisa-proxy
// sidecars and pisa-daemon agents, over the Pisanix config API (docs/controller.md):
//
//	GET  /apis/configs.database-mesh.io/v1alpha1/namespaces/{ns}/proxyconfigs/{app}[?pod=NAME[&podUID=UID]][&watch=true&version=N[&timeoutSeconds=S]]
//	POST /apis/configs.database-mesh.io/v1alpha1/namespaces/{ns}/proxyconfigs/{app}/status
//	GET  /apis/configs.database-mesh.io/v1alpha1/daemonconfigs[?node=NAME][&watch=true&version=N[&timeoutSeconds=S]]
//
// The server calls the Kubernetes API only through Server.KeyWorkers (a pod's key generator
// worker id, allocated once per pod); it serves from a Store the controller fills
// (Store.Set, Store.SetDaemon) whenever it rebuilds a configuration. The Store versions each
// configuration by its content (a version changes only when the JSON changes) and wakes the long
// polls waiting on it through a channel closed on change, so idle watchers cost a goroutine and
// nothing else.
package configserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/database-mesh/pisanix-go/internal/daemonconfig"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// MaxReportsPerApp bounds the sidecar reports kept per application; past it the oldest report
// is dropped.
const MaxReportsPerApp = 10000

// Report is a sidecar's last status report for an application's configuration.
type Report struct {
	Pod string `json:"pod"`
	// Version the sidecar applied, or rejected when Error is set.
	Version string `json:"version"`
	// Error is why the sidecar rejected Version; empty when it applied it.
	Error string `json:"error,omitempty"`
	// Time the report was received.
	Time time.Time `json:"time"`
}

// entry is one served document.
type entry struct {
	hash    [sha256.Size]byte
	version int64
	body    []byte        // the JSON served, "version" included; never modified once stored
	changed chan struct{} // closed (and replaced) when the entry changes or is deleted
	// keyWorker: a key generator of this proxy configuration takes its
	// worker id from proxy.key_worker_id, which each pod gets its own of.
	keyWorker bool
}

// Store holds the served configurations. It is safe for concurrent use.
//
// Versions come from one counter for the whole store, seeded with the wall clock in
// milliseconds when the store is created: a configuration's version is the counter value at its
// last change. Versions therefore only grow for a key, even across a controller restart (as
// long as the controller made fewer than 1000 changes per second of uptime on average), so a
// sidecar never mistakes a new configuration for the one it runs because a restarted controller
// counted again from 1.
type Store struct {
	mu      sync.Mutex
	last    int64
	entries map[string]*entry
	// daemonChanged is closed (and replaced) when any daemon configuration changes: daemon
	// watchers may be served a node's own configuration or the cluster-wide one, and both are
	// rare to change.
	daemonChanged chan struct{}
	reports       map[string]map[string]Report // proxy key → pod → report
	onReport      func(ns, app string)
	now           func() time.Time
}

// NewStore returns an empty store whose versions start above the current Unix time in
// milliseconds.
func NewStore() *Store { return NewStoreAt(time.Now().UnixMilli()) }

// NewStoreAt returns an empty store whose first version is start+1 (tests, or a controller that
// keeps its last version elsewhere).
func NewStoreAt(start int64) *Store {
	return &Store{last: start, entries: map[string]*entry{}, daemonChanged: make(chan struct{}),
		reports: map[string]map[string]Report{}, now: time.Now}
}

// OnReport registers f to be called (outside the store's lock, in the reporting request's
// goroutine) after each sidecar report, e.g. to enqueue a status update of the VirtualDatabase.
func (s *Store) OnReport(f func(ns, app string)) {
	s.mu.Lock()
	s.onReport = f
	s.mu.Unlock()
}

func proxyKey(ns, app string) string { return "proxy\x00" + ns + "\x00" + app }
func daemonKey(node string) string   { return "daemon\x00" + node }

// withVersion returns the JSON object doc (which has no "version" member) with
// "version":"<v>" appended.
func withVersion(doc []byte, v int64) []byte {
	doc = bytes.TrimRight(doc, " \n")
	out := make([]byte, 0, len(doc)+32)
	out = append(out, doc[:len(doc)-1]...)
	if len(doc) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"version":"`...)
	out = strconv.AppendInt(out, v, 10)
	return append(out, `"}`...)
}

// set stores doc (a JSON object without "version") under key and returns its version and
// whether it changed. keyWorker (a function of doc) marks a proxy configuration whose key
// generators take their worker id from each pod's proxy.key_worker_id.
func (s *Store) set(key string, doc []byte, keyWorker bool) (int64, bool) {
	hash := sha256.Sum256(doc)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[key]
	if e != nil && e.hash == hash {
		return e.version, false
	}
	s.last++
	if e == nil {
		e = &entry{changed: make(chan struct{})}
		s.entries[key] = e
	} else {
		close(e.changed)
		e.changed = make(chan struct{})
	}
	e.hash, e.version, e.body, e.keyWorker = hash, s.last, withVersion(doc, s.last), keyWorker
	if strings.HasPrefix(key, "daemon\x00") {
		close(s.daemonChanged)
		s.daemonChanged = make(chan struct{})
	}
	return e.version, true
}

func (s *Store) remove(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[key]
	if e == nil {
		return false
	}
	close(e.changed)
	delete(s.entries, key)
	if strings.HasPrefix(key, "daemon\x00") {
		close(s.daemonChanged)
		s.daemonChanged = make(chan struct{})
	}
	return true
}

// Set stores the configuration of application app (a VirtualDatabase) in namespace ns and
// returns its version; changed is false, and the version the previous one, when the JSON is
// the same as the stored one. cfg.Version is ignored (the store sets it); cfg is not kept.
func (s *Store) Set(ns, app string, cfg *proxyconfig.Config) (version int64, changed bool, err error) {
	c := *cfg
	c.Version = ""
	doc, err := json.Marshal(&c)
	if err != nil {
		return 0, false, fmt.Errorf("marshal proxy config %s/%s: %w", ns, app, err)
	}
	version, changed = s.set(proxyKey(ns, app), doc, c.Proxy.KeyWorkerID == nil && c.NeedsKeyWorkerID())
	return version, changed, nil
}

// Delete removes the configuration of ns/app and its sidecar reports; its watchers get 404.
func (s *Store) Delete(ns, app string) {
	key := proxyKey(ns, app)
	s.remove(key)
	s.mu.Lock()
	delete(s.reports, key)
	s.mu.Unlock()
}

// Version returns the version of ns/app's configuration, and whether there is one.
func (s *Store) Version(ns, app string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[proxyKey(ns, app)]; e != nil {
		return e.version, true
	}
	return 0, false
}

// SetDaemon stores pisa-daemon's configuration for node ("" is the configuration of every node
// that has none of its own) and returns its version. cfg.Version is ignored.
func (s *Store) SetDaemon(node string, cfg *daemonconfig.Config) (version int64, changed bool, err error) {
	c := *cfg
	c.Version = ""
	doc, err := json.Marshal(&c)
	if err != nil {
		return 0, false, fmt.Errorf("marshal daemon config: %w", err)
	}
	version, changed = s.set(daemonKey(node), doc, false)
	return version, changed, nil
}

// DeleteDaemon removes node's own daemon configuration (the node then gets the cluster-wide
// one).
func (s *Store) DeleteDaemon(node string) { s.remove(daemonKey(node)) }

// lookupProxy returns the proxy configuration under key, its version and the channel closed
// on its next change (ok false when there is none); keyWorker says it needs a worker id per
// pod.
func (s *Store) lookupProxy(key string) (body []byte, version int64, changed <-chan struct{}, keyWorker, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[key]
	if e == nil {
		return nil, 0, nil, false, false
	}
	return e.body, e.version, e.changed, e.keyWorker, true
}

// lookupDaemon returns node's daemon configuration, or the cluster-wide one, and the channel
// closed on the next change of any daemon configuration.
func (s *Store) lookupDaemon(node string) (body []byte, version int64, changed <-chan struct{}, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[daemonKey(node)]
	if e == nil && node != "" {
		e = s.entries[daemonKey("")]
	}
	if e == nil {
		return nil, 0, s.daemonChanged, false
	}
	return e.body, e.version, s.daemonChanged, true
}

// report records a sidecar's report; it returns false when ns/app has no configuration.
func (s *Store) report(ns, app string, r Report) bool {
	key := proxyKey(ns, app)
	s.mu.Lock()
	if s.entries[key] == nil {
		s.mu.Unlock()
		return false
	}
	r.Time = s.now()
	m := s.reports[key]
	if m == nil {
		m = map[string]Report{}
		s.reports[key] = m
	}
	if _, known := m[r.Pod]; !known && len(m) >= MaxReportsPerApp {
		var oldest string
		var t time.Time
		for pod, old := range m {
			if oldest == "" || old.Time.Before(t) {
				oldest, t = pod, old.Time
			}
		}
		delete(m, oldest)
	}
	m[r.Pod] = r
	hook := s.onReport
	s.mu.Unlock()
	if hook != nil {
		hook(ns, app)
	}
	return true
}

// Reports returns the last report of every sidecar of ns/app, sorted by pod.
func (s *Store) Reports(ns, app string) []Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.reports[proxyKey(ns, app)]
	out := make([]Report, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Report) int { return strings.Compare(a.Pod, b.Pod) })
	return out
}

// PruneReports forgets the reports of ns/app for which keep returns false (pods that no longer
// exist).
func (s *Store) PruneReports(ns, app string, keep func(r Report) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.reports[proxyKey(ns, app)]
	for pod, r := range m {
		if !keep(r) {
			delete(m, pod)
		}
	}
}

// Apps returns the names of the applications of namespace ns that have a proxy configuration,
// sorted.
func (s *Store) Apps(ns string) []string {
	prefix := proxyKey(ns, "")
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for key := range s.entries {
		if app, ok := strings.CutPrefix(key, prefix); ok {
			out = append(out, app)
		}
	}
	slices.Sort(out)
	return out
}
