// Package webhook serves pisa-controller's sidecar injection webhook over HTTPS and provides its
// TLS certificate without manual steps: CertManager keeps a CA and a serving certificate in a
// Secret shared by all replicas, rotates them and writes the CA into the
// MutatingWebhookConfiguration ("self mode"); FileCerts serves files maintained by someone else,
// e.g. cert-manager ("file mode"). Server is the HTTPS server; all three are controller-runtime
// Runnables that run on every replica.
package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/database-mesh/pisanix-go/internal/inject"
)

// Paths served by Server (Pisanix's).
const (
	MutatePath    = inject.MutatePath
	DiscoveryPath = "/apis/admission.database-mesh.io/v1alpha1"
	HealthzPath   = "/healthz"
)

// Defaults of Server.
const (
	DefaultAddr              = ":6443"
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultShutdownTimeout   = 20 * time.Second
)

// Server is the webhook's HTTPS server: the injection webhook (inject.Handler) at MutatePath, 200
// {} at DiscoveryPath and 200 ok at HealthzPath. It is a manager.Runnable that every replica runs.
type Server struct {
	// Addr to listen on (default DefaultAddr); ignored when Listener is set.
	Addr string
	// Listener, when set, is served instead of listening on Addr (tests: a bound 127.0.0.1:0).
	// Start closes it.
	Listener net.Listener
	// Certs gives the serving certificate (a *CertManager or *FileCerts). Required.
	Certs CertSource
	// Inject configures the injected sidecar (and Inject.Metrics counts the requests).
	Inject inject.Options
	// Logger defaults to slog.Default(); it also gets the injection logs unless Inject.Logger
	// is set.
	Logger *slog.Logger
	// ReadHeaderTimeout defaults to DefaultReadHeaderTimeout; ShutdownTimeout (how long
	// requests in flight may finish once the context is done) to DefaultShutdownTimeout.
	ReadHeaderTimeout time.Duration
	ShutdownTimeout   time.Duration
	// EnableHTTP2 serves HTTP/2 too; off by default (the API server speaks HTTP/1.1 to
	// webhooks, and HTTP/2 rapid-reset attacks need not be considered).
	EnableHTTP2 bool

	mu        sync.Mutex
	bound     net.Addr
	ready     chan struct{} // closed once listening
	readyOnce sync.Once

	onRequest func(*http.Request) // test hook: called as each request reaches the handler
}

// NeedLeaderElection is false: every replica serves the webhook.
func (s *Server) NeedLeaderElection() bool { return false }

func (s *Server) init() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready == nil {
		s.ready = make(chan struct{})
	}
	return s.ready
}

// Ready is closed once Start listens; Address then returns the bound address.
func (s *Server) Ready() <-chan struct{} { return s.init() }

// Address returns the address the server listens on, nil before it does.
func (s *Server) Address() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bound
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Handler returns the HTTP handler served over TLS.
func (s *Server) Handler() http.Handler {
	opts := s.Inject
	if opts.Logger == nil {
		opts.Logger = s.logger()
	}
	mux := http.NewServeMux()
	mux.Handle(MutatePath, inject.Handler(opts))
	mux.HandleFunc("GET "+DiscoveryPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	})
	mux.HandleFunc("GET "+HealthzPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	})
	if hook := s.onRequest; hook != nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hook(r)
			mux.ServeHTTP(w, r)
		})
	}
	return mux
}

// Start serves until ctx is done, then shuts down gracefully (requests in flight get up to
// ShutdownTimeout). It returns nil after a shutdown, an error when it cannot listen or serve.
func (s *Server) Start(ctx context.Context) error {
	ready := s.init()
	if s.Certs == nil {
		return errors.New("webhook Server: no Certs")
	}
	log := s.logger()
	tlsCfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.Certs.GetCertificate,
		NextProtos:     []string{"http/1.1"},
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: orDefault(s.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       time.Minute, // the API server waits at most 30 s for a webhook
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn), // TLS handshake errors
	}
	if s.EnableHTTP2 {
		tlsCfg.NextProtos = []string{"h2", "http/1.1"}
	} else {
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){} // no HTTP/2
	}

	ln := s.Listener
	if ln == nil {
		addr := s.Addr
		if addr == "" {
			addr = DefaultAddr
		}
		var err error
		if ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", addr); err != nil {
			return fmt.Errorf("webhook server: %w", err)
		}
	}
	s.mu.Lock()
	s.bound = ln.Addr()
	s.mu.Unlock()
	s.readyOnce.Do(func() { close(ready) })
	log.Info("webhook server listening", "addr", ln.Addr().String(), "path", MutatePath)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tls.NewListener(ln, tlsCfg)) }()
	select {
	case err := <-errc:
		return fmt.Errorf("webhook server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), orDefault(s.ShutdownTimeout, DefaultShutdownTimeout))
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("webhook server shutdown: %w", err)
	}
	log.Info("webhook server stopped")
	return nil
}
