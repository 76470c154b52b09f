package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/database-mesh/pisanix-go/internal/backoff"
)

// Defaults of CertManager.
const (
	DefaultSecretName      = "pisa-controller-webhook-cert"
	DefaultCAValidity      = 10 * 365 * 24 * time.Hour
	DefaultCertValidity    = 365 * 24 * time.Hour
	DefaultRefreshInterval = 10 * time.Minute
	DefaultRetryInterval   = time.Second

	// maxRetryInterval caps Start's backoff after failures (and while the
	// MutatingWebhookConfiguration does not exist).
	maxRetryInterval = time.Minute
	// writeAttempts bounds the read-modify-write loops against concurrent writers.
	writeAttempts = 5
	// maxOldCAs is how many older CAs the bundle keeps trusting after a CA rotation.
	maxOldCAs = 2
)

// ManagedByLabel marks the Secret as written by pisa-controller.
const ManagedByLabel = "app.kubernetes.io/managed-by"

// CertSource gives the webhook server its serving certificate (the signature of
// tls.Config.GetCertificate). CertManager and FileCerts implement it.
type CertSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// ServiceDNSNames returns the names under which the API server may reach Service svc of
// namespace ns: svc, svc.ns, svc.ns.svc and svc.ns.svc.cluster.local.
func ServiceDNSNames(svc, ns string) []string {
	return []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local"}
}

// CertManager keeps the webhook's TLS material in a Secret ("self mode"): a CA and a serving
// certificate it signs, created when missing, rotated before expiry, and shared by every
// controller replica through the Secret. It loads the serving certificate for GetCertificate and
// writes the CA bundle into the caBundle of every webhook of a MutatingWebhookConfiguration.
//
// The Secret (type kubernetes.io/tls) holds tls.crt and tls.key (the serving pair), ca.crt (the
// CA bundle: the current CA first, then older CAs that are still valid) and ca.key (the current
// CA's key, so that the CA, hence caBundle, stays the same when the serving certificate rotates).
//
// Set the fields before the first call; CertManager is a manager.Runnable that every replica
// runs (no leader election).
type CertManager struct {
	// Client reads and writes the Secret and the MutatingWebhookConfiguration; an uncached
	// client is best (a cached one would need to watch every Secret). Required.
	Client client.Client
	// Namespace of the Secret. Required.
	Namespace string
	// SecretName defaults to DefaultSecretName.
	SecretName string
	// DNSNames and IPAddresses are the serving certificate's SANs (at least one of them):
	// typically ServiceDNSNames(service, namespace). Every replica must use the same; a change
	// rotates the certificate.
	DNSNames    []string
	IPAddresses []net.IP
	// WebhookConfigName names the MutatingWebhookConfiguration whose webhooks get the CA bundle
	// as clientConfig.caBundle; empty: none is patched.
	WebhookConfigName string

	// CAValidity (default 10 years) and CertValidity (default 1 year) are the lifetimes of
	// new certificates. A certificate is replaced when less than a third of its lifetime is
	// left.
	CAValidity   time.Duration
	CertValidity time.Duration
	// RefreshInterval is how often Start checks the Secret and the caBundle once they are
	// fine (default 10 minutes); RetryInterval is the first delay after a failure, doubled
	// up to a minute (default 1 s).
	RefreshInterval time.Duration
	RetryInterval   time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	mu      sync.Mutex // serialises Ensure
	cert    atomic.Pointer[tls.Certificate]
	pending atomic.Bool // the MutatingWebhookConfiguration was not found: retry soon
}

var (
	_ CertSource = (*CertManager)(nil)

	errNotLoaded = errors.New("webhook serving certificate not loaded yet")
)

