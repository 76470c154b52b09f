package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/audit"
	"github.com/database-mesh/pisanix-go/internal/proxy/route"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// Pin reasons: why a session keeps its backend connection between
// statements. Each is counted in pisa_proxy_backend_pins_total.
const (
	pinTransaction uint8 = 1 << iota
	pinSessionState
	pinPrepared
	pinLock
)

var pinNames = map[uint8]string{
	pinTransaction:  "transaction",
	pinSessionState: "session_state",
	pinPrepared:     "prepared_statement",
	pinLock:         "lock",
}

// stmt maps a client statement id to the backend's.
type stmt struct {
	backendID uint32
	sql       string // the prepared text (governance, and preparing again)
	params    uint16 // parameter count the client was told
	readOnly  bool   // its facts say read-only (for read-your-writes)
	// stale: the backend connection it was prepared on was lost; the next
	// use prepares it again on the session's new connection.
	stale bool
	// longData: COM_STMT_SEND_LONG_DATA went to the backend since the last
	// execute or reset; longDataLost: that backend was lost with it.
	longData, longDataLost bool
	// sh is set for a statement on sharded tables: the proxy runs it, no
	// backend holds it for the client (backendID is unused).
	sh *shardStmt
}

// session is one client connection. All its fields are owned by its
// goroutine, except those read by KILL from other sessions (atomics).
type session struct {
	l         *Listener
	rt        *runtime // the runtime this session started with
	id        uint32
	client    *mysql.Conn
	logger    *slog.Logger
	user      string
	caps      uint32
	extCaps   uint32
	foundRows bool
	salt      []byte
	attrs     []byte // client connect attributes, forwarded on new backend connections

	// charset holds the character set variables the handshake's collation
	// gives (pendingColl: the id, when no backend could resolve it yet);
	// track is what the client's own session trackers report; status the
	// session's status flags for locally generated OK and EOF packets.
	charset     map[string]string
	pendingColl uint8
	track       clientTracker
	status      uint16
	trackBuf    []byte
	// moreFollows: the text being relayed is a part of the client's
	// multi-statement text and more results follow (see kill.go);
	// errSent: an ERR went to the client since it was last cleared.
	moreFollows bool
	errSent     bool
	// account is the client's backend account (backend_accounts): its
	// connections log in as it; nil for accounts of the configuration.
	// pendingAccount is set by a login being verified.
	account, pendingAccount *backend.Account

	state *backend.SessionState
	be    *backend.Conn // current backend connection (pinned or in use)
	pins  uint8
	// pendingPins are applied after the current command succeeds.
	pendingPins uint8
	// decision is the read/write splitting decision for the next acquire
	// (nil: plain balancing).
	decision *route.Decision
	decBuf   route.Decision
	decRT    *runtime
	// forcePool, when set, is the pool the next acquire takes from (a
	// statement routed to one shard's datanode).
	forcePool *backend.Pool
	// pendingBegin holds a BEGIN a sharded listener has acknowledged but
	// not sent: it starts the transaction on the connection of the next
	// statement, whichever datanode that statement goes to.
	pendingBegin string
	shardScratch []byte

	// Read-your-writes: the session's tracker (nil until needed), whether
	// the running statement writes, and whether the next acquire must
	// check that a replica caught up.
	causal        *route.CausalTracker
	curWrite      bool
	causalPending bool

	// Governance: the request of the running statement, and where it ran.
	req         govern.Request
	clientAddr  string
	lastBackend string
	lastRoute   string

	stmts      map[uint32]stmt
	nextStmtID uint32

	// lost holds the pin reasons of backend state that died with its
	// connection (a transaction, locks, user variables, temporary tables).
	// Such a session is never continued on another connection: the client
	// gets ERR 2013 and its connection is closed, as a server's would be.
	lost uint8

	scratch []byte

	// active is the backend connection running the current command, for
	// KILL from another session and for the disconnect watcher.
	active atomic.Pointer[backend.Conn]
	killed atomic.Bool
	// admitted: the session logged in and holds a max_connections slot.
	admitted bool
	// idle is set while the session waits for a command with nothing
	// pinned, so that shutdown can end it without cutting a transaction.
	idle  atomic.Bool
	watch watcher
}

func (s *session) addr() string { return s.client.TCPConn().RemoteAddr().String() }

// serve runs the session until the client quits or the connection fails.
func (s *session) serve(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("session panic", "panic", r, "stack", string(debug.Stack()))
		}
		s.close()
	}()
	rt := s.rt
	users := rt.users
	// A client gets connect_timeout to log in, in packets of a few KiB.
	_ = s.client.TCPConn().SetDeadline(time.Now().Add(rt.connectTimeout))
	greetStatus, greetColl := rt.greeting()
	s.status = greetStatus & persistentStatus
	info, err := mysql.ServerHandshake(s.client, &mysql.ServerConfig{
		Status:               greetStatus,
		Collation:            greetColl,
		CheckCollation:       s.checkCollation,
		ServerVersion:        rt.serverVersion,
		ConnectionID:         s.id,
		ExtendedCapabilities: rt.extCaps,
		TLS:                  rt.tls,
		RequireTLS:           rt.requireTLS,
		AuthPlugin:           rt.authPlugin,
		RSAKey:               rsaKey,
		Users:                func(u string) (string, bool) { p, ok := users[u]; return p, ok },
		VerifyNative:         s.verifyNativeFunc(),
		Sha2Cache:            &s.l.sha2Cache,
		AfterAuth:            s.start,
	})
	if err != nil {
		s.handshakeFailed(err)
		return
	}
	_ = s.client.TCPConn().SetDeadline(time.Time{})
	s.client.MaxPacketSize = rt.maxPacket
	s.client.ReadTimeout = rt.netReadTimeout
	s.client.Budget = s.l.proxy.budget
	s.client.BudgetWait = packetMemoryWait
	if info.Capabilities&mysql.ClientCompress != 0 {
		s.client.EnableCompression()
	}
	s.logger.Info("client connected", "db", clip(s.state.DB), "tls", info.TLS, "compress", s.client.Compressed())
	s.loop(ctx)
}

