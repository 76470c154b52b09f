package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
	"github.com/database-mesh/pisanix-go/internal/proxy/route"
)

// acquire makes s.be a backend connection synced to the session state,
// taken as c's routing says; it consumes that routing.
func (s *session) acquire(c *command) error {
	pool := c.pool
	c.pool = nil
	if s.be != nil {
		return nil
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		rt := c.rt
		if attempt > 0 && !c.routed {
			// The listener's current runtime: a reload may have closed
			// the pools of the one the command began with.
			rt = s.l.rt.Load()
		}
		var conn *backend.Conn
		var err error
		switch {
		case pool != nil:
			conn, err = getConn(pool, backend.Variant{FoundRows: s.foundRows, ClientAttrs: s.attrs, Account: s.account})
		case c.routed:
			conn, err = rt.pick(&c.dec, backend.Variant{FoundRows: s.foundRows, ClientAttrs: s.attrs, Account: s.account})
		default:
			conn, err = rt.pick(nil, backend.Variant{FoundRows: s.foundRows, ClientAttrs: s.attrs, Account: s.account})
		}
		if err != nil {
			lastErr = err
			if errors.Is(err, backend.ErrPoolTimeout) || errors.Is(err, errNoBackend) {
				c.routed = false
				return err
			}
			continue
		}
		if err := s.resolvePendingCharset(conn); err != nil {
			conn.Pool.Put(conn)
			c.routed = false
			return err
		}
		if err := conn.Sync(s.state); err != nil {
			var me *mysql.Error
			if errors.As(err, &me) {
				// The server refused our state (e.g. unknown db): report it.
				conn.Pool.Put(conn)
				c.routed = false
				return me
			}
			conn.MarkBroken()
			conn.Pool.Put(conn)
			lastErr = err
			continue
		}
		if c.causalPending && c.routed && !s.waitCaughtUp(rt, conn) {
			// The replica has not applied the session's last write in
			// time (or failed): read from the writer.
			c.causalPending = false
			c.dec = c.dec.ToWriter()
			continue
		}
		c.causalPending = false
		if s.pendingBegin != "" {
			if err := s.beginOn(conn); err != nil {
				c.routed = false
				return err
			}
		}
		s.be = conn
		c.routed = false
		return nil
	}
	c.routed = false
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
	}
	// Statements live on every connection; cursors and long data die
	// with this one.
	s.stmtsLost()
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
	if r.status&mysql.StatusInTrans != 0 || s.onBranch() {
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
	_, err := s.exec(&s.cmd, p, cmd, fn, false)
	return err
}

// exec runs one command on a backend: acquire, send, relay, account. It
// returns a session-fatal error only when the client connection failed.
// retryable says the command may run again on another backend when the
// first attempt failed before anything reached the client.
func (s *session) exec(cm *command, p []byte, cmd byte, fn relayFunc, retryable bool) (result, error) {
	routed, pool := cm.routed, cm.pool
	fo := &cm.rt.failover
	s.txStart(cm.rt, cmd)
	stale, replays := 0, 0
	var retryUntil time.Time
	for attempt := 0; ; attempt++ {
		cm.routed, cm.pool = routed, pool // a retry is routed like the first attempt
		wasPinned := s.be != nil
		if err := s.acquire(cm); err != nil {
			if !wasPinned && fo.delayedRetry && backendDown(err) {
				// Outside a transaction: wait for a backend (failover).
				err = s.awaitBackend(cm, routed, pool, err, time.Now().Add(fo.timeout))
			}
			if err != nil {
				return result{}, s.sendError(err)
			}
		}
		c := s.be
		if !wasPinned && fo.delayedRetry && stale < 3 && !c.Alive() {
			// A pooled connection its server closed (a restart): take
			// another, not counted as an attempt.
			stale++
			s.dropBackend(true)
			attempt--
			continue
		}
		s.txl.h.Reset()
		m := s.l.metrics.Command(s.rt.name, mysql.CommandName(cmd), c.Pool.Endpoint().Addr)
		start := m.Begin()
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
		m.End(start)
		cm.backend = c.Pool.Endpoint().Addr
		if b := cm.rt.breaker; b != nil {
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
				if s.pins&pinTransaction != 0 && r.status&mysql.StatusInTrans == 0 {
					// An ERR carries no status flags: the transaction is
					// still open (a deadlock's rollback is told by the
					// next OK). Released now, its connection would go to
					// another client in the middle of it.
					r.status |= mysql.StatusInTrans
				}
			}
			if cmd == mysql.ComStmtPrepare && s.pins&pinTransaction != 0 {
				// A prepare's answer has no status flags (none at all
				// without parameters and columns, or with
				// CLIENT_DEPRECATE_EOF) and changes no transaction:
				// released now, the connection would go to another
				// client in the middle of it.
				r.status |= mysql.StatusInTrans
			}
			if r.err != nil && (r.err.Code == errLockDeadlock || r.err.Code == errXARBDeadlock) && s.onBranch() {
				// The server rolled this branch back (a deadlock): as on
				// one server, the client's whole transaction is over, so
				// the other branches are rolled back too (sharded_tx.go);
				// left open, the next COMMIT or BEGIN failed to prepare
				// the rolled-back branch (1402).
				s.txFinish(cm.rt, false, false)
				r.status &^= mysql.StatusInTrans
			}
			s.txEnd(cm.rt, p, &r)
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
		prepared := s.pins&pinPrepared != 0
		s.dropBackend(true)
		if r.sent {
			// Part of a response went out: the client cannot resync.
			return r, err
		}
		if s.lost != 0 {
			if fo.replay && replays < 2 {
				replays++
				p = bytes.Clone(p) // it may share the scratch buffer the replay uses
				if s.replayLost(cm, p, prepared, err) {
					if cmd == mysql.ComStmtExecute && s.txl.cur.ok {
						// The execute in flight, for the new connection.
						np, rerr := s.rebindInFlight(p)
						if rerr != nil {
							s.txl.breakLog("an execute that could not be prepared again")
							var me *mysql.Error
							if errors.As(rerr, &me) {
								return r, s.sendError(me)
							}
							s.dropBackend(true)
							return r, s.endLostSession(rerr)
						}
						p = np
					}
					continue // the command runs again, in the replayed transaction
				}
			}
			return r, s.endLostSession(err)
		}
		if !wasPinned && (retryable || fn == nil) && fo.retryAgain(attempt, &retryUntil) {
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
