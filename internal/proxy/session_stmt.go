package proxy

import (
	"errors"
	"strings"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// handlePrepare prepares on the session's (now pinned) connection.
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
	if err := refuseWithoutWriter(c.rt, facts); err != nil {
		return result{}, s.sendError(err)
	}
	// Prepared statements pin the session: prepare on the writer (see
	// routeFor), so that later writes never reach a replica.
	s.routeToWriter(c)
	sqlText := string(p[1:]) // governs each execution; prepared again after a loss
	if rt := c.rt; rt.shard != nil {
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
	return s.exec(c, p, mysql.ComStmtPrepare, func(s *session) (result, error) {
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
	c := &s.cmd
	s.routeToWriter(c)
	if err := s.acquire(c); err != nil {
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

func (s *session) handleExecute(c *command, p []byte) error {
	var sqlText []byte
	c.write = true
	if id, ok := stmtOf(p); ok {
		if st, found := s.stmts[id]; found {
			if st.sh != nil {
				if c.rt.shard == nil || c.rt.chain == nil {
					_, err := s.executeSharded(c, p, &st)
					return err
				}
				if ok, err := s.check(c, p[0], []byte(st.sql)); !ok {
					return err
				}
				r, err := s.executeSharded(c, p, &st)
				s.finish(c, &r, err)
				return err
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
			c.write = !st.readOnly
		}
	}
	if !s.mapStmt(p) {
		return s.unknownStmt(p)
	}
	if len(sqlText) == 0 || c.rt.chain == nil {
		_, err := s.exec(c, p, p[0], (*session).relayBinary, false)
		return err
	}
	if ok, err := s.check(c, p[0], sqlText); !ok {
		return err
	}
	r, err := s.exec(c, p, p[0], (*session).relayBinary, false)
	s.finish(c, &r, err)
	return err
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
	_, err := s.exec(&s.cmd, p, p[0], fn, false)
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
