package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// Failover ([proxy.config.failover], docs/proxy.md "Surviving a backend
// restart"): a statement outside a transaction that finds no backend waits
// for one (delayed retry), and a transaction whose backend connection died
// is replayed on a new one when every result its client was sent comes out
// the same (transaction replay).

// failoverOpts is the compiled [proxy.config.failover] of a runtime.
type failoverOpts struct {
	delayedRetry bool
	replay       bool
	timeout      time.Duration
	maxWaiting   int64
	replayMax    int
}

// maxDelayedAttempts bounds the runs of one command whose backend
// connection is lost before any of its answer reached the client, on a
// listener with delayed_retry.
const maxDelayedAttempts = 8

// retryAgain says, after attempt (from 0) of a command that may run again
// lost its backend connection before anything reached the client, whether
// to run it once more. The first retry is immediate; with delayed_retry,
// more follow after growing pauses until the failover timeout from the
// first of them (until keeps it): a server that shuts down closes its
// connections one by one, so the next one taken may still look alive and
// be closed under the retry.
func (o *failoverOpts) retryAgain(attempt int, until *time.Time) bool {
	if attempt == 0 {
		return true
	}
	if !o.delayedRetry || attempt >= maxDelayedAttempts {
		return false
	}
	if until.IsZero() {
		*until = time.Now().Add(o.timeout)
	}
	if !time.Now().Before(*until) {
		return false
	}
	time.Sleep(time.Duration(attempt) * 20 * time.Millisecond)
	return true
}

func compileFailover(f *proxyconfig.Failover) failoverOpts {
	if !f.Enabled() {
		return failoverOpts{}
	}
	o := failoverOpts{
		delayedRetry: f.DelayedRetry,
		replay:       f.TransactionReplay,
		timeout:      f.DelayedRetryTimeout.Duration,
		maxWaiting:   int64(f.DelayedRetryMaxWaiting),
		replayMax:    f.TransactionReplayMaxSize,
	}
	if o.timeout <= 0 {
		o.timeout = proxyconfig.DefaultDelayedRetryTimeout
	}
	if o.maxWaiting <= 0 {
		o.maxWaiting = proxyconfig.DefaultDelayedRetryMaxWaiting
	}
	if o.replayMax <= 0 {
		o.replayMax = proxyconfig.DefaultTransactionReplayMaxSize
	}
	return o
}

// txLog records the transaction a session is in, for a replay: the
// command packets it sent, and a checksum of what the client was sent for
// each. While hashing is set, every packet relayed to the client is hashed
// (writeClient, relayRows); while replaying is set, nothing reaches the
// client.
type txLog struct {
	hashing, replaying bool
	h                  maphash.Hash
	// broken says why the transaction cannot be replayed ("" = it can):
	// a command other than COM_QUERY, an error inside it, LOAD DATA
	// LOCAL, transaction_replay_max_size exceeded.
	broken string
	// buf holds the packets back to back; ends[i] is where packet i ends,
	// sums[i] the checksum of its results.
	buf  []byte
	ends []int
	sums []uint64
	// stmts[i] is packet i's prepared statement when it is a
	// COM_STMT_EXECUTE (recorded with its parameter types bound), the
	// zero txStmt for a COM_QUERY.
	stmts []txStmt
	// next is set by the execute about to run (execute), cur is the
	// command running: its statement when it is a replayable execute.
	next, cur txStmt
	scratch   []byte // a replayed execute packet
}

// txStmt is what a replay needs of a client's prepared statement to
// prepare it on a new connection as the client did (see lookupStmt).
type txStmt struct {
	// why says why the execute cannot be replayed ("" = it can, when ok).
	why    string
	ok     bool
	id     uint32
	params uint16
	key    string
	text   string
	prep   *backend.SessionState
	types  []byte // the parameter types bound for it, 2 bytes each
}

// stmt returns the registry entry a replay prepares the statement from.
func (ts *txStmt) stmt() stmt {
	return stmt{key: ts.key, text: ts.text, prep: ts.prep, params: ts.params, sql: ts.text}
}

