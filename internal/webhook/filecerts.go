package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// FileCerts serves a certificate and key from files ("file mode": mounted from a Secret that
// cert-manager or an operator maintains; the caBundle is then someone else's job, e.g.
// cert-manager's CA injector). The files are read at once by NewFileCerts and re-read when they
// change while Start runs (controller-runtime's certwatcher: file events plus a 10 s poll).
type FileCerts struct {
	w *certwatcher.CertWatcher
}

var _ CertSource = (*FileCerts)(nil)

// NewFileCerts reads certFile and keyFile (PEM); an error when they do not hold a valid pair.
// Add the result to the manager (it is a Runnable) to follow changes of the files.
func NewFileCerts(certFile, keyFile string) (*FileCerts, error) {
	w, err := certwatcher.New(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("webhook certificate %s / %s: %w", certFile, keyFile, err)
	}
	return &FileCerts{w: w}, nil
}

// GetCertificate returns the current certificate.
func (f *FileCerts) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c, err := f.w.GetCertificate(hello)
	if err == nil && c == nil {
		err = errors.New("webhook certificate not loaded")
	}
	return c, err
}

// Checker is a healthz.Checker: nil while a certificate is loaded.
func (f *FileCerts) Checker(*http.Request) error {
	_, err := f.GetCertificate(nil)
	return err
}

// Start watches the files until ctx is done.
func (f *FileCerts) Start(ctx context.Context) error { return f.w.Start(ctx) }

// NeedLeaderElection is false: every replica serves the webhook.
func (f *FileCerts) NeedLeaderElection() bool { return false }
