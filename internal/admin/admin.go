// Package admin is pisa-proxy's admin HTTP server: health and readiness
// probes, version, Prometheus metrics and the running configuration.
//
//	GET /healthz  200 "ok" while the process serves HTTP (liveness)
//	GET /readyz   200 "ok" when Options.Ready returns nil, else 503 and the error
//	GET /version  the version string (internal/version)
//	GET /metrics  Prometheus exposition of Options.Gatherer
//	GET /config   the running configuration as JSON (404 without Options.Config)
//
// With Options.Token returning a non-empty token, every path but the probes
// /healthz, /readyz and /version needs "Authorization: Bearer <token>".
//
// Pisanix served /healthz, /version and /metrics; /readyz and /config are
// additions.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/database-mesh/pisanix-go/internal/version"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure a Server.
type Options struct {
	// Addr is the listen address, host:port (":0" picks a free port).
	Addr string
	// Gatherer is exported on /metrics; nil means prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// Ready reports readiness for /readyz; nil means always ready.
	Ready func() error
	// Logger receives request panics and server errors; nil means slog.Default().
	Logger *slog.Logger
	// Config, if set, returns the running configuration, already redacted
	// (no passwords), served as JSON on /config.
	Config func() any
	// Version is served on /version; empty means pisa-proxy's (version.String()).
	Version string
	// Token, if set and returning a non-empty string, is the bearer token
	// every path but the probes requires. It is called per request, so a
	// reload can change it.
	Token func() string
	// ShardRoute, if set, serves GET /sharding/route?sql=…[&db=…][&listener=…]:
	// how a statement would be routed on the shards (like EXPLAIN). It
	// returns ErrNotFound (wrapped) when the listener does not exist or
	// has no sharding, ErrBadRequest when the query is incomplete.
	ShardRoute func(listener, sql, db string) (any, error)
}

// Errors ShardRoute returns to select the HTTP status.
var (
	ErrNotFound   = errors.New("not found")
	ErrBadRequest = errors.New("bad request")
)

// Timeouts of the HTTP server. A scrape of a large registry must fit in
// writeTimeout.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
)

// Server is the admin HTTP server. Create it with New, then Start it.
type Server struct {
	opts    Options
	log     *slog.Logger
	handler http.Handler

	mu      sync.Mutex
	srv     *http.Server
	ln      net.Listener
	done    chan struct{} // closed when Serve returns
	stopped bool
}

// New returns a server for opts; it does not listen until Start.
func New(opts Options) *Server {
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.DefaultGatherer
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, log: opts.Logger.With("component", "admin")}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /version", s.version)
	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError, // serve what can be gathered, log the rest
	}))
	mux.HandleFunc("GET /config", s.config)
	mux.HandleFunc("GET /sharding/route", s.shardRoute)
	s.handler = s.recoverPanics(s.authorize(mux))
	return s
}

// Handler returns the server's HTTP handler (routes and panic recovery),
// for tests or to mount it elsewhere.
func (s *Server) Handler() http.Handler { return s.handler }

// Start binds the listen address and serves in a goroutine. Bind errors
// (port in use, bad address) are returned. Start can be called once.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil || s.stopped {
		return errors.New("admin: server already started")
	}
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("admin: listen on %q: %w", s.opts.Addr, err)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.srv, s.ln, s.done = srv, ln, make(chan struct{})
	go func() {
		defer close(s.done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin server stopped", "err", err)
		}
	}()
	s.log.Info("admin server listening", "addr", ln.Addr().String())
	return nil
}

// Addr returns the address the server listens on, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops accepting connections and waits for active requests to
// finish or ctx to end (then open connections are closed). It is safe to
// call before Start or more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.stopped = true
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		srv.Close()
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	return err
}

// open are the paths served without the token: probes and the version.
var open = map[string]bool{"/healthz": true, "/readyz": true, "/version": true}

// authorize requires the bearer token, when one is set, on every path but
// the probes.
func (s *Server) authorize(next http.Handler) http.Handler {
	if s.opts.Token == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := s.opts.Token()
		if token == "" || open[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pisa-proxy admin"`)
			writeText(w, http.StatusUnauthorized, "unauthorized: this path needs Authorization: Bearer <admin token>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "ok")
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			writeText(w, http.StatusServiceUnavailable, err.Error())
			return
		}
	}
	writeText(w, http.StatusOK, "ok")
}

func (s *Server) version(w http.ResponseWriter, _ *http.Request) {
	v := s.opts.Version
	if v == "" {
		v = version.String()
	}
	writeText(w, http.StatusOK, v)
}

func (s *Server) config(w http.ResponseWriter, r *http.Request) {
	if s.opts.Config == nil {
		http.NotFound(w, r)
		return
	}
	body, err := json.MarshalIndent(s.opts.Config(), "", "  ")
	if err != nil {
		s.log.Error("encode config", "err", err)
		http.Error(w, "cannot encode config", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(append(body, '\n'))
}

func (s *Server) shardRoute(w http.ResponseWriter, r *http.Request) {
	if s.opts.ShardRoute == nil {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	sql := q.Get("sql")
	if sql == "" {
		writeText(w, http.StatusBadRequest, "the sql query parameter is required: /sharding/route?sql=SELECT+...&db=...&listener=...")
		return
	}
	out, err := s.opts.ShardRoute(q.Get("listener"), sql, q.Get("db"))
	switch {
	case errors.Is(err, ErrNotFound):
		writeText(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, ErrBadRequest):
		writeText(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		writeText(w, http.StatusInternalServerError, err.Error())
		return
	}
	body, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		writeText(w, http.StatusInternalServerError, "cannot encode the route: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(append(body, '\n'))
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write([]byte(msg + "\n"))
}

// recoverPanics turns a handler panic into a logged error and, if nothing
// was written yet, a 500 response. http.ErrAbortHandler is re-panicked so
// net/http aborts the response quietly, as documented.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &trackingWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("admin handler panic", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !rw.wrote {
				http.Error(rw, "internal server error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(rw, r)
	})
}

// trackingWriter records whether the response has started.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackingWriter) WriteHeader(code int) {
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }
