package proxy

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
	"github.com/database-mesh/pisanix-go/internal/proxy/xalog"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// Transactions on a sharding listener whose statements may reach several
// nodes (docs/sharding.md, "Transactions across shards").
//
// A transaction (BEGIN, or any statement with autocommit off) gets a
// branch on each node a statement of it reaches, started when the first
// such statement arrives: one connection per node, held until the
// transaction ends. The branch of the node the current statement runs on
// is s.be (the session is pinned); the others wait in the shardTx.
//
// MariaDB cannot turn a running transaction into an XA branch, so in xa
// mode every branch starts with XA START, even when the transaction turns
// out to reach one node; such a transaction ends with XA END and
// XA COMMIT … ONE PHASE (no prepare, no decision log: one round trip more
// than BEGIN … COMMIT). With several branches COMMIT is a two-phase
// commit: XA END and XA PREPARE on each branch, the decision written and
// fsynced to the decision log, then XA COMMIT on each. A failure before
// the decision rolls every branch back; after it, a branch that could not
// be committed stays prepared and recovery commits it (xaCoord).
//
// In best_effort mode branches start with the client's BEGIN and COMMIT
// commits them one after the other: not atomic.

// shardTx is a session's transaction with branches.
type shardTx struct {
	mode     txMode
	coord    *xaCoord // xa mode
	gtrid    string   // xa mode
	begin    string   // the client's BEGIN (best_effort)
	branches []*txBranch
	// readOnly: START TRANSACTION READ ONLY in xa mode: each branch is a
	// read-only XA branch, and COMMIT needs no two-phase commit
	// (txCommitOnePhase).
	readOnly bool
	// wrote: a command of the transaction may have written (anything but
	// a pureSelect). Without it COMMIT needs no two-phase commit either.
	wrote bool
	cur   *txBranch // the branch whose connection is s.be
	// failed is set when a branch's connection broke or a statement on
	// several branches failed half-way: the transaction can only roll back.
	failed error
}

// txBranch is the transaction's part on one node.
type txBranch struct {
	pool  *backend.Pool
	conn  *backend.Conn
	bqual string
}

func (b *txBranch) node() string { return b.pool.Endpoint().Name }

// Errors with which the server rolls a transaction (branch) back:
// ER_LOCK_DEADLOCK and ER_XA_RBDEADLOCK.
const (
	errLockDeadlock uint16 = 1213
	errXARBDeadlock uint16 = 1614
)

// errXARollback is MariaDB's ER_XA_RBROLLBACK: the transaction was rolled
// back.
func errXARollback(format string, args ...any) *mysql.Error {
	return mysql.NewError(1402, "XA100", "XA_RBROLLBACK: Transaction branch was rolled back: "+format, args...)
}

// txActive reports a statement that belongs to a transaction with
// branches.
func (s *session) txActive(rt *runtime) bool {
	return rt.txMode != txSingle && (s.stx != nil || s.inTransaction())
}

// txOpen returns the session's transaction, creating it.
func (s *session) txOpen(rt *runtime) *shardTx {
	if s.stx != nil {
		return s.stx
	}
	tx := &shardTx{mode: rt.txMode, begin: s.pendingBegin}
	if tx.begin == "" {
		tx.begin = "BEGIN"
	}
	if rt.txMode == txXA {
		tx.readOnly = readOnlyBegin.MatchString(tx.begin)
		tx.coord = rt.xa
		tx.gtrid = rt.xa.ids.Next()
		rt.xa.active.Store(tx.gtrid, struct{}{})
		s.l.metrics.XATransaction(rt.name, "started")
	}
	s.stx = tx
	return tx
}

// txBranchFor returns the transaction's branch on pool pl, starting it.
func (s *session) txBranchFor(rt *runtime, pl *backend.Pool) (*txBranch, error) {
	tx := s.txOpen(rt)
	if tx.failed != nil {
		return nil, tx.failed
	}
	for _, b := range tx.branches {
		if b.pool == pl {
			return b, nil
		}
	}
	var c *backend.Conn
	switch {
	case s.be != nil && tx.cur == nil && len(tx.branches) == 0:
		// The session was pinned before its transaction began (user
		// variables, temporary tables...): that connection is the first
		// branch, and the transaction cannot reach another node.
		if s.be.Pool != pl {
			return nil, shard.Refuse(shard.ReasonTransaction,
				"this transaction reaches datanode %s but the session is pinned to %s (user variables, temporary tables or locks): not supported",
				pl.Endpoint().Name, s.be.Pool.Endpoint().Name)
		}
		c = s.be
	case s.be != nil && tx.cur == nil:
		return nil, shard.Refuse(shard.ReasonTransaction,
			"the session is pinned to %s outside its transaction: a transaction on several nodes is not supported then", s.be.Pool.Endpoint().Name)
	default:
		conns, err := s.shardConnsOf(rt, []*backend.Pool{pl})
		if err != nil {
			return nil, err
		}
		c = conns[0]
	}
	b := &txBranch{pool: pl, conn: c, bqual: strconv.Itoa(len(tx.branches))}
	var err error
	switch {
	case tx.mode != txXA:
		_, err = c.Exec(tx.begin)
	case tx.readOnly:
		// A read-only XA branch: the characteristic applies to the next
		// transaction, which XA START starts (a write then gets 1792).
		err = c.ExecPipelined("SET TRANSACTION READ ONLY", "XA START "+xalog.XID(tx.gtrid, b.bqual))
	default:
		_, err = c.Exec("XA START " + xalog.XID(tx.gtrid, b.bqual))
	}
	if err != nil {
		var me *mysql.Error
		if c != s.be {
			if !errors.As(err, &me) {
				c.MarkBroken()
			}
			c.Pool.Put(c)
		} else if !errors.As(err, &me) {
			c.MarkBroken()
		}
		if len(tx.branches) == 0 {
			s.txForget()
		}
		return nil, err
	}
	s.pendingBegin = ""
	tx.branches = append(tx.branches, b)
	if c == s.be {
		tx.cur = b
		s.pin(pinTransaction)
	}
	return b, nil
}

// txForget drops a transaction that has no branch.
func (s *session) txForget() {
	if tx := s.stx; tx != nil && len(tx.branches) == 0 {
		if tx.coord != nil {
			tx.coord.active.Delete(tx.gtrid)
		}
		s.stx = nil
	}
}

// txUse makes the transaction's branch on pl the session's connection
// (s.be), starting the branch when needed.
func (s *session) txUse(rt *runtime, pl *backend.Pool) error {
	b, err := s.txBranchFor(rt, pl)
	if err != nil {
		return err
	}
	tx := s.stx
	if tx.cur == b {
		return nil
	}
	switch {
	case tx.cur != nil:
		// Park the current branch.
		tx.cur = nil
		s.be = nil
	case s.be != nil:
		return shard.Refuse(shard.ReasonTransaction,
			"the session is pinned to %s outside its transaction: a transaction on several nodes is not supported then", s.be.Pool.Endpoint().Name)
	}
	if err := b.conn.Sync(s.state); err != nil {
		var me *mysql.Error
		if !errors.As(err, &me) {
			b.conn.MarkBroken()
			tx.failed = errXARollback("the connection to datanode %s failed: %v", b.node(), err)
		}
		return err
	}
	s.be = b.conn
	tx.cur = b
	s.pin(pinTransaction)
	return nil
}

// txConns returns the transaction's connection on each pool (branches
// started when needed; the current one is s.be) for a statement on
// several shards.
func (s *session) txConns(rt *runtime, pools []*backend.Pool) ([]*backend.Conn, error) {
	conns := make([]*backend.Conn, len(pools))
	for i, pl := range pools {
		for j := 0; j < i; j++ {
			if pools[j] == pl {
				return nil, shard.Refuse(shard.ReasonTransaction,
					"inside a transaction a SELECT that reads several physical tables on one datanode (%s) at once is not supported", pl.Endpoint().Name)
			}
		}
		b, err := s.txBranchFor(rt, pl)
		if err != nil {
			return nil, err
		}
		if err := b.conn.Sync(s.state); err != nil {
			var me *mysql.Error
			if !errors.As(err, &me) {
				b.conn.MarkBroken()
				s.stx.failed = errXARollback("the connection to datanode %s failed: %v", b.node(), err)
			}
			return nil, err
		}
		conns[i] = b.conn
	}
	return conns, nil
}

