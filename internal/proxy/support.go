package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
)

// rsaKey is the process's RSA key for caching_sha2_password full
// authentication without TLS, generated on first use.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil
	}
	return k
})

// selfSignedTLS generates a certificate for clients when none is configured.
func selfSignedTLS() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "pisa-proxy self-signed"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "pisa-proxy"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// clientGone reports whether the peer closed a TCP connection, with a
// non-blocking MSG_PEEK (no data is consumed).
func clientGone(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	_ = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n == 0 && err == nil:
			gone = true
		case err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EINTR):
			gone = true
		}
		return true
	})
	return gone
}

const watchInterval = time.Second

// watcher kills the backend query when the client disconnects while a
// command runs. One timer per session, re-armed per command: a command that
// finishes within watchInterval costs a timer reset.
type watcher struct {
	mu    sync.Mutex
	conn  *backend.Conn
	timer *time.Timer
}

func (s *session) startWatch(c *backend.Conn) {
	w := &s.watch
	w.mu.Lock()
	w.conn = c
	// Under the lock: onWatch (the timer's goroutine) reads w.timer.
	if w.timer == nil {
		w.timer = time.AfterFunc(watchInterval, s.onWatch)
	} else {
		w.timer.Reset(watchInterval)
	}
	w.mu.Unlock()
}

func (s *session) stopWatch() {
	w := &s.watch
	w.mu.Lock()
	w.conn = nil
	w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
}

func (s *session) onWatch() {
	w := &s.watch
	w.mu.Lock()
	c := w.conn
	w.mu.Unlock()
	if c == nil {
		return
	}
	if clientGone(s.client.TCPConn()) {
		s.logger.Info("client disconnected mid-query: killing backend query",
			"backend", c.Pool.Endpoint().Addr, "thread", c.Info.ConnectionID)
		s.killActive(c)
		return
	}
	w.mu.Lock()
	if w.conn == c {
		w.timer.Reset(watchInterval)
	}
	w.mu.Unlock()
}
