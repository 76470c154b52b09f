package proxy

import (
	"net"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// packetMemoryWait is how long a client packet waits for
// max_packet_memory to have room before it is dropped with ERR 1037.
var packetMemoryWait = 5 * time.Second

// logLimiter lets one log line per key through per interval, so that a
// flood (refused connections, failed handshakes) costs a line a second, not
// a line per connection. The line that passes says how many were dropped.
type logLimiter struct {
	every time.Duration
	mu    sync.Mutex
	slots map[string]*logSlot
}

type logSlot struct {
	next       time.Time
	suppressed int
}

func newLogLimiter(every time.Duration) *logLimiter {
	return &logLimiter{every: every, slots: map[string]*logSlot{}}
}

// allow reports whether a line for key may be logged now, and how many
// lines for key were suppressed since the last one that was.
func (r *logLimiter) allow(key string) (ok bool, suppressed int) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	sl := r.slots[key]
	if sl == nil {
		sl = &logSlot{}
		r.slots[key] = sl
	}
	if now.Before(sl.next) {
		sl.suppressed++
		return false, 0
	}
	n := sl.suppressed
	sl.suppressed = 0
	sl.next = now.Add(r.every)
	return true, n
}

// clip bounds a client-supplied string before it goes into a log line.
func clip(s string) string {
	const max = 256
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "...(" + strconv.Itoa(len(s)) + " bytes)"
}

// handshakes tracks a listener's connections that have not logged in yet.
// They are counted apart from logged-in sessions, with their own limit
// (max_handshakes), so that sockets that connect and stay silent can hold
// neither max_connections nor, for long, the handshake slots: when those
// are full, the oldest handshake older than handshakeEvictAge is closed to
// make room for the new connection.
type handshakes struct {
	mu sync.Mutex
	m  map[uint32]handshake
}

type handshake struct {
	start time.Time
	nc    net.Conn
}

// handshakeEvictAge: a handshake younger than this is never cut for a new
// one (a client's login takes a few round trips, milliseconds).
const handshakeEvictAge = time.Second

func (h *handshakes) add(id uint32, nc net.Conn) {
	h.mu.Lock()
	if h.m == nil {
		h.m = map[uint32]handshake{}
	}
	h.m[id] = handshake{start: time.Now(), nc: nc}
	h.mu.Unlock()
}

// remove reports whether id was still handshaking (not evicted).
func (h *handshakes) remove(id uint32) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.m[id]; !ok {
		return false
	}
	delete(h.m, id)
	return true
}

func (h *handshakes) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m)
}

// evictOldest closes the oldest handshake if it is older than
// handshakeEvictAge, and reports whether it did.
func (h *handshakes) evictOldest() bool {
	h.mu.Lock()
	var oldID uint32
	var old handshake
	for id, hs := range h.m {
		if old.nc == nil || hs.start.Before(old.start) {
			oldID, old = id, hs
		}
	}
	if old.nc == nil || time.Since(old.start) < handshakeEvictAge {
		h.mu.Unlock()
		return false
	}
	delete(h.m, oldID)
	h.mu.Unlock()
	_ = old.nc.Close()
	return true
}

// admit counts a session that just logged in: it leaves the handshake
// slots and takes a max_connections slot, or gets ERR 1040 when none is
// free.
func (l *Listener) admit(s *session) error {
	if l.hs.remove(s.id) {
		l.metrics.ClientHandshaking(s.rt.name, -1)
	}
	for {
		n := l.authed.Load()
		if max := s.rt.maxConns; max > 0 && n >= int64(max) {
			l.metrics.ClientRefused(s.rt.name, "max_connections")
			l.logRefusal(s.rt, "max_connections", s.addr())
			return mysql.NewError(mysql.ErrCodeTooManyConnections, "08004", "Too many connections")
		}
		if l.authed.CompareAndSwap(n, n+1) {
			s.admitted = true
			return nil
		}
	}
}

func (l *Listener) logRefusal(rt *runtime, reason, client string) {
	if ok, n := l.logLimit.allow("refused:" + reason); ok {
		l.logger.Warn("refused client", "reason", reason, "client", client, "max_connections", rt.maxConns,
			"max_handshakes", rt.maxHandshakes, "suppressed_since_last", n)
	}
}