// isBranch reports whether c is a connection of the session's transaction.
func (s *session) isBranch(c *backend.Conn) bool {
	if s.stx == nil {
		return false
	}
	for _, b := range s.stx.branches {
		if b.conn == c {
			return true
		}
	}
	return false
}

// txDefaultPool is where a statement on unsharded tables runs inside a
// transaction: the listener's default node, or with read/write splitting
// its writer.
func txDefaultPool(rt *runtime) *backend.Pool {
	if rt.shardDefault != nil {
		return rt.shardDefault
	}
	if rt.rw != nil {
		if ep, ok := rt.rw.Writer().Pick(func(i int) bool { return rt.pools[i].Healthy() }); ok {
			return rt.pools[ep.Index]
		}
		if ep, ok := rt.rw.Writer().Pick(func(int) bool { return true }); ok {
			return rt.pools[ep.Index]
		}
		return nil
	}
	return rt.pools[0]
}

// setAutocommitOn matches SET [SESSION] autocommit = 1/ON/TRUE (which
// commits a running transaction).
var setAutocommitOn = regexp.MustCompile(`(?i)^\s*SET\s+(SESSION\s+|@@SESSION\.|@@LOCAL\.|@@|LOCAL\s+)?autocommit\s*(=|:=)\s*(1|ON|TRUE)\s*;?\s*$`)

// noBranch reports statements that never start a branch: session state
// (SET, USE), which applies to every connection of the session.
func noBranch(q []byte) bool {
	i := skipSpaceAndComments(q)
	rest := q[i:]
	for _, w := range []string{"SET", "USE"} {
		if len(rest) > len(w) && strings.EqualFold(string(rest[:len(w)]), w) && (rest[len(w)] == ' ' || rest[len(w)] == '\t' || rest[len(w)] == '\n' || rest[len(w)] == '@') {
			return !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(string(rest[len(w):]))), "TRANSACTION")
		}
	}
	return false
}

// txControl handles BEGIN, COMMIT and ROLLBACK on a listener with
// transaction branches, and readies the transaction for a statement on
// unsharded tables. handled says a reply went to the client.
func (s *session) txControl(c *command, q []byte) (handled bool, err error) {
	rt := c.rt
	kind := sqlparse.KindOther
	switch f := c.facts; {
	case f == nil:
		kind = txControl(q)
	case f.ParseErr == nil && !f.Multi:
		kind = f.Kind
	}
	legacy := s.stx == nil && s.be != nil && s.pins&pinTransaction != 0
	switch kind {
	case sqlparse.KindBegin:
		if legacy {
			return false, nil
		}
		if s.stx != nil {
			// BEGIN commits the running transaction.
			if err := s.txFinish(rt, true, false); err != nil {
				return true, s.sendError(err)
			}
		}
		if rt.txMode == txXA && txControl(q) == sqlparse.KindBegin && !xaBegin.Match(q) {
			return true, s.refuseShard(shard.Refuse(shard.ReasonTransaction,
				"%s is not supported with transaction_mode = \"xa\" (XA branches start with XA START when a statement first reaches their node, so no snapshot spans the nodes); use BEGIN, or START TRANSACTION READ ONLY",
				strings.TrimSpace(string(q))))
		}
		s.pendingBegin = string(q)
		return true, s.writeStatusOK(mysql.StatusInTrans)
	case sqlparse.KindCommit, sqlparse.KindRollback:
		switch {
		case s.stx != nil:
			if err := s.txFinish(rt, kind == sqlparse.KindCommit, true); err != nil {
				return true, s.sendError(err)
			}
			return true, nil
		case legacy:
			return false, nil
		case s.be == nil || s.pins&pinTransaction == 0:
			// Nothing ran: nothing to end.
			s.pendingBegin = ""
			return true, s.writeStatusOK(0)
		}
		return false, nil
	}
	if s.stx != nil && setAutocommitOn.Match(q) {
		// SET autocommit = 1 commits; then it runs as usual.
		if err := s.txFinish(rt, true, false); err != nil {
			return true, s.sendError(err)
		}
	}
	return false, nil
}

