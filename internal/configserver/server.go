package configserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Path prefix of the config API (Pisanix).
const APIPrefix = "/apis/configs.database-mesh.io/v1alpha1"

// Watch timeouts.
const (
	DefaultWatchTimeout = 30 * time.Second
	MaxWatchTimeout     = 5 * time.Minute
)

// maxStatusBytes bounds a status report's body.
const maxStatusBytes = 64 << 10

// Server is the HTTP side of the config API. Set the fields before calling Handler.
type Server struct {
	Store *Store
	// DefaultWatchTimeout is how long a long poll is held when the request does not say
	// (timeoutSeconds); default 30 s.
	DefaultWatchTimeout time.Duration
	// MaxWatchTimeout caps timeoutSeconds; default 5 min. The http.Server's WriteTimeout must
	// be longer (or zero).
	MaxWatchTimeout time.Duration
	Logger          *slog.Logger
	// KeyWorkers allocates the key generator worker id of each sidecar pod whose configuration
	// needs one (proxy.key_worker_id). Nil: such configurations are served without it, and the
	// sidecars refuse them with a message that says so.
	KeyWorkers KeyWorkerAllocator

	proxyWatchers, daemonWatchers atomic.Int64
}

// KeyWorkerAllocator gives each pod a snowflake worker id (0..1023) that no other live pod of
// the namespace has, for the pod's whole life. uid may be empty (a sidecar injected before
// POD_UID was); the allocator then looks the pod up.
type KeyWorkerAllocator interface {
	KeyWorkerID(ctx context.Context, ns, pod, uid string) (int, error)
}

// Watchers returns how many proxy and daemon long polls are being held.
func (s *Server) Watchers() (proxy, daemon int64) {
	return s.proxyWatchers.Load(), s.daemonWatchers.Load()
}

// Handler returns the config API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+APIPrefix+"/namespaces/{ns}/proxyconfigs/{app}", s.getProxyConfig)
	mux.HandleFunc("POST "+APIPrefix+"/namespaces/{ns}/proxyconfigs/{app}/status", s.postStatus)
	mux.HandleFunc("GET "+APIPrefix+"/daemonconfigs", s.getDaemonConfig)
	return mux
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// status is a Kubernetes-style Status body for errors.
type status struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Status     string `json:"status"`
	Message    string `json:"message"`
	Reason     string `json:"reason"`
	Code       int    `json:"code"`
}

func writeError(w http.ResponseWriter, code int, reason, format string, args ...any) {
	b, _ := json.Marshal(status{Kind: "Status", APIVersion: "v1", Status: "Failure",
		Message: fmt.Sprintf(format, args...), Reason: reason, Code: code})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func writeConfig(w http.ResponseWriter, body []byte, version int64) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Config-Version", strconv.FormatInt(version, 10))
	_, _ = w.Write(body)
}

// watchParams reads watch, version and timeoutSeconds. wait is false when the request is not a
// watch or names no version (then it is answered at once).
func (s *Server) watchParams(r *http.Request) (wait bool, version string, timeout time.Duration, err error) {
	q := r.URL.Query()
	switch q.Get("watch") {
	case "", "false", "0":
		return false, "", 0, nil
	case "true", "1":
	default:
		return false, "", 0, fmt.Errorf("watch must be true or false, got %q", q.Get("watch"))
	}
	timeout = s.DefaultWatchTimeout
	if timeout <= 0 {
		timeout = DefaultWatchTimeout
	}
	limit := s.MaxWatchTimeout
	if limit <= 0 {
		limit = MaxWatchTimeout
	}
	if ts := q.Get("timeoutSeconds"); ts != "" {
		n, err := strconv.Atoi(ts)
		if err != nil || n < 0 {
			return false, "", 0, fmt.Errorf("timeoutSeconds must be a non-negative integer, got %q", ts)
		}
		timeout = time.Duration(n) * time.Second
	}
	timeout = min(timeout, limit)
	version = q.Get("version")
	return version != "", version, timeout, nil
}

// hold waits until changed is closed (true), the timeout passes or the client goes away
// (false).
func hold(r *http.Request, changed <-chan struct{}, timer *time.Timer) (woke bool) {
	select {
	case <-changed:
		return true
	case <-timer.C:
	case <-r.Context().Done():
	}
	return false
}