// replayableExec returns the statement record of execute p of client
// statement id for the transaction log: one that is not replayable tells
// why.
func replayableExec(p []byte, id uint32, st *stmt) txStmt {
	switch {
	case p[0] != mysql.ComStmtExecute:
		return txStmt{why: mysql.CommandName(p[0])}
	case len(p) < 10:
		return txStmt{why: "a malformed COM_STMT_EXECUTE"}
	case p[5]&0x07 != 0:
		return txStmt{why: "an execute opening a cursor"}
	case st.longData:
		return txStmt{why: "an execute with COM_STMT_SEND_LONG_DATA parameters"}
	case st.sec != nil:
		return txStmt{why: "an execute of a statement with encrypted or masked columns"}
	}
	return txStmt{ok: true, id: id, params: st.params, key: st.key, text: st.text, prep: st.prep, types: st.types}
}

// appendTypedExec appends execute p of a statement of n parameters to dst
// with the parameter types bound (new-params-bound flag set): replayed, it
// does not depend on the types the new connection's statement remembers.
// ok is false when p is malformed.
func appendTypedExec(dst, p, types []byte, n int) ([]byte, bool) {
	if n == 0 {
		return append(dst, p...), true
	}
	pos := 10 + (n+7)/8 // the new-params-bound flag
	if len(p) <= pos {
		return dst, false
	}
	if p[pos] == 1 {
		return append(dst, p...), true
	}
	if len(types) != 2*n {
		return dst, false
	}
	dst = append(dst, p[:pos]...)
	dst = append(dst, 1)
	dst = append(dst, types...)
	return append(dst, p[pos+1:]...), true
}

var txSeed = maphash.MakeSeed()

// reset forgets the recorded transaction.
func (t *txLog) reset() {
	t.broken = ""
	if cap(t.buf) > 64<<10 {
		t.buf = nil // a large transaction's memory goes back
	}
	t.buf, t.ends, t.sums = t.buf[:0], t.ends[:0], t.sums[:0]
	clear(t.stmts) // no statement texts are kept alive
	t.stmts = t.stmts[:0]
}

func (t *txLog) breakLog(why string) {
	if t.broken == "" {
		t.broken = why
	}
	t.buf, t.ends, t.sums = t.buf[:0], t.ends[:0], t.sums[:0]
	clear(t.stmts)
	t.stmts = t.stmts[:0]
}

func (t *txLog) len() int { return len(t.ends) }

func (t *txLog) packet(i int) []byte {
	start := 0
	if i > 0 {
		start = t.ends[i-1]
	}
	return t.buf[start:t.ends[i]]
}

// txStart prepares the log for a command about to run: a command that
// starts outside a transaction starts a new log.
func (s *session) txStart(rt *runtime, cmd byte) {
	t := &s.txl
	t.cur, t.next = t.next, txStmt{}
	if !rt.failover.replay {
		t.hashing = false
		if t.len() > 0 || t.broken != "" {
			t.reset()
		}
		return
	}
	if t.h.Seed() != txSeed {
		t.h.SetSeed(txSeed)
	}
	if s.pins&pinTransaction == 0 {
		t.reset()
	}
	switch {
	case cmd == mysql.ComQuery:
	case cmd == mysql.ComStmtPrepare:
		// Preparing changes nothing in the transaction; a replay prepares
		// what its executes need (not recorded, see txEnd).
	case cmd == mysql.ComStmtExecute && t.cur.ok:
	case t.cur.why != "":
		t.breakLog(t.cur.why)
	default:
		t.breakLog(mysql.CommandName(cmd))
	}
	t.hashing = true
	t.h.Reset()
}

// txEnd records a command that ran (its response is r) in the log.
func (s *session) txEnd(rt *runtime, p []byte, r *result) {
	t := &s.txl
	if !t.hashing {
		return
	}
	t.hashing = false
	if len(p) > 0 && p[0] == mysql.ComStmtPrepare {
		// Not part of the replay: its answer (the proxy's statement id,
		// the definitions) does not depend on the connection, and an ERR
		// to it leaves the transaction as it was.
		return
	}
	wasInTx := s.pins&pinTransaction != 0
	switch {
	case r.err != nil:
		// What an error did to the transaction (a deadlock rolls it back)
		// is not known.
		if wasInTx || r.sent {
			t.breakLog("an error inside the transaction")
		} else {
			t.reset()
		}
	case r.status&mysql.StatusInTrans == 0:
		t.reset()
	case t.broken != "":
	case len(t.buf)+len(p) > rt.failover.replayMax:
		t.breakLog("transaction_replay_max_size exceeded")
	case p[0] == mysql.ComStmtExecute:
		var ok bool
		if t.buf, ok = appendTypedExec(t.buf, p, t.cur.types, int(t.cur.params)); !ok {
			t.breakLog("a malformed COM_STMT_EXECUTE")
			return
		}
		t.ends = append(t.ends, len(t.buf))
		t.sums = append(t.sums, t.h.Sum64())
		ts := t.cur
		ts.types = nil // the packet has them; st.types is reused
		t.stmts = append(t.stmts, ts)
	default:
		t.buf = append(t.buf, p...)
		t.ends = append(t.ends, len(t.buf))
		t.sums = append(t.sums, t.h.Sum64())
		t.stmts = append(t.stmts, txStmt{})
	}
}