// handshakeFailed counts and logs a failed connection phase. Every ERR the
// client got is counted by code; log lines are rate-limited per kind, since
// anyone can make them.
func (s *session) handshakeFailed(err error) {
	rt := s.rt
	var me *mysql.Error
	if errors.As(err, &me) {
		s.l.metrics.Error(rt.name, me.Code)
	}
	var ne net.Error
	kind, msg := "", ""
	switch {
	case errors.Is(err, mysql.ErrAuthFailed):
		s.l.metrics.ClientAuthFailed(rt.name)
		kind, msg = "auth", "client authentication failed"
	case errors.Is(err, mysql.ErrRejected):
		kind, msg = "rejected", "client connection rejected"
	case errors.As(err, &ne) && ne.Timeout():
		s.l.metrics.ClientTimedOut(rt.name, "connect")
		kind, msg = "timeout", "client did not log in within connect_timeout"
	case !s.l.hs.remove(s.id) && !s.admitted:
		// Closed to make room for a new connection (max_handshakes).
		return
	case isEOF(err):
		return
	default:
		kind, msg = "protocol", "client handshake failed"
	}
	if ok, n := s.l.logLimit.allow("handshake:" + kind); ok {
		s.logger.Info(msg, "error", clip(err.Error()), "suppressed_since_last", n)
	}
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}

// start sets the session up once the client's credentials are verified,
// before the handshake's OK: an unknown default schema is refused in the
// handshake, as MySQL does.
func (s *session) start(info *mysql.HandshakeInfo) error {
	if err := s.l.admit(s); err != nil {
		return err
	}
	s.user = info.User
	s.account, s.pendingAccount = s.pendingAccount, nil
	s.caps = info.Capabilities
	s.extCaps = info.ExtCaps
	s.foundRows = info.Capabilities&mysql.ClientFoundRows != 0
	s.salt = info.Salt
	s.attrs = info.Attrs
	s.logger = s.logger.With("user", s.user)
	db := s.rt.db
	if info.DB != "" {
		db = info.DB
	}
	s.clientAddr = s.client.TCPConn().RemoteAddr().String()
	if ch := s.l.rt.Load().chain; ch != nil && db != "" {
		if rej := ch.CheckSchema(s.user, s.clientAddr, db); rej != nil {
			return rej.Err
		}
	}
	s.state = backend.NewSessionState(db)
	s.state.MultiStatements = info.Capabilities&mysql.ClientMultiStatements != 0
	s.applyCharset()
	if info.DB == "" || info.DB == s.rt.db {
		return nil
	}
	// Check that the requested schema exists: acquire syncs the backend
	// connection to it and returns the server's 1049 if it does not.
	if err := s.acquire(); err != nil {
		return toMySQLError(err)
	}
	s.release()
	return nil
}

func (s *session) loop(ctx context.Context) {
	idle, idleTx := s.rt.idleTimeout, s.rt.idleTxTimeout
	for {
		if ctx.Err() != nil {
			return
		}
		s.client.ResetSeq()
		if s.pins == 0 {
			// Between commands with nothing pinned: shutdown may end us.
			s.idle.Store(true)
			if s.l.proxy.draining.Load() {
				return
			}
		}
		// Waiting for a command: wait_timeout, or the shorter
		// idle_transaction_timeout while a transaction holds a backend
		// connection other clients may need.
		timeout, kind := idle, "idle"
		if s.pins&pinTransaction != 0 && idleTx > 0 && (timeout == 0 || idleTx < timeout) {
			timeout, kind = idleTx, "idle_in_transaction"
		}
		s.armReadDeadline(timeout)
		p, err := s.client.ReadPacket()
		s.idle.Store(false)
		if err != nil {
			if errors.Is(err, mysql.ErrNoPacketMemory) {
				// The packet was read and dropped: the session goes on.
				s.l.metrics.PacketMemoryRefused(s.rt.name)
				if ok, n := s.l.logLimit.allow("packet_memory"); ok {
					s.logger.Warn("client packet dropped: max_packet_memory in use by other clients", "error", err,
						"suppressed_since_last", n)
				}
				if s.sendError(mysql.NewError(mysql.ErrCodeOutOfMemory, "HY001",
					"Out of memory; the proxy's packet memory (max_packet_memory) is in use by other clients, try again")) != nil {
					return
				}
				continue
			}
			if s.l.proxy.draining.Load() {
				return
			}
			s.readFailed(err, timeout, kind)
			return
		}
		if len(p) == 0 {
			s.sendError(mysql.NewError(mysql.ErrCodeNetReadError, "08S01", "Got an empty packet"))
			continue
		}
		if p[0] == mysql.ComQuit {
			return
		}
		err = s.dispatch(p)
		// A buffer grown for a large packet goes back now, not at the end
		// of the session.
		s.client.ShrinkBuffers()
		if err != nil {
			if !isEOF(err) && !errors.Is(err, errClientWrite) {
				s.logger.Info("session ended", "error", err)
			}
			return
		}
		if s.killed.Load() {
			return
		}
	}
}

// armReadDeadline makes the client socket's read deadline now+timeout
// (none for 0), moving the armed one only when it is earlier than that by
// more than 1% of timeout or later than that: a busy session re-arms its
// idle deadline rarely rather than twice per command. The deadline stays
// armed while the command runs; reads from the client then (LOAD DATA
// LOCAL) are bounded by it too.
func (s *session) armReadDeadline(timeout time.Duration) {
	armed := s.client.ReadDeadline()
	if timeout <= 0 {
		if !armed.IsZero() {
			_ = s.client.SetReadDeadline(time.Time{})
		}
		return
	}
	want := time.Now().Add(timeout)
	if armed.IsZero() || armed.After(want) || want.Sub(armed) > timeout/100 {
		_ = s.client.SetReadDeadline(want)
	}
}

