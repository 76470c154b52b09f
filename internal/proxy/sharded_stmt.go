package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
	"github.com/database-mesh/pisanix-go/internal/proxy/crypt"
	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// Prepared statements on sharded tables belong to the proxy: the client's
// COM_STMT_PREPARE is planned once (shard.Prepared), answered with the
// metadata of one shard's statement, and pins nothing. Each COM_STMT_EXECUTE
// decodes its parameters, binds the plan (the sharding key may be a
// parameter) and runs the target statements through statements the proxy
// keeps prepared on each backend connection (backend.Conn.PrepareCached).

// shardStmt is the proxy side of a client statement on sharded tables.
type shardStmt struct {
	prep  *shard.Prepared
	types []byte // parameter types of the last execute that sent them
	// params and args are reused by each execute.
	params []execParam
	args   []any
	// longData: the client sent COM_STMT_SEND_LONG_DATA, which is not
	// supported for these statements; the next execute is refused.
	longData bool
	// keyParams and keyBuf hold an execute's parameters with the keys
	// the proxy generates (withKeys), reused.
	keyParams []execParam
	keyBuf    []byte
	// pureRead: the statement only reads (pureSelect, command.pureRead).
	pureRead bool
}

// execParam is one decoded COM_STMT_EXECUTE parameter.
type execParam struct {
	null bool
	typ  [2]byte
	raw  []byte // the value's bytes as sent (aliases the packet)
}

var errBadExecute = mysql.NewError(mysql.ErrCodeUnknownCom, "08S01", "Malformed COM_STMT_EXECUTE packet")

// decodeExecute parses the parameters of a COM_STMT_EXECUTE packet for a
// statement of n parameters into params (reused). types are the types of
// an earlier execute, for a packet that does not send them again; the
// types in force are returned.
func decodeExecute(p []byte, n int, types []byte, params []execParam) (flags byte, _ []execParam, newTypes []byte, err error) {
	if len(p) < 10 {
		return 0, nil, nil, errBadExecute
	}
	flags = p[5]
	if n == 0 {
		return flags, nil, types, nil
	}
	pos := 10
	nb := (n + 7) / 8
	if len(p) < pos+nb+1 {
		return 0, nil, nil, errBadExecute
	}
	nulls := p[pos : pos+nb]
	pos += nb
	bound := p[pos]
	pos++
	if bound == 1 {
		if len(p) < pos+2*n {
			return 0, nil, nil, errBadExecute
		}
		types = append(types[:0], p[pos:pos+2*n]...)
		pos += 2 * n
	}
	if len(types) != 2*n {
		return 0, nil, nil, mysql.NewError(mysql.ErrCodeUnknownCom, "HY000", "COM_STMT_EXECUTE sent no parameter types")
	}
	if cap(params) < n {
		params = make([]execParam, n)
	} else {
		params = params[:n]
		clear(params)
	}
	for i := range params {
		ep := &params[i]
		ep.typ = [2]byte{types[2*i], types[2*i+1]}
		if nulls[i/8]&(1<<(i%8)) != 0 || types[2*i] == 0x06 {
			ep.null = true
			continue
		}
		size := 0
		switch types[2*i] {
		case 0x01: // TINY
			size = 1
		case 0x02, 0x0d: // SHORT, YEAR
			size = 2
		case 0x03, 0x09, 0x04: // LONG, INT24, FLOAT
			size = 4
		case 0x08, 0x05: // LONGLONG, DOUBLE
			size = 8
		case 0x0a, 0x0c, 0x07, 0x0b: // DATE, DATETIME, TIMESTAMP, TIME
			if pos >= len(p) {
				return 0, nil, nil, errBadExecute
			}
			size = 1 + int(p[pos])
		default: // strings, DECIMAL, BLOB, JSON, BIT...: length-encoded
			_, _, m, err := mysql.ReadLenEncBytes(p[pos:])
			if err != nil {
				return 0, nil, nil, errBadExecute
			}
			size = m
		}
		if pos+size > len(p) {
			return 0, nil, nil, errBadExecute
		}
		ep.raw = p[pos : pos+size]
		pos += size
	}
	return flags, params, types, nil
}