// replayable says whether statement p may be part of a replayed
// transaction (at index i of the log; inFlight: it is the statement that
// was running when the connection died, which must not have committed
// anything). It returns why not, or "".
func replayable(parser *sqlparse.Parser, p []byte, i int, inFlight bool) string {
	if len(p) < 2 || p[0] != mysql.ComQuery {
		return "not a COM_QUERY"
	}
	return replayableSQL(parser, unsafe.String(&p[1], len(p)-1), i, inFlight)
}

// replayableSQL is replayable for statement text q (of a COM_QUERY or
// of the prepared statement a COM_STMT_EXECUTE runs).
func replayableSQL(parser *sqlparse.Parser, q string, i int, inFlight bool) string {
	if q == "" {
		return "an empty statement"
	}
	f := parser.Parse(q)
	switch {
	case f.ParseErr != nil:
		return "a statement the parser does not understand"
	case f.Multi:
		return "a multi-statement text"
	case f.SideEffects || f.Locks || f.UserVars || f.TempTable:
		return "a statement with side effects (locks, user variables, temporary tables, SLEEP...)"
	}
	switch f.Kind {
	case sqlparse.KindSelect, sqlparse.KindInsert, sqlparse.KindUpdate, sqlparse.KindDelete,
		sqlparse.KindReplace, sqlparse.KindSavepoint:
		return ""
	case sqlparse.KindRollback:
		if inFlight {
			return "" // the transaction was lost anyway
		}
		if strings.Contains(strings.ToUpper(q), " TO ") {
			return "" // ROLLBACK TO SAVEPOINT
		}
	case sqlparse.KindBegin:
		if i == 0 && !inFlight {
			return ""
		}
	case sqlparse.KindCommit:
		if inFlight {
			return "COMMIT was in flight: it may have committed"
		}
	}
	return fmt.Sprintf("a %s statement", f.Kind)
}

// replayable is replayable for packet p of the log or in flight (ts: its
// statement when p is a COM_STMT_EXECUTE).
func (t *txLog) replayable(parser *sqlparse.Parser, p []byte, ts txStmt, i int, inFlight bool) string {
	if inFlight && len(p) > 0 && p[0] == mysql.ComStmtPrepare {
		return "" // it prepares again on the new connection
	}
	if len(p) > 0 && p[0] == mysql.ComStmtExecute {
		if !ts.ok {
			if ts.why != "" {
				return ts.why
			}
			return "a COM_STMT_EXECUTE"
		}
		return replayableSQL(parser, ts.text, i, inFlight)
	}
	return replayable(parser, p, i, inFlight)
}

// backendDown reports an acquire error worth waiting on: no backend could
// be reached (not a full pool, not an error the server sent).
func backendDown(err error) bool {
	if errors.Is(err, backend.ErrPoolTimeout) {
		return false
	}
	var me *mysql.Error
	return !errors.As(err, &me)
}

// failoverDelay is the first pause between two attempts of a waiting
// statement; it doubles up to failoverMaxDelay.
const (
	failoverDelay    = 20 * time.Millisecond
	failoverMaxDelay = 250 * time.Millisecond
)

