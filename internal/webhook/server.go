// Package webhook serves pisa-controller's sidecar injection webhook over HTTPS and provides its
// TLS certificate without manual steps: CertManager keeps a CA and a serving certificate in a
// Secret shared by all replicas, rotates them and writes the CA into the
// MutatingWebhookConfiguration ("self mode"); FileCerts serves files maintained by someone else,
// e.g. cert-manager ("file mode"). NewServer returns controller-runtime's webhook server with
// Pisanix's paths registered and the certificate source feeding its TLS configuration; all three
// are controller-runtime Runnables that run on every replica.
package webhook

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"

	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/database-mesh/pisanix-go/internal/inject"
)

// Paths served (Pisanix's).
const (
	MutatePath    = inject.MutatePath
	DiscoveryPath = "/apis/admission.database-mesh.io/v1alpha1"
	HealthzPath   = "/healthz"
)

// DefaultPort is Pisanix's webhook port.
const DefaultPort = 6443

// Options configure the webhook server.
type Options struct {
	// Host to listen on (empty: every address) and Port (0: DefaultPort).
	Host string
	Port int
	// Certs gives the serving certificate (a *CertManager or *FileCerts). Required.
	Certs CertSource
	// Inject configures the injected sidecar (and Inject.Metrics counts the requests).
	Inject inject.Options
	// Logger gets the injection logs unless Inject.Logger is set; default slog.Default().
	// controller-runtime's server logs through its own logger (ctrl.SetLogger).
	Logger *slog.Logger
	// EnableHTTP2 serves HTTP/2 too; off by default (the API server speaks HTTP/1.1 to
	// webhooks, and HTTP/2 rapid-reset attacks need not be considered).
	EnableHTTP2 bool

	onRequest func(*http.Request) // test hook: called as each request reaches a handler
}

// NewServer returns controller-runtime's webhook server (a manager.Runnable without leader
// election: every replica serves) with
//
//   - the injection webhook (inject.Handler on controller-runtime's admission codec) at
//     MutatePath,
//   - 200 {} at DiscoveryPath (GET) and 200 ok at HealthzPath (GET),
//
// over TLS 1.2 or later with o.Certs' certificate, loaded on every handshake so that a rotated
// certificate is served on the next connection. Pass it as ctrl.Options.WebhookServer (the
// manager starts it once mgr.GetWebhookServer is called) or add it with mgr.Add. Its Start shuts
// down gracefully when its context is done: requests in flight get up to a minute.
func NewServer(o Options) (ctrlwebhook.Server, error) {
	if o.Certs == nil {
		return nil, errors.New("webhook server: no Certs")
	}
	port := o.Port
	if port == 0 {
		port = DefaultPort
	}
	protos := []string{"http/1.1"}
	if o.EnableHTTP2 {
		protos = []string{"h2", "http/1.1"}
	}
	srv := ctrlwebhook.NewServer(ctrlwebhook.Options{Host: o.Host, Port: port, TLSOpts: []func(*tls.Config){
		func(c *tls.Config) {
			c.MinVersion = tls.VersionTLS12
			c.GetCertificate = o.Certs.GetCertificate
			c.NextProtos = protos
		},
	}})
	opts := o.Inject
	if opts.Logger == nil {
		opts.Logger = o.Logger
		if opts.Logger == nil {
			opts.Logger = slog.Default()
		}
	}
	hook := func(h http.Handler) http.Handler {
		if o.onRequest == nil {
			return h
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			o.onRequest(r)
			h.ServeHTTP(w, r)
		})
	}
	srv.Register(MutatePath, hook(inject.Handler(opts)))
	srv.Register(DiscoveryPath, hook(getOnly("application/json", "{}")))
	srv.Register(HealthzPath, hook(getOnly("text/plain; charset=utf-8", "ok")))
	return srv, nil
}

// getOnly answers GET (and HEAD) with body, other methods with 405.
func getOnly(contentType, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write([]byte(body))
	})
}
