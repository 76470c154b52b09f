// Package backend holds the proxy's side of backend connections: one Pool per
// endpoint (bounded, FIFO wait queue, idle expiry, liveness checks, health
// probing), the backend Conn with its recorded session state, and the
// SessionState a client session wants its backend session to look like.
//
// Data flow: a session asks a Pool for a Conn (Get), makes the server session
// match its SessionState (Conn.Sync), relays one command, reports every OK it
// relays (Conn.ObserveOK, SessionState.ApplyOK) and gives the Conn back (Put)
// unless it must stay pinned.
package backend

import (
	"crypto/tls"
	"errors"
	"time"
)

// Errors returned by Pool.Get (wrapped, test with errors.Is).
var (
	// ErrPoolTimeout: no connection became free within WaitTimeout (or the
	// context's deadline).
	ErrPoolTimeout = errors.New("backend pool wait timeout")
	// ErrConnect: dialing or the handshake with the endpoint failed.
	ErrConnect = errors.New("backend connect failed")
	// ErrPoolClosed: the pool was closed.
	ErrPoolClosed = errors.New("backend pool closed")
)

// Endpoint is one backend server.
type Endpoint struct {
	Name, Addr, User, Password, DB string // Addr = "host:port"
	// PasswordSHA1, when not nil, replaces Password (see Account).
	PasswordSHA1 []byte
	TLS          *tls.Config
	// TLSPreferred: use TLS when the server offers it, plain TCP when it
	// does not (TLS must be set).
	TLSPreferred bool
	Weight       int
	Role         string // "read" | "readwrite"
}

// PoolOptions bound a pool. Zero values: MaxOpen 0 = unlimited; MaxIdle 0 =
// MaxOpen (unlimited when MaxOpen is 0), negative = keep no idle conns;
// IdleTimeout/MaxLifetime 0 = never expire; WaitTimeout 0 = wait as long as
// the context allows; ConnectTimeout 0 = 10s.
type PoolOptions struct {
	MaxOpen, MaxIdle                                      int
	IdleTimeout, MaxLifetime, WaitTimeout, ConnectTimeout time.Duration
	ExtCaps                                               uint32 // MariaDB extended caps to request (mysql.MariaDBClient*)
	// MaxStmts bounds the statements kept prepared on each connection
	// (0: DefaultMaxStmts); the least recently used is closed.
	MaxStmts int
}

// Variant distinguishes connections that differ in handshake capabilities.
// The pool keeps separate idle lists per variant under one shared MaxOpen.
type Variant struct {
	FoundRows bool
	// ClientAttrs are the connect attributes (raw lenenc block) of the
	// client on whose behalf a new connection is dialed; they are forwarded
	// to the backend with "pisa_proxy" added. They do not select idle
	// connections.
	ClientAttrs []byte
	// Account, when set, is the client's own account: the connection
	// logs in as it, from a pool of that account's connections.
	Account *Account
}

func (v Variant) index() int {
	if v.FoundRows {
		return 1
	}
	return 0
}

// Stats is a snapshot of a pool's counters.
type Stats struct {
	MaxOpen, Open, Idle, InUse int
	// WaitCount is the number of Gets that had to wait; Timeouts how many of
	// them gave up; Closed the number of connections closed so far.
	WaitCount, Timeouts, Closed int64
	// WaitDuration is the total time Gets spent waiting.
	WaitDuration time.Duration
}

const (
	defaultConnectTimeout = 10 * time.Second
	// livenessAfter: an idle connection older than this is checked with a
	// non-blocking peek before it is handed out.
	livenessAfter = time.Second
	// resetTimeout bounds the round trips of a reset in Put.
	resetTimeout = 5 * time.Second

	probeStart = 200 * time.Millisecond
	probeMax   = 10 * time.Second
)