// awaitBackend waits, up to the failover timeout, for acquire to give the
// command a backend connection (s.be), after first (an acquire error).
// routed and pool are the command's routing for each attempt. It returns
// nil once s.be is set, else the last error.
func (s *session) awaitBackend(c *command, routed bool, pool *backend.Pool, first error, deadline time.Time) error {
	fo := &c.rt.failover
	l, name := s.l, c.rt.name
	if n := l.delayed.Add(1); n > fo.maxWaiting {
		l.delayed.Add(-1)
		l.metrics.DelayedStatement(name, "overflow", 0)
		if ok, n := l.logLimit.allow("delayed_overflow"); ok {
			l.logger.Warn("statement not delayed: failover.delayed_retry_max_waiting statements are waiting for a backend",
				"max_waiting", fo.maxWaiting, "suppressed_since_last", n)
		}
		return first
	}
	l.metrics.DelayedWaiting(name, 1)
	start := time.Now()
	defer func() {
		l.delayed.Add(-1)
		l.metrics.DelayedWaiting(name, -1)
	}()
	err, wait := first, failoverDelay
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		left := time.Until(deadline)
		if left <= 0 {
			l.metrics.DelayedStatement(name, "timed_out", time.Since(start).Seconds())
			s.logger.Info("no backend within failover.delayed_retry_timeout", "waited", time.Since(start).Round(time.Millisecond), "error", err)
			return err
		}
		timer.Reset(min(wait, left))
		select {
		case <-timer.C:
			wait = min(2*wait, failoverMaxDelay)
		case <-l.backAgain.wait():
			// Another statement got a backend: try now. (Replays that
			// start together see the same data: one that starts after
			// another's replayed transaction committed may not.)
			timer.Stop() // Reset above is safe after it (Go 1.23 timers)
		case <-l.ctx.Done():
			return err
		}
		c.routed, c.pool = routed, pool
		err = s.acquire(c)
		if err == nil {
			l.metrics.DelayedStatement(name, "recovered", time.Since(start).Seconds())
			l.backAgain.wake()
			return nil
		}
		if !backendDown(err) {
			return err
		}
	}
}

// errReplayMismatch: a replayed statement's results differ from those the
// client was sent.
var errReplayMismatch = errors.New("a replayed statement gave other results than the client was sent")

// replayLost replays the session's transaction, whose backend connection
// just died while p (the command in flight, which sent nothing to the
// client) ran, on a new connection. On true the session is pinned to that
// connection in the same transaction, and p may run again; on false
// nothing changed (the caller ends the session).
func (s *session) replayLost(c *command, p []byte, prepared bool, cause error) bool {
	rt := c.rt
	t := &s.txl
	if !rt.failover.replay || s.lost != pinTransaction {
		return false
	}
	outcome, why := "not_replayable", t.broken
	switch {
	case why == "transaction_replay_max_size exceeded":
		outcome = "too_large"
	case why != "":
	case prepared:
		why = "an open cursor or long data lived on the connection"
	case t.len() == 0:
		why = "nothing of the transaction was recorded"
	default:
		why = t.replayable(s.l.proxy.parser, p, t.cur, t.len(), true)
		for i := 0; why == "" && i < t.len(); i++ {
			why = t.replayable(s.l.proxy.parser, t.packet(i), t.stmts[i], i, false)
		}
	}
	if why != "" {
		s.l.metrics.TransactionReplay(rt.name, outcome)
		s.logger.Warn("lost transaction not replayed", "reason", why, "error", cause)
		return false
	}
	start := time.Now()
	deadline := start.Add(rt.failover.timeout)
	var err error
	for try := 1; ; try++ {
		err = s.replayOnce(c, deadline)
		if err == nil {
			s.l.metrics.TransactionReplay(rt.name, "replayed")
			s.logger.Info("lost transaction replayed on a new backend connection", "statements", t.len(),
				"backend", s.be.Pool.Endpoint().Addr, "took", time.Since(start).Round(time.Millisecond), "error", cause)
			s.lost = 0
			s.pins |= pinTransaction
			return true
		}
		if errors.Is(err, errReplayMismatch) || !backendDown(err) || time.Now().After(deadline) {
			break
		}
	}
	outcome = "failed"
	if errors.Is(err, errReplayMismatch) {
		outcome = "mismatch"
	}
	s.l.metrics.TransactionReplay(rt.name, outcome)
	s.logger.Warn("lost transaction could not be replayed", "outcome", outcome, "error", err, "lost_because", cause)
	return false
}

