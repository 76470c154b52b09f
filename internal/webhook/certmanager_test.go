package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

const (
	testNS   = "pisa-system"
	testSvc  = "pisa-controller"
	testMWC  = "pisa-controller"
	testHost = "pisa-controller.pisa-system.svc"
	day      = 24 * time.Hour
)

var (
	quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
	t0    = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t0.Add(d)
}

func newFake(objs ...client.Object) client.WithWatch {
	return fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(objs...).Build()
}

// mwc returns a MutatingWebhookConfiguration with two webhooks and no caBundle.
func mwc() *admissionregistrationv1.MutatingWebhookConfiguration {
	none := admissionregistrationv1.SideEffectClassNone
	url := "https://127.0.0.1:1" + MutatePath
	wh := func(name string) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{Name: name, SideEffects: &none,
			AdmissionReviewVersions: []string{"v1"}, ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url}}
	}
	return &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: testMWC},
		Webhooks: []admissionregistrationv1.MutatingWebhook{wh("a.pisanix.io"), wh("b.pisanix.io")}}
}

func newManager(c client.Client, clk *clock) *CertManager {
	m := &CertManager{Client: c, Namespace: testNS, DNSNames: ServiceDNSNames(testSvc, testNS),
		WebhookConfigName: testMWC, Logger: quiet}
	if clk != nil {
		m.Now = clk.Now
	}
	return m
}

func ensure(t *testing.T, m *CertManager) {
	t.Helper()
	if err := m.Ensure(context.Background()); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
}

func getSecret(t *testing.T, c client.Client) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: testNS, Name: DefaultSecretName}, &s); err != nil {
		t.Fatalf("get Secret: %v", err)
	}
	return &s
}

func getMWC(t *testing.T, c client.Client) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	var w admissionregistrationv1.MutatingWebhookConfiguration
	if err := c.Get(context.Background(), client.ObjectKey{Name: testMWC}, &w); err != nil {
		t.Fatalf("get MutatingWebhookConfiguration: %v", err)
	}
	return &w
}

func mustCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	certs, err := parseCerts(data)
	if err != nil {
		t.Fatalf("parse certificates: %v", err)
	}
	return certs
}

// verifySecret checks that tls.crt is a serving certificate for host, valid at now under the
// bundle ca.crt, and that tls.key belongs to it; it returns the leaf.
func verifySecret(t *testing.T, s *corev1.Secret, host string, now time.Time) *x509.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(s.Data[KeyCert], s.Data[KeyKey])
	if err != nil {
		t.Fatalf("tls.crt/tls.key: %v", err)
	}
	roots := x509.NewCertPool()
	for _, c := range mustCerts(t, s.Data[KeyCA]) {
		roots.AddCert(c)
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("serving certificate does not verify for %s at %s: %v", host, now, err)
	}
	caKey, err := parseKey(s.Data[KeyCAKey])
	if err != nil || !matches(mustCerts(t, s.Data[KeyCA])[0], caKey) {
		t.Fatalf("ca.key does not belong to the first CA of ca.crt: %v", err)
	}
	return pair.Leaf
}

// loaded returns the leaf of the certificate m serves.
func loaded(t *testing.T, m *CertManager) *x509.Certificate {
	t.Helper()
	c, err := m.GetCertificate(nil)
	if err != nil {
		t.Fatalf("GetCertificate: %v", err)
	}
	return c.Leaf
}

func wantBundle(t *testing.T, c client.Client, bundle []byte) {
	t.Helper()
	for _, wh := range getMWC(t, c).Webhooks {
		if !bytes.Equal(wh.ClientConfig.CABundle, bundle) {
			t.Errorf("webhook %s caBundle:\n%s\nwant:\n%s", wh.Name, wh.ClientConfig.CABundle, bundle)
		}
	}
}

// counter counts writes through an interceptor client.
type counter struct{ creates, updates, patches atomic.Int32 }

func counting(c client.WithWatch, n *counter) client.WithWatch {
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			n.creates.Add(1)
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			n.updates.Add(1)
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
			n.patches.Add(1)
			return c.Patch(ctx, obj, p, opts...)
		},
	})
}