// xaBegin matches the BEGINs an xa-mode transaction can honour: BEGIN
// [WORK] and START TRANSACTION, alone or READ WRITE or READ ONLY.
var xaBegin = regexp.MustCompile(`(?i)^\s*(BEGIN(\s+WORK)?|START\s+TRANSACTION(\s+READ\s+(WRITE|ONLY))?)\s*;?\s*$`)

// readOnlyBegin matches START TRANSACTION READ ONLY.
var readOnlyBegin = regexp.MustCompile(`(?i)^\s*START\s+TRANSACTION\s+READ\s+ONLY\s*;?\s*$`)

// txUnsharded readies a statement on unsharded tables inside a
// transaction: it runs on the default node's branch.
func (s *session) txUnsharded(c *command, q []byte) error {
	rt := c.rt
	if !s.txActive(rt) || noBranch(q) {
		return nil
	}
	if s.stx == nil && s.be != nil && s.pins&pinTransaction != 0 {
		return nil // a transaction begun outside the proxy's knowledge
	}
	pl := txDefaultPool(rt)
	if pl == nil {
		return errNoBackend
	}
	return s.txUse(rt, pl)
}

// txFinish commits or rolls back the session's transaction on all its
// branches; with reply, the client gets the OK. An error is for the
// client (nothing was sent).
func (s *session) txFinish(rt *runtime, commit, reply bool) error {
	tx := s.stx
	s.stx = nil
	// Take the connections back from the session.
	conns := make([]*backend.Conn, len(tx.branches))
	for i, b := range tx.branches {
		conns[i] = b.conn
		if b == tx.cur && s.be != b.conn {
			conns[i] = nil // dropped with the session's connection
		}
	}
	keep := tx.cur != nil && s.be == tx.cur.conn && s.pins&^(pinTransaction|pinPrepared) != 0
	if tx.cur != nil && s.be == tx.cur.conn && !keep {
		s.be = nil
	}
	s.pins &^= pinTransaction
	defer func() {
		for _, c := range conns {
			if c != nil && c != s.be {
				c.Pool.Put(c)
			}
		}
		if tx.coord != nil {
			tx.coord.active.Delete(tx.gtrid)
		}
	}()
	for i, c := range conns {
		if c == nil || c.Broken() {
			if tx.failed == nil {
				tx.failed = errXARollback("the connection to datanode %s failed", tx.branches[i].node())
			}
		}
	}
	if !commit || tx.failed != nil {
		s.txRollback(rt, tx, conns, nil)
		if commit {
			return tx.failed
		}
		if reply {
			return s.writeStatusOK(0)
		}
		return nil
	}
	var err error
	switch {
	case tx.mode == txBestEffort:
		err = s.txCommitEach(tx, conns)
	case len(conns) == 1 || tx.readOnly || !tx.wrote:
		err = s.txCommitOnePhase(rt, tx, conns)
	default:
		err = s.txCommitTwoPhase(rt, tx, conns)
	}
	if err != nil {
		return err
	}
	if reply {
		return s.writeStatusOK(0)
	}
	return nil
}

// txRollback rolls back every branch (prepared[i]: branch i is prepared).
func (s *session) txRollback(rt *runtime, tx *shardTx, conns []*backend.Conn, prepared []bool) {
	for i, c := range conns {
		if c == nil || c.Broken() {
			continue
		}
		var err error
		if tx.mode == txXA {
			xid := xalog.XID(tx.gtrid, tx.branches[i].bqual)
			if prepared == nil || !prepared[i] {
				_, _ = c.Exec("XA END " + xid) // fails when already ended or rolled back by the server
			}
			_, err = c.Exec("XA ROLLBACK " + xid)
		} else {
			_, err = c.Exec("ROLLBACK")
		}
		if err != nil {
			// Closing the connection rolls back a branch that is not
			// prepared; a prepared one is rolled back by recovery (no
			// commit decision).
			c.MarkBroken()
			s.logger.Debug("transaction branch rollback failed", "node", tx.branches[i].node(), "error", err)
		}
	}
	if tx.mode == txXA {
		s.l.metrics.XATransaction(rt.name, "rolled_back")
	}
}