// readFailed ends a session whose command read failed: a protocol error
// gets the ERR MariaDB sends before closing (1153 packet too large, 1156
// out of order, 1159 a packet stalled past net_read_timeout); a timeout
// waiting for a command closes silently, as MariaDB's wait_timeout does,
// and one inside a transaction rolls it back (the pinned backend
// connection is reset when the session closes).
func (s *session) readFailed(err error, timeout time.Duration, kind string) {
	if me := mysql.ProtocolError(err); me != nil {
		if errors.Is(err, mysql.ErrPacketSequence) {
			s.client.SetSeq(0) // as MariaDB answers
		}
		_ = s.sendError(me)
		if errors.Is(err, mysql.ErrReadTimeout) {
			s.l.metrics.ClientTimedOut(s.rt.name, "net_read")
		}
		if ok, n := s.l.logLimit.allow("protocol"); ok {
			s.logger.Info("closing client connection", "error", err, "sent", me.Code, "suppressed_since_last", n)
		}
		return
	}
	var ne net.Error
	switch {
	case isEOF(err):
	case errors.As(err, &ne) && ne.Timeout():
		s.l.metrics.ClientTimedOut(s.rt.name, kind)
		if kind == "idle_in_transaction" {
			s.logger.Warn("closing client connection idle inside a transaction; the transaction is rolled back",
				"idle_transaction_timeout", timeout)
		} else {
			s.logger.Info("closing idle client connection", "idle_timeout", timeout)
		}
	default:
		s.logger.Info("client read failed", "error", err)
	}
}

// dispatch handles one command; an error ends the session.
func (s *session) dispatch(p []byte) error {
	cmd := p[0]
	if s.lost != 0 {
		return s.endLostSession(nil)
	}
	switch cmd {
	case mysql.ComPing:
		return s.writeOK(0)
	case mysql.ComQuery:
		return s.handleQuery(p)
	case mysql.ComInitDB:
		return s.handleInitDB(p)
	case mysql.ComFieldList:
		if rt := s.l.rt.Load(); rt.shard != nil {
			return s.fieldListSharded(rt, p)
		}
		return s.forward(p, cmd, (*session).relayFieldList)
	case mysql.ComStatistics:
		return s.forward(p, cmd, (*session).relaySimple)
	case mysql.ComStmtPrepare:
		return s.handlePrepare(p)
	case mysql.ComStmtExecute, mysql.ComStmtBulkExecute:
		return s.handleExecute(p)
	case mysql.ComStmtFetch:
		return s.handleStmt(p, (*session).relayFetch)
	case mysql.ComStmtReset:
		return s.handleStmt(p, (*session).relaySimple)
	case mysql.ComStmtSendLongData:
		return s.handleStmt(p, nil)
	case mysql.ComStmtClose:
		return s.handleStmtClose(p)
	case mysql.ComResetConnection:
		s.resetSession(s.rt.db)
		return s.writeOK(0)
	case mysql.ComChangeUser:
		return s.handleChangeUser(p)
	case mysql.ComSetOption:
		return s.handleSetOption(p)
	case mysql.ComRefresh, mysql.ComDebug:
		return s.handleAdminCommand(p)
	case mysql.ComProcessKill:
		if len(p) < 5 {
			return s.sendError(mysql.NewError(mysql.ErrCodeUnknownCom, "08S01", "Malformed COM_PROCESS_KILL"))
		}
		id := uint32(p[1]) | uint32(p[2])<<8 | uint32(p[3])<<16 | uint32(p[4])<<24
		return s.kill(id, false)
	default:
		return s.sendError(mysql.NewError(mysql.ErrCodeUnknownCom, "08S01",
			"command %s not supported by pisa-proxy", mysql.CommandName(cmd)))
	}
}

// writeOK sends a locally generated OK.
func (s *session) writeOK(affected uint64) error {
	status := s.status
	s.scratch = mysql.AppendOK(s.scratch[:0], mysql.OKHeader, &mysql.OK{AffectedRows: affected, Status: status}, s.caps)
	if err := s.client.WritePacketFlush(s.scratch); err != nil {
		return fmt.Errorf("%w: %w", errClientWrite, err)
	}
	return nil
}

// sendError sends err to the client as an ERR packet; a non-MySQL error
// becomes ERR 2002 (no healthy backend) or 1105.
func (s *session) sendError(err error) error {
	me := toMySQLError(err)
	s.errSent = true
	s.l.metrics.Error(s.rt.name, me.Code)
	s.scratch = mysql.AppendErr(s.scratch[:0], me)
	if werr := s.client.WritePacketFlush(s.scratch); werr != nil {
		return fmt.Errorf("%w: %w", errClientWrite, werr)
	}
	return nil
}

func toMySQLError(err error) *mysql.Error {
	if errors.Is(err, errNoBackend) || errors.Is(err, backend.ErrConnect) {
		// Whatever the backend said (1045 naming the backend account,
		// 1040...) stays in the proxy's log: the client learns that no
		// backend could serve it.
		return mysql.ErrNoHealthyBackend()
	}
	var me *mysql.Error
	if errors.As(err, &me) {
		return me
	}
	switch {
	case errors.Is(err, backend.ErrPoolTimeout):
		return mysql.NewError(mysql.ErrCodeConnectionError, "HY000", "%s", err.Error())
	case errors.Is(err, errNoBackend), errors.Is(err, backend.ErrConnect), errors.Is(err, backend.ErrPoolClosed):
		return mysql.ErrNoHealthyBackend()
	}
	var be *backendReadError
	if errors.As(err, &be) {
		return mysql.NewError(mysql.ErrCodeServerLost, "HY000", "Lost connection to backend server during query")
	}
	return mysql.NewError(mysql.ErrCodeUnknown, "HY000", "%s", err.Error())
}

var errNoBackend = errors.New("no healthy backend")

