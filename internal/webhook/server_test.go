package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/database-mesh/pisanix-go/internal/inject"
)

var localhost = []net.IP{net.ParseIP("127.0.0.1")}

// freePort returns a port free on 127.0.0.1 a moment ago (controller-runtime's server listens
// itself, on a port given in advance).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startServer starts the server of o on 127.0.0.1 (a free port unless o.Port is set), waits
// until it accepts connections, and returns its host:port and a stop function that cancels it and
// returns Start's result.
func startServer(t *testing.T, o Options) (string, func() error) {
	t.Helper()
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = freePort(t)
	}
	if o.Logger == nil {
		o.Logger = quiet
	}
	srv, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	if srv.NeedLeaderElection() {
		t.Error("NeedLeaderElection")
	}
	addr := net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	eventually(t, 30*time.Second, "webhook server not listening on "+addr, func() bool {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("Start: %v", err)
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	var once sync.Once
	var result error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(90 * time.Second):
				result = errors.New("Start did not return 90 s after cancel")
			}
		})
		return result
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("webhook server Start: %v", err)
		}
	})
	return addr, stop
}

// httpsClient trusts the PEM bundle ca; a new connection per request.
func httpsClient(t *testing.T, ca []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("no CA certificate")
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		DisableKeepAlives: true,
		ForceAttemptHTTP2: true,
	}}
}

func selfManager(t *testing.T) (*CertManager, *corev1.Secret) {
	t.Helper()
	c := newFake()
	m := &CertManager{Client: c, Namespace: testNS, DNSNames: []string{"localhost"}, IPAddresses: localhost, Logger: quiet}
	ensure(t, m)
	return m, getSecret(t, c)
}

func admissionBody(t *testing.T, pod *corev1.Pod) []byte {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u-1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: "demo",
			Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func TestServer(t *testing.T) {
	m, secret := selfManager(t)
	metrics := inject.NewMetrics()
	addr, stop := startServer(t, Options{Certs: m, Inject: inject.Options{Image: "proxy:test", Metrics: metrics}})
	base := "https://" + addr
	c := httpsClient(t, secret.Data[KeyCA])

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "shop"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
	resp, err := c.Post(base+MutatePath, "application/json", bytes.NewReader(admissionBody(t, pod)))
	if err != nil {
		t.Fatalf("POST %s: %v", MutatePath, err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/1.1" || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("POST: %d %s %+v: %s", resp.StatusCode, resp.Proto, resp.TLS, data)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &review); err != nil {
		t.Fatal(err)
	}
	if r := review.Response; r == nil || r.UID != "u-1" || !r.Allowed ||
		!bytes.Contains(r.Patch, []byte(`"name":"pisa-proxy","image":"proxy:test"`)) {
		t.Fatalf("review: %s", data)
	}
	if got := testutil.ToFloat64(metrics.Requests(inject.ResultInjected)); got != 1 {
		t.Errorf("injected counter %v, want 1", got)
	}

	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{http.MethodGet, DiscoveryPath, http.StatusOK, "{}"},
		{http.MethodGet, HealthzPath, http.StatusOK, "ok"},
		{http.MethodGet, MutatePath, http.StatusMethodNotAllowed, ""},
		{http.MethodPost, DiscoveryPath, http.StatusMethodNotAllowed, ""},
		{http.MethodGet, "/nothing", http.StatusNotFound, ""},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || (tc.body != "" && string(b) != tc.body) {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, resp.StatusCode, b, tc.code, tc.body)
		}
	}
	if ct := func() string {
		resp, err := c.Get(base + DiscoveryPath)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Content-Type")
	}(); ct != "application/json" {
		t.Errorf("discovery Content-Type %q", ct)
	}

	// TLS 1.1 is refused.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(secret.Data[KeyCA])
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Error("TLS 1.1 handshake succeeded")
	}
	// A client that does not trust the CA fails.
	if _, err := http.Get(base + HealthzPath); err == nil {
		t.Error("a client without the CA connected")
	}

	if err := stop(); err != nil {
		t.Errorf("Start returned %v after cancel", err)
	}
	if _, err := c.Get(base + HealthzPath); err == nil {
		t.Error("still serving after stop")
	}
}

// Before the certificate is loaded handshakes fail; afterwards they work, and a rotated
// certificate is served on the next connection.
func TestServerFollowsCertManager(t *testing.T) {
	c := newFake()
	m := &CertManager{Client: c, Namespace: testNS, IPAddresses: localhost, Logger: quiet}
	addr, _ := startServer(t, Options{Certs: m})
	base := "https://" + addr
	if _, err := http.Get(base + HealthzPath); err == nil {
		t.Fatal("connected without a certificate")
	}
	ensure(t, m)
	secret := getSecret(t, c)
	hc := httpsClient(t, secret.Data[KeyCA])
	peer := func() *x509.Certificate {
		resp, err := hc.Get(base + HealthzPath)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0]
	}
	first := peer()
	if !first.Equal(loaded(t, m)) {
		t.Fatal("served certificate is not the loaded one")
	}

	// Another replica configured with an extra name rotates the Secret (same CA).
	other := &CertManager{Client: c, Namespace: testNS, DNSNames: []string{"localhost"}, IPAddresses: localhost, Logger: quiet}
	ensure(t, other)
	m.DNSNames = other.DNSNames // as if m had the new configuration too
	ensure(t, m)
	if second := peer(); second.Equal(first) || !second.Equal(loaded(t, other)) {
		t.Fatal("rotated certificate not served")
	}
}

