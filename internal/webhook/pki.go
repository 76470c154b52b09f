package webhook

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"
)

// Keys of the webhook certificate Secret (type kubernetes.io/tls plus the CA).
const (
	KeyCert   = "tls.crt" // serving certificate, PEM
	KeyKey    = "tls.key" // its private key, PEM (PKCS #8)
	KeyCA     = "ca.crt"  // CA bundle, PEM: the current CA first, then older CAs still trusted
	KeyCAKey  = "ca.key"  // the current CA's private key, PEM (PKCS #8)
	pemCert   = "CERTIFICATE"
	pemPKCS8  = "PRIVATE KEY"
	pemEC     = "EC PRIVATE KEY"
	pemPKCS1  = "RSA PRIVATE KEY"
	backdate  = time.Hour // NotBefore is this far in the past: tolerates clocks behind ours
	caSubject = "pisa-controller-webhook-ca"
)

// keyPair is a certificate with its private key and PEM encodings.
type keyPair struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
	keyPEM  []byte
}

// material is the content of the Secret: the serving pair, the current CA pair and the bundle of
// trusted CAs (current first).
type material struct {
	serving keyPair
	ca      keyPair
	caPEM   []byte // the CA bundle, PEM
	tlsCert tls.Certificate
	newCA   bool // generated with a new CA
}

func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

func encodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPKCS8, Bytes: der}), nil
}

// makeCA creates a self-signed CA valid from now-backdate for validity.
func makeCA(now time.Time, validity time.Duration) (keyPair, error) {
	key, err := newKey()
	if err != nil {
		return keyPair{}, err
	}
	sn, err := serial()
	if err != nil {
		return keyPair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("%s@%d", caSubject, now.Unix())},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return sign(tmpl, tmpl, key, key)
}

// makeServing creates a serving certificate for the SANs signed by ca, valid from now-backdate
// for validity but not beyond the CA.
func makeServing(ca keyPair, dnsNames []string, ips []net.IP, now time.Time, validity time.Duration) (keyPair, error) {
	key, err := newKey()
	if err != nil {
		return keyPair{}, err
	}
	sn, err := serial()
	if err != nil {
		return keyPair{}, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	cn := "pisa-controller-webhook"
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              dnsNames,
		IPAddresses:           ips,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	return sign(tmpl, ca.cert, key, ca.key)
}

func sign(tmpl, parent *x509.Certificate, key, parentKey crypto.Signer) (keyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return keyPair{}, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return keyPair{}, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return keyPair{}, err
	}
	return keyPair{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: pemCert, Bytes: der}), keyPEM: keyPEM}, nil
}

// parseCerts decodes every CERTIFICATE block of data; anything else is an error.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := bytes.TrimSpace(data); len(rest) > 0; rest = bytes.TrimSpace(rest) {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("not PEM")
		}
		if b.Type != pemCert {
			return nil, fmt.Errorf("unexpected PEM block %q", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate")
	}
	return out, nil
}

// parseKey decodes a PKCS #8, SEC 1 (EC) or PKCS #1 (RSA) private key.
func parseKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("not PEM")
	}
	var k any
	var err error
	switch b.Type {
	case pemPKCS8:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case pemEC:
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case pemPKCS1:
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", b.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	return s, nil
}

// matches reports whether key is the private key of cert.
func matches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

func encodeBundle(certs []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: pemCert, Bytes: c.Raw})
	}
	return buf.Bytes()
}

// sanKey is a canonical form of a certificate's (or a configuration's) SANs for comparison.
func sanKey(dnsNames []string, ips []net.IP) string {
	var parts []string
	for _, d := range dnsNames {
		parts = append(parts, "dns:"+strings.ToLower(d))
	}
	for _, ip := range ips {
		parts = append(parts, "ip:"+ip.String())
	}
	slices.Sort(parts)
	return strings.Join(slices.Compact(parts), ",")
}

// expiring reports whether less than a third of cert's lifetime remains at now, or now is
// outside its validity.
func expiring(cert *x509.Certificate, now time.Time) bool {
	lifetime := cert.NotAfter.Sub(cert.NotBefore)
	return now.Before(cert.NotBefore) || cert.NotAfter.Sub(now) < lifetime/3
}
