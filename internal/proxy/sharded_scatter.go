// The scatter half of the sharding executor: a SELECT on several shards at
// once, its sources read as the merger asks, their connections drained and
// returned.

package proxy

import (
	"errors"
	"fmt"
	"io"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
	"github.com/database-mesh/pisanix-go/internal/proxy/shard/merge"
)

// shardSource reads one shard's rows for the merger.
type shardSource struct {
	c      *backend.Conn
	done   bool
	failed bool // the connection broke: it cannot go back to the pool
	// branch: c belongs to the session's transaction, not to the source.
	branch bool
	status uint16
}

func (src *shardSource) Next() ([]byte, error) {
	if src.done {
		return nil, io.EOF
	}
	p, err := src.c.ReadPacket()
	if err != nil {
		src.done, src.failed = true, true
		return nil, &backendReadError{err}
	}
	switch {
	case mysql.IsEOF(p):
		src.done = true
		_, src.status = mysql.ParseEOF(p)
		return nil, io.EOF
	case len(p) > 0 && p[0] == mysql.ERRHeader:
		src.done = true
		return nil, mysql.ParseErr(p)
	}
	return p, nil
}

// drain reads what is left of the source's result set so that its
// connection can be reused (a LIMIT stops the merge early; the shards were
// sent LIMIT offset+count, so what is left is bounded).
func (src *shardSource) drain() {
	for !src.done {
		if _, err := src.Next(); err != nil && err != io.EOF {
			var me *mysql.Error
			if !errors.As(err, &me) {
				return
			}
		}
	}
}

