package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/database-mesh/pisanix-go/internal/metrics"
	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
	"github.com/database-mesh/pisanix-go/internal/proxy/xalog"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// Cross-shard transactions (docs/sharding.md, "Transactions across
// shards"). xaCoord is the proxy's side of two-phase commit, shared by its
// listeners and kept across reloads: transaction ids carrying the proxy's
// identity, the decision log, the set of transactions running in this
// process, and recovery (XA RECOVER on every node of the listeners in xa
// mode, at startup and periodically).

// txMode is how a sharding listener runs transactions.
type txMode uint8

const (
	// txSingle: every statement of the listener goes to one node, whose
	// connection holds the transaction (no branches).
	txSingle txMode = iota
	txXA
	txBestEffort
)

func (m txMode) String() string {
	switch m {
	case txXA:
		return proxyconfig.TransactionModeXA
	case txBestEffort:
		return proxyconfig.TransactionModeBestEffort
	}
	return "single"
}

// listenerTxMode returns the transaction mode of a compiled sharding
// listener: with more than one node (datanodes, default node) a
// transaction may need a branch on several, in transaction_mode (xa by
// default).
func listenerTxMode(lc *proxyconfig.Listener, rt *runtime) txMode {
	if rt.shard == nil {
		return txSingle
	}
	pools := map[*backend.Pool]bool{}
	for _, pl := range rt.pools {
		pools[pl] = true
	}
	for _, pl := range rt.shardPools {
		pools[pl] = true
	}
	if len(pools) < 2 {
		return txSingle
	}
	if lc.TransactionMode == proxyconfig.TransactionModeBestEffort {
		return txBestEffort
	}
	return txXA
}