// acquire makes s.be a backend connection synced to the session state.
func (s *session) acquire() error {
	if s.be != nil {
		s.forcePool = nil
		return nil
	}
	defer func() { s.forcePool = nil }()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		// The listener's current runtime, not s.rt: a reload may have
		// closed the pools of the runtime the session started with.
		rt := s.l.rt.Load()
		if s.decision != nil {
			rt = s.decRT
		}
		var c *backend.Conn
		var err error
		if s.forcePool != nil {
			c, err = getConn(s.forcePool, backend.Variant{FoundRows: s.foundRows, ClientAttrs: s.attrs, Account: s.account})
		} else {
			c, err = rt.pick(s.decision, backend.Variant{FoundRows: s.foundRows, ClientAttrs: s.attrs, Account: s.account})
		}
		if err != nil {
			lastErr = err
			if errors.Is(err, backend.ErrPoolTimeout) || errors.Is(err, errNoBackend) {
				return err
			}
			continue
		}
		if err := s.resolvePendingCharset(c); err != nil {
			c.Pool.Put(c)
			return err
		}
		if err := c.Sync(s.state); err != nil {
			var me *mysql.Error
			if errors.As(err, &me) {
				// The server refused our state (e.g. unknown db): report it.
				c.Pool.Put(c)
				return me
			}
			c.MarkBroken()
			c.Pool.Put(c)
			lastErr = err
			continue
		}
		if s.causalPending && s.decision != nil && !s.waitCaughtUp(rt, c) {
			// The replica has not applied the session's last write in
			// time (or failed): read from the writer.
			s.causalPending = false
			s.decBuf = s.decBuf.ToWriter()
			s.decision = &s.decBuf
			continue
		}
		s.causalPending = false
		if s.pendingBegin != "" {
			if err := s.beginOn(c); err != nil {
				return err
			}
		}
		s.be = c
		s.decision = nil
		return nil
	}
	s.decision = nil
	if lastErr == nil {
		lastErr = errNoBackend
	}
	return lastErr
}

// waitCaughtUp runs MASTER_GTID_WAIT for the session's last GTID on c (a
// replica connection) when needed. On false, c went back to the pool.
func (s *session) waitCaughtUp(rt *runtime, c *backend.Conn) bool {
	idx := -1
	for i, pl := range rt.pools {
		if pl == c.Pool {
			idx = i
			break
		}
	}
	if idx < 0 || !s.causal.NeedsWait(idx) {
		return true
	}
	ok, err := route.WaitGTIDPackets(c, c.Info.Capabilities, s.causal.WaitQuery(), nil)
	if err != nil {
		var me *mysql.Error
		if !errors.As(err, &me) {
			c.MarkBroken()
		}
		c.Pool.Put(c)
		return false
	}
	if !ok {
		c.Pool.Put(c)
		return false
	}
	s.causal.CaughtUp(idx)
	return true
}

// release returns the backend connection unless the session is pinned.
func (s *session) release() {
	if s.be == nil || s.pins != 0 {
		return
	}
	c := s.be
	s.be = nil
	c.Pool.Put(c)
}

// dropBackend discards the current backend connection after a failure.
func (s *session) dropBackend(broken bool) {
	if s.be == nil {
		return
	}
	c := s.be
	s.be = nil
	if broken {
		c.MarkBroken()
	} else {
		c.MarkDirty()
	}
	c.Pool.Put(c)
	if s.pins == 0 {
		return
	}
	if lost := s.pins &^ pinPrepared; lost != 0 {
		s.lost |= lost
		s.stmts = nil
	} else {
		// Only prepared statements lived there: prepare them again on
		// the next connection when they are used.
		for id, st := range s.stmts {
			st.stale = true
			st.longDataLost = st.longDataLost || st.longData
			st.longData = false
			s.stmts[id] = st
		}
	}
	s.pins = 0
}

// errSessionLost ends a session whose backend state was lost.
var errSessionLost = errors.New("backend connection lost with session state that cannot be restored")

// endLostSession tells the client that its session's backend state (named
// by s.lost) is gone and ends the session: the caller returns the error,
// which closes the client connection.
func (s *session) endLostSession(cause error) error {
	var what []string
	for _, reason := range []uint8{pinTransaction, pinLock, pinSessionState} {
		if s.lost&reason != 0 {
			what = append(what, pinNames[reason])
		}
	}
	msg := "Lost connection to backend server; the session's " + strings.Join(what, ", ") +
		" state was lost with it and the connection is closed"
	s.logger.Warn("closing client session: its backend connection was lost", "lost", what, "error", cause)
	s.l.metrics.Error(s.rt.name, mysql.ErrCodeServerLost)
	_ = s.sendError(mysql.NewError(mysql.ErrCodeServerLost, "HY000", "%s", msg))
	return errSessionLost
}

func (s *session) pin(reason uint8) {
	if s.pins&reason == 0 {
		s.pins |= reason
		s.l.metrics.BackendPinned(s.rt.name, pinNames[reason])
	}
}

// afterCommand updates pins from what the server said and releases the
// connection when nothing pins it.
func (s *session) afterCommand(r *result) {
	if r.status&mysql.StatusInTrans != 0 {
		s.pin(pinTransaction)
	} else {
		s.pins &^= pinTransaction
	}
	if r.stateChanged {
		s.pin(pinSessionState)
	}
	if s.pendingPins != 0 {
		for _, reason := range []uint8{pinSessionState, pinLock} {
			if s.pendingPins&reason != 0 {
				s.pin(reason)
			}
		}
		s.pendingPins = 0
	}
	s.release()
}

type relayFunc func(*session) (result, error)

// forward sends a command to a backend and relays the response with fn.
func (s *session) forward(p []byte, cmd byte, fn relayFunc) error {
	_, err := s.exec(p, cmd, fn, false)
	return err
}