// scatter runs a SELECT on several shards at once (cmd makes each target's
// command packet) and streams the merged rows to the client, at most
// maxRows of them when it is not 0. binary: the rows are in the binary
// protocol (COM_STMT_EXECUTE).
func (s *session) scatter(rt *runtime, plan *shard.Plan, binary, read bool, maxRows uint64, cmd func(*backend.Conn, shard.Target) ([]byte, error)) (result, error) {
	var r result
	if !s.txActive(rt) && ((s.be != nil && s.pins&^pinPrepared != 0) || s.inTransaction()) {
		return r, s.refuseShard(errShardTx)
	}
	cm := s.l.metrics.Command(rt.name, mysql.CommandName(mysql.ComQuery), shardsServer)
	if binary {
		cm = s.l.metrics.Command(rt.name, mysql.CommandName(mysql.ComStmtExecute), shardsServer)
	}
	start := cm.Begin()
	defer cm.End(start)
	// Before taking connections for the targets: the lookup needs one.
	t0 := plan.Targets[0]
	colls := s.tableCollations(rt, rt.shardPools[t0.Node], t0.Schema, t0.Table)
	var (
		srcs   []*shardSource
		defs   [][]byte
		cols   []merge.Column
		ncols  int
		finish func()
	)
	for attempt := 0; ; attempt++ {
		var err error
		var retry bool
		srcs, defs, cols, ncols, retry, err = s.scatterOpen(rt, plan, read, cmd)
		if err == nil {
			break
		}
		if retry && attempt == 0 {
			// A pooled connection had died while idle: nothing reached
			// the client, and a SELECT may run again.
			continue
		}
		return r, s.sendError(err)
	}
	finish = func() { finishSources(srcs) }
	conns := []*backend.Conn{srcs[0].c}
	why := s.fixCollations(conns[0].Pool, colls, plan.Targets[0], defs, cols)
	spec := plan.Merge.Resolve(ncols)
	if spec == nil {
		finish()
		return r, s.refuseShard(shard.Refuse(shard.ReasonInternal, "the shards returned %d columns, fewer than the merge needs", ncols))
	}
	msrcs := make([]merge.Source, len(srcs))
	for i, src := range srcs {
		msrcs[i] = src
	}
	for i, msg := range why {
		if compared(spec, i) {
			finish()
			return r, s.refuseShard(shard.Refuse(shard.ReasonCollation, "%s", msg))
		}
	}
	m, err := merge.New(spec, cols, binary, msrcs)
	if err != nil {
		finish()
		return r, s.refuseShard(err)
	}
	// Column definitions of the columns the client sees.
	out := defs[:spec.Columns]
	tr := s.secMerged()
	if tr != nil {
		// Security claim: the merged rows are decrypted and masked as
		// relaySecureResultSet does (the merge never compares encrypted values:
		// the rewriter refuses ORDER BY, GROUP BY and DISTINCT on them).
		if out, err = tr.Columns(out); err != nil {
			finish()
			return r, s.sendError(&backendReadError{err})
		}
		if tr.Identity() {
			tr = nil
		}
	}
	s.scratch = mysql.AppendLenEncInt(s.scratch[:0], uint64(len(out)))
	if err := s.writeClient(s.scratch); err != nil {
		finish()
		return r, err
	}
	r.sent = true
	convert := (s.extCaps&mysql.MariaDBClientExtendedMetadata != 0) != (conns[0].Info.ExtCaps&mysql.MariaDBClientExtendedMetadata != 0)
	for _, d := range out {
		if convert {
			d = s.convertColumnDef(d)
		}
		if err := s.writeClient(d); err != nil {
			finish()
			return r, err
		}
	}
	if !s.clientDeprecateEOF() {
		s.scratch = mysql.AppendEOF(s.scratch[:0], 0, s.sharedStatus())
		if err := s.writeClient(s.scratch); err != nil {
			finish()
			return r, err
		}
	}
	for maxRows == 0 || uint64(r.rows) < maxRows {
		row, err := m.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			// Rows went out: an ERR packet ends the result set.
			finish()
			s.l.metrics.ShardMergedRows(rt.name, r.rows)
			me := toMySQLError(err)
			r.err = me
			s.scratch = mysql.AppendErr(s.scratch[:0], me)
			if werr := s.client.WritePacketFlush(s.scratch); werr != nil {
				return r, fmt.Errorf("%w: %w", errClientWrite, werr)
			}
			s.l.metrics.Error(rt.name, me.Code)
			return r, nil
		}
		if tr != nil {
			var terr error
			if row, terr = tr.Row(s.sec.row[:0], row, binary); terr != nil {
				// A stored value that does not decrypt: an ERR ends the
				// result set, as on an unsharded listener.
				finish()
				return r, s.secMergedRowFailed(rt, terr, &r)
			}
			s.sec.row = row
		}
		if err := s.writeClient(row); err != nil {
			finish()
			return r, err
		}
		r.rows++
	}
	finish()
	s.l.metrics.ShardMergedRows(rt.name, r.rows)
	status := s.sharedStatus()
	for _, src := range srcs {
		status |= src.status & mysql.StatusNoBackslashEscapes
	}
	r.status = status
	if s.clientDeprecateEOF() {
		s.scratch = mysql.AppendOK(s.scratch[:0], mysql.EOFHeader, &mysql.OK{Status: status}, s.caps)
	} else {
		s.scratch = mysql.AppendEOF(s.scratch[:0], 0, status)
	}
	if err := s.client.WritePacketFlush(s.scratch); err != nil {
		return r, fmt.Errorf("%w: %w", errClientWrite, err)
	}
	return r, nil
}

// finishSources drains the sources and returns their connections.
func finishSources(srcs []*shardSource) {
	for _, src := range srcs {
		src.drain()
		if src.failed {
			src.c.MarkBroken()
		}
		if src.branch {
			continue
		}
		src.c.Pool.Put(src.c)
	}
}