// arg converts a parameter to what shard.Prepared.Bind takes.
func (ep *execParam) arg() any {
	if ep.null {
		return nil
	}
	unsigned := ep.typ[1]&0x80 != 0
	r := ep.raw
	switch ep.typ[0] {
	case 0x01:
		if unsigned {
			return uint64(r[0])
		}
		return int64(int8(r[0]))
	case 0x02, 0x0d:
		v := binary.LittleEndian.Uint16(r)
		if unsigned {
			return uint64(v)
		}
		return int64(int16(v))
	case 0x03, 0x09:
		v := binary.LittleEndian.Uint32(r)
		if unsigned {
			return uint64(v)
		}
		return int64(int32(v))
	case 0x08:
		v := binary.LittleEndian.Uint64(r)
		if unsigned {
			return v
		}
		return int64(v)
	case 0x04:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(r)))
	case 0x05:
		return math.Float64frombits(binary.LittleEndian.Uint64(r))
	case 0x0a, 0x0c, 0x07, 0x0b:
		return r // dates are never sharding keys the planner can use
	}
	v, _, _, _ := mysql.ReadLenEncBytes(r)
	return v
}

// appendExecute builds a COM_STMT_EXECUTE for backend statement id with the
// client's parameters at positions idx (nil: all, in order).
func appendExecute(b []byte, id uint32, params []execParam, idx []int) []byte {
	b = append(b, mysql.ComStmtExecute, byte(id), byte(id>>8), byte(id>>16), byte(id>>24), 0, 1, 0, 0, 0)
	n := len(params)
	if idx != nil {
		n = len(idx)
	}
	if n == 0 {
		return b
	}
	at := func(i int) *execParam {
		if idx != nil {
			return &params[idx[i]]
		}
		return &params[i]
	}
	nb := (n + 7) / 8
	start := len(b)
	for i := 0; i < nb; i++ {
		b = append(b, 0)
	}
	for i := 0; i < n; i++ {
		if at(i).null {
			b[start+i/8] |= 1 << (i % 8)
		}
	}
	b = append(b, 1)
	for i := 0; i < n; i++ {
		b = append(b, at(i).typ[0], at(i).typ[1])
	}
	for i := 0; i < n; i++ {
		if ep := at(i); !ep.null {
			b = append(b, ep.raw...)
		}
	}
	return b
}

// prepareSharded answers a client's COM_STMT_PREPARE of a statement on
// sharded tables with the metadata of one shard's statement.
// sec, for a statement on encrypted or masked tables (security claim),
// gives the client's parameter count; the result columns are described as
// the transformer sends them.
func (s *session) prepareSharded(rt *runtime, id uint32, sqlText string, prep *shard.Prepared, readOnly bool, sec *crypt.Stmt) (result, error) {
	var r result
	t, ok := prep.Sample()
	pl := rt.shardPools[t.Node]
	if !ok || pl == nil {
		return r, s.sendError(fmt.Errorf("statement on sharded tables has no target"))
	}
	c := s.be
	if c == nil || c.Pool != pl {
		var err error
		if c, err = getConn(pl, backend.Variant{FoundRows: s.foundRows, ClientAttrs: s.attrs}); err != nil {
			return r, s.sendError(err)
		}
		defer c.Pool.Put(c)
		if err := c.Sync(s.state); err != nil {
			var me *mysql.Error
			if !errors.As(err, &me) {
				c.MarkBroken()
			}
			return r, s.sendError(err)
		}
	}
	_, paramDefs, colDefs, err := c.PrepareMeta(t.SQL)
	if err != nil {
		var me *mysql.Error
		if errors.As(err, &me) {
			r.err = me
		}
		return r, s.sendError(err)
	}
	n := prep.ClientParams()
	if g := prep.Gen(); g != nil {
		if sec != nil {
			return r, s.sendError(Refusal("a prepared INSERT into a sharded table with encrypted or masked columns must give the generated key column"))
		}
		// The client's parameters are the statement's less the keys.
		paramDefs = withoutSlots(paramDefs, g.Slots())
	}
	if sec != nil {
		if rt.sec == nil || prep.Params != sec.BackendParams {
			return r, s.sendError(Refusal("a prepared statement on a sharded table whose rewritten parameters do not match (%d, %d)", prep.Params, sec.BackendParams))
		}
		n = sec.ClientParams
		if paramDefs, colDefs, err = secPrepareDefs(s.secTransformer(rt.sec), paramDefs, colDefs, n); err != nil {
			return r, s.sendError(&backendReadError{err})
		}
	}
	s.scratch = append(s.scratch[:0], mysql.OKHeader, byte(id), byte(id>>8), byte(id>>16), byte(id>>24),
		byte(len(colDefs)), byte(len(colDefs)>>8), byte(n), byte(n>>8), 0, 0, 0)
	if err := s.writeClient(s.scratch); err != nil {
		return r, err
	}
	r.sent = true
	convert := (s.extCaps&mysql.MariaDBClientExtendedMetadata != 0) != (c.Info.ExtCaps&mysql.MariaDBClientExtendedMetadata != 0)
	writeDefs := func(defs [][]byte, count int) error {
		if count == 0 {
			return nil
		}
		for i := 0; i < count; i++ {
			var d []byte
			switch {
			case i < len(defs):
				d = defs[i]
			case len(defs) > 0:
				d = defs[0]
			default:
				d = paramDef
			}
			if convert {
				d = s.convertColumnDef(d)
			}
			if err := s.writeClient(d); err != nil {
				return err
			}
		}
		if !s.clientDeprecateEOF() {
			s.scratch = mysql.AppendEOF(s.scratch[:0], 0, s.sharedStatus())
			return s.writeClient(s.scratch)
		}
		return nil
	}
	if err := writeDefs(paramDefs, n); err != nil {
		return r, err
	}
	if err := writeDefs(colDefs, len(colDefs)); err != nil {
		return r, err
	}
	if err := s.client.Flush(); err != nil {
		return r, fmt.Errorf("%w: %w", errClientWrite, err)
	}
	if s.stmts == nil {
		s.stmts = make(map[uint32]stmt)
	}
	// params is the backend's count (an execute is decoded after the
	// security claim rebuilt it), less the keys the proxy generates.
	s.stmts[id] = stmt{sql: sqlText, params: uint16(prep.ClientParams()), readOnly: readOnly,
		sh: &shardStmt{prep: prep, pureRead: onlyReads([]byte(sqlText))}, sec: sec}
	return r, nil
}

// onlyReads reports a statement text that certainly only reads: read-only
// by the text scan (no locking read, INTO or variable assignment) and a
// pureSelect.
func onlyReads(q []byte) bool {
	return pureSelect(q) && sqlparse.ScanText(q).ReadOnly(q)
}

// withoutSlots returns defs without the entries at slots (ascending); a
// list shorter than a slot (a server that sends fewer) is left as it is.
func withoutSlots(defs [][]byte, slots []int) [][]byte {
	if len(slots) == 0 || slots[len(slots)-1] >= len(defs) {
		return defs
	}
	out := make([][]byte, 0, len(defs)-len(slots))
	for i, d := range defs {
		if _, gen := slices.BinarySearch(slots, i); !gen {
			out = append(out, d)
		}
	}
	return out
}

// withKeys returns the parameters of an execute of a statement whose keys
// the proxy generates: the client's, with a new key at each of g's slots
// (its first is what LAST_INSERT_ID() reports).
func (sh *shardStmt) withKeys(g *shard.GenKeys, params []execParam) ([]execParam, int64) {
	slots := g.Slots()
	n := len(params) + len(slots)
	if cap(sh.keyParams) < n {
		sh.keyParams = make([]execParam, n)
	}
	out := sh.keyParams[:n]
	if cap(sh.keyBuf) < 8*len(slots) {
		sh.keyBuf = make([]byte, 8*len(slots))
	}
	buf := sh.keyBuf[:8*len(slots)]
	var first int64
	next, k := 0, 0
	for i := range out {
		if k < len(slots) && slots[k] == i {
			key := g.Next()
			if k == 0 {
				first = key
			}
			raw := buf[8*k : 8*k+8]
			binary.LittleEndian.PutUint64(raw, uint64(key))
			out[i] = execParam{typ: [2]byte{0x08, 0}, raw: raw} // BIGINT
			k++
			continue
		}
		out[i] = params[next]
		next++
	}
	return out, first
}

// paramDef is the definition sent for a parameter when the sample
// statement has none to copy (a "?" of type NULL, as MariaDB describes one).
var paramDef = func() []byte {
	b := mysql.AppendLenEncString(nil, "def")
	for _, s := range []string{"", "", "", "?", ""} {
		b = mysql.AppendLenEncString(b, s)
	}
	return append(b, 0x0c, 63, 0, 0, 0, 0, 0, 0x06, 0x80, 0, 0, 0, 0)
}()