// Shutdown lets a request in flight finish.
func TestServerGracefulShutdown(t *testing.T) {
	m, secret := selfManager(t)
	arrived := make(chan struct{}, 1)
	addr, stop := startServer(t, Options{Certs: m, onRequest: func(*http.Request) { arrived <- struct{}{} }})
	base := "https://" + addr
	c := httpsClient(t, secret.Data[KeyCA])

	pr, pw := io.Pipe()
	body := admissionBody(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}})
	type result struct {
		code int
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := c.Post(base+MutatePath, "application/json", pr)
		if err != nil {
			res <- result{err: err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res <- result{code: resp.StatusCode}
	}()
	if _, err := pw.Write(body[:10]); err != nil {
		t.Fatal(err)
	}
	// net/http drops a connection whose request headers were not read when the shutdown
	// starts: wait until the handler has the request.
	<-arrived
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// Shutdown closes the listener first: wait for that, then finish the request.
	eventually(t, 10*time.Second, "listener not closed", func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	if _, err := pw.Write(body[10:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if r := <-res; r.err != nil || r.code != http.StatusOK {
		t.Fatalf("request in flight: %d %v", r.code, r.err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Start: %v", err)
	}
}

func TestServerHTTP2AndErrors(t *testing.T) {
	m, secret := selfManager(t)
	addr, _ := startServer(t, Options{Certs: m, EnableHTTP2: true})
	resp, err := httpsClient(t, secret.Data[KeyCA]).Get("https://" + addr + HealthzPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" {
		t.Errorf("EnableHTTP2: %s", resp.Proto)
	}

	if _, err := NewServer(Options{Port: 1}); err == nil {
		t.Error("NewServer without Certs: no error")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv, err := NewServer(Options{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Certs: m, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err == nil {
		t.Error("Start on a used address: no error")
	}
}

// writePair writes a CA-signed serving pair for 127.0.0.1 and returns the CA (PEM) and the leaf.
func writePair(t *testing.T, certFile, keyFile string) ([]byte, *x509.Certificate) {
	t.Helper()
	now := time.Now()
	ca, err := makeCA(now, day)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := makeServing(ca, nil, localhost, now, day)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, kp.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, kp.certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return ca.certPEM, kp.cert
}

func TestFileCerts(t *testing.T) {
	ctrllog.SetLogger(logr.FromSlogHandler(quiet.Handler()))
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if _, err := NewFileCerts(certFile, keyFile); err == nil {
		t.Fatal("NewFileCerts without files: no error")
	}
	ca, leaf := writePair(t, certFile, keyFile)
	fc, err := NewFileCerts(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := fc.Checker(nil); err != nil {
		t.Fatalf("Checker: %v", err)
	}
	if c, err := fc.GetCertificate(nil); err != nil || !c.Leaf.Equal(leaf) {
		t.Fatalf("GetCertificate: %v", err)
	}
	if fc.NeedLeaderElection() {
		t.Error("NeedLeaderElection")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchDone := make(chan error, 1)
	go func() { watchDone <- fc.Start(ctx) }()
	addr, _ := startServer(t, Options{Certs: fc})
	base := "https://" + addr
	resp, err := httpsClient(t, ca).Get(base + HealthzPath)
	if err != nil {
		t.Fatalf("GET with the file certificate: %v", err)
	}
	resp.Body.Close()

	// Replaced files are picked up (file events; the watcher also polls every 10 s).
	ca2, leaf2 := writePair(t, certFile, keyFile)
	eventually(t, 30*time.Second, "new certificate files not loaded", func() bool {
		c, err := fc.GetCertificate(nil)
		return err == nil && c.Leaf.Equal(leaf2)
	})
	resp, err = httpsClient(t, ca2).Get(base + HealthzPath)
	if err != nil {
		t.Fatalf("GET with the replaced certificate: %v", err)
	}
	resp.Body.Close()
	cancel()
	if err := <-watchDone; err != nil {
		t.Errorf("FileCerts.Start: %v", err)
	}
}

// What pisa-controller's main relies on.
var (
	_ manager.Runnable               = (*CertManager)(nil)
	_ manager.LeaderElectionRunnable = (*CertManager)(nil)
	_ manager.Runnable               = (*FileCerts)(nil)
	_ manager.LeaderElectionRunnable = (*FileCerts)(nil)
	_ healthz.Checker                = (&CertManager{}).Checker
	_ healthz.Checker                = (&FileCerts{}).Checker
	_ CertSource                     = (*FileCerts)(nil)
)
