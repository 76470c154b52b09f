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
// command runs. One timer per session, ticking every watchInterval while
// the session runs commands: at each tick a running command's client is
// checked. A command costs two short critical sections; the timer is armed
// by the first command after the session went quiet and stops at the
// first tick that finds no command run since the previous one (re-arming
// it per command cost a timer reset and stop each time).
type watcher struct {
	mu    sync.Mutex
	conn  *backend.Conn // the running command's connection (nil: none)
	seq   uint64        // commands started
	seen  uint64        // seq at the last tick
	armed bool          // the timer is pending
	timer *time.Timer
}

func (s *session) startWatch(c *backend.Conn) {
	w := &s.watch
	w.mu.Lock()
	w.conn = c
	w.seq++
	if !w.armed {
		w.armed = true
		// Under the lock: onWatch (the timer's goroutine) reads w.timer.
		if w.timer == nil {
			w.timer = time.AfterFunc(watchInterval, s.onWatch)
		} else {
			w.timer.Reset(watchInterval)
		}
	}
	w.mu.Unlock()
}

func (s *session) stopWatch() {
	w := &s.watch
	w.mu.Lock()
	w.conn = nil
	w.mu.Unlock()
}

func (s *session) onWatch() {
	w := &s.watch
	w.mu.Lock()
	c, seq := w.conn, w.seq
	ran := seq != w.seen
	w.seen = seq
	if c == nil && !ran {
		w.armed = false // quiet: the next command arms the timer again
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	if c != nil && clientGone(s.client.TCPConn()) {
		w.mu.Lock()
		same := w.conn == c && w.seq == seq
		w.mu.Unlock()
		if !same {
			// The command ended meanwhile (c may serve another session
			// now): the next read of the client finds it gone.
			w.mu.Lock()
			w.timer.Reset(watchInterval)
			w.mu.Unlock()
			return
		}
		s.logger.Info("client disconnected mid-query: killing backend query",
			"backend", c.Pool.Endpoint().Addr, "thread", c.Info.ConnectionID)
		s.killActive(c)
		w.mu.Lock()
		w.armed = false
		w.mu.Unlock()
		return
	}
	w.mu.Lock()
	w.timer.Reset(watchInterval)
	w.mu.Unlock()
}