// scatterOpen takes a connection per target, sends each its command and
// reads the result heads (column count and definitions; shard 0's are
// kept). On error everything went back to the pools; retry says the error
// was a connection failing before any shard answered.
func (s *session) scatterOpen(rt *runtime, plan *shard.Plan, read bool, cmd func(*backend.Conn, shard.Target) ([]byte, error)) (
	srcs []*shardSource, defs [][]byte, cols []merge.Column, ncols int, retry bool, err error) {
	conns, err := s.shardConns(rt, plan.Targets, read)
	if err != nil {
		return nil, nil, nil, 0, false, err
	}
	srcs = make([]*shardSource, len(conns))
	var cmdErr error
	for i, c := range conns {
		srcs[i] = &shardSource{c: c, branch: s.isBranch(c)}
		q, err := cmd(c, plan.Targets[i])
		if err != nil {
			srcs[i].done = true
			var me *mysql.Error
			srcs[i].failed = !errors.As(err, &me)
			if cmdErr == nil {
				cmdErr = err
			}
			continue
		}
		c.ResetSeq()
		err = c.WritePacket(q)
		if err == nil {
			err = c.Flush()
		}
		if err != nil {
			srcs[i].done, srcs[i].failed = true, true
		}
	}
	if cmdErr != nil {
		var me *mysql.Error
		finishSources(srcs)
		return nil, nil, nil, 0, !errors.As(cmdErr, &me), cmdErr
	}
	for _, src := range srcs {
		if src.failed {
			finishSources(srcs)
			return nil, nil, nil, 0, true, &backendReadError{errors.New("write to shard failed")}
		}
	}
	ncols = -1
	var firstErr error
	broke := false
	for i, src := range srcs {
		n, herr := src.readHead(i == 0, &defs, &cols)
		switch {
		case herr != nil:
			broke = broke || src.failed
			if firstErr == nil {
				firstErr = herr
			}
		case ncols >= 0 && n != ncols:
			if firstErr == nil {
				firstErr = fmt.Errorf("shards returned %d and %d columns", ncols, n)
			}
		default:
			ncols = n
		}
	}
	if firstErr != nil {
		finishSources(srcs)
		return nil, nil, nil, 0, broke, firstErr
	}
	return srcs, defs, cols, ncols, false, nil
}

// sharedStatus is the status a locally merged result reports.
func (s *session) sharedStatus() uint16 {
	if s.state.Vars["autocommit"] == "OFF" {
		return 0
	}
	return mysql.StatusAutocommit
}

// readHead reads a result set's column count and definitions (and the EOF
// after them). With keep, the definitions are copied into defs and parsed
// into cols. It returns the column count; an ERR from the shard is returned
// as *mysql.Error (the source is then done).
func (src *shardSource) readHead(keep bool, defs *[][]byte, cols *[]merge.Column) (int, error) {
	p, err := src.c.ReadPacket()
	if err != nil {
		src.done, src.failed = true, true
		return 0, &backendReadError{err}
	}
	switch p[0] {
	case mysql.ERRHeader:
		src.done = true
		return 0, mysql.ParseErr(p)
	case mysql.OKHeader:
		src.done = true
		return 0, shard.Refuse(shard.ReasonInternal, "a shard answered without a result set")
	}
	n, _, _, err := mysql.ReadLenEncInt(p)
	if err != nil {
		src.done, src.failed = true, true
		return 0, &backendReadError{err}
	}
	for i := uint64(0); i < n; i++ {
		p, err := src.c.ReadPacket()
		if err != nil {
			src.done, src.failed = true, true
			return 0, &backendReadError{err}
		}
		if keep {
			d := append([]byte(nil), p...)
			col, err := merge.ParseColumn(d)
			if err != nil {
				src.failed = true
				return 0, &backendReadError{err}
			}
			*defs = append(*defs, d)
			*cols = append(*cols, col)
		}
	}
	p, err = src.c.ReadPacket()
	if err != nil || !mysql.IsEOF(p) {
		src.done, src.failed = true, true
		return 0, &backendReadError{fmt.Errorf("expected EOF after column definitions")}
	}
	return int(n), nil
}