func TestServiceDNSNames(t *testing.T) {
	want := []string{"svc", "svc.ns", "svc.ns.svc", "svc.ns.svc.cluster.local"}
	if got := ServiceDNSNames("svc", "ns"); !slices.Equal(got, want) {
		t.Fatalf("ServiceDNSNames = %v, want %v", got, want)
	}
}

func TestEnsureCreates(t *testing.T) {
	clk := newClock()
	c := newFake(mwc())
	m := newManager(c, clk)
	if _, err := m.GetCertificate(nil); err == nil {
		t.Fatal("GetCertificate before Ensure: no error")
	}
	if err := m.Checker(nil); err == nil {
		t.Fatal("Checker before Ensure: nil")
	}
	ensure(t, m)

	s := getSecret(t, c)
	if s.Type != corev1.SecretTypeTLS || s.Labels[ManagedByLabel] != "pisa-controller" {
		t.Errorf("Secret type %q labels %v", s.Type, s.Labels)
	}
	for _, host := range ServiceDNSNames(testSvc, testNS) {
		verifySecret(t, s, host, clk.Now())
	}
	leaf := verifySecret(t, s, testHost, clk.Now())
	if got, want := sanKey(leaf.DNSNames, leaf.IPAddresses), sanKey(ServiceDNSNames(testSvc, testNS), nil); got != want {
		t.Errorf("SANs %s, want %s", got, want)
	}
	if !leaf.NotAfter.Equal(t0.Add(DefaultCertValidity)) || !leaf.NotBefore.Equal(t0.Add(-backdate)) {
		t.Errorf("serving certificate valid %s – %s", leaf.NotBefore, leaf.NotAfter)
	}
	ca := mustCerts(t, s.Data[KeyCA])
	if len(ca) != 1 || !ca[0].IsCA || !ca[0].NotAfter.Equal(t0.Add(DefaultCAValidity)) {
		t.Errorf("CA bundle: %d certificates, CA until %s", len(ca), ca[0].NotAfter)
	}
	if got := loaded(t, m); !got.Equal(leaf) {
		t.Error("GetCertificate does not return the Secret's certificate")
	}
	if err := m.Checker(nil); err != nil {
		t.Errorf("Checker after Ensure: %v", err)
	}
	wantBundle(t, c, s.Data[KeyCA])
	if m.pending.Load() {
		t.Error("still pending after the caBundle was written")
	}
}

func TestEnsureReuses(t *testing.T) {
	clk := newClock()
	var n counter
	c := counting(newFake(mwc()), &n)
	m := newManager(c, clk)
	ensure(t, m)
	s1 := getSecret(t, c)
	first := loaded(t, m)
	if n.creates.Load() != 1 || n.patches.Load() != 1 {
		t.Fatalf("first Ensure: %d creates, %d patches", n.creates.Load(), n.patches.Load())
	}

	clk.Set(200 * day) // more than a third of the year left
	ensure(t, m)
	other := newManager(c, clk) // another replica
	ensure(t, other)

	if s2 := getSecret(t, c); s2.ResourceVersion != s1.ResourceVersion {
		t.Errorf("Secret rewritten: resourceVersion %s → %s", s1.ResourceVersion, s2.ResourceVersion)
	}
	if n.creates.Load() != 1 || n.updates.Load() != 0 || n.patches.Load() != 1 {
		t.Errorf("writes after reuse: %d creates, %d updates, %d patches", n.creates.Load(), n.updates.Load(), n.patches.Load())
	}
	if !loaded(t, m).Equal(first) || !loaded(t, other).Equal(first) {
		t.Error("replicas serve different certificates")
	}
}