func (m *CertManager) secretName() string {
	if m.SecretName != "" {
		return m.SecretName
	}
	return DefaultSecretName
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (m *CertManager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *CertManager) logger() *slog.Logger {
	l := m.Logger
	if l == nil {
		l = slog.Default()
	}
	return l.With("secret", m.Namespace+"/"+m.secretName())
}

func (m *CertManager) validate() error {
	switch {
	case m.Client == nil:
		return errors.New("webhook CertManager: no Client")
	case m.Namespace == "":
		return errors.New("webhook CertManager: no Namespace")
	case len(m.DNSNames) == 0 && len(m.IPAddresses) == 0:
		return errors.New("webhook CertManager: no DNSNames or IPAddresses")
	}
	return nil
}

// GetCertificate returns the loaded serving certificate; an error before the first successful
// Ensure.
func (m *CertManager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.cert.Load(); c != nil {
		return c, nil
	}
	return nil, errNotLoaded
}

// Checker is a healthz.Checker: nil once a serving certificate is loaded.
func (m *CertManager) Checker(*http.Request) error {
	if m.cert.Load() == nil {
		return errNotLoaded
	}
	return nil
}

// NeedLeaderElection is false: every replica serves the webhook and needs the certificate.
func (m *CertManager) NeedLeaderElection() bool { return false }

// Start runs Ensure until it succeeds (retrying with backoff), then every RefreshInterval, which
// also picks up a certificate another replica rotated, until ctx is done. It returns an error only
// for an invalid configuration.
func (m *CertManager) Start(ctx context.Context) error {
	if err := m.validate(); err != nil {
		return err
	}
	log := m.logger()
	first := orDefault(m.RetryInterval, DefaultRetryInterval)
	refresh := orDefault(m.RefreshInterval, DefaultRefreshInterval)
	b := backoff.New(first, max(maxRetryInterval, first))
	for {
		err := m.Ensure(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := refresh
		if err != nil || m.pending.Load() { // failed, or waiting for the MutatingWebhookConfiguration
			wait = b.Next()
		} else {
			b.Reset()
		}
		if err != nil {
			log.Error("webhook certificate not ensured", "error", err, "retry_in", wait)
		}
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
	}
}

// Ensure makes the Secret hold a valid CA and serving certificate for the configured SANs
// (creating or rotating them, safely against other replicas doing the same), loads the serving
// certificate, and writes the CA bundle into the MutatingWebhookConfiguration's webhooks when it
// differs. A missing MutatingWebhookConfiguration is logged, not an error (Start retries).
func (m *CertManager) Ensure(ctx context.Context) error {
	if err := m.validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mat, err := m.ensureSecret(ctx)
	if err != nil {
		return err
	}
	// caBundle first, then the certificate: after a CA rotation the new certificate is served
	// only once the API server is told to trust its CA (the old CA stays in the bundle).
	patchErr := m.ensureCABundle(ctx, mat.caPEM)
	m.load(mat)
	return patchErr
}

func (m *CertManager) load(mat *material) {
	if cur := m.cert.Load(); cur != nil && bytes.Equal(cur.Certificate[0], mat.tlsCert.Certificate[0]) {
		return
	}
	c := mat.tlsCert
	m.cert.Store(&c)
	leaf := mat.serving.cert
	m.logger().Info("webhook serving certificate loaded", "serial", leaf.SerialNumber.Text(16),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "dns_names", leaf.DNSNames, "ips", leaf.IPAddresses)
}

// ensureSecret returns the Secret's material, after creating or rotating it if needed. Writes are
// optimistic: a Create that finds the Secret (AlreadyExists) or an Update that finds it changed
// (Conflict) means another replica wrote it, so it is read again; every replica then takes the
// same Secret.
func (m *CertManager) ensureSecret(ctx context.Context) (*material, error) {
	key := client.ObjectKey{Namespace: m.Namespace, Name: m.secretName()}
	log := m.logger()
	var lastErr error
	for range writeAttempts {
		now := m.now()
		var s corev1.Secret
		err := m.Client.Get(ctx, key, &s)
		if apierrors.IsNotFound(err) {
			mat, err := m.generate(verdict{reason: "no Secret"}, now)
			if err != nil {
				return nil, err
			}
			s = corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name,
					Labels: map[string]string{ManagedByLabel: "pisa-controller"}},
				Type: corev1.SecretTypeTLS,
				Data: mat.data(nil),
			}
			err = m.Client.Create(ctx, &s)
			if err == nil {
				log.Info("webhook certificate Secret created", "not_after", mat.serving.cert.NotAfter.UTC().Format(time.RFC3339))
				return mat, nil
			}
			if apierrors.IsAlreadyExists(err) {
				lastErr = err // another replica created it first: use theirs
				continue
			}
			return nil, fmt.Errorf("create Secret %s: %w", key, err)
		}
		if err != nil {
			return nil, fmt.Errorf("get Secret %s: %w", key, err)
		}
		v := m.inspect(s.Data, now)
		if v.reason == "" {
			return v.mat, nil
		}
		mat, err := m.generate(v, now)
		if err != nil {
			return nil, err
		}
		s.Data = mat.data(s.Data)
		if err := m.Client.Update(ctx, &s); err != nil { // carries the resourceVersion read
			if apierrors.IsConflict(err) {
				lastErr = err // another replica rotated it first: use theirs
				continue
			}
			return nil, fmt.Errorf("update Secret %s: %w", key, err)
		}
		log.Info("webhook certificate rotated", "reason", v.reason, "new_ca", mat.newCA,
			"not_after", mat.serving.cert.NotAfter.UTC().Format(time.RFC3339))
		return mat, nil
	}
	return nil, fmt.Errorf("secret %s kept changing under concurrent writers: %w", key, lastErr)
}