func markIfBroken(c *backend.Conn, err error) {
	var me *mysql.Error
	if err != nil && !errors.As(err, &me) {
		c.MarkBroken()
	}
}

// txCommitOnePhase commits, without prepare or decision log, an XA
// transaction that has one branch, or several none of which wrote (START
// TRANSACTION READ ONLY, or every command a pureSelect: nothing to make
// atomic): XA END + XA COMMIT … ONE PHASE on every branch, at once. A
// COMMIT after a failed XA END fails too (XAER_RMFAIL); the first error
// is the one reported.
func (s *session) txCommitOnePhase(rt *runtime, tx *shardTx, conns []*backend.Conn) error {
	errs := execBranches(conns, func(i int) []string {
		xid := xalog.XID(tx.gtrid, tx.branches[i].bqual)
		return []string{"XA END " + xid, "XA COMMIT " + xid + " ONE PHASE"}
	}, nil)
	failed := -1
	for i, err := range errs {
		if err == nil {
			continue
		}
		markIfBroken(conns[i], err)
		if !conns[i].Broken() {
			_, _ = conns[i].Exec("XA ROLLBACK " + xalog.XID(tx.gtrid, tx.branches[i].bqual))
		}
		if failed < 0 {
			failed = i
		}
	}
	if failed >= 0 {
		s.l.metrics.XATransaction(rt.name, "failed")
		var me *mysql.Error
		if errors.As(errs[failed], &me) {
			return me
		}
		return errXARollback("the connection to datanode %s failed during COMMIT: %v", tx.branches[failed].node(), errs[failed])
	}
	s.l.metrics.XATransaction(rt.name, "committed_one_phase")
	return nil
}

// txCommitTwoPhase commits a transaction with several XA branches.
func (s *session) txCommitTwoPhase(rt *runtime, tx *shardTx, conns []*backend.Conn) error {
	prepared := make([]bool, len(conns))
	fail := func(i int, err error) error {
		markIfBroken(conns[i], err)
		s.txRollback(rt, tx, conns, prepared)
		s.l.metrics.XATransaction(rt.name, "failed")
		msg := err.Error()
		var me *mysql.Error
		if errors.As(err, &me) {
			msg = me.Message
		}
		return errXARollback("datanode %s could not prepare the transaction (%s); every branch was rolled back", tx.branches[i].node(), msg)
	}
	// Phase one: XA END and XA PREPARE in one round trip per branch, the
	// branches at once.
	errs := execBranches(conns, func(i int) []string {
		xid := xalog.XID(tx.gtrid, tx.branches[i].bqual)
		return []string{"XA END " + xid, "XA PREPARE " + xid}
	}, func(i int) {
		prepared[i] = true
		failpoint("after_prepare:" + strconv.Itoa(i+1))
	})
	for i, err := range errs {
		if err != nil {
			return fail(i, err)
		}
	}
	t0 := time.Now()
	if err := tx.coord.log.Commit(tx.gtrid); err != nil {
		s.txRollback(rt, tx, conns, prepared)
		s.l.metrics.XATransaction(rt.name, "failed")
		s.logger.Error("XA decision log write failed: transaction rolled back", "gtrid", tx.gtrid, "error", err)
		return errXARollback("the decision log could not be written (%v); every branch was rolled back", err)
	}
	s.l.metrics.XALogSync(time.Since(t0).Seconds())
	s.logger.Debug("XA commit decided", "gtrid", tx.gtrid, "branches", len(conns))
	failpoint("after_decision")
	inDoubt := 0
	errs = execBranches(conns, func(i int) []string {
		return []string{"XA COMMIT " + xalog.XID(tx.gtrid, tx.branches[i].bqual)}
	}, func(i int) { failpoint("after_commit:" + strconv.Itoa(i+1)) })
	for i, err := range errs {
		if err != nil {
			markIfBroken(conns[i], err)
			inDoubt++
			s.logger.Warn("XA COMMIT failed after the commit decision: the branch stays prepared until recovery commits it",
				"gtrid", tx.gtrid, "node", tx.branches[i].node(), "error", err)
		}
	}
	if inDoubt == 0 {
		if err := tx.coord.log.Done(tx.gtrid); err != nil {
			s.logger.Warn("XA decision log", "error", err)
		}
	} else {
		select {
		case tx.coord.kick <- struct{}{}:
		default:
		}
	}
	s.l.metrics.XATransaction(rt.name, "committed")
	return nil
}