// replayOnce takes a writer connection (waiting for one up to deadline)
// and runs the log on it, comparing checksums. On error the connection
// is gone again.
func (s *session) replayOnce(c *command, deadline time.Time) error {
	rt := c.rt
	routed := false
	if rw := rt.rw; rw != nil && !rw.NoWriter() {
		routed = true
		c.dec = rw.Writer()
	}
	c.routed, c.pool = routed, nil
	if err := s.acquire(c); err != nil {
		if !backendDown(err) {
			return err
		}
		if err := s.awaitBackend(c, routed, nil, err, deadline); err != nil {
			return err
		}
	}
	t := &s.txl
	t.replaying, t.hashing = true, true
	defer func() { t.replaying, t.hashing = false, false }()
	for i := 0; i < t.len(); i++ {
		conn := s.be
		p := t.packet(i)
		ts := &t.stmts[i]
		if ts.ok {
			// An execute: its statement prepared on this connection
			// (lazily, as the client prepared it), its id set.
			var err error
			if p, err = s.replayExecPacket(p, ts); err != nil {
				var me *mysql.Error
				if errors.As(err, &me) {
					conn.MarkDirty()
					s.be = nil
					s.pins = 0
					conn.Pool.Put(conn)
					return fmt.Errorf("statement %d of %d could not be prepared again: %w", i+1, t.len(), err)
				}
				s.dropBackend(true)
				return &backendReadError{err}
			}
		}
		t.h.Reset()
		conn.ResetSeq()
		err := conn.WritePacket(p)
		if err == nil {
			err = conn.Flush()
		}
		var r result
		if err == nil {
			r, err = s.relayResults(ts.ok)
		}
		if err != nil {
			s.dropBackend(true)
			return &backendReadError{err}
		}
		if t.h.Sum64() != t.sums[i] || r.err != nil {
			// The connection holds the replayed part of the transaction:
			// returned to the pool, it is rolled back.
			conn.MarkDirty()
			s.be = nil
			s.pins = 0
			conn.Pool.Put(conn)
			return fmt.Errorf("%w (statement %d of %d)", errReplayMismatch, i+1, t.len())
		}
	}
	return nil
}

// replayExecPacket returns execute p (recorded with its parameter types
// bound) of statement ts for s.be: the statement prepared there when the
// connection does not have it, p's statement id set to it (in a scratch
// buffer). An ERR of the server comes as *mysql.Error.
func (s *session) replayExecPacket(p []byte, ts *txStmt) ([]byte, error) {
	st := ts.stmt()
	bs, err := s.backendStmt(ts.id, &st)
	if err != nil {
		return nil, err
	}
	b := append(s.txl.scratch[:0], p...)
	s.txl.scratch = b
	setBackendID(b, bs.ID)
	if n := int(ts.params); n > 0 {
		pos := 10 + (n+7)/8 + 1
		bs.Types = append(bs.Types[:0], b[pos:pos+2*n]...)
	}
	return b, nil
}

// rebindInFlight returns the execute in flight (p, for the lost
// connection's statement) for the connection the replay left in s.be.
func (s *session) rebindInFlight(p []byte) ([]byte, error) {
	ts := &s.txl.cur
	typed, ok := appendTypedExec(nil, p, ts.types, int(ts.params))
	if !ok {
		return nil, errBadExecute
	}
	b, err := s.replayExecPacket(typed, ts)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(b), nil
}

// copyRowHashed relays a row payload of n bytes announced by NextPacket
// while hashing it (transaction replay); while replaying, the row only
// goes to the hash.
func (s *session) copyRowHashed(n int) error {
	dst := s.client
	if s.txl.replaying {
		dst = nil
	}
	rerr, werr := s.be.CopyBodyHashed(dst, n, &s.txl.h)
	switch {
	case rerr != nil:
		return &backendReadError{rerr}
	case werr != nil:
		return fmt.Errorf("%w: %w", errClientWrite, werr)
	}
	return nil
}

// serverLeaving reports, on a listener with failover, an ERR that a
// server sends to the statement it interrupts when it shuts down or its
// connection is killed (1053, 1317, 1927), followed by the connection's
// end (awaited up to 100 ms): the statement did not run, the connection
// is lost. The same codes on a connection that stays open (KILL QUERY)
// are the client's.
func (s *session) serverLeaving(e *mysql.Error) bool {
	if s.cmd.rt == nil || s.be == nil || !s.cmd.rt.failover.delayedRetry && !s.cmd.rt.failover.replay {
		return false
	}
	switch e.Code {
	case 1053, mysql.ErrCodeQueryInterrupted, 1927:
	default:
		return false
	}
	for i := 0; i < 10; i++ {
		if !s.be.Alive() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// wakeup is a broadcast: wait returns a channel that wake closes.
type wakeup struct {
	mu sync.Mutex
	ch chan struct{}
}

func (w *wakeup) wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

func (w *wakeup) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}
