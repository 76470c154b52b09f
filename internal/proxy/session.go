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
	"sync/atomic"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
	"github.com/database-mesh/pisanix-go/internal/proxy/crypt"
	"github.com/database-mesh/pisanix-go/internal/proxy/route"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// Pin reasons: why a session keeps its backend connection between
// statements. Each is counted in pisa_proxy_backend_pins_total.
const (
	pinTransaction uint8 = 1 << iota
	pinSessionState
	pinCursor // a prepared statement's open cursor
	pinLock
	pinLongData // data sent with COM_STMT_SEND_LONG_DATA, until the execute
)

// pinPrepared is the statement state that can live on a connection: an
// open cursor, long data. Prepared statements themselves pin nothing.
const pinPrepared = pinCursor | pinLongData

var pinNames = map[uint8]string{
	pinTransaction:  "transaction",
	pinSessionState: "session_state",
	pinCursor:       "cursor",
	pinLock:         "lock",
	pinLongData:     "long_data",
}

// stmt is a client's prepared statement (see session_stmt.go).
type stmt struct {
	// sec is set for a statement on encrypted or masked tables: its
	// parameters are rebuilt at each execute (security claim).
	sec  *crypt.Stmt
	sql  string // the client's text (governance)
	text string // the text prepared on backends (CONNECTION_ID() rewritten)
	// key finds it in a backend connection's statement cache: text and
	// the state that changes what preparing it means (prepState); prep is
	// that state, for preparing it on another connection.
	key      string
	prep     *backend.SessionState
	params   uint16 // parameter count the client was told
	readOnly bool   // its facts say read-only (for read-your-writes)
	// pins are the pins its executions take (see execPins).
	pins uint8
	// types are the parameter types the client last bound.
	types []byte
	// cursor: an open cursor on s.be; longData: COM_STMT_SEND_LONG_DATA
	// went to s.be since the last execute or reset. bst is the backend
	// statement on s.be that holds them (owned while either is set).
	cursor, longData bool
	bst              *backend.Stmt
	// cursorLost, longDataLost: the connection holding them was lost; the
	// next fetch (execute) gets ERR 2013.
	cursorLost, longDataLost bool
	// last is the backend statement its last execute ran (on whichever
	// connection): when the session gets that connection again and it
	// still keeps the statement, no lookup by key is needed.
	last *backend.Stmt
	// sh is set for a statement on sharded tables: the proxy runs it, no
	// backend holds it for the client.
	sh *shardStmt
	// txKind is KindBegin, KindCommit or KindRollback for a plain
	// transaction statement prepared on a sharding listener (see
	// handleExecute), else KindOther.
	txKind sqlparse.Kind
	// ddl: its executes may change table definitions; they clear the
	// listener's prepare metadata cache (stmtmeta.go).
	ddl bool
	// metaKey is its key in that cache when its prepare response is (or
	// was) cached: an execute that cannot prepare it drops the entry.
	metaKey string
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
	// connectorC: the client library is MariaDB Connector/C (see
	// forConnectorC).
	connectorC bool

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
	// cmd is the command being run (see command): reset by dispatch for
	// each command, passed down by pointer.
	cmd command
	// pendingBegin holds a BEGIN a sharded listener has acknowledged but
	// not sent: it starts the transaction on the connection of the next
	// statement, whichever datanode that statement goes to.
	pendingBegin string
	shardScratch []byte
	// stx is the transaction with branches on several nodes of a sharding
	// listener (sharded_tx.go); nil outside one.
	stx *shardTx
	// lastGenID is the first key the session's last INSERT with generated
	// keys got (SELECT LAST_INSERT_ID() answers it); 0: none.
	lastGenID uint64

	// Read-your-writes: the session's tracker (nil until needed).
	causal *route.CausalTracker

	clientAddr string

	stmts      map[uint32]stmt
	nextStmtID uint32
	// lastPrepared is the statement MariaDB's id 0xffffffff names (the
	// last one prepared, 0: none); openCursors and pendingLong count the
	// statements holding a cursor or long data on s.be.
	lastPrepared             uint32
	openCursors, pendingLong int
	// stmtSnap is a copy of the session state at a prepare (at state
	// generation stmtSnapGen), shared by the statements prepared in it.
	stmtSnap    *backend.SessionState
	stmtSnapGen uint64
	stmtBuf     []byte
	// metaBuf holds the key of a prepare metadata cache lookup.
	metaBuf []byte

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
	// sec is the security claim's per-session state (security_relay.go).
	sec secState

	// txl records the open transaction for a replay (failover).
	txl txLog
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
	s.connectorC = isConnectorC(info.Attrs)
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
	if err := s.acquire(s.begin()); err != nil {
		if s.connectorC {
			return forConnectorC(toMySQLError(err)) // see sendError
		}
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
	err := s.dispatchCommand(p)
	if tx := s.stx; tx != nil && !s.cmd.pureRead && !changesNoData(p[0]) {
		// A command of the transaction (or the one that began it) that
		// may have written: COMMIT needs two phases when it reached
		// several nodes.
		tx.wrote = true
	}
	return err
}

// changesNoData reports commands that never change data (pureRead is for
// the statements of COM_QUERY and COM_STMT_EXECUTE).
func changesNoData(cmd byte) bool {
	switch cmd {
	case mysql.ComPing, mysql.ComInitDB, mysql.ComFieldList, mysql.ComStatistics, mysql.ComStmtPrepare,
		mysql.ComStmtClose, mysql.ComStmtReset, mysql.ComStmtFetch:
		return true
	}
	return false
}

func (s *session) dispatchCommand(p []byte) error {
	cmd := p[0]
	if s.lost != 0 {
		return s.endLostSession(nil)
	}
	c := s.begin()
	switch cmd {
	case mysql.ComPing:
		return s.writeOK(0)
	case mysql.ComQuery:
		return s.handleQuery(c, p)
	case mysql.ComInitDB:
		return s.handleInitDB(c, p)
	case mysql.ComFieldList:
		if c.rt.shard != nil {
			return s.fieldListSharded(c.rt, p)
		}
		return s.forward(p, cmd, (*session).relayFieldList)
	case mysql.ComStatistics:
		return s.forward(p, cmd, (*session).relaySimple)
	case mysql.ComStmtPrepare:
		return s.handlePrepare(c, p)
	case mysql.ComStmtExecute, mysql.ComStmtBulkExecute:
		return s.handleExecute(c, p)
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
	if s.connectorC {
		me = forConnectorC(me)
	}
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
	s.txClose()
	if s.be != nil {
		c := s.be
		s.be = nil
		c.MarkDirty()
		c.Pool.Put(c)
	}
	s.pins = 0
	s.stmts = nil
	s.lastPrepared, s.openCursors, s.pendingLong = 0, 0, 0
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
	s.txClose()
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