// execBranches runs on each branch connection the statements stmts gives
// it, on every branch at once without a goroutine each: all are sent (one
// write per connection), then the answers are read branch by branch, so the
// servers work meanwhile and the time is about one round trip. done, when
// not nil, runs after branch i's answers were read without error. It
// returns the errors by branch. With the crash tests' failpoints set each
// branch is sent and read before the next, so that a failpoint in done
// finds exactly the branches before it done.
func execBranches(conns []*backend.Conn, stmts func(i int) []string, done func(i int)) []error {
	errs := make([]error, len(conns))
	counts := make([]int, len(conns))
	sequential := failpoints != nil
	for i, c := range conns {
		q := stmts(i)
		counts[i] = len(q)
		if errs[i] = c.SendPipelined(q...); errs[i] != nil || !sequential {
			continue
		}
		if errs[i] = c.ReadPipelined(counts[i]); errs[i] == nil && done != nil {
			done(i)
		}
	}
	if sequential {
		return errs
	}
	for i, c := range conns {
		if errs[i] != nil {
			continue // not sent: nothing to read
		}
		if errs[i] = c.ReadPipelined(counts[i]); errs[i] == nil && done != nil {
			done(i)
		}
	}
	return errs
}

// txCommitEach commits best_effort branches one after the other; after a
// failure the rest are rolled back, and the error says where it committed.
func (s *session) txCommitEach(tx *shardTx, conns []*backend.Conn) error {
	var done []string
	for i, c := range conns {
		if _, err := c.Exec("COMMIT"); err != nil {
			markIfBroken(c, err)
			var rolled []string
			for j := i + 1; j < len(conns); j++ {
				if _, rerr := conns[j].Exec("ROLLBACK"); rerr != nil {
					markIfBroken(conns[j], rerr)
				}
				rolled = append(rolled, tx.branches[j].node())
			}
			committed := "nothing was committed"
			if len(done) > 0 {
				committed = "it was committed on " + strings.Join(done, ", ")
			}
			msg := err.Error()
			var me *mysql.Error
			if errors.As(err, &me) {
				msg = me.Message
			}
			return mysql.NewError(1180, "HY000", "Got error during COMMIT: datanode %s: %s; %s (transaction_mode = \"best_effort\"), rolled back on [%s]",
				tx.branches[i].node(), msg, committed, strings.Join(rolled, ", "))
		}
		done = append(done, tx.branches[i].node())
	}
	return nil
}

// txClose ends the session's transaction when the session ends: its
// branches' connections are closed (MariaDB rolls back a branch that is
// not prepared; recovery resolves a prepared one).
func (s *session) txClose() {
	s.lastGenID = 0 // a reset session has no LAST_INSERT_ID()
	tx := s.stx
	if tx == nil {
		return
	}
	s.stx = nil
	for _, b := range tx.branches {
		if b == tx.cur {
			if s.be == b.conn {
				b.conn.MarkBroken() // the session puts s.be back
			}
			continue
		}
		b.conn.MarkBroken()
		b.conn.Pool.Put(b.conn)
	}
	if tx.coord != nil {
		tx.coord.active.Delete(tx.gtrid)
	}
}

// txFail marks the transaction as able only to roll back (a statement on
// several branches failed half-way); the client's error says so.
func (s *session) txFail(err error) error {
	if s.stx == nil {
		return err
	}
	msg := err.Error()
	var me *mysql.Error
	if errors.As(err, &me) {
		msg = me.Message
	}
	s.stx.failed = errXARollback("a statement on several shards failed in this transaction (%s); it can only be rolled back", msg)
	return s.stx.failed
}