func TestRotationOnExpiry(t *testing.T) {
	clk := newClock()
	var n counter
	c := counting(newFake(mwc()), &n)
	a, b := newManager(c, clk), newManager(c, clk)
	ensure(t, a)
	ensure(t, b)
	s1 := getSecret(t, c)
	old := loaded(t, a)

	// 365 d + 1 h of lifetime: rotated when less than ~121.7 days remain.
	clk.Set(240 * day)
	ensure(t, a)
	if s := getSecret(t, c); s.ResourceVersion != s1.ResourceVersion {
		t.Fatal("rotated with 125 days left")
	}
	clk.Set(250 * day)
	ensure(t, a)
	s2 := getSecret(t, c)
	leaf := verifySecret(t, s2, testHost, clk.Now())
	if leaf.Equal(old) || !loaded(t, a).Equal(leaf) {
		t.Fatal("not rotated with 115 days left")
	}
	if !leaf.NotAfter.Equal(t0.Add(250*day + DefaultCertValidity)) {
		t.Errorf("new certificate valid until %s", leaf.NotAfter)
	}
	// Same CA: ca.crt, ca.key and caBundle unchanged, no patch.
	if !bytes.Equal(s2.Data[KeyCA], s1.Data[KeyCA]) || !bytes.Equal(s2.Data[KeyCAKey], s1.Data[KeyCAKey]) {
		t.Error("the CA changed with the serving certificate")
	}
	if n.patches.Load() != 1 {
		t.Errorf("%d caBundle patches, want 1 (the first)", n.patches.Load())
	}
	wantBundle(t, c, s1.Data[KeyCA])

	// The other replica still serves the old one until its next Ensure picks up the Secret.
	if !loaded(t, b).Equal(old) {
		t.Fatal("replica b changed without Ensure")
	}
	ensure(t, b)
	if !loaded(t, b).Equal(leaf) {
		t.Error("replica b did not pick up the rotated certificate")
	}
	if s3 := getSecret(t, c); s3.ResourceVersion != s2.ResourceVersion {
		t.Error("replica b rewrote the rotated Secret")
	}
}

func TestCARotation(t *testing.T) {
	clk := newClock()
	c := newFake(mwc())
	m := newManager(c, clk)
	m.CAValidity, m.CertValidity = 300*day, 30*day
	ensure(t, m)
	s1 := getSecret(t, c)
	oldCA := mustCerts(t, s1.Data[KeyCA])[0]

	// The CA has less than a third of its 300 days left: new CA, new serving certificate, and
	// a bundle that trusts both CAs so that replicas still serving the old certificate work.
	clk.Set(201 * day)
	ensure(t, m)
	s2 := getSecret(t, c)
	bundle := mustCerts(t, s2.Data[KeyCA])
	if len(bundle) != 2 || bundle[0].Equal(oldCA) || !bundle[1].Equal(oldCA) {
		t.Fatalf("bundle after CA rotation: %d certificates (want new CA, old CA)", len(bundle))
	}
	if bytes.Equal(s2.Data[KeyCAKey], s1.Data[KeyCAKey]) {
		t.Error("ca.key unchanged")
	}
	leaf := verifySecret(t, s2, testHost, clk.Now())
	if leaf.CheckSignatureFrom(bundle[0]) != nil {
		t.Error("new serving certificate not signed by the new CA")
	}
	wantBundle(t, c, s2.Data[KeyCA])
	// A replica that has not reloaded yet serves the certificate of the old CA: still trusted.
	roots := x509.NewCertPool()
	for _, ca := range bundle {
		roots.AddCert(ca)
	}
	oldLeaf := mustCerts(t, s1.Data[KeyCert])[0]
	if _, err := oldLeaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0.Add(20 * day), DNSName: testHost}); err != nil {
		t.Errorf("old certificate not trusted by the transition bundle: %v", err)
	}

	// Once the old CA has expired, the next rotation drops it from the bundle.
	clk.Set(302 * day)
	ensure(t, m)
	s3 := getSecret(t, c)
	if b := mustCerts(t, s3.Data[KeyCA]); len(b) != 1 || !b[0].Equal(bundle[0]) {
		t.Fatalf("bundle after the old CA expired: %d certificates", len(b))
	}
	verifySecret(t, s3, testHost, clk.Now())
	wantBundle(t, c, s3.Data[KeyCA])
}

func TestServingCertClampedToCA(t *testing.T) {
	clk := newClock()
	c := newFake()
	m := newManager(c, clk)
	m.WebhookConfigName = ""
	m.CAValidity, m.CertValidity = 30*day, 365*day
	ensure(t, m)
	leaf := loaded(t, m)
	if ca := mustCerts(t, getSecret(t, c).Data[KeyCA])[0]; !leaf.NotAfter.Equal(ca.NotAfter) {
		t.Errorf("serving certificate until %s, CA until %s", leaf.NotAfter, ca.NotAfter)
	}
}