// executeSharded runs a COM_STMT_EXECUTE of a statement on sharded tables.
func (s *session) executeSharded(c *command, p []byte, st *stmt) (result, error) {
	rt := c.rt
	var r result
	sh := st.sh
	c.pureRead = sh.pureRead
	if sh.longData {
		sh.longData = false
		return r, s.refuseShard(shard.Refuse(shard.ReasonPreparedStatement,
			"COM_STMT_SEND_LONG_DATA for a statement on a sharded table is not supported; bind the value"))
	}
	if p[0] != mysql.ComStmtExecute {
		return r, s.refuseShard(shard.Refuse(shard.ReasonPreparedStatement,
			"%s of a statement on a sharded table is not supported", mysql.CommandName(p[0])))
	}
	if st.sec != nil {
		np, err := s.secExecute(rt, st.sec, p) // security claim
		if err != nil {
			return r, s.sendError(err)
		}
		defer s.secDone(rt)
		p = np
	}
	flags, params, types, err := decodeExecute(p, int(st.params), sh.types, sh.params)
	if err != nil {
		return r, s.sendError(err)
	}
	sh.types = types
	if flags&0x0f != 0 {
		return r, s.refuseShard(shard.Refuse(shard.ReasonPreparedStatement,
			"cursors on statements on sharded tables are not supported"))
	}
	sh.params = params
	var genID int64
	if g := sh.prep.Gen(); g != nil {
		params, genID = sh.withKeys(g, params)
	}
	if cap(sh.args) < len(params) {
		sh.args = make([]any, len(params))
	}
	args := sh.args[:len(params)]
	for i := range params {
		args[i] = params[i].arg()
	}
	plan, perr := sh.prep.Bind(args)
	if perr != nil {
		s.l.metrics.ShardStatement(rt.name, "refused", 0)
		return r, s.refuseShard(perr)
	}
	s.l.metrics.ShardStatement(rt.name, plan.Kind.String(), len(plan.Targets))
	c.route = "shard:" + plan.Kind.String()
	send := func(c *backend.Conn, t shard.Target) ([]byte, error) {
		id, err := c.PrepareCached(t.SQL)
		if err != nil {
			return nil, err
		}
		s.shardScratch = appendExecute(s.shardScratch[:0], id, params, t.Params)
		return s.shardScratch, nil
	}
	switch {
	case genID != 0:
		// Generated keys: the OK carries the first one as the last insert
		// id, as for a text INSERT.
		r, err := s.fanout(rt, plan, uint64(genID), func(c *backend.Conn, t shard.Target) (mysql.OK, error) {
			pkt, err := send(c, t)
			if err != nil {
				return mysql.OK{}, err
			}
			return c.ExecPacket(pkt)
		})
		if err == nil && r.err == nil {
			s.lastGenID = uint64(genID)
		}
		return r, err
	case len(plan.Targets) == 1 && plan.Merge == nil:
		t := plan.Targets[0]
		pl := s.shardPool(rt, t.Node, st.readOnly)
		if s.txActive(rt) {
			if err := s.txUse(rt, pl); err != nil {
				return r, s.refuseShard(err)
			}
		} else if s.be != nil && s.be.Pool != pl {
			return r, s.refuseShard(shard.Refuse(shard.ReasonTransaction,
				"this statement goes to datanode %s but the session's transaction (or pinned session) is on %s: cross-shard transactions are not supported",
				t.Node, s.be.Pool.Endpoint().Name))
		}
		var pkt []byte
		for attempt := 0; ; attempt++ {
			wasPinned := s.be != nil
			c.routed, c.pool = false, pl
			if err := s.acquire(c); err != nil {
				return r, s.sendError(err)
			}
			var err error
			if pkt, err = send(s.be, t); err == nil {
				break
			}
			var me *mysql.Error
			if errors.As(err, &me) {
				s.release()
				return r, s.sendError(err)
			}
			s.dropBackend(true)
			if s.lost != 0 {
				return r, s.endLostSession(err)
			}
			if wasPinned || attempt > 0 {
				return r, s.sendError(&backendReadError{err})
			}
			// A pooled connection that died while idle: nothing ran, so
			// once more on another.
		}
		return s.exec(c, pkt, mysql.ComStmtExecute, (*session).relayBinary, false)
	case plan.Merge == nil:
		run := func(c *backend.Conn, t shard.Target) (mysql.OK, error) {
			pkt, err := send(c, t)
			if err != nil {
				return mysql.OK{}, err
			}
			return c.ExecPacket(pkt)
		}
		if plan.Broadcast {
			return s.broadcastWrite(rt, plan, run)
		}
		return s.fanout(rt, plan, 0, run)
	default:
		return s.scatter(rt, plan, true, st.readOnly, 0, func(c *backend.Conn, t shard.Target) ([]byte, error) {
			return send(c, t)
		})
	}
}
