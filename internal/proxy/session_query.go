package proxy

import (
	"context"
	"log/slog"
	"strconv"
	"time"
	"unsafe"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/audit"
	"github.com/database-mesh/pisanix-go/internal/proxy/route"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

func (s *session) handleInitDB(c *command, p []byte) error {
	db := string(p[1:])
	if ch := c.rt.chain; ch != nil {
		if rej := ch.CheckSchema(s.user, s.clientAddr, db); rej != nil {
			return s.sendError(rej.Err)
		}
	}
	r, err := s.exec(c, p, mysql.ComInitDB, (*session).relaySimple, true)
	if err == nil && r.err == nil {
		s.state.SetDB(db)
	}
	return err
}

// command is one client command in flight, a statement as a value: the
// listener's runtime loaded once, the parser's facts, the governance
// request, verdict and outcome, and the routing of its backend connection.
// The session keeps one (s.cmd), reset by begin for each command and
// passed down by pointer, so that nothing is allocated per statement.
type command struct {
	// rt is the listener's runtime when the command began: its rules,
	// routers and pools serve the whole command.
	rt      *runtime
	facts   *sqlparse.Facts // nil: not parsed (no governance, no read/write splitting)
	maxRows uint64          // access control's row limit (0: none)
	text    sqlparse.Scan   // the text scan of a COM_QUERY (see scan)

	// Routing of the next acquire, which consumes it: dec when routed
	// (read/write splitting), else pool when set (a statement routed to
	// one shard's datanode), else the runtime's balancing.
	routed bool
	dec    route.Decision
	pool   *backend.Pool
	// causalPending: the next acquire checks that the replica caught up
	// with the session's last write (read-your-writes).
	causalPending bool
	// write: the statement may write; its OKs count as writes for
	// read-your-writes.
	write bool
	// pureRead: the command only reads (pureSelect): an XA transaction all
	// of whose commands were such commits in one phase (sharded_tx.go).
	pureRead bool

	// Governance: checked says Check let the statement through and Finish
	// is due; backend and route say where it ran (the audit record).
	checked        bool
	req            govern.Request
	verdict        govern.Verdict
	start          time.Time
	backend, route string
}

// begin starts a command: it loads the listener's runtime once and clears
// what the previous command left.
func (s *session) begin() *command {
	s.cmd = command{rt: s.l.rt.Load()}
	return &s.cmd
}

// scan returns the sqlparse.Scan of the COM_QUERY text q, scanned once.
func (c *command) scan(q []byte) sqlparse.Scan {
	if !c.text.Scanned() {
		c.text = sqlparse.ScanText(q)
	}
	return c.text
}

func (s *session) handleQuery(c *command, p []byte) error {
	if q := p[1:]; c.scan(q).MayKill() && (isKill(q) || s.state.MultiStatements) {
		if handled, err := s.handleKillText(p); handled {
			return err
		}
	}
	return s.runQuery(c, p)
}

// runQuery runs a COM_QUERY: governance, then the statement.
func (s *session) runQuery(c *command, p []byte) error {
	if ok, err := s.check(c, mysql.ComQuery, p[1:]); !ok {
		return err
	}
	r, err := s.query(c, p)
	s.finish(c, &r, err)
	return err
}

// query runs a COM_QUERY that governance let through.
func (s *session) query(c *command, p []byte) (result, error) {
	q := p[1:]
	facts := c.facts
	sq := q // the text the sharding planner plans
	if c.rt.sec != nil {
		np, err := s.secQuery(c.rt, p) // security claim: encrypt, refuse (1235)
		if err != nil {
			return result{}, s.sendError(err)
		}
		defer s.secDone(c.rt)
		p = np
		sq = p[1:] // sharding plans the rewritten text (cipher, assisted columns)
	}
	tf := c.scan(q)
	if c.rt.stmtMeta != nil && (facts != nil || !tf.ReadOnly(q)) && s.changesSchema(facts, q, s.state.MultiStatements) {
		// DDL: prepare answers cached before it may be stale after it
		// (stmtmeta.go), and those read while it runs are not cached.
		s.schemaChanging(c.rt, true)
		defer s.schemaChanging(c.rt, false)
	}
	if tf.ConnectionID() {
		p = s.rewriteConnectionID(p)
	}
	if c.maxRows > 0 && facts != nil && facts.Kind == sqlparse.KindSelect && !facts.Multi {
		// Access control's row limit, with MariaDB's per-statement
		// variable syntax.
		p = append(append([]byte{mysql.ComQuery}, "SET STATEMENT sql_select_limit="+strconv.FormatUint(c.maxRows, 10)+" FOR "...), p[1:]...)
	}
	// With the parser's facts at hand, the text scans are not needed.
	locks, userVars, readOnly := false, false, false
	if facts != nil && facts.ParseErr == nil {
		locks, userVars = facts.Locks, facts.UserVars
		readOnly = facts.ReadOnly && !facts.LockingRead
	} else {
		locks, userVars, readOnly = tf.Locks(q), tf.UserVars(), tf.ReadOnly(q)
	}
	if locks {
		s.pendingPins |= pinLock
	}
	trackers := tf.SessionTrack()
	if userVars || trackers || (tf.MayBeUntracked() && sqlparse.UntrackedState(unsafe.String(&q[0], len(q)))) {
		// User variables, or session state the server's tracker does
		// not report: keep this connection, reset it before reuse.
		s.pendingPins |= pinSessionState
	}
	if c.rt.shard != nil {
		if handled, r, err := s.shardQuery(c, sq, readOnly); handled {
			if s.be == nil {
				s.pendingPins = 0 // several shards ran it: nothing to pin
			}
			return r, err
		}
	}
	if err := s.routeFor(c, q); err != nil {
		return result{}, s.sendError(err)
	}
	r, err := s.exec(c, p, mysql.ComQuery, (*session).relayText, readOnly)
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
}

// relayText relays the response to a text-protocol statement.
func (s *session) relayText() (result, error) { return s.relayResults(false) }

// relayBinary relays the response to a COM_STMT_EXECUTE.
func (s *session) relayBinary() (result, error) { return s.relayResults(true) }

// check runs the statement sql of command cmd through the listener's
// governance chain (access control, circuit break, concurrency control)
// and sets c's facts: parsed when governance or read/write splitting needs
// them (a sharding listener's planner parses statements itself). ok false:
// the statement is refused, the client got the error (err: the session
// ends). When ok, finish must follow. sql may alias the packet.
func (s *session) check(c *command, cmd byte, sql []byte) (ok bool, err error) {
	rt := c.rt
	if rt.chain == nil {
		if rt.rw != nil && len(sql) > 0 {
			c.facts = rt.parser.Parse(unsafe.String(&sql[0], len(sql)))
		}
		return true, nil
	}
	return s.checkText(c, cmd, string(sql)) // the audit log may keep it
}

// checkText is check for a statement text the caller holds as a string (a
// prepared statement's): no copy is made.
func (s *session) checkText(c *command, cmd byte, text string) (ok bool, err error) {
	rt := c.rt
	if rt.chain == nil {
		if rt.rw != nil && text != "" {
			c.facts = rt.parser.ParseOwned(text)
		}
		return true, nil
	}
	c.facts = rt.parser.ParseOwned(text)
	c.req = govern.Request{User: s.user, Schema: s.state.DB, SQL: text, Facts: c.facts, Command: cmd, ClientAddr: s.clientAddr}
	v, rej := rt.chain.Check(context.Background(), &c.req)
	if rej != nil {
		return false, s.sendError(rej.Err)
	}
	c.verdict, c.maxRows, c.checked = v, v.MaxRows, true
	c.backend, c.route = "", ""
	c.start = time.Now()
	return true, nil
}

// finish reports the outcome of a statement check let through to the
// governance chain (audit, top statements, concurrency permit). r and err
// are what running it returned.
func (s *session) finish(c *command, r *result, err error) {
	if !c.checked {
		return
	}
	c.checked = false
	out := govern.Outcome{Start: c.start, Duration: time.Since(c.start), Rows: uint64(r.rows) + r.affected,
		Backend: c.backend, Route: c.route}
	switch {
	case r.err != nil:
		out.Err = r.err
	case err != nil:
		out.Err = err
	}
	out.Masking = s.sec.takeMasked()
	c.rt.chain.Finish(&c.req, &c.verdict, &out)
	c.verdict.Release()
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// routeFor decides, for read/write splitting, where the statement sql (with
// c's facts) runs if the session is not pinned. sql may alias the packet
// buffer. An error refuses the statement (a listener without a writer).
func (s *session) routeFor(c *command, sql []byte) error {
	c.routed = false
	rt := c.rt
	f := c.facts
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
		c.write = true
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
	c.dec = rt.rw.Route(text, f, inTx)
	if f != nil && (f.Kind == sqlparse.KindSet || f.UserVars || f.TempTable || f.Locks) && !rt.rw.NoWriter() {
		// State that pins the session is created on the writer only, so
		// that a pinned session never sends a write to a replica.
		c.dec = c.dec.ToWriter()
	}
	c.write = f == nil || !f.ReadOnly
	c.causalPending = false
	if rt.causal.Enabled() {
		if s.causal == nil {
			s.causal = route.NewCausalTracker(rt.causal)
		}
		if c.dec.Target == route.TargetRead {
			switch s.causal.BeforeRead(time.Now()) {
			case route.CausalWriter:
				c.dec = c.dec.ToWriter()
			case route.CausalWait:
				c.causalPending = true
			}
		}
	}
	c.routed = true
	c.route = c.dec.Target.String()
	s.l.metrics.RouteDecision(rt.name, c.route, c.dec.Rule)
	return nil
}

// routeToWriter sends c's next acquire to the writer when read/write
// splitting is on.
func (s *session) routeToWriter(c *command) {
	c.routed = false
	if s.be != nil {
		return
	}
	rt := c.rt
	if rt.rw == nil {
		return
	}
	c.dec = rt.rw.Writer()
	if rt.rw.NoWriter() {
		c.dec = rt.rw.Reader() // writes are refused on such a listener
	}
	c.routed = true
}
