package backend

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// adminConn opens a short-lived connection for an administrative statement
// (not counted by the pool), bounded by ctx.
func (p *Pool) adminConn(ctx context.Context, run func(c *Conn) error) error {
	c, err := p.dial(ctx, Variant{})
	if err != nil {
		return fmt.Errorf("%w: %s (%s): %w", ErrConnect, p.ep.Name, p.ep.Addr, err)
	}
	defer c.quit()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	return run(c)
}

// KillThread runs KILL [HARD|SOFT] [QUERY] threadID on a separate
// connection.
func (p *Pool) KillThread(ctx context.Context, threadID uint32, queryOnly, hard bool) error {
	q := "KILL "
	if !hard {
		q += "SOFT "
	}
	if queryOnly {
		q += "QUERY "
	}
	q += strconv.FormatUint(uint64(threadID), 10)
	return p.adminConn(ctx, func(c *Conn) error {
		_, err := c.exec(q, false)
		return err
	})
}

// ThreadOfQuery returns the thread running the query with id queryID on
// the endpoint (information_schema.PROCESSLIST).
func (p *Pool) ThreadOfQuery(ctx context.Context, queryID uint64) (thread uint32, found bool, err error) {
	// A pooled connection: the lookup changes no session state.
	c, err := p.Get(ctx, Variant{})
	if err != nil {
		return 0, false, err
	}
	defer p.Put(c)
	err = func() error {
		row, err := c.queryRow("SELECT ID FROM information_schema.PROCESSLIST WHERE QUERY_ID = " + strconv.FormatUint(queryID, 10))
		if err != nil || row == nil {
			return err
		}
		v, err := strconv.ParseUint(row[0], 10, 32)
		if err != nil {
			return fmt.Errorf("bad thread id %q: %w", row[0], err)
		}
		thread, found = uint32(v), true
		return nil
	}()
	return thread, found, err
}

// KillQueryID runs KILL [HARD|SOFT] QUERY ID queryID on a separate
// connection.
func (p *Pool) KillQueryID(ctx context.Context, queryID uint64, hard bool) error {
	q := "KILL "
	if !hard {
		q += "SOFT "
	}
	q += "QUERY ID " + strconv.FormatUint(queryID, 10)
	return p.adminConn(ctx, func(c *Conn) error {
		_, err := c.exec(q, false)
		return err
	})
}