// exec runs one command on a backend: acquire, send, relay, account. It
// returns a session-fatal error only when the client connection failed.
// retryable says the command may run again on another backend when the
// first attempt failed before anything reached the client.
func (s *session) exec(p []byte, cmd byte, fn relayFunc, retryable bool) (result, error) {
	dec, force := s.decision, s.forcePool
	for attempt := 0; ; attempt++ {
		s.decision, s.forcePool = dec, force // a retry is routed like the first attempt
		wasPinned := s.be != nil
		if err := s.acquire(); err != nil {
			return result{}, s.sendError(err)
		}
		c := s.be
		cm := s.l.metrics.Command(s.rt.name, mysql.CommandName(cmd), c.Pool.Endpoint().Addr)
		start := cm.Begin()
		s.active.Store(c)
		c.ResetSeq()
		err := c.WritePacket(p)
		if err == nil {
			err = c.Flush()
		}
		var r result
		if err != nil {
			err = &backendReadError{err}
		} else if fn != nil {
			s.startWatch(c)
			r, err = fn(s)
			s.stopWatch()
		}
		s.active.Store(nil)
		cm.End(start)
		s.lastBackend = c.Pool.Endpoint().Addr
		if b := s.l.rt.Load().breaker; b != nil {
			var berr error
			switch {
			case err != nil && !errors.Is(err, errClientWrite):
				berr = err
			case r.err != nil:
				berr = r.err
			}
			b.Report(c.Pool.Endpoint().Name, berr, time.Since(start))
		}
		if err == nil {
			err = s.client.Flush()
			if err != nil {
				err = fmt.Errorf("%w: %w", errClientWrite, err)
			}
		}
		if err == nil {
			if r.err != nil {
				s.l.metrics.Error(s.rt.name, r.err.Code)
				if !r.sent {
					// The failed statement was the first: nothing ran. (An
					// error after earlier results of a multi-statement text
					// leaves what they did.)
					s.pendingPins = 0
				}
			}
			s.afterCommand(&r)
			return r, nil
		}
		s.pendingPins = 0
		if errors.Is(err, errClientWrite) {
			// The client is gone or stuck: stop the backend work.
			s.killActive(c)
			s.dropBackend(true)
			return r, err
		}
		// The backend failed.
		s.logger.Warn("backend failed during command", "command", mysql.CommandName(cmd),
			"backend", c.Pool.Endpoint().Addr, "error", err)
		s.dropBackend(true)
		if r.sent {
			// Part of a response went out: the client cannot resync.
			return r, err
		}
		if s.lost != 0 {
			return r, s.endLostSession(err)
		}
		if !wasPinned && attempt == 0 && (retryable || fn == nil) {
			continue
		}
		return r, s.sendError(err)
	}
}

// killActive kills the query running on c (used when the client vanished).
func (s *session) killActive(c *backend.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Pool.Kill(ctx, c.Info.ConnectionID, true); err != nil {
		s.logger.Debug("kill backend query", "error", err)
	}
}

func (s *session) handleInitDB(p []byte) error {
	db := string(p[1:])
	if ch := s.l.rt.Load().chain; ch != nil {
		if rej := ch.CheckSchema(s.user, s.clientAddr, db); rej != nil {
			return s.sendError(rej.Err)
		}
	}
	r, err := s.exec(p, mysql.ComInitDB, (*session).relaySimple, true)
	if err == nil && r.err == nil {
		s.state.SetDB(db)
	}
	return err
}

func (s *session) handleQuery(p []byte) error {
	if q := p[1:]; indexFold(q, "KILL") >= 0 && (isKill(q) || s.state.MultiStatements) {
		if handled, err := s.handleKillText(p); handled {
			return err
		}
	}
	return s.runQuery(p)
}

// runQuery runs a COM_QUERY.
func (s *session) runQuery(p []byte) error {
	q := p[1:]
	return s.governed(mysql.ComQuery, q, func(facts *sqlparse.Facts, maxRows uint64) (result, error) {
		if indexFold(q, "CONNECTION_ID()") >= 0 {
			p = s.rewriteConnectionID(p)
		}
		if maxRows > 0 && facts != nil && facts.Kind == sqlparse.KindSelect && !facts.Multi {
			// Access control's row limit, with MariaDB's per-statement
			// variable syntax.
			p = append(append([]byte{mysql.ComQuery}, "SET STATEMENT sql_select_limit="+strconv.FormatUint(maxRows, 10)+" FOR "...), p[1:]...)
		}
		// With the parser's facts at hand, the text scans are not needed.
		locks, userVars, readOnly := false, false, false
		if facts != nil && facts.ParseErr == nil {
			locks, userVars = facts.Locks, facts.UserVars
			readOnly = facts.ReadOnly && !facts.LockingRead
		} else {
			locks, userVars, readOnly = hasLock(q), hasUserVarAssign(q), isReadOnly(q)
		}
		if locks {
			s.pendingPins |= pinLock
		}
		trackers := mayChangeTrackers(q)
		if userVars || trackers || (len(q) > 0 && sqlparse.UntrackedState(unsafe.String(&q[0], len(q)))) {
			// User variables, or session state the server's tracker does
			// not report: keep this connection, reset it before reuse.
			s.pendingPins |= pinSessionState
		}
		if rt := s.l.rt.Load(); rt.shard != nil {
			if handled, r, err := s.shardQuery(rt, q, facts, readOnly, maxRows); handled {
				if s.be == nil {
					s.pendingPins = 0 // several shards ran it: nothing to pin
				}
				return r, err
			}
		}
		if err := s.routeFor(q, facts); err != nil {
			return result{}, s.sendError(err)
		}
		r, err := s.exec(p, mysql.ComQuery, func(s *session) (result, error) { return s.relayResults(false) }, readOnly)
		if err == nil && r.err == nil {
			// MariaDB does not report collation_connection after
			// SET NAMES x COLLATE y; record it so it is replayed.
			if coll := setNamesCollation(q); coll != "" {
				s.state.SetVar("collation_connection", coll)
			}
		}
		if err == nil && trackers {
			s.refreshTracker()
		}
		if s.l.logger.Enabled(context.Background(), slog.LevelDebug) {
			s.logger.Debug("statement", "sql", audit.Redact(truncate(q, 256)), "rows", r.rows, "affected", r.affected, "pins", s.pins)
		}
		return r, err
	})
}