func TestSANChange(t *testing.T) {
	clk := newClock()
	c := newFake(mwc())
	m := newManager(c, clk)
	ensure(t, m)
	s1 := getSecret(t, c)

	// The same names in another order and with duplicates: no change.
	same := newManager(c, clk)
	same.DNSNames = append(slices.Clone(m.DNSNames[1:]), m.DNSNames[0], m.DNSNames[0])
	ensure(t, same)
	if getSecret(t, c).ResourceVersion != s1.ResourceVersion {
		t.Fatal("reordered SANs rotated the certificate")
	}

	m2 := newManager(c, clk)
	m2.DNSNames = ServiceDNSNames("webhook", testNS)
	m2.IPAddresses = []net.IP{net.ParseIP("10.0.0.7")}
	ensure(t, m2)
	s2 := getSecret(t, c)
	leaf := verifySecret(t, s2, "webhook.pisa-system.svc", clk.Now())
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("10.0.0.7")) {
		t.Errorf("IP SANs %v", leaf.IPAddresses)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: testHost}); err == nil {
		t.Error("new certificate still valid for the old name")
	}
	if !bytes.Equal(s2.Data[KeyCA], s1.Data[KeyCA]) {
		t.Error("a SAN change replaced the CA")
	}
}

func TestMalformedSecret(t *testing.T) {
	// A valid Secret to break, and another CA's material.
	clk := newClock()
	good := newFake()
	gm := newManager(good, clk)
	gm.WebhookConfigName = ""
	ensure(t, gm)
	valid := getSecret(t, good).Data
	other := newFake()
	om := newManager(other, clk)
	om.WebhookConfigName = ""
	ensure(t, om)
	foreign := getSecret(t, other).Data

	with := func(changes map[string][]byte) map[string][]byte {
		d := map[string][]byte{"extra": []byte("kept")}
		for k, v := range valid {
			d[k] = v
		}
		for k, v := range changes {
			if v == nil {
				delete(d, k)
			} else {
				d[k] = v
			}
		}
		return d
	}
	for _, tc := range []struct {
		name   string
		data   map[string][]byte
		keepCA bool
	}{
		{"empty", map[string][]byte{}, false},
		{"tls.crt garbage", with(map[string][]byte{KeyCert: []byte("garbage")}), true},
		{"tls.key missing", with(map[string][]byte{KeyKey: nil}), true},
		{"tls.key of another certificate", with(map[string][]byte{KeyKey: foreign[KeyKey]}), true},
		{"tls.crt of another CA", with(map[string][]byte{KeyCert: foreign[KeyCert], KeyKey: foreign[KeyKey]}), true},
		{"ca.crt garbage", with(map[string][]byte{KeyCA: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}), false},
		{"ca.crt a key", with(map[string][]byte{KeyCA: valid[KeyCAKey]}), false},
		{"ca.key missing", with(map[string][]byte{KeyCAKey: nil}), false},
		{"ca.key of another CA", with(map[string][]byte{KeyCAKey: foreign[KeyCAKey]}), false},
		{"ca.crt is the serving certificate", with(map[string][]byte{KeyCA: valid[KeyCert]}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: DefaultSecretName},
				Type: corev1.SecretTypeOpaque, Data: tc.data}
			c := newFake(s, mwc())
			m := newManager(c, clk)
			ensure(t, m)
			got := getSecret(t, c)
			leaf := verifySecret(t, got, testHost, clk.Now())
			if !loaded(t, m).Equal(leaf) {
				t.Error("loaded certificate differs from the Secret's")
			}
			if keptCA := bytes.Equal(got.Data[KeyCAKey], valid[KeyCAKey]); keptCA != tc.keepCA {
				t.Errorf("CA kept: %v, want %v", keptCA, tc.keepCA)
			}
			if _, ok := tc.data["extra"]; ok && string(got.Data["extra"]) != "kept" {
				t.Error("other keys of the Secret were dropped")
			}
			wantBundle(t, c, got.Data[KeyCA])
		})
	}
}