// verdict is what inspect found in a Secret.
type verdict struct {
	mat     *material           // usable as is (reason == "")
	ca      *keyPair            // the CA, usable to sign a new serving certificate
	bundle  []*x509.Certificate // with ca: the bundle (ca first)
	trusted []*x509.Certificate // without ca: valid CAs of the old bundle, still to be trusted
	reason  string              // why the material must be (re)generated
}

func (m *CertManager) sanKey() string { return sanKey(m.DNSNames, m.IPAddresses) }

// inspect checks the Secret's data at now.
func (m *CertManager) inspect(data map[string][]byte, now time.Time) verdict {
	var v verdict
	bundle, err := parseCerts(data[KeyCA])
	if err != nil {
		v.reason = "ca.crt: " + err.Error()
		return v
	}
	for _, c := range bundle {
		if c.IsCA && now.Before(c.NotAfter) {
			v.trusted = append(v.trusted, c)
		}
	}
	caCert := bundle[0]
	caKey, err := parseKey(data[KeyCAKey])
	switch {
	case err != nil:
		v.reason = "ca.key: " + err.Error()
	case !caCert.IsCA:
		v.reason = "ca.crt: the first certificate is not a CA"
	case !matches(caCert, caKey):
		v.reason = "ca.key does not belong to ca.crt"
	case expiring(caCert, now):
		v.reason = "CA valid until " + caCert.NotAfter.UTC().Format(time.RFC3339)
	}
	if v.reason != "" {
		return v
	}
	v.ca = &keyPair{cert: caCert, key: caKey, keyPEM: data[KeyCAKey]}
	v.bundle = bundle
	tc, err := tls.X509KeyPair(data[KeyCert], data[KeyKey])
	switch {
	case err != nil:
		v.reason = "tls.crt/tls.key: " + err.Error()
	case tc.Leaf.CheckSignatureFrom(caCert) != nil:
		v.reason = "tls.crt is not signed by the CA"
	case sanKey(tc.Leaf.DNSNames, tc.Leaf.IPAddresses) != m.sanKey():
		v.reason = fmt.Sprintf("SANs [%s], want [%s]", sanKey(tc.Leaf.DNSNames, tc.Leaf.IPAddresses), m.sanKey())
	case expiring(tc.Leaf, now):
		v.reason = "serving certificate valid until " + tc.Leaf.NotAfter.UTC().Format(time.RFC3339)
	}
	if v.reason != "" {
		return v
	}
	v.mat = &material{
		serving: keyPair{cert: tc.Leaf, certPEM: data[KeyCert], keyPEM: data[KeyKey]},
		ca:      *v.ca,
		caPEM:   data[KeyCA],
		tlsCert: tc,
	}
	return v
}