func (s *Server) getProxyConfig(w http.ResponseWriter, r *http.Request) {
	ns, app := r.PathValue("ns"), r.PathValue("app")
	key := proxyKey(ns, app)
	q := r.URL.Query()
	pod, uid := q.Get("pod"), q.Get("podUID")
	worker := -1
	lookup := func() ([]byte, int64, <-chan struct{}, bool, error) {
		body, version, changed, keyWorker, ok := s.Store.lookupProxy(key)
		if !ok || !keyWorker || pod == "" || s.KeyWorkers == nil {
			return body, version, changed, ok, nil
		}
		if worker < 0 {
			id, err := s.KeyWorkers.KeyWorkerID(r.Context(), ns, pod, uid)
			if err != nil {
				return nil, 0, nil, false, fmt.Errorf("allocate a key generator worker id to pod %s/%s: %w", ns, pod, err)
			}
			worker = id
		}
		body, err := withKeyWorker(body, worker)
		if err != nil {
			return nil, 0, nil, false, err
		}
		return body, version, changed, true, nil
	}
	s.serve(w, r, &s.proxyWatchers, lookup,
		func() {
			writeError(w, http.StatusNotFound, "NotFound", "no proxy configuration for %s/%s: no VirtualDatabase %q in namespace %q (its name must be the application's)",
				ns, app, app, ns)
		})
}

func (s *Server) getDaemonConfig(w http.ResponseWriter, r *http.Request) {
	node := r.URL.Query().Get("node")
	s.serve(w, r, &s.daemonWatchers, func() ([]byte, int64, <-chan struct{}, bool, error) {
		body, version, changed, ok := s.Store.lookupDaemon(node)
		return body, version, changed, ok, nil
	},
		func() { writeError(w, http.StatusNotFound, "NotFound", "no daemon configuration has been built yet") })
}

// serve answers a GET of a configuration, the same way for proxies and daemons:
//
//   - without watch=true and a version (Pisanix's pisa-proxy and pisa-daemon, which GET once),
//     200 with the current configuration;
//   - a watch names the version the client runs: when the current version differs, or becomes
//     different while the request is held, 200 with it; when the wait ends without a change,
//     304 Not Modified with an empty body and the unchanged version in X-Config-Version.
//
// Pisanix's clients never send watch, so they always get their 200.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, watchers *atomic.Int64,
	lookup func() (body []byte, version int64, changed <-chan struct{}, ok bool, err error), notFound func()) {
	wait, want, timeout, err := s.watchParams(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "%v", err)
		return
	}
	var timer *time.Timer
	for {
		body, version, changed, ok, err := lookup()
		if err != nil {
			s.logger().Warn("config request failed", "path", r.URL.Path, "error", err)
			writeError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "%v", err)
			return
		}
		if !ok {
			notFound()
			return
		}
		if !wait || strconv.FormatInt(version, 10) != want {
			writeConfig(w, body, version)
			return
		}
		if timer == nil {
			timer = time.NewTimer(timeout)
			defer timer.Stop()
			watchers.Add(1)
			defer watchers.Add(-1)
		}
		if !hold(r, changed, timer) {
			if r.Context().Err() == nil {
				w.Header().Set("Cache-Control", "no-store")
				w.Header().Set("X-Config-Version", strconv.FormatInt(version, 10))
				w.WriteHeader(http.StatusNotModified)
			}
			return
		}
	}
}

// withKeyWorker returns the served configuration body with proxy.key_worker_id set to id.
func withKeyWorker(body []byte, id int) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("decode stored configuration: %w", err)
	}
	px := map[string]json.RawMessage{}
	if raw, ok := top["proxy"]; ok {
		if err := json.Unmarshal(raw, &px); err != nil {
			return nil, fmt.Errorf("decode stored configuration's proxy: %w", err)
		}
	}
	px["key_worker_id"] = json.RawMessage(strconv.Itoa(id))
	raw, err := json.Marshal(px)
	if err != nil {
		return nil, err
	}
	top["proxy"] = raw
	return json.Marshal(top)
}

// statusRequest is a sidecar's report; version may be a string or a number.
type statusRequest struct {
	Pod     string          `json:"pod"`
	Version json.RawMessage `json:"version"`
	Error   string          `json:"error"`
}

func (s *Server) postStatus(w http.ResponseWriter, r *http.Request) {
	ns, app := r.PathValue("ns"), r.PathValue("app")
	data, err := io.ReadAll(io.LimitReader(r.Body, maxStatusBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "read body: %v", err)
		return
	}
	if len(data) > maxStatusBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "status report larger than %d bytes", maxStatusBytes)
		return
	}
	var req statusRequest
	if err := json.Unmarshal(data, &req); err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "decode status report: %v", err)
		return
	}
	if req.Pod == "" {
		writeError(w, http.StatusBadRequest, "BadRequest", "status report without pod")
		return
	}
	version, err := versionString(req.Version)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "%v", err)
		return
	}
	if !s.Store.report(ns, app, Report{Pod: req.Pod, Version: version, Error: req.Error}) {
		writeError(w, http.StatusNotFound, "NotFound", "no proxy configuration for %s/%s", ns, app)
		return
	}
	if req.Error != "" {
		s.logger().Warn("sidecar rejected its configuration", "namespace", ns, "app", app, "pod", req.Pod,
			"version", version, "error", req.Error)
	}
	w.WriteHeader(http.StatusNoContent)
}

func versionString(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), nil
	}
	return "", errors.New("version must be a string or a number")
}