// TestRaceCreate: replica b reads "no Secret", then replica a creates it before b does; b's
// Create fails with AlreadyExists, b reads again and takes a's Secret.
func TestRaceCreate(t *testing.T) {
	clk := newClock()
	base := newFake(mwc())
	a := newManager(base, clk)
	var once sync.Once
	bc := interceptor.NewClient(base, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			err := c.Get(ctx, key, obj, opts...)
			if _, ok := obj.(*corev1.Secret); ok && apierrors.IsNotFound(err) {
				once.Do(func() { ensure(t, a) })
			}
			return err
		},
	})
	b := newManager(bc, clk)
	ensure(t, b)
	s := getSecret(t, base)
	leaf := verifySecret(t, s, testHost, clk.Now())
	if !loaded(t, a).Equal(leaf) || !loaded(t, b).Equal(leaf) {
		t.Error("replicas do not serve the Secret's certificate")
	}
	wantBundle(t, base, s.Data[KeyCA])
}

// TestRaceRotate: both replicas find the certificate expiring; a rotates first, b's Update
// conflicts, b reads again and takes a's certificate.
func TestRaceRotate(t *testing.T) {
	clk := newClock()
	base := newFake(mwc())
	a := newManager(base, clk)
	ensure(t, a)
	clk.Set(300 * day)
	var once sync.Once
	var conflicts atomic.Int32
	bc := interceptor.NewClient(base, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			err := c.Get(ctx, key, obj, opts...)
			if _, ok := obj.(*corev1.Secret); ok && err == nil {
				once.Do(func() { ensure(t, a) })
			}
			return err
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			err := c.Update(ctx, obj, opts...)
			if apierrors.IsConflict(err) {
				conflicts.Add(1)
			}
			return err
		},
	})
	b := newManager(bc, clk)
	ensure(t, b)
	if conflicts.Load() != 1 {
		t.Errorf("%d conflicts, want 1", conflicts.Load())
	}
	leaf := verifySecret(t, getSecret(t, base), testHost, clk.Now())
	if !leaf.NotAfter.Equal(t0.Add(300*day + DefaultCertValidity)) {
		t.Errorf("not rotated: valid until %s", leaf.NotAfter)
	}
	if !loaded(t, a).Equal(leaf) || !loaded(t, b).Equal(leaf) {
		t.Error("replicas do not serve the Secret's certificate")
	}
}