// generate makes a new serving certificate, signed by v's CA when it is usable, else by a new CA
// (then the bundle keeps the old valid CAs after the new one).
func (m *CertManager) generate(v verdict, now time.Time) (*material, error) {
	var ca keyPair
	var bundle []*x509.Certificate
	newCA := v.ca == nil
	if newCA {
		var err error
		ca, err = makeCA(now, orDefault(m.CAValidity, DefaultCAValidity))
		if err != nil {
			return nil, fmt.Errorf("generate CA: %w", err)
		}
		bundle = []*x509.Certificate{ca.cert}
		for _, c := range v.trusted {
			if len(bundle) > maxOldCAs {
				break
			}
			bundle = append(bundle, c)
		}
	} else {
		ca = *v.ca
		bundle = []*x509.Certificate{ca.cert}
		for _, c := range v.bundle[1:] {
			if now.Before(c.NotAfter) && len(bundle) <= maxOldCAs {
				bundle = append(bundle, c) // expired old CAs are dropped
			}
		}
	}
	serving, err := makeServing(ca, m.DNSNames, m.IPAddresses, now, orDefault(m.CertValidity, DefaultCertValidity))
	if err != nil {
		return nil, fmt.Errorf("generate serving certificate: %w", err)
	}
	tc, err := tls.X509KeyPair(serving.certPEM, serving.keyPEM)
	if err != nil {
		return nil, err
	}
	if ca.keyPEM == nil {
		if ca.keyPEM, err = encodeKey(ca.key); err != nil {
			return nil, err
		}
	}
	return &material{serving: serving, ca: ca, caPEM: encodeBundle(bundle), tlsCert: tc, newCA: newCA}, nil
}

// data returns the Secret data for mat, keeping other keys of old.
func (mat *material) data(old map[string][]byte) map[string][]byte {
	d := maps.Clone(old)
	if d == nil {
		d = map[string][]byte{}
	}
	d[KeyCert] = mat.serving.certPEM
	d[KeyKey] = mat.serving.keyPEM
	d[KeyCA] = mat.caPEM
	d[KeyCAKey] = mat.ca.keyPEM
	return d
}

// jsonPatchOp is an RFC 6902 operation.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// ensureCABundle sets clientConfig.caBundle of every webhook of the MutatingWebhookConfiguration
// to bundle. The JSON patch touches only the caBundle fields that differ and tests each webhook's
// name at its index, so a concurrent edit of the list makes it fail instead of writing the wrong
// webhook; then it is read again.
func (m *CertManager) ensureCABundle(ctx context.Context, bundle []byte) error {
	if m.WebhookConfigName == "" {
		m.pending.Store(false)
		return nil
	}
	log := m.logger().With("mutatingwebhookconfiguration", m.WebhookConfigName)
	var lastErr error
	for range writeAttempts {
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		err := m.Client.Get(ctx, client.ObjectKey{Name: m.WebhookConfigName}, &mwc)
		if apierrors.IsNotFound(err) {
			if !m.pending.Swap(true) {
				log.Warn("MutatingWebhookConfiguration not found; its caBundle will be set when it exists")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("get MutatingWebhookConfiguration %s: %w", m.WebhookConfigName, err)
		}
		var ops []jsonPatchOp
		var names []string
		for i, wh := range mwc.Webhooks {
			if bytes.Equal(wh.ClientConfig.CABundle, bundle) {
				continue
			}
			p := "/webhooks/" + strconv.Itoa(i)
			ops = append(ops, jsonPatchOp{Op: "test", Path: p + "/name", Value: wh.Name},
				jsonPatchOp{Op: "add", Path: p + "/clientConfig/caBundle", Value: bundle})
			names = append(names, wh.Name)
		}
		if len(ops) == 0 {
			m.pending.Store(false)
			return nil
		}
		data, err := json.Marshal(ops)
		if err != nil {
			return err
		}
		err = m.Client.Patch(ctx, &mwc, client.RawPatch(types.JSONPatchType, data))
		if err == nil {
			m.pending.Store(false)
			log.Info("caBundle written", "webhooks", names)
			return nil
		}
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			lastErr = err // changed or deleted meanwhile (a failed test op): read again
			continue
		}
		return fmt.Errorf("patch caBundle of MutatingWebhookConfiguration %s: %w", m.WebhookConfigName, err)
	}
	return fmt.Errorf("patch caBundle of MutatingWebhookConfiguration %s: %w", m.WebhookConfigName, lastErr)
}
