package proxy

import (
	"context"
	"log/slog"
	"strconv"
	"time"
	"unsafe"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/audit"
	"github.com/database-mesh/pisanix-go/internal/proxy/route"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

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