// TestRaceMany runs several replicas at once, at start and at rotation: they converge on one
// Secret.
func TestRaceMany(t *testing.T) {
	clk := newClock()
	c := newFake(mwc())
	ms := make([]*CertManager, 6)
	for i := range ms {
		ms[i] = newManager(c, clk)
	}
	run := func() {
		var wg sync.WaitGroup
		errs := make(chan error, len(ms))
		for _, m := range ms {
			wg.Go(func() { errs <- m.Ensure(context.Background()) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("Ensure: %v", err)
			}
		}
	}
	for _, at := range []time.Duration{0, 300 * day} {
		clk.Set(at)
		run()
		s := getSecret(t, c)
		leaf := verifySecret(t, s, testHost, clk.Now())
		for i, m := range ms {
			if !loaded(t, m).Equal(leaf) {
				t.Errorf("at +%v: replica %d serves another certificate than the Secret's", at, i)
			}
		}
		wantBundle(t, c, s.Data[KeyCA])
	}
}

func TestCABundleLater(t *testing.T) {
	clk := newClock()
	c := newFake()
	m := newManager(c, clk)
	ensure(t, m) // no MutatingWebhookConfiguration yet: not an error
	if !m.pending.Load() {
		t.Fatal("not pending without MutatingWebhookConfiguration")
	}
	if err := m.Checker(nil); err != nil {
		t.Fatalf("Checker: %v (the certificate is usable before the caBundle is written)", err)
	}
	w := mwc()
	w.Webhooks[1].ClientConfig.CABundle = []byte("stale")
	if err := c.Create(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	ensure(t, m)
	if m.pending.Load() {
		t.Error("still pending")
	}
	wantBundle(t, c, getSecret(t, c).Data[KeyCA])

	// Someone resets the caBundle (e.g. a Helm upgrade): the next Ensure writes it again.
	w = getMWC(t, c)
	w.Webhooks[0].ClientConfig.CABundle = nil
	if err := c.Update(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	ensure(t, m)
	wantBundle(t, c, getSecret(t, c).Data[KeyCA])
}

// TestCABundleListChanged: the webhook list changes between read and patch; the patch's test
// operation fails (422 from the API server) and the patch is computed again.
func TestCABundleListChanged(t *testing.T) {
	clk := newClock()
	base := newFake(mwc())
	var patches atomic.Int32
	c := interceptor.NewClient(base, interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
			if patches.Add(1) == 1 {
				w := getMWC(t, c)
				slices.Reverse(w.Webhooks)
				none := admissionregistrationv1.SideEffectClassNone
				w.Webhooks = append(w.Webhooks, admissionregistrationv1.MutatingWebhook{Name: "c.pisanix.io",
					SideEffects: &none, AdmissionReviewVersions: []string{"v1"}})
				if err := c.Update(ctx, w); err != nil {
					return err
				}
			}
			if err := c.Patch(ctx, obj, p, opts...); err != nil {
				// The fake reports a failed test operation as a plain error; the API server
				// answers 422.
				var st apierrors.APIStatus
				if !errors.As(err, &st) {
					return apierrors.NewInvalid(schema.GroupKind{Group: "admissionregistration.k8s.io",
						Kind: "MutatingWebhookConfiguration"}, testMWC, nil)
				}
				return err
			}
			return nil
		},
	})
	m := newManager(c, clk)
	ensure(t, m)
	if patches.Load() != 2 {
		t.Errorf("%d patches, want 2", patches.Load())
	}
	w := getMWC(t, base)
	if len(w.Webhooks) != 3 {
		t.Fatalf("%d webhooks", len(w.Webhooks))
	}
	wantBundle(t, base, getSecret(t, base).Data[KeyCA])
}

func TestEnsureErrors(t *testing.T) {
	for _, m := range []*CertManager{
		{Namespace: testNS, DNSNames: []string{"x"}},
		{Client: newFake(), DNSNames: []string{"x"}},
		{Client: newFake(), Namespace: testNS},
	} {
		if err := m.Ensure(context.Background()); err == nil {
			t.Errorf("%+v: no error", m)
		}
		if err := m.Start(context.Background()); err == nil {
			t.Errorf("Start %+v: no error", m)
		}
	}
	// API errors are returned, and nothing is loaded.
	boom := errors.New("boom")
	c := interceptor.NewClient(newFake(), interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return boom
		},
	})
	m := newManager(c, nil)
	if err := m.Ensure(context.Background()); !errors.Is(err, boom) {
		t.Errorf("Ensure: %v, want boom", err)
	}
	if m.Checker(nil) == nil {
		t.Error("Checker nil after a failed Ensure")
	}
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStart(t *testing.T) {
	clk := newClock()
	// Two failed reads first: Start retries.
	var fails atomic.Int32
	fails.Store(2)
	base := newFake()
	c := interceptor.NewClient(base, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if fails.Add(-1) >= 0 {
				return errors.New("apiserver unavailable")
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	m := newManager(c, clk)
	m.RetryInterval, m.RefreshInterval = 5*time.Millisecond, 20*time.Millisecond
	if m.NeedLeaderElection() {
		t.Error("NeedLeaderElection")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()

	eventually(t, 10*time.Second, "certificate not loaded", func() bool { return m.Checker(nil) == nil })
	first := loaded(t, m)

	// The MutatingWebhookConfiguration appears later: written on a retry.
	if err := base.Create(context.Background(), mwc()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "caBundle not written", func() bool {
		w := getMWC(t, base)
		return len(w.Webhooks[0].ClientConfig.CABundle) > 0
	})

	// Another replica rotates the Secret: picked up on refresh.
	clk.Set(300 * day)
	other := newManager(base, clk)
	ensure(t, other)
	rotated := loaded(t, other)
	if rotated.Equal(first) {
		t.Fatal("not rotated")
	}
	eventually(t, 10*time.Second, "rotated certificate not picked up", func() bool {
		c, _ := m.GetCertificate(nil)
		return c.Leaf.Equal(rotated)
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return after cancel")
	}
}

// Ensure is serialised: the same manager called concurrently stays consistent (for -race).
func TestEnsureConcurrentSameManager(t *testing.T) {
	c := newFake(mwc())
	m := newManager(c, newClock())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := m.Ensure(context.Background()); err != nil {
				t.Error(err)
			}
			if _, err := m.GetCertificate(nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if !loaded(t, m).Equal(verifySecret(t, getSecret(t, c), testHost, t0)) {
		t.Error("loaded certificate is not the Secret's")
	}
}