// shardConnsOf takes a connection from each pool, synced to the session.
func (s *session) shardConnsOf(rt *runtime, pools []*backend.Pool) ([]*backend.Conn, error) {
	v := backend.Variant{FoundRows: s.foundRows, ClientAttrs: s.attrs}
	conns := make([]*backend.Conn, 0, len(pools))
	for _, pl := range pools {
		for attempt := 0; ; attempt++ {
			c, err := getConn(pl, v)
			if err != nil {
				putAll(conns, false)
				return nil, err
			}
			err = c.Sync(s.state)
			if err == nil {
				conns = append(conns, c)
				break
			}
			var me *mysql.Error
			if errors.As(err, &me) {
				c.Pool.Put(c)
				putAll(conns, false)
				return nil, err
			}
			// A pooled connection that died while idle: another one.
			c.MarkBroken()
			c.Pool.Put(c)
			if attempt > 0 {
				putAll(conns, false)
				return nil, &backendReadError{err}
			}
		}
	}
	return conns, nil
}

// onBranch reports whether s.be is the current branch of the session's
// transaction: it stays pinned whatever a statement's status says (an
// ERR packet carries no status).
func (s *session) onBranch() bool {
	return s.stx != nil && s.stx.cur != nil && s.be == s.stx.cur.conn
}

// broadcastWrite runs a write on every copy of a broadcast table, in the
// session's transaction or else in one of its own (XA with several
// nodes), so that every copy changes or none does. The OK reports the
// first copy's affected rows.
func (s *session) broadcastWrite(rt *runtime, plan *shard.Plan, run func(*backend.Conn, shard.Target) (mysql.OK, error)) (result, error) {
	var r result
	if rt.txMode == txSingle {
		return r, s.refuseShard(shard.Refuse(shard.ReasonTransaction,
			"a write to broadcast table %s needs its datanodes on several nodes", plan.Tables[0]))
	}
	implicit := !s.txActive(rt)
	if implicit {
		s.txOpen(rt)
	}
	cm := s.l.metrics.Command(rt.name, mysql.CommandName(mysql.ComQuery), shardsServer)
	start := cm.Begin()
	defer cm.End(start)
	var first mysql.OK
	for i, t := range plan.Targets {
		conns, err := s.shardConns(rt, plan.Targets[i:i+1], false)
		var ok mysql.OK
		if err == nil {
			c := conns[0]
			s.active.Store(c)
			ok, err = run(c, t)
			s.active.Store(nil)
			markIfBroken(c, err)
		}
		if err != nil {
			switch {
			case implicit:
				if s.stx != nil {
					_ = s.txFinish(rt, false, false)
				}
			case i > 0 || (len(conns) > 0 && conns[0].Broken()):
				err = s.txFail(err)
			}
			var me *mysql.Error
			if errors.As(err, &me) {
				r.err = mysql.NewError(me.Code, me.SQLState, "%s (broadcast table %s at datanode %s; no copy changed)", me.Message, t.Table, t.Node)
				if !implicit && i > 0 {
					r.err = me // the transaction can only roll back
				}
				return r, s.sendError(r.err)
			}
			return r, s.sendError(&backendReadError{fmt.Errorf("broadcast table %s at datanode %s: %w", t.Table, t.Node, err)})
		}
		if i == 0 {
			first = ok
		}
	}
	if implicit {
		if err := s.txFinish(rt, true, false); err != nil {
			r.err = toMySQLError(err)
			return r, s.sendError(r.err)
		}
	}
	status := s.sharedStatus()
	if s.inTransaction() {
		status |= mysql.StatusInTrans
	}
	out := mysql.OK{AffectedRows: first.AffectedRows, LastInsertID: first.LastInsertID, Warnings: first.Warnings, Status: status}
	r.affected, r.status = out.AffectedRows, out.Status
	s.scratch = mysql.AppendOK(s.scratch[:0], mysql.OKHeader, &out, s.caps)
	if err := s.client.WritePacketFlush(s.scratch); err != nil {
		return r, fmt.Errorf("%w: %w", errClientWrite, err)
	}
	return r, nil
}
