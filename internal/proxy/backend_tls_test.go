package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// writeCA writes a CA and a server certificate for 127.0.0.1 signed by it.
func writeCA(t *testing.T, dir, name string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(file, typ string, b []byte) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write(name+"-ca.pem", "CERTIFICATE", caDER), write(name+"-cert.pem", "CERTIFICATE", der),
		write(name+"-key.pem", "EC PRIVATE KEY", keyDER)
}

// TLS towards backends, with certificate verification.
func TestBackendTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := writeCA(t, dir, "good")
	otherCA, _, _ := writeCA(t, dir, "other")
	srv := testutil.StartMariaDB(t, "--ssl-ca="+caFile, "--ssl-cert="+certFile, "--ssl-key="+keyFile)
	root := openDB(t, srv.DSN("test"))
	var haveSSL string
	if err := root.QueryRow("SELECT @@have_ssl").Scan(&haveSSL); err != nil || haveSSL != "YES" {
		t.Fatalf("test server has no TLS (have_ssl=%q): %v", haveSSL, err)
	}

	cfg := baseConfig(srv.Addr)
	cfg.MySQL.Nodes[0].TLS.Enabled = true
	cfg.MySQL.Nodes[0].TLS.CAFile = caFile
	tp := startProxy(t, cfg)
	db := openDB(t, tp.dsn(""))
	var name, cipher string
	if err := db.QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil {
		t.Fatal(err)
	}
	if cipher == "" {
		t.Fatal("backend connection is not encrypted")
	}

	// A CA that did not sign the server's certificate: no connection.
	bad := baseConfig(srv.Addr)
	bad.MySQL.Nodes[0].TLS.Enabled = true
	bad.MySQL.Nodes[0].TLS.CAFile = otherCA
	tpBad := startProxy(t, bad)
	err := openDB(t, tpBad.dsn("")).Ping()
	if err == nil {
		// Ping is answered by the proxy; a query needs the backend.
		_, err = openDB(t, tpBad.dsn("")).Exec("SELECT 1")
	}
	if mysqlErrCode(err) != 2002 {
		t.Fatalf("unverifiable backend certificate: want 2002, got %v", err)
	}
	// By default ("preferred") TLS is used when the backend offers it, with
	// verification only against a configured CA.
	cipherOf := func(tp *testProxy) (string, error) {
		var name, cipher string
		err := openDB(t, tp.dsn("")).QueryRow("SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher)
		return cipher, err
	}
	if c, err := cipherOf(startProxy(t, baseConfig(srv.Addr))); err != nil || c == "" {
		t.Fatalf("default mode: cipher %q, %v", c, err)
	}
	pref := baseConfig(srv.Addr)
	pref.MySQL.Nodes[0].TLS.CAFile = caFile
	if c, err := cipherOf(startProxy(t, pref)); err != nil || c == "" {
		t.Fatalf("preferred with CA: cipher %q, %v", c, err)
	}
	prefBad := baseConfig(srv.Addr)
	prefBad.MySQL.Nodes[0].TLS.CAFile = otherCA
	if _, err := cipherOf(startProxy(t, prefBad)); mysqlErrCode(err) != 2002 {
		t.Fatalf("preferred with a CA that did not sign: want 2002, got %v", err)
	}
	off := baseConfig(srv.Addr)
	off.MySQL.Nodes[0].TLS.Mode = "disabled"
	if c, err := cipherOf(startProxy(t, off)); err != nil || c != "" {
		t.Fatalf("disabled: cipher %q, %v", c, err)
	}
	// A backend without TLS: "preferred" connects in the clear, "required"
	// does not connect.
	plain := testutil.MariaDBAddr(t)
	if c, err := cipherOf(startProxy(t, baseConfig(plain))); err != nil || c != "" {
		t.Fatalf("preferred to a backend without TLS: cipher %q, %v", c, err)
	}
	req := baseConfig(plain)
	req.MySQL.Nodes[0].TLS.Mode = "required"
	req.MySQL.Nodes[0].TLS.InsecureSkipVerify = true
	if _, err := cipherOf(startProxy(t, req)); mysqlErrCode(err) != 2002 {
		t.Fatalf("required to a backend without TLS: want 2002, got %v", err)
	}
	// insecure_skip_verify accepts it.
	skip := baseConfig(srv.Addr)
	skip.MySQL.Nodes[0].TLS.Enabled = true
	skip.MySQL.Nodes[0].TLS.InsecureSkipVerify = true
	tpSkip := startProxy(t, skip)
	if _, err := openDB(t, tpSkip.dsn("")).Exec("SELECT 1"); err != nil {
		t.Fatalf("insecure_skip_verify: %v", err)
	}
}
