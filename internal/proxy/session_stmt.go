package proxy

import (
	"bytes"
	"errors"
	"maps"
	"strconv"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
	"github.com/database-mesh/pisanix-go/internal/proxy/crypt"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// Prepared statements belong to the proxy, not to a backend connection. A
// client's COM_STMT_PREPARE is prepared on whatever connection the pool
// hands out and answered with the session's own statement id; the
// connection keeps the statement in its cache (backend.Conn's statement
// LRU, by a key made of the text and the session state that affects
// preparing it) and goes back to the pool. Each COM_STMT_EXECUTE runs on the
// connection the pool hands out then, which prepares the statement first
// when it does not have it yet (pisa_proxy_stmt_reprepares_total), also
// after a lost backend connection. A statement pins its connection only
// while server state lives there for it: an open cursor (until its last row
// is fetched, or it is reset, closed or executed again) or data sent with
// COM_STMT_SEND_LONG_DATA (until the execute, reset or close). A prepare
// of a text the listener prepared before is answered from its metadata
// cache without a backend (stmtmeta.go).

// prepStateVars are the session variables, besides the database, that
// change what preparing a text means (its parsing and literals).
var prepStateVars = [...]string{"sql_mode", "character_set_client", "character_set_connection", "collation_connection"}

// prepState returns the part of a statement's cache key that the session
// state gives: the database and prepStateVars.
func (s *session) prepState() string {
	n := len(s.state.DB) + len(prepStateVars)
	for _, v := range prepStateVars {
		n += len(s.state.Vars[v])
	}
	b := make([]byte, 0, n+1)
	b = append(b, s.state.DB...)
	for _, v := range prepStateVars {
		b = append(b, 0)
		b = append(b, s.state.Vars[v]...)
	}
	return string(append(b, 0))
}

// stateSnapshot returns a copy of the session state, shared by the
// statements prepared while it does not change: a connection prepares a
// statement in the state it was prepared in by the client.
func (s *session) stateSnapshot() *backend.SessionState {
	if s.stmtSnap == nil || s.stmtSnapGen != s.state.Gen || s.stmtSnap.DB != s.state.DB {
		s.stmtSnap = &backend.SessionState{DB: s.state.DB, Vars: maps.Clone(s.state.Vars),
			MultiStatements: s.state.MultiStatements, Gen: 1}
		s.stmtSnapGen = s.state.Gen
	}
	return s.stmtSnap
}

// handlePrepare prepares a client statement.
func (s *session) handlePrepare(c *command, p []byte) error {
	if s.stmts == nil {
		s.stmts = make(map[uint32]stmt)
	}
	if ok, err := s.check(c, mysql.ComStmtPrepare, p[1:]); !ok {
		return err
	}
	r, err := s.prepare(c, p)
	s.finish(c, &r, err)
	return err
}

// prepare runs a COM_STMT_PREPARE that governance let through.
func (s *session) prepare(c *command, p []byte) (result, error) {
	facts := c.facts
	s.nextStmtID++
	if s.nextStmtID == 0 || s.nextStmtID == 0xffffffff {
		s.nextStmtID = 1
	}
	id := s.nextStmtID
	s.lastPrepared = 0
	if err := refuseWithoutWriter(c.rt, facts); err != nil {
		return result{}, s.sendError(err)
	}
	// Statements run on the writer (see routeFor), so that writes never
	// reach a replica.
	s.routeToWriter(c)
	sqlText := string(p[1:]) // governs each execution
	if rt := c.rt; rt.shard != nil {
		shText := sqlText
		var shSec *crypt.Stmt
		if rt.sec != nil {
			// Security claim: the sharding planner plans the rewritten
			// text (cipher and assisted columns, more parameters).
			np, sec, err := s.secPrepare(rt, p)
			if err != nil {
				return result{}, s.sendError(err)
			}
			if sec != nil {
				shText, shSec = string(np[1:]), sec
			}
		}
		prep, err := rt.shard.Prepare(shText, s.state.DB)
		if err != nil {
			return result{}, s.refuseShard(err)
		}
		if !prep.Unsharded() {
			r, err := s.prepareSharded(rt, id, sqlText, prep, facts != nil && facts.ReadOnly && !facts.LockingRead, shSec)
			if _, ok := s.stmts[id]; ok {
				s.lastPrepared = id
			}
			return r, err
		}
	}
	var sec *crypt.Stmt
	if c.rt.sec != nil {
		var err error
		if p, sec, err = s.secPrepare(c.rt, p); err != nil { // security claim
			return result{}, s.sendError(err)
		}
	}
	connIDRewritten := false
	if indexFold(p[1:], connIDCall) >= 0 {
		// The rewritten text names this session: it is the key too.
		p = s.rewriteConnectionID(p)
		connIDRewritten = true
	}
	st := stmt{
		sec:      sec,
		sql:      sqlText,
		text:     string(p[1:]),
		readOnly: facts != nil && facts.ReadOnly,
		pins:     execPins(facts, p[1:]),
		ddl:      s.changesSchema(facts, p[1:], false),
	}
	if c.rt.shard != nil && len(p) <= 49 {
		st.txKind = txControl(p[1:])
	}
	st.key = s.prepState() + st.text
	// The listener's prepare metadata cache (stmtmeta.go): a hit answers
	// without a backend; a miss keeps the backend's answer for the next.
	var keep *stmtMeta
	var gen uint64
	rt := c.rt
	if s.metaCacheable(c, &st, connIDRewritten) {
		mk := s.metaKey(st.key)
		e, expired := rt.stmtMeta.get(mk)
		if expired {
			s.l.stmtMetaStats.evictions.Add(1)
		}
		if e != nil {
			return s.prepareFromMeta(id, st, e)
		}
		s.l.stmtMetaStats.misses.Add(1)
		keep = &stmtMeta{key: string(mk)}
		gen = rt.stmtMeta.generation()
	}
	return s.exec(c, p, mysql.ComStmtPrepare, func(s *session) (result, error) {
		var r result
		var bid uint32
		var params uint16
		var err error
		if sec != nil {
			r, bid, params, err = s.relayPrepareSecure(id, sec)
		} else {
			r, bid, params, err = s.relayPrepare(id, keep)
		}
		if err == nil && r.err == nil {
			bs, evicted := s.be.AddStmt(st.key, bid, params)
			if evicted {
				s.l.metrics.StmtEvicted(s.rt.name)
			}
			st.last = bs
			st.params = params
			st.prep = s.stateSnapshot()
			if keep != nil && len(keep.defs) == int(keep.params)+int(keep.cols) {
				st.metaKey = keep.key
				s.storeMeta(rt, keep, gen)
			}
			s.stmts[id] = st
			s.lastPrepared = id
		}
		return r, err
	}, true) // preparing changes nothing: a stale pooled connection is retried
}

// execPins returns the pins a prepared text's executions take, as the same
// text would in a COM_QUERY (runQuery): pinLock for locks, pinSessionState
// for user variables (a result set reports no state change), session
// trackers and state the server does not report.
func execPins(facts *sqlparse.Facts, q []byte) uint8 {
	if len(q) == 0 {
		return 0
	}
	tf := sqlparse.ScanText(q)
	locks, userVars := false, false
	if facts != nil && facts.ParseErr == nil {
		locks, userVars = facts.Locks, facts.UserVars
	} else {
		locks, userVars = tf.Locks(q), tf.UserVars()
	}
	var pins uint8
	if locks {
		pins |= pinLock
	}
	if userVars || tf.SessionTrack() || (tf.MayBeUntracked() && sqlparse.UntrackedState(string(q))) {
		pins |= pinSessionState
	}
	return pins
}

// stmtOf returns the client statement id of a statement command, the last
// prepared statement for MariaDB's 0xffffffff ("execute direct").
func (s *session) stmtOf(p []byte) (uint32, bool) {
	if len(p) < 5 {
		return 0, false
	}
	id := uint32(p[1]) | uint32(p[2])<<8 | uint32(p[3])<<16 | uint32(p[4])<<24
	if id == 0xffffffff {
		id = s.lastPrepared
	}
	return id, true
}

func (s *session) unknownStmt(p []byte) error {
	id := uint32(0)
	if len(p) >= 5 {
		id = uint32(p[1]) | uint32(p[2])<<8 | uint32(p[3])<<16 | uint32(p[4])<<24
	}
	return s.sendError(mysql.NewError(mysql.ErrCodeUnknownStmtHandler, "HY000",
		"Unknown prepared statement handler (%d) given to %s", id, mysql.CommandName(p[0])))
}

// setBackendID writes a backend statement id into a statement command.
func setBackendID(p []byte, id uint32) {
	p[1], p[2], p[3], p[4] = byte(id), byte(id>>8), byte(id>>16), byte(id>>24)
}

// stmtOn makes s.be a connection and returns client statement id's
// statement on it, preparing it there first when needed. On false the
// client got an error (err set when the session ends).
func (s *session) stmtOn(c *command, id uint32, st *stmt) (bs *backend.Stmt, ok bool, err error) {
	fo := &c.rt.failover
	stale := 0
	var retryUntil time.Time
	for attempt := 0; ; attempt++ {
		wasPinned := s.be != nil
		s.routeToWriter(c)
		routed, pool := c.routed, c.pool
		if err := s.acquire(c); err != nil {
			if !wasPinned && fo.delayedRetry && backendDown(err) {
				// Outside a transaction: wait for a backend (failover).
				err = s.awaitBackend(c, routed, pool, err, time.Now().Add(fo.timeout))
			}
			if err != nil {
				return nil, false, s.sendError(err)
			}
		}
		if !wasPinned && fo.delayedRetry && stale < 3 && !s.be.Alive() {
			// A pooled connection its server closed (a restart): take
			// another, as exec does.
			stale++
			s.dropBackend(true)
			attempt--
			continue
		}
		bs, perr := s.backendStmt(id, st)
		if perr == nil {
			return bs, true, nil
		}
		var me *mysql.Error
		if errors.As(perr, &me) {
			// The server refused to prepare it (a table dropped since the
			// prepare, maybe answered from the metadata cache): the
			// client gets the server's error for its execute, and the
			// next prepare of the text asks a backend.
			s.forgetMeta(c.rt, st)
			s.release()
			return nil, false, s.sendError(me)
		}
		s.dropBackend(true)
		if s.lost != 0 {
			return nil, false, s.endLostSession(perr)
		}
		if wasPinned || !fo.retryAgain(attempt, &retryUntil) {
			return nil, false, s.sendError(&backendReadError{perr})
		}
		// A pooled connection that died while idle, or a server going
		// away: nothing ran, so again on another.
	}
}

// backendStmt returns statement id on s.be, preparing it there (in the
// state the client prepared it in) when the connection does not have it.
// An ERR from the server is returned as *mysql.Error, s.be usable.
func (s *session) backendStmt(id uint32, st *stmt) (*backend.Stmt, error) {
	if st.bst != nil {
		return st.bst, nil // it holds this statement's cursor or long data on s.be
	}
	c := s.be
	if bs := st.last; bs != nil && (bs.Owner == 0 || bs.Owner == id) && c.HasStmt(bs) {
		return bs, nil // the statement its last execute ran, on this connection
	}
	bs, err := s.lookupStmt(id, st)
	if err == nil {
		st.last = bs
	}
	return bs, err
}

// lookupStmt finds statement id in s.be's cache by key, preparing it there
// when the connection does not have it.
func (s *session) lookupStmt(id uint32, st *stmt) (*backend.Stmt, error) {
	c := s.be
	key := st.key
	bs := c.CachedStmt(key)
	if bs != nil && bs.Owner != 0 && bs.Owner != id {
		// Another statement of this session with the same text keeps a
		// cursor or long data on it: this one gets its own.
		key += "\x00#" + strconv.FormatUint(uint64(id), 10)
		bs = c.CachedStmt(key)
	}
	if bs != nil {
		return bs, nil
	}
	other := s.prepState() != st.key[:len(st.key)-len(st.text)]
	if other {
		// The session's database or parsing state changed since the
		// client prepared it: prepare it as the client did.
		if err := c.Sync(st.prep); err != nil {
			return nil, err
		}
	}
	bs, evicted, err := c.PrepareStmt(key, st.text)
	if other {
		if serr := c.Sync(s.state); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil {
		return nil, err
	}
	s.l.metrics.Reprepared(s.rt.name)
	if evicted {
		s.l.metrics.StmtEvicted(s.rt.name)
	}
	if bs.Params != st.params {
		// The same text has another parameter count: it cannot be.
		c.DropStmt(bs)
		return nil, mysql.NewError(1615, "HY000", "Prepared statement needs to be re-prepared")
	}
	return bs, nil
}

// errNoParamTypes is MariaDB's answer to an execute that binds no types
// for a statement whose parameters never had any.
var errNoParamTypes = mysql.NewError(1210, "HY000", "Incorrect arguments to mysqld_stmt_execute")

// execPacket turns a client's COM_STMT_EXECUTE (or BULK_EXECUTE) p of st
// into the packet for backend statement bs: its id, and the parameter
// types the client bound earlier when bs's server has other ones (the
// client sends types only when they change; the server remembers those of
// the last execute of that statement, maybe another client's).
func (s *session) execPacket(p []byte, st *stmt, bs *backend.Stmt) ([]byte, error) {
	setBackendID(p, bs.ID)
	n := int(st.params)
	if n == 0 {
		return p, nil
	}
	var pos int // where the types are, or would be
	var sent bool
	if p[0] == mysql.ComStmtBulkExecute {
		if len(p) < 7 {
			return nil, errBadExecute
		}
		pos, sent = 7, p[5]&0x80 != 0 // STMT_BULK_FLAG_CLIENT_SEND_TYPES
	} else {
		pos = 10 + (n+7)/8
		if len(p) <= pos {
			return nil, errBadExecute
		}
		sent = p[pos] == 1
		pos++
	}
	if sent {
		if len(p) < pos+2*n {
			return nil, errBadExecute
		}
		st.types = append(st.types[:0], p[pos:pos+2*n]...)
		bs.Types = append(bs.Types[:0], st.types...)
		return p, nil
	}
	if bytes.Equal(bs.Types, st.types) {
		if st.types == nil {
			return nil, errNoParamTypes
		}
		return p, nil
	}
	if st.types == nil {
		return nil, errNoParamTypes
	}
	// Bind the client's types again on this statement.
	b := append(s.stmtBuf[:0], p[:pos]...)
	if p[0] == mysql.ComStmtBulkExecute {
		b[5] |= 0x80
	} else {
		b[pos-1] = 1
	}
	b = append(b, st.types...)
	b = append(b, p[pos:]...)
	s.stmtBuf = b
	bs.Types = append(bs.Types[:0], st.types...)
	return b, nil
}

// setStmtHold records whether statement id keeps a cursor or long data on
// s.be (backend statement bs), adjusting the session's pins.
func (s *session) setStmtHold(id uint32, st *stmt, cursor, longData bool, bs *backend.Stmt) {
	if st.cursor != cursor {
		if cursor {
			s.openCursors++
		} else {
			s.openCursors--
		}
		st.cursor = cursor
	}
	if st.longData != longData {
		if longData {
			s.pendingLong++
		} else {
			s.pendingLong--
		}
		st.longData = longData
	}
	switch {
	case cursor || longData:
		if bs != nil {
			st.bst = bs
		}
		st.bst.Owner = id
	case st.bst != nil:
		st.bst.Owner = 0
		st.bst = nil
	}
	if s.openCursors > 0 {
		s.pin(pinCursor)
	} else {
		s.pins &^= pinCursor
	}
	if s.pendingLong > 0 {
		s.pin(pinLongData)
	} else {
		s.pins &^= pinLongData
	}
}

func (s *session) handleExecute(c *command, p []byte) error {
	c.write = true
	id, ok := s.stmtOf(p)
	st, found := s.stmts[id]
	if !ok || !found {
		return s.unknownStmt(p)
	}
	if st.sh != nil {
		if c.rt.shard == nil || c.rt.chain == nil {
			_, err := s.executeSharded(c, p, &st)
			return err
		}
		if ok, err := s.checkText(c, p[0], st.sql); !ok {
			return err
		}
		r, err := s.executeSharded(c, p, &st)
		s.finish(c, &r, err)
		return err
	}
	if st.longDataLost {
		st.longDataLost = false
		s.stmts[id] = st
		return s.sendError(mysql.NewError(mysql.ErrCodeServerLost, "HY000",
			"Lost connection to backend server; the parameter data sent with COM_STMT_SEND_LONG_DATA was lost with it"))
	}
	c.write = !st.readOnly
	if st.txKind != sqlparse.KindOther && c.rt.shard != nil && c.rt.txMode != txSingle {
		// A prepared BEGIN, COMMIT or ROLLBACK (sysbench prepares them)
		// belongs to the transaction with branches as its text would
		// (sharded_tx.go): run on the default node, it left a plain
		// transaction open that no XA branch can join. An OK answers a
		// COM_STMT_EXECUTE as it answers a COM_QUERY.
		q := []byte(st.sql)
		if c.rt.chain == nil {
			if handled, err := s.txControl(c, q); handled {
				return err
			}
			_, err := s.execute(c, id, p)
			return err
		}
		if ok, err := s.checkText(c, p[0], st.sql); !ok {
			return err
		}
		var r result
		handled, err := s.txControl(c, q)
		if !handled {
			r, err = s.execute(c, id, p)
		}
		s.finish(c, &r, err)
		return err
	}
	if c.rt.chain == nil {
		_, err := s.execute(c, id, p)
		return err
	}
	if ok, err := s.checkText(c, p[0], st.sql); !ok {
		return err
	}
	r, err := s.execute(c, id, p)
	s.finish(c, &r, err)
	return err
}

// execute runs statement id's execute p on a connection that has it.
func (s *session) execute(c *command, id uint32, p []byte) (result, error) {
	st := s.stmts[id]
	if st.ddl {
		// A prepared DDL: prepare answers cached before it are stale
		// after it (and those read while it runs are not cached).
		s.schemaChanging(c.rt, true)
		defer s.schemaChanging(c.rt, false)
	}
	if st.sec != nil {
		np, err := s.secExecute(c.rt, st.sec, p) // security claim
		if err != nil {
			return result{}, s.sendError(err)
		}
		defer s.secDone(c.rt)
		p = np
	}
	bs, ok, err := s.stmtOn(c, id, &st)
	if !ok {
		return result{}, err
	}
	pkt, perr := s.execPacket(p, &st, bs)
	if perr != nil {
		s.stmts[id] = st
		s.release()
		return result{}, s.sendError(perr)
	}
	if st.cursor {
		// Executing again closes the statement's open cursor.
		s.setStmtHold(id, &st, false, st.longData, nil)
	}
	s.stmts[id] = st
	// What its executions leave on the connection (user variables, locks,
	// state the server does not report) keeps the connection, as for a
	// text statement; a connection so kept is reset before reuse.
	s.pendingPins |= st.pins
	s.txl.next = replayableExec(p, id, &st) // transaction replay (failover)
	return s.execReported(c, id, pkt, func(s *session) (result, error) {
		r, err := s.relayBinary()
		st, ok := s.stmts[id]
		if !ok {
			return r, err
		}
		if r.err != nil || err != nil {
			bs.Types = nil // unknown whether the server took them: bind again
		}
		if r.err != nil && staleMetaCode(r.err.Code) {
			// The server re-prepared it and found a table or column gone:
			// a cached prepare answer for its text is stale too.
			s.forgetMeta(c.rt, &st)
		}
		cursor := err == nil && r.err == nil && r.status&mysql.StatusCursorExists != 0
		// The execute consumed the long data.
		s.setStmtHold(id, &st, cursor, false, bs)
		s.stmts[id] = st
		return r, err
	})
}

// execReported runs exec for a command of statement id whose failure, if
// its connection is lost, is the report of the loss of the statement's
// long data or cursor: the next command does not report it again.
func (s *session) execReported(c *command, id uint32, p []byte, fn relayFunc) (result, error) {
	r, err := s.exec(c, p, p[0], fn, false)
	if st, ok := s.stmts[id]; ok && (st.cursorLost || st.longDataLost) {
		st.cursorLost, st.longDataLost = false, false
		s.stmts[id] = st
	}
	return r, err
}

// handleStmt runs COM_STMT_FETCH, COM_STMT_RESET and
// COM_STMT_SEND_LONG_DATA (which has no response).
func (s *session) handleStmt(p []byte, fn relayFunc) error {
	c := &s.cmd
	id, ok := s.stmtOf(p)
	st, found := s.stmts[id]
	if !ok || !found {
		if p[0] == mysql.ComStmtSendLongData {
			return nil // no response; the execute will fail
		}
		return s.unknownStmt(p)
	}
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
		if st.sec != nil && st.sec.Params != nil {
			st.sec.LongData = true // refused at the execute: it cannot be encrypted
			return nil
		}
		return s.sendLongData(c, id, &st, p)
	case mysql.ComStmtReset:
		st.longDataLost, st.cursorLost = false, false
		s.stmts[id] = st
		if st.bst == nil || s.be == nil {
			return s.writeOK(0) // no cursor, no long data: nothing to reset
		}
		setBackendID(p, st.bst.ID)
		_, err := s.exec(c, p, p[0], func(s *session) (result, error) {
			r, err := fn(s)
			if st, ok := s.stmts[id]; ok && err == nil {
				s.setStmtHold(id, &st, false, false, nil)
				s.stmts[id] = st
			}
			return r, err
		}, false)
		return err
	default: // COM_STMT_FETCH
		if st.cursorLost {
			st.cursorLost = false
			s.stmts[id] = st
			return s.sendError(mysql.NewError(mysql.ErrCodeServerLost, "HY000",
				"Lost connection to backend server; the statement's open cursor was lost with it"))
		}
		if !st.cursor || st.bst == nil || s.be == nil {
			return s.sendError(mysql.NewError(1421, "HY000", "The statement (%d) has no open cursor.", id))
		}
		setBackendID(p, st.bst.ID)
		_, err := s.execReported(c, id, p, func(s *session) (result, error) {
			r, err := fn(s)
			if st, ok := s.stmts[id]; ok && err == nil && r.err == nil && r.status&mysql.StatusLastRowSent != 0 {
				// The server closed the exhausted cursor.
				s.setStmtHold(id, &st, false, st.longData, nil)
				s.stmts[id] = st
			}
			return r, err
		})
		return err
	}
}

// sendLongData sends a COM_STMT_SEND_LONG_DATA to a connection that has
// the statement, which then stays with the session until the execute. It
// has no response: a failure is reported by the execute.
func (s *session) sendLongData(c *command, id uint32, st *stmt, p []byte) error {
	if st.longDataLost {
		return nil // the execute reports the earlier loss
	}
	if st.bst == nil {
		s.routeToWriter(c)
		if err := s.acquire(c); err != nil {
			st.longDataLost = true
			s.stmts[id] = *st
			return nil
		}
		bs, err := s.backendStmt(id, st)
		if err != nil {
			var me *mysql.Error
			if errors.As(err, &me) {
				s.release()
			} else {
				s.dropBackend(true)
			}
			st.longDataLost = true
			s.stmts[id] = *st
			return nil
		}
		s.setStmtHold(id, st, st.cursor, true, bs)
		s.stmts[id] = *st
	} else if !st.longData {
		s.setStmtHold(id, st, st.cursor, true, nil)
		s.stmts[id] = *st
	}
	setBackendID(p, st.bst.ID)
	be := s.be
	be.ResetSeq()
	if err := be.WritePacketFlush(p); err != nil {
		s.dropBackend(true) // marks the long data lost
	}
	return nil
}

// handleStmtClose forgets a client statement. The backend statement stays
// prepared for other executes (the connection's cache closes it when it
// evicts it); one that holds the statement's cursor or long data is reset.
func (s *session) handleStmtClose(p []byte) error {
	id, ok := s.stmtOf(p)
	st, found := s.stmts[id]
	if !ok || !found {
		return nil // COM_STMT_CLOSE has no response
	}
	if id == s.lastPrepared {
		s.lastPrepared = 0
	}
	bs := st.bst
	if bs != nil {
		s.setStmtHold(id, &st, false, false, nil)
	}
	delete(s.stmts, id)
	if bs == nil || s.be == nil {
		return nil
	}
	if err := s.be.ResetStmt(bs.ID); err != nil {
		var me *mysql.Error
		if !errors.As(err, &me) {
			s.dropBackend(true)
			return nil
		}
	}
	s.release()
	return nil
}

// stmtsLost records that the statements' cursors and long data died with
// the session's connection: the next fetch (execute) of each gets ERR 2013.
func (s *session) stmtsLost() {
	for id, st := range s.stmts {
		if st.cursor || st.longData {
			st.cursorLost = st.cursorLost || st.cursor
			st.longDataLost = st.longDataLost || st.longData
			st.cursor, st.longData, st.bst = false, false, nil
			s.stmts[id] = st
		}
	}
	s.openCursors, s.pendingLong = 0, 0
}