type xaCoord struct {
	logger   *slog.Logger
	metrics  *metrics.Proxy
	cfg      proxyconfig.XA // as configured (to refuse a change)
	proxyID  string
	prefix   string
	ids      *xalog.IDs
	log      *xalog.Log
	interval time.Duration

	// active holds the global ids of the transactions this process runs:
	// recovery leaves their branches alone.
	active sync.Map
	// pools returns the pools recovery looks at.
	pools func() []*backend.Pool
	// passMu makes recovery passes one at a time.
	passMu sync.Mutex
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

func newXACoord(cfg proxyconfig.XA, logger *slog.Logger, m *metrics.Proxy, pools func() []*backend.Pool) *xaCoord {
	id := cfg.EffectiveProxyID()
	max := cfg.LogMaxBytes
	if max == 0 {
		max = proxyconfig.DefaultXALogMaxBytes
	}
	return &xaCoord{
		logger:   logger.With("component", "xa", "proxy_id", id),
		metrics:  m,
		cfg:      cfg,
		proxyID:  id,
		prefix:   xalog.Prefix(id),
		ids:      xalog.NewIDs(id),
		log:      xalog.New(cfg.EffectiveLogFile(), max),
		interval: cfg.EffectiveRecoveryInterval(),
		pools:    pools,
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// setupXA creates the proxy's coordinator when a listener runs XA
// transactions and gives it to their runtimes. proxy.xa cannot change
// while the proxy runs (ids and decisions of running transactions refer
// to it).
func (p *Proxy) setupXA(cfg *proxyconfig.Config, rts map[string]*runtime) error {
	need := false
	for _, rt := range rts {
		need = need || rt.txMode == txXA
	}
	if !need {
		return nil
	}
	if p.xa == nil {
		p.xa = newXACoord(cfg.Proxy.XA, p.logger, p.metrics, p.xaPools)
		p.xa.logger.Info("XA transactions enabled", "decision_log", p.xa.log.Path(), "recovery_interval", p.xa.interval)
		go p.xa.run()
	} else if p.xa.cfg != cfg.Proxy.XA {
		return errors.New("proxy.xa cannot change while the proxy runs (restart it to apply the change)")
	}
	for _, rt := range rts {
		if rt.txMode == txXA {
			rt.xa = p.xa
		}
	}
	return nil
}

// xaPools returns the pools of the listeners in xa mode.
func (p *Proxy) xaPools() []*backend.Pool {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[*backend.Pool]bool{}
	var out []*backend.Pool
	add := func(pl *backend.Pool) {
		if !seen[pl] {
			seen[pl] = true
			out = append(out, pl)
		}
	}
	for _, l := range p.listeners {
		rt := l.rt.Load()
		if rt == nil || rt.txMode != txXA {
			continue
		}
		for _, pl := range rt.pools {
			add(pl)
		}
		for _, pl := range rt.shardPools {
			add(pl)
		}
	}
	return out
}

// run recovers at startup, then every interval (and when kicked).
func (x *xaCoord) run() {
	defer close(x.done)
	defer func() {
		if r := recover(); r != nil {
			x.logger.Error("XA recovery stopped by a panic", "panic", r)
		}
	}()
	t := time.NewTicker(x.interval)
	defer t.Stop()
	x.recoverOnce()
	for {
		select {
		case <-x.stop:
			return
		case <-t.C:
		case <-x.kick:
		}
		x.recoverOnce()
	}
}

func (x *xaCoord) close() {
	close(x.stop)
	<-x.done
	_ = x.log.Close()
}

// recoverOnce resolves the prepared branches of this proxy's transactions
// that no running transaction owns: committed when the decision log has
// the transaction's commit record, rolled back otherwise. It returns the
// branches left prepared (a node that failed the decision, or an
// unreadable log).
func (x *xaCoord) recoverOnce() (left int) {
	x.passMu.Lock()
	defer x.passMu.Unlock()
	pools := x.pools()
	seen := map[string]bool{}
	complete := true
	for _, pl := range pools {
		n, ok := x.recoverPool(pl, seen)
		left += n
		complete = complete && ok
	}
	if complete {
		// Commit records whose branches are all gone are done.
		pending, err := x.log.Pending()
		if err == nil {
			for _, g := range pending {
				if _, running := x.active.Load(g); !running && !seen[g] {
					if err := x.log.Done(g); err != nil {
						x.logger.Warn("XA decision log", "error", err)
						break
					}
				}
			}
		}
	}
	x.metrics.XAInDoubt(left)
	return left
}

// recoverPool resolves the node's prepared branches of own, finished
// transactions; ok is false when the node could not be asked.
func (x *xaCoord) recoverPool(pl *backend.Pool, seen map[string]bool) (left int, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := pl.WithAdminConn(ctx, func(c *backend.Conn) error {
		var branches []xalog.Branch
		var bad error
		if err := c.QueryRows("XA RECOVER", func(row []string) {
			b, err := xalog.ParseRecover(row)
			if err != nil {
				bad = err
				return
			}
			if xalog.Own(x.prefix, b.FormatID, b.Gtrid) {
				branches = append(branches, b)
			}
		}); err != nil {
			return fmt.Errorf("XA RECOVER: %w", err)
		}
		if bad != nil {
			x.logger.Warn("XA recovery: unreadable XA RECOVER row", "node", pl.Endpoint().Name, "error", bad)
		}
		for _, b := range branches {
			seen[b.Gtrid] = true
			if _, running := x.active.Load(b.Gtrid); running {
				continue
			}
			commit, err := x.log.Committed(b.Gtrid)
			if err != nil {
				// Without the log nothing can be decided.
				x.logger.Error("XA recovery: decision log unreadable, prepared branch left in doubt", "gtrid", b.Gtrid, "error", err)
				left++
				continue
			}
			stmt, decision := "XA ROLLBACK ", "rollback"
			if commit {
				stmt, decision = "XA COMMIT ", "commit"
			}
			if _, err := c.Exec(stmt + xalog.XID(b.Gtrid, b.Bqual)); err != nil {
				x.logger.Warn("XA recovery: decision failed, branch left prepared", "node", pl.Endpoint().Name,
					"gtrid", b.Gtrid, "bqual", b.Bqual, "decision", decision, "error", err)
				left++
				var me *mysql.Error
				if !errors.As(err, &me) {
					return err
				}
				continue
			}
			x.metrics.XARecovered(decision)
			x.logger.Info("XA recovery: prepared branch resolved", "node", pl.Endpoint().Name,
				"gtrid", b.Gtrid, "bqual", b.Bqual, "decision", decision)
		}
		return nil
	})
	if err != nil {
		x.logger.Debug("XA recovery: node not reachable", "node", pl.Endpoint().Name, "error", err)
		return left, false
	}
	return left, true
}

// failpoint crashes or pauses the proxy at a named step of a two-phase
// commit, for the crash tests: PISA_TEST_XA_FAILPOINT="<step>" kills the
// process (SIGKILL, as kill -9), "<step>=sleep:<duration>" sleeps. Steps:
// after_prepare:<n> (n branches prepared), after_decision, after_commit:<n>.
var failpoints = func() map[string]string {
	v := os.Getenv("PISA_TEST_XA_FAILPOINT")
	if v == "" {
		return nil
	}
	m := map[string]string{}
	for _, f := range strings.Split(v, ",") {
		name, action, _ := strings.Cut(f, "=")
		m[name] = action
	}
	return m
}()

func failpoint(name string) {
	if failpoints == nil {
		return
	}
	action, ok := failpoints[name]
	if !ok {
		return
	}
	if d, isSleep := strings.CutPrefix(action, "sleep:"); isSleep {
		if dur, err := time.ParseDuration(d); err == nil {
			time.Sleep(dur)
		}
		return
	}
	fmt.Fprintf(os.Stderr, "failpoint %s: killing the proxy\n", name)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}