// governed runs a statement through the listener's governance chain
// (access control, circuit break, concurrency control, audit), then run.
// Without governance configured it only runs it. sql may alias the packet.
func (s *session) governed(cmd byte, sql []byte, run func(facts *sqlparse.Facts, maxRows uint64) (result, error)) error {
	rt := s.l.rt.Load()
	if rt.chain == nil {
		var facts *sqlparse.Facts
		// A sharding listener's planner parses statements itself: the facts
		// are only needed for read/write splitting.
		if rt.rw != nil && len(sql) > 0 {
			facts = rt.parser.Parse(unsafe.String(&sql[0], len(sql)))
		}
		_, err := run(facts, 0)
		return err
	}
	text := string(sql) // the audit log may keep it
	facts := rt.parser.Parse(text)
	s.req = govern.Request{User: s.user, Schema: s.state.DB, SQL: text, Facts: facts, Command: cmd, ClientAddr: s.clientAddr}
	v, rej := rt.chain.Check(context.Background(), &s.req)
	if rej != nil {
		return s.sendError(rej.Err)
	}
	start := time.Now()
	s.lastBackend, s.lastRoute = "", ""
	r, err := run(facts, v.MaxRows)
	out := govern.Outcome{Start: start, Duration: time.Since(start), Rows: uint64(r.rows) + r.affected,
		Backend: s.lastBackend, Route: s.lastRoute}
	switch {
	case r.err != nil:
		out.Err = r.err
	case err != nil:
		out.Err = err
	}
	rt.chain.Finish(&s.req, &v, &out)
	v.Release()
	return err
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// routeFor decides, for read/write splitting, where the statement sql runs
// if the session is not pinned. sql may alias the packet buffer. An error
// refuses the statement (a listener without a writer).
func (s *session) routeFor(sql []byte, f *sqlparse.Facts) error {
	s.decision = nil
	rt := s.l.rt.Load()
	if rt.rw != nil && rt.rw.NoWriter() {
		if f == nil && len(sql) > 0 {
			f = rt.parser.Parse(unsafe.String(&sql[0], len(sql)))
		}
		if err := refuseWithoutWriter(rt, f); err != nil {
			return err
		}
	}
	if s.be != nil {
		// Pinned (transaction...): it stays on its connection, and its
		// OKs count as writes for read-your-writes.
		s.curWrite = true
		return nil
	}
	if rt.rw == nil {
		return nil
	}
	var text string
	if len(sql) > 0 {
		text = unsafe.String(&sql[0], len(sql))
	}
	if f == nil {
		f = rt.parser.Parse(text)
	}
	inTx := s.pins&pinTransaction != 0 || s.state.Vars["autocommit"] == "OFF"
	s.decBuf = rt.rw.Route(text, f, inTx)
	if f != nil && (f.Kind == sqlparse.KindSet || f.UserVars || f.TempTable || f.Locks) && !rt.rw.NoWriter() {
		// State that pins the session is created on the writer only, so
		// that a pinned session never sends a write to a replica.
		s.decBuf = s.decBuf.ToWriter()
	}
	s.curWrite = f == nil || !f.ReadOnly
	s.causalPending = false
	if rt.causal.Enabled() {
		if s.causal == nil {
			s.causal = route.NewCausalTracker(rt.causal)
		}
		if s.decBuf.Target == route.TargetRead {
			switch s.causal.BeforeRead(time.Now()) {
			case route.CausalWriter:
				s.decBuf = s.decBuf.ToWriter()
			case route.CausalWait:
				s.causalPending = true
			}
		}
	}
	s.decision = &s.decBuf
	s.decRT = rt
	s.lastRoute = s.decBuf.Target.String()
	s.l.metrics.RouteDecision(rt.name, s.lastRoute, s.decBuf.Rule)
	return nil
}

// routeToWriter sends the next command to the writer when read/write
// splitting is on.
func (s *session) routeToWriter() {
	s.decision = nil
	if s.be != nil {
		return
	}
	rt := s.l.rt.Load()
	if rt.rw == nil {
		return
	}
	s.decBuf = rt.rw.Writer()
	if rt.rw.NoWriter() {
		s.decBuf = rt.rw.Reader() // writes are refused on such a listener
	}
	s.decision = &s.decBuf
	s.decRT = rt
}

// handlePrepare prepares on the session's (now pinned) connection.
func (s *session) handlePrepare(p []byte) error {
	if s.stmts == nil {
		s.stmts = make(map[uint32]stmt)
	}
	return s.governed(mysql.ComStmtPrepare, p[1:], func(facts *sqlparse.Facts, _ uint64) (result, error) {
		s.nextStmtID++
		if s.nextStmtID == 0 || s.nextStmtID == 0xffffffff {
			s.nextStmtID = 1
		}
		id := s.nextStmtID
		if err := refuseWithoutWriter(s.l.rt.Load(), facts); err != nil {
			return result{}, s.sendError(err)
		}
		// Prepared statements pin the session: prepare on the writer (see
		// routeFor), so that later writes never reach a replica.
		s.routeToWriter()
		sqlText := string(p[1:]) // governs each execution; prepared again after a loss
		if rt := s.l.rt.Load(); rt.shard != nil {
			prep, err := rt.shard.Prepare(sqlText, s.state.DB)
			if err != nil {
				return result{}, s.refuseShard(err)
			}
			if !prep.Unsharded() {
				return s.prepareSharded(rt, id, sqlText, prep, facts != nil && facts.ReadOnly && !facts.LockingRead)
			}
		}
		if indexFold(p[1:], connIDCall) >= 0 {
			p = s.rewriteConnectionID(p)
		}
		return s.exec(p, mysql.ComStmtPrepare, func(s *session) (result, error) {
			r, bid, params, err := s.relayPrepare(id)
			if err == nil && r.err == nil {
				// Pin before afterCommand can release the connection.
				s.pin(pinPrepared)
				if sqlparse.UntrackedState(sqlText) {
					// Its executions may change state the server does not
					// report: keep the connection after the statement goes.
					s.pin(pinSessionState)
				}
				s.stmts[id] = stmt{backendID: bid, sql: sqlText, params: params, readOnly: facts != nil && facts.ReadOnly}
			}
			return r, err
		}, false)
	})
}

// stmtID rewrites the statement id in p (bytes 1..4) to the backend's.
// 0xffffffff (MariaDB "last prepared statement") passes through.
func (s *session) mapStmt(p []byte) (ok bool) {
	if len(p) < 5 {
		return false
	}
	id := uint32(p[1]) | uint32(p[2])<<8 | uint32(p[3])<<16 | uint32(p[4])<<24
	if id == 0xffffffff {
		return s.be != nil && s.pins&pinPrepared != 0
	}
	st, found := s.stmts[id]
	if !found || st.stale || s.be == nil {
		return false
	}
	b := st.backendID
	p[1], p[2], p[3], p[4] = byte(b), byte(b>>8), byte(b>>16), byte(b>>24)
	return true
}

func (s *session) unknownStmt(p []byte) error {
	id := uint32(0)
	if len(p) >= 5 {
		id = uint32(p[1]) | uint32(p[2])<<8 | uint32(p[3])<<16 | uint32(p[4])<<24
	}
	return s.sendError(mysql.NewError(mysql.ErrCodeUnknownStmtHandler, "HY000",
		"Unknown prepared statement handler (%d) given to %s", id, mysql.CommandName(p[0])))
}

// reprepare prepares statement id again on the session's connection after
// the one it lived on was lost. It reports whether the statement is usable;
// on false the client got an error, and err is set when the session ends.
func (s *session) reprepare(id uint32) (ok bool, err error) {
	st := s.stmts[id]
	if st.longDataLost {
		st.longDataLost = false
		s.stmts[id] = st
		return false, s.sendError(mysql.NewError(mysql.ErrCodeServerLost, "HY000",
			"Lost connection to backend server; the parameter data sent with COM_STMT_SEND_LONG_DATA was lost with it"))
	}
	if perr := s.prepareAgain(id); perr != nil {
		if s.lost != 0 {
			return false, s.endLostSession(perr)
		}
		return false, s.sendError(perr)
	}
	return true, nil
}

// prepareAgain is reprepare without answering the client (for commands
// that have no response).
func (s *session) prepareAgain(id uint32) error {
	st := s.stmts[id]
	s.routeToWriter()
	if err := s.acquire(); err != nil {
		return err
	}
	text := st.sql
	if strings.Contains(strings.ToUpper(text), connIDCall) {
		text = string(s.rewriteConnectionID(append([]byte{mysql.ComStmtPrepare}, text...))[1:])
	}
	bid, params, err := s.be.Prepare(text)
	if err != nil {
		var me *mysql.Error
		if errors.As(err, &me) {
			return me
		}
		s.dropBackend(true)
		return &backendReadError{err}
	}
	s.l.metrics.Reprepared(s.rt.name)
	s.pin(pinPrepared)
	if params != st.params {
		// The statement means something else now (the schema changed).
		s.be.CloseStmt(bid)
		return mysql.NewError(1615, "HY000", "Prepared statement needs to be re-prepared")
	}
	st.backendID, st.stale = bid, false
	s.stmts[id] = st
	return nil
}

// stmtOf returns the client statement id of a statement command.
func stmtOf(p []byte) (uint32, bool) {
	if len(p) < 5 {
		return 0, false
	}
	return uint32(p[1]) | uint32(p[2])<<8 | uint32(p[3])<<16 | uint32(p[4])<<24, true
}

func (s *session) handleExecute(p []byte) error {
	var sqlText []byte
	s.curWrite = true
	if id, ok := stmtOf(p); ok {
		if st, found := s.stmts[id]; found {
			if st.sh != nil {
				rt := s.l.rt.Load()
				if rt.shard == nil || rt.chain == nil {
					_, err := s.executeSharded(rt, p, &st)
					return err
				}
				return s.governed(p[0], []byte(st.sql), func(*sqlparse.Facts, uint64) (result, error) {
					return s.executeSharded(rt, p, &st)
				})
			}
			if st.stale {
				if ok, err := s.reprepare(id); !ok {
					return err
				}
				st = s.stmts[id]
			}
			st.longData = false
			s.stmts[id] = st
			sqlText = []byte(st.sql)
			s.curWrite = !st.readOnly
		}
	}
	if !s.mapStmt(p) {
		return s.unknownStmt(p)
	}
	if len(sqlText) == 0 || s.l.rt.Load().chain == nil {
		_, err := s.exec(p, p[0], func(s *session) (result, error) { return s.relayResults(true) }, false)
		return err
	}
	return s.governed(p[0], sqlText, func(*sqlparse.Facts, uint64) (result, error) {
		return s.exec(p, p[0], func(s *session) (result, error) { return s.relayResults(true) }, false)
	})
}

// handleStmt forwards a statement command (fn nil: no response expected).
func (s *session) handleStmt(p []byte, fn relayFunc) error {
	if id, ok := stmtOf(p); ok {
		if st, found := s.stmts[id]; found {
			if st.sh != nil {
				switch p[0] {
				case mysql.ComStmtSendLongData:
					st.sh.longData = true
					return nil
				case mysql.ComStmtReset:
					st.sh.longData = false
					return s.writeOK(0)
				default:
					return s.sendError(mysql.NewError(1421, "HY000", "The statement (%d) has no open cursor.", id))
				}
			}
			switch p[0] {
			case mysql.ComStmtSendLongData:
				if st.stale {
					// No response: a failure shows at the execute (the
					// data is marked lost) or at the next command.
					_ = s.prepareAgain(id)
					st = s.stmts[id]
				}
				st.longData = !st.stale
				st.longDataLost = st.longDataLost || st.stale
			case mysql.ComStmtReset:
				st.longData, st.longDataLost = false, false
				if st.stale {
					s.stmts[id] = st
					return s.writeOK(0) // nothing to reset on a lost connection
				}
			case mysql.ComStmtFetch:
				if st.stale {
					return s.sendError(mysql.NewError(mysql.ErrCodeServerLost, "HY000",
						"Lost connection to backend server; the statement's open cursor was lost with it"))
				}
			}
			s.stmts[id] = st
		}
	}
	if !s.mapStmt(p) {
		if fn == nil {
			return nil // no response for SEND_LONG_DATA
		}
		return s.unknownStmt(p)
	}
	if fn == nil {
		c := s.be
		c.ResetSeq()
		if err := c.WritePacketFlush(p); err != nil {
			s.dropBackend(true)
		}
		return nil
	}
	_, err := s.exec(p, p[0], fn, false)
	return err
}

func (s *session) handleStmtClose(p []byte) error {
	if len(p) < 5 {
		return nil
	}
	id := uint32(p[1]) | uint32(p[2])<<8 | uint32(p[3])<<16 | uint32(p[4])<<24
	st, ok := s.stmts[id]
	if !ok {
		return nil // COM_STMT_CLOSE has no response
	}
	delete(s.stmts, id)
	if st.stale || s.be == nil {
		return nil
	}
	b := st.backendID
	p[1], p[2], p[3], p[4] = byte(b), byte(b>>8), byte(b>>16), byte(b>>24)
	c := s.be
	c.ResetSeq()
	if err := c.WritePacketFlush(p); err != nil {
		s.dropBackend(true)
		return nil
	}
	if len(s.stmts) == 0 {
		s.pins &^= pinPrepared
		// The server may still hold the "last statement" for execute
		// direct, and user state; nothing else pins, so release.
		s.release()
	}
	return nil
}

func (s *session) handleSetOption(p []byte) error {
	if len(p) < 3 {
		return s.sendError(mysql.NewError(mysql.ErrCodeUnknownCom, "08S01", "Malformed COM_SET_OPTION"))
	}
	switch uint16(p[1]) | uint16(p[2])<<8 {
	case 0:
		s.state.MultiStatements = true
	case 1:
		s.state.MultiStatements = false
	default:
		return s.sendError(mysql.NewError(mysql.ErrCodeUnknownCom, "08S01", "Unknown COM_SET_OPTION value"))
	}
	s.state.Gen++
	if s.be != nil {
		// Apply now on the pinned connection.
		if err := s.be.Sync(s.state); err != nil {
			return s.sendError(err)
		}
	}
	if s.clientDeprecateEOF() {
		return s.writeOK(0)
	}
	s.scratch = mysql.AppendEOF(s.scratch[:0], 0, s.status)
	if err := s.client.WritePacketFlush(s.scratch); err != nil {
		return fmt.Errorf("%w: %w", errClientWrite, err)
	}
	return nil
}

// resetSession implements COM_RESET_CONNECTION (and the reset part of
// COM_CHANGE_USER): forget session state, statements and pins.
func (s *session) resetSession(db string) {
	if s.be != nil {
		c := s.be
		s.be = nil
		c.MarkDirty()
		c.Pool.Put(c)
	}
	s.pins = 0
	s.stmts = nil
	if s.causal != nil {
		s.causal.Reset()
	}
	multi := s.state.MultiStatements
	s.state.Reset(db)
	s.state.MultiStatements = multi
	// The server restores the handshake's character set, and the global
	// status flags and trackers.
	s.applyCharset()
	greetStatus, _ := s.rt.greeting()
	s.status = greetStatus & persistentStatus
	if d := s.rt.serverDefaults(false); d != nil {
		s.trackDefaults(d)
	}
}

func (s *session) handleChangeUser(p []byte) error {
	info, authData, err := parseChangeUser(p, s.caps)
	if err != nil {
		return s.sendError(mysql.NewError(mysql.ErrCodeHandshake, "08S01", "Bad COM_CHANGE_USER packet"))
	}
	info.Capabilities = s.caps
	info.Salt = s.salt
	users := s.rt.users
	cfg := &mysql.ServerConfig{
		Users:        func(u string) (string, bool) { p, ok := users[u]; return p, ok },
		VerifyNative: s.verifyNativeFunc(),
		RSAKey:       rsaKey,
		Sha2Cache:    &s.l.sha2Cache,
	}
	s.pendingAccount = nil
	info.TLS = s.client.NetConn() != s.client.TCPConn()
	if err := s.checkCollation(info.Collation); err != nil {
		// MariaDB checks the character set first and ends the session.
		_ = s.sendError(err)
		return errSessionLost
	}
	if err := mysql.Authenticate(s.client, cfg, info, s.rt.authPluginName(), authData); err != nil {
		s.l.metrics.ClientAuthFailed(s.rt.name)
		return err // ends the session, as MySQL does
	}
	db := info.DB
	if db == "" {
		db = s.rt.db
	}
	s.user = info.User
	s.account, s.pendingAccount = s.pendingAccount, nil
	s.resetSession(db)
	s.applyCharset()
	return nil
}

// close releases everything the session holds.
func (s *session) close() {
	if s.be != nil {
		c := s.be
		s.be = nil
		if s.pins != 0 {
			c.MarkDirty()
		}
		c.Pool.Put(c)
	}
	s.stopWatch()
	s.client.ShrinkBuffers() // gives packet memory back
	_ = s.client.Close()
}

// kill implements COM_PROCESS_KILL: KILL CONNECTION id.
func (s *session) kill(id uint32, queryOnly bool) error {
	if err := s.killConn(killStmt{id: uint64(id), query: queryOnly, hard: true}); err != nil {
		_ = s.sendError(err)
		if err.Code == 1927 {
			s.killed.Store(true)
		}
		return nil
	}
	return s.writeOK(0)
}

func parseChangeUser(p []byte, caps uint32) (*mysql.HandshakeInfo, []byte, error) {
	rest := p[1:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return nil, nil, mysql.ErrMalformed
	}
	info := &mysql.HandshakeInfo{User: mysql.TruncateUserName(string(rest[:i]))}
	rest = rest[i+1:]
	var auth []byte
	if caps&mysql.ClientSecureConnection != 0 {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return nil, nil, mysql.ErrMalformed
		}
		auth = bytes.Clone(rest[1 : 1+int(rest[0])])
		rest = rest[1+int(rest[0]):]
	} else {
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			return nil, nil, mysql.ErrMalformed
		}
		auth = bytes.Clone(rest[:j])
		rest = rest[j+1:]
	}
	j := bytes.IndexByte(rest, 0)
	if j < 0 {
		info.DB = string(rest)
		return info, auth, nil
	}
	info.DB = string(rest[:j])
	rest = rest[j+1:]
	if len(rest) >= 2 {
		info.Collation = rest[0]
		rest = rest[2:]
	}
	if caps&mysql.ClientPluginAuth != 0 && len(rest) > 0 {
		if k := bytes.IndexByte(rest, 0); k >= 0 {
			info.AuthPlugin = string(rest[:k])
		} else {
			info.AuthPlugin = string(rest)
		}
	}
	return info, auth, nil
}
