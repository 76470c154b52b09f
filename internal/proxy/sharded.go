package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/database-mesh/pisanix-go/internal/admin"
	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/backend"
	"github.com/database-mesh/pisanix-go/internal/proxy/route"
	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
	"github.com/database-mesh/pisanix-go/internal/proxy/shard/merge"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// This file runs statements on sharded tables (package shard plans them,
// package merge merges their results). A plan with one target runs on that
// datanode's connection like any statement (streamed, retried, pinned by a
// transaction). Several targets answering with OK packets (DML without a
// key, DDL) run one after the other and their counts add up. Several
// targets returning rows run at once on one connection each, and their rows
// are merged as they arrive.
//
// Transactions: on a sharding listener BEGIN is acknowledged and sent with
// the next statement, on that statement's datanode, so that a transaction
// whose statements all go to one datanode works whatever the balancer would
// have picked. A statement for another datanode, or for several shards,
// inside a transaction gets ERR 1235 (distributed transactions are not
// supported).

// getConn gets a connection from one pool, as pick does for one endpoint.
func getConn(pl *backend.Pool, v backend.Variant) (*backend.Conn, error) {
	c, err := pl.Get(context.Background(), v)
	if err != nil && errors.Is(err, backend.ErrConnect) {
		return nil, fmt.Errorf("%w: %w", errNoBackend, err)
	}
	return c, err
}

// beginOn starts the acknowledged transaction on c. On error c went back to
// its pool.
func (s *session) beginOn(c *backend.Conn) error {
	if rt := s.l.rt.Load(); rt != nil && rt.txMode != txSingle {
		// The transaction's branches start with its first statement on
		// each node (txBranchFor), not with whatever runs first.
		return nil
	}
	begin := s.pendingBegin
	s.pendingBegin = ""
	if _, err := c.Exec(begin); err != nil {
		var me *mysql.Error
		if !errors.As(err, &me) {
			c.MarkBroken()
		}
		c.Pool.Put(c)
		return err
	}
	return nil
}

// refuseShard answers a statement the sharding layer cannot run exactly.
// A 1235 counts as a refusal for the reason it carries (shard.Refusal;
// "other" without one).
func (s *session) refuseShard(err error) error {
	var me *mysql.Error
	if errors.As(err, &me) && me.Code == shard.ErrCodeNotSupported {
		s.l.metrics.ShardRefused(s.rt.name, shard.ReasonOf(err).String())
	}
	return s.sendError(err)
}

// shardsServer is the "server" label of statements that ran on several
// shards (pisa_proxy_sql_processed_total and its histogram).
const shardsServer = "shards"

var errShardTx = shard.Refuse(shard.ReasonTransaction,
	"a statement on several shards inside a transaction is not supported (distributed transactions are not); run it outside the transaction")

// shardQuery runs a COM_QUERY text on a sharding listener. handled is false
// when the text names no sharded table: the caller routes it as usual.
func (s *session) shardQuery(c *command, q []byte, readOnly bool) (handled bool, r result, err error) {
	rt, facts, maxRows := c.rt, c.facts, c.maxRows
	if readOnly && rt.txMode == txXA && s.txActive(rt) {
		// Only an XA transaction's commit asks (dispatch): the scan stays
		// off the path of statements outside one.
		c.pureRead = pureSelect(q)
	}
	if rt.txMode != txSingle {
		// Transactions with branches on several nodes (sharded_tx.go).
		if handled, err := s.txControl(c, q); handled {
			return true, r, err
		}
	} else if s.be == nil {
		kind := sqlparse.KindOther
		switch {
		case facts == nil:
			kind = txControl(q)
		case facts.ParseErr == nil && !facts.Multi:
			kind = facts.Kind
		}
		switch kind {
		case sqlparse.KindBegin:
			if s.pendingBegin == "" {
				s.pendingBegin = string(q)
				return true, r, s.writeStatusOK(mysql.StatusInTrans)
			}
		case sqlparse.KindCommit, sqlparse.KindRollback:
			if s.pendingBegin != "" {
				// Nothing ran: nothing to end.
				s.pendingBegin = ""
				return true, r, s.writeStatusOK(0)
			}
		}
	}
	var text string
	if len(q) > 0 {
		text = unsafe.String(&q[0], len(q))
	}
	if s.lastGenID != 0 && indexFold(q, "LAST_INSERT_ID") >= 0 {
		// The key the last INSERT generated (keygen.go), not the backend
		// connection's.
		if !lastInsertIDQuery.Match(q) {
			return true, r, s.refuseShard(shard.Refuse(shard.ReasonStatement,
				"after an INSERT with a generated key, LAST_INSERT_ID() is supported only as SELECT LAST_INSERT_ID()"))
		}
		if err := s.txUnsharded(c, q); err != nil {
			return true, r, s.refuseShard(err)
		}
		if err := s.routeFor(c, q); err != nil {
			return true, r, s.sendError(err)
		}
		s.shardScratch = append(append(s.shardScratch[:0], mysql.ComQuery), "SELECT CAST("+strconv.FormatUint(s.lastGenID, 10)+" AS UNSIGNED) AS `LAST_INSERT_ID()`"...)
		r, err = s.exec(c, s.shardScratch, mysql.ComQuery, (*session).relayText, true)
		return true, r, err
	}
	var genID int64
	if rt.shard.HasKeyGenerators() {
		if filled, first, ok := rt.shard.FillKeys(text, s.state.DB); ok {
			text, genID = filled, first
		}
	}
	plan, perr := rt.shard.Plan(text, s.state.DB)
	if perr != nil {
		s.l.metrics.ShardStatement(rt.name, "refused", 0)
		return true, r, s.refuseShard(perr)
	}
	s.l.metrics.ShardStatement(rt.name, plan.Kind.String(), len(plan.Targets))
	if plan.Kind == shard.RouteUnsharded {
		if err := s.txUnsharded(c, q); err != nil {
			return true, r, s.refuseShard(err)
		}
		if plan.Rename == nil {
			return false, r, nil
		}
		// SHOW TABLES: routed as usual, physical names shown as logical;
		// a plain one also lists the sharded tables whose physical tables
		// are on other nodes.
		var extra []string
		if plainShowTables.Match(q) {
			extra = s.existingLogicalTables(rt)
		}
		if err := s.routeFor(c, q); err != nil {
			return true, r, s.sendError(err)
		}
		s.shardScratch = append(append(s.shardScratch[:0], mysql.ComQuery), q...)
		r, err = s.exec(c, s.shardScratch, mysql.ComQuery, s.relayRenamed(plan.Rename, extra), readOnly)
		return true, r, err
	}
	c.route = "shard:" + plan.Kind.String()
	// Node groups: reads outside a transaction may go to a group's reader,
	// as the listener's read/write splitting rules say.
	read := readOnly && !s.inTransaction()
	if read && rt.rw != nil && rt.shardGroups != nil {
		// A read goes to readers when the rules for every node group it
		// reaches say so (rules may be limited to groups: node_group_name).
		for _, t := range plan.Targets {
			if rt.rw.RouteGroup(text, facts, false, t.Node).Target != route.TargetRead {
				read = false
				break
			}
		}
	}
	limit := ""
	if maxRows > 0 && facts != nil && facts.Kind == sqlparse.KindSelect {
		// Access control's row limit, on every shard and on the merge.
		limit = "SET STATEMENT sql_select_limit=" + strconv.FormatUint(maxRows, 10) + " FOR "
	}
	switch {
	case plan.Broadcast:
		r, err = s.broadcastWrite(rt, plan, func(c *backend.Conn, t shard.Target) (mysql.OK, error) { return c.Exec(t.SQL) })
	case genID != 0 && plan.Merge == nil:
		// Generated keys: the OK carries the first one as the last insert id.
		r, err = s.fanout(rt, plan, uint64(genID), func(c *backend.Conn, t shard.Target) (mysql.OK, error) { return c.Exec(t.SQL) })
		if err == nil && r.err == nil {
			s.lastGenID = uint64(genID)
		}
	case len(plan.Targets) == 1 && plan.Merge == nil:
		relay := func(s *session) (result, error) { return s.relayResults(false) }
		if plan.Rename != nil {
			relay = s.relayRenamed(plan.Rename, nil)
		}
		r, err = s.shardSingle(c, plan.Targets[0], limit, readOnly, read, relay)
	case plan.Merge == nil:
		r, err = s.fanout(rt, plan, 0, func(c *backend.Conn, t shard.Target) (mysql.OK, error) { return c.Exec(t.SQL) })
	default:
		r, err = s.scatter(rt, plan, false, read, maxRows, func(_ *backend.Conn, t shard.Target) ([]byte, error) {
			q := append(append(s.shardScratch[:0], mysql.ComQuery), limit...)
			s.shardScratch = append(q, t.SQL...)
			return s.shardScratch, nil
		})
	}
	return true, r, err
}

// writeStatusOK sends a locally made OK with the session's status plus
// extra flags.
func (s *session) writeStatusOK(extra uint16) error {
	status := extra
	if s.state.Vars["autocommit"] != "OFF" {
		status |= mysql.StatusAutocommit
	}
	s.scratch = mysql.AppendOK(s.scratch[:0], mysql.OKHeader, &mysql.OK{Status: status}, s.caps)
	if err := s.client.WritePacketFlush(s.scratch); err != nil {
		return fmt.Errorf("%w: %w", errClientWrite, err)
	}
	return nil
}

// shardSingle runs a one-shard statement on its datanode, streamed like any
// statement.
func (s *session) shardSingle(c *command, t shard.Target, prefix string, readOnly, read bool, relay relayFunc) (result, error) {
	pl := s.shardPool(c.rt, t.Node, read)
	if pl == nil {
		return result{}, s.sendError(fmt.Errorf("no pool for datanode %q", t.Node))
	}
	if s.txActive(c.rt) {
		if err := s.txUse(c.rt, pl); err != nil {
			return result{}, s.refuseShard(err)
		}
	} else if s.be != nil && s.be.Pool != pl {
		return result{}, s.refuseShard(shard.Refuse(shard.ReasonTransaction,
			"this statement goes to datanode %s but the session's transaction (or pinned session) is on %s: cross-shard transactions are not supported",
			t.Node, s.be.Pool.Endpoint().Name))
	}
	c.routed, c.pool = false, pl
	s.shardScratch = append(append(append(s.shardScratch[:0], mysql.ComQuery), prefix...), t.SQL...)
	return s.exec(c, s.shardScratch, mysql.ComQuery, relay, readOnly)
}

// inTransaction reports a session inside a transaction (open on its
// connection, acknowledged and not started yet, or implicit with
// autocommit off).
func (s *session) inTransaction() bool {
	return s.pins&pinTransaction != 0 || s.pendingBegin != "" || s.state.Vars["autocommit"] == "OFF" || s.stx != nil
}

// shardPool returns the pool a statement for datanode node runs on: for a
// read outside a transaction, a healthy reader of a node group; else the
// datanode's own pool (a group's readwrite node).
func (s *session) shardPool(rt *runtime, node string, read bool) *backend.Pool {
	if g := rt.shardGroups[node]; g != nil && read && s.be == nil && !s.inTransaction() {
		if pl := g.reader(); pl != nil {
			return pl
		}
	}
	return rt.shardPools[node]
}

// shardConns takes one connection per target, synced to the session.
// Inside a transaction with branches they are the branches' connections
// (see isBranch).
func (s *session) shardConns(rt *runtime, targets []shard.Target, read bool) ([]*backend.Conn, error) {
	pools := make([]*backend.Pool, len(targets))
	for i, t := range targets {
		pl := s.shardPool(rt, t.Node, read)
		if pl == nil {
			return nil, fmt.Errorf("no pool for datanode %q", t.Node)
		}
		pools[i] = pl
	}
	if s.txActive(rt) {
		return s.txConns(rt, pools)
	}
	return s.shardConnsOf(rt, pools)
}

func putAll(conns []*backend.Conn, broken bool) {
	for _, c := range conns {
		if c == nil {
			continue
		}
		if broken {
			c.MarkBroken()
		}
		c.Pool.Put(c)
	}
}

// fanout runs a statement whose targets answer with OK packets (DML
// without a usable key, DDL on a logical table) on every target in turn
// with run, and answers one OK with the affected rows added up. A failing
// target stops the fan-out; the error names it and the targets that already
// ran (there is no distributed transaction to undo them).
// lastID, when not 0, is the last insert id the OK reports (generated keys).
func (s *session) fanout(rt *runtime, plan *shard.Plan, lastID uint64, run func(*backend.Conn, shard.Target) (mysql.OK, error)) (result, error) {
	var r result
	inTx := s.txActive(rt)
	if !inTx && (s.be != nil || s.inTransaction()) {
		// With autocommit off each shard would start a transaction that
		// nothing commits.
		return r, s.refuseShard(errShardTx)
	}
	cm := s.l.metrics.Command(rt.name, mysql.CommandName(mysql.ComQuery), shardsServer)
	start := cm.Begin()
	defer cm.End(start)
	// One target at a time, on one connection per datanode (taken again
	// for each target: several physical tables on one node never need
	// more than one of its connections).
	var total mysql.OK
	for i, t := range plan.Targets {
		conns, err := s.shardConns(rt, plan.Targets[i:i+1], false)
		var ok mysql.OK
		if err == nil {
			c := conns[0]
			s.active.Store(c)
			ok, err = run(c, t)
			s.active.Store(nil)
			var me *mysql.Error
			if inTx {
				// A transaction's branch stays with the transaction.
				markIfBroken(c, err)
			} else {
				putAll(conns, err != nil && !errors.As(err, &me) && !c.Broken())
			}
		}
		if err != nil && inTx && s.stx != nil && (i > 0 || s.stx.failed != nil || (len(conns) > 0 && conns[0].Broken())) {
			// Other shards ran it inside the transaction: it can only
			// roll back now.
			r.err = toMySQLError(s.txFail(err))
			return r, s.sendError(r.err)
		}
		if err != nil {
			done := make([]string, 0, i)
			for _, d := range plan.Targets[:i] {
				done = append(done, d.Schema+"."+d.Table)
			}
			applied := "no shard had run it"
			if len(done) > 0 {
				applied = "it already ran on " + strings.Join(done, ", ")
			}
			var me *mysql.Error
			if errors.As(err, &me) {
				r.err = mysql.NewError(me.Code, me.SQLState, "%s (on %s.%s at datanode %s; %s)", me.Message, t.Schema, t.Table, t.Node, applied)
				return r, s.sendError(r.err)
			}
			return r, s.sendError(&backendReadError{fmt.Errorf("%s.%s at datanode %s: %w; %s", t.Schema, t.Table, t.Node, err, applied)})
		}
		total.AffectedRows += ok.AffectedRows
		total.Warnings += ok.Warnings
		if total.LastInsertID == 0 {
			total.LastInsertID = ok.LastInsertID
		}
		total.Status = ok.Status
	}
	if lastID != 0 {
		total.LastInsertID = lastID
	}
	// DDL may have changed column collations.
	rt.collations.Clear()
	total.Status &^= mysql.StatusSessionStateChange | mysql.StatusMoreResultsExists
	r.affected, r.status = total.AffectedRows, total.Status
	s.scratch = mysql.AppendOK(s.scratch[:0], mysql.OKHeader, &total, s.caps)
	if err := s.client.WritePacketFlush(s.scratch); err != nil {
		return r, fmt.Errorf("%w: %w", errClientWrite, err)
	}
	return r, nil
}

// ShardRoute explains how listener would route sql in database db (the
// listener's default database when db is empty): the admin API's
// GET /sharding/route. listener may be empty when one listener shards.
func (p *Proxy) ShardRoute(listener, sql, db string) (any, error) {
	p.mu.Lock()
	var rt *runtime
	var names []string
	for name, l := range p.listeners {
		r := l.rt.Load()
		if r == nil || r.shard == nil {
			continue
		}
		names = append(names, name)
		if name == listener || listener == "" {
			rt = r
		}
	}
	p.mu.Unlock()
	switch {
	case listener == "" && len(names) > 1:
		return nil, fmt.Errorf("%w: several listeners shard (%s): name one with listener=", admin.ErrBadRequest, strings.Join(names, ", "))
	case rt == nil && listener != "":
		return nil, fmt.Errorf("%w: no listener %q with sharding rules", admin.ErrNotFound, listener)
	case rt == nil:
		return nil, fmt.Errorf("%w: no listener has sharding rules", admin.ErrNotFound)
	}
	if db == "" {
		db = rt.db
	}
	return rt.shard.Explain(sql, db), nil
}

// lastInsertIDQuery matches SELECT LAST_INSERT_ID() alone.
var lastInsertIDQuery = regexp.MustCompile(`(?is)^\s*SELECT\s+LAST_INSERT_ID\s*\(\s*\)\s*;?\s*$`)

// plainShowTables matches SHOW [FULL] TABLES without FROM, LIKE or WHERE.
var plainShowTables = regexp.MustCompile(`(?is)^\s*SHOW\s+(FULL\s+)?TABLES\s*;?\s*$`)

// relayRenamed relays a text result set whose values may name physical
// tables (SHOW TABLES, SHOW CREATE TABLE, SHOW INDEX on a sharded table):
// a value equal to a physical name becomes the logical name and CREATE
// TABLE text names the logical table. For SHOW TABLES (extra not nil) a
// logical table is listed once, the names in extra are added when the
// node did not list them, and the rows are sorted (the list is small and
// buffered).
func (s *session) relayRenamed(rename map[string]string, extra []string) relayFunc {
	tables := extra != nil
	return func(s *session) (result, error) {
		var r result
		p, err := s.readBackend()
		if err != nil {
			return r, err
		}
		switch p[0] {
		case mysql.OKHeader:
			return r, s.relayOK(p, &r)
		case mysql.ERRHeader:
			return r, s.relayErr(p, &r)
		}
		cols, _, _, err := mysql.ReadLenEncInt(p)
		if err != nil {
			return r, &backendReadError{fmt.Errorf("bad column count: %w", err)}
		}
		if err := s.writeClient(p); err != nil {
			return r, err
		}
		r.sent = true
		if err := s.relayColumnDefs(cols, &r, false, nil); err != nil || r.err != nil {
			return r, err
		}
		type row struct {
			name string
			data []byte
		}
		var rows []row
		seen := map[string]bool{}
		for {
			p, err := s.readBackend()
			if err != nil {
				return r, err
			}
			if p[0] == mysql.ERRHeader {
				return r, s.relayErr(p, &r)
			}
			if mysql.IsEOF(p) {
				if tables {
					for _, name := range extra {
						if seen[name] {
							continue
						}
						b := mysql.AppendLenEncString(nil, name)
						if cols > 1 {
							b = mysql.AppendLenEncString(b, "BASE TABLE")
						}
						rows = append(rows, row{name, b})
					}
					sort.SliceStable(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
					for _, rw := range rows {
						if err := s.writeClient(rw.data); err != nil {
							return r, err
						}
						r.rows++
					}
				}
				return r, s.writeEOF(p, &r, true)
			}
			data, first, name, ok := renameRow(p, int(cols), rename)
			if !ok {
				return r, &backendReadError{errors.New("bad row")}
			}
			if !tables {
				if err := s.writeClient(data); err != nil {
					return r, err
				}
				r.rows++
				continue
			}
			if first != "" {
				name = first
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			rows = append(rows, row{name, data})
		}
	}
}

// renameRow rewrites a text row for relayRenamed. first is the logical
// name its first value was renamed to ("" when it was not), value0 its
// first value as sent.
func renameRow(p []byte, cols int, rename map[string]string) (row []byte, first, value0 string, ok bool) {
	out := make([]byte, 0, len(p))
	pos := 0
	for i := 0; i < cols; i++ {
		if pos < len(p) && p[pos] == 0xfb {
			out = append(out, 0xfb)
			pos++
			continue
		}
		if pos >= len(p) {
			return nil, "", "", false
		}
		v, _, n, err := mysql.ReadLenEncBytes(p[pos:])
		if err != nil {
			return nil, "", "", false
		}
		pos += n
		val := string(v)
		if i == 0 {
			value0 = val
		}
		if logical, found := rename[val]; found {
			val = logical
			if i == 0 {
				first = logical
			}
		} else if rest, isCreate := strings.CutPrefix(val, "CREATE TABLE `"); isCreate {
			if name, tail, closed := strings.Cut(rest, "`"); closed {
				if logical, found := rename[name]; found {
					val = "CREATE TABLE `" + logical + "`" + tail
				}
			}
		}
		out = mysql.AppendLenEncString(out, val)
	}
	return out, first, value0, true
}

// Result column definitions name the connection's collation for every
// string column (MariaDB reports the default collation of
// character_set_results), while the server compared the column's own. So
// before merging, string columns taken from a table get that table
// column's collation from information_schema, cached per physical table
// (a DDL through the proxy clears the cache). A column whose character set
// differs from the result's would be compared on converted bytes: it gets
// an id the merger does not know, so merging that needs to compare it is
// refused (1235) rather than ordered wrongly. Expressions keep the reported
// collation (the connection's, which is what MariaDB uses for most
// expressions over literals).

// colCollation is a table column's collation.
type colCollation struct {
	id      uint16
	charset string
}

// collationEntry is a cached table's column collations. Entries are read
// again after collationTTL, so that an ALTER made on the backend directly
// (not through the proxy, which clears the cache) is seen.
type collationEntry struct {
	cols map[string]colCollation
	at   time.Time
}

const collationTTL = time.Minute

// unknownCollation makes the merger refuse to compare a column.
const unknownCollation uint16 = 0xffff

// tableCollations returns the collations of a physical table's string
// columns, reading them once from the datanode.
func (s *session) tableCollations(rt *runtime, pl *backend.Pool, schema, table string) map[string]colCollation {
	key := pl.Endpoint().Name + "\x00" + schema + "\x00" + table
	if v, ok := rt.collations.Load(key); ok {
		if e := v.(collationEntry); time.Since(e.at) < collationTTL {
			return e.cols
		}
	}
	c, err := getConn(pl, backend.Variant{})
	if err != nil {
		return nil
	}
	defer c.Pool.Put(c)
	d := pl.Defaults()
	if d == nil {
		return nil
	}
	byName := make(map[string]colCollation, len(d.Collations))
	for id, co := range d.Collations {
		byName[co.Name] = colCollation{id: uint16(id), charset: co.Charset}
	}
	out := map[string]colCollation{}
	q := "SELECT COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = " +
		sqlString(schema) + " AND TABLE_NAME = " + sqlString(table) + " AND COLLATION_NAME IS NOT NULL"
	if err := c.QueryRows(q, func(row []string) {
		if len(row) == 2 {
			co, ok := byName[row[1]]
			if !ok {
				co = colCollation{id: unknownCollation}
			}
			out[strings.ToLower(row[0])] = co
		}
	}); err != nil {
		return nil
	}
	rt.collations.Store(key, collationEntry{cols: out, at: time.Now()})
	return out
}

// sqlString quotes s as an SQL string literal.
func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

// fixCollations sets the real collation of string columns taken from the
// physical table t (see above).
// It returns, by column index, why a column cannot be compared: the
// message of the refusal a merge that compares it gets.
func (s *session) fixCollations(pl *backend.Pool, table map[string]colCollation, t shard.Target, defs [][]byte, cols []merge.Column) (why map[int]string) {
	if table == nil {
		return nil
	}
	d := pl.Defaults()
	for i := range cols {
		c := &cols[i]
		if !isTextColumn(c.Type) || c.Flags&merge.FlagBinary != 0 || c.Collation == merge.CollationBinary {
			continue
		}
		orgTable, orgName, ok := columnOrigin(defs[i])
		if ok && orgName != "" && orgTable != "" && orgTable != t.Table {
			// Another table's column (a broadcast table joined): its
			// collation is not looked up, so the merge must not compare it.
			c.Collation = unknownCollation
			if why == nil {
				why = map[int]string{}
			}
			why[i] = fmt.Sprintf("column %s of joined table %s cannot be compared across shards (ORDER BY, GROUP BY, DISTINCT, MIN/MAX of it on several shards)", orgName, orgTable)
			continue
		}
		if !ok || orgName == "" || orgTable != t.Table {
			continue
		}
		real, ok := table[strings.ToLower(orgName)]
		if !ok {
			continue
		}
		reported := ""
		if d != nil && c.Collation <= 255 {
			reported = d.Collations[uint8(c.Collation)].Charset
		}
		if real.id != unknownCollation && real.charset == reported {
			c.Collation = real.id
		} else if real.id != c.Collation {
			c.Collation = unknownCollation
			if why == nil {
				why = map[int]string{}
			}
			why[i] = fmt.Sprintf("column %s is %s but the result is sent in %s, so the shards' values cannot be compared "+
				"as the server compares them; use SET NAMES %s for this statement", orgName, real.charset, reported, real.charset)
		}
	}
	return why
}

func isTextColumn(t byte) bool {
	switch t {
	case merge.TypeVarchar, merge.TypeVarString, merge.TypeString, merge.TypeTinyBlob,
		merge.TypeMediumBlob, merge.TypeLongBlob, merge.TypeBlob:
		return true
	}
	return false
}

// columnOrigin reads org_table and org_name of a column definition.
func columnOrigin(def []byte) (orgTable, orgName string, ok bool) {
	var f [6][]byte
	pos := 0
	for i := range f {
		v, _, n, err := mysql.ReadLenEncBytes(def[pos:])
		if err != nil {
			return "", "", false
		}
		f[i] = v
		pos += n
	}
	return string(f[3]), string(f[5]), true
}

// fieldListSharded answers COM_FIELD_LIST (clients list a table's columns
// for completion) on a sharding listener: a logical table's columns come
// from its first physical table.
func (s *session) fieldListSharded(rt *runtime, p []byte) error {
	table, wild, _ := bytes.Cut(p[1:], []byte{0})
	plan, err := rt.shard.Plan("SHOW COLUMNS FROM `"+strings.ReplaceAll(string(table), "`", "``")+"`", s.state.DB)
	if err != nil || plan.Kind == shard.RouteUnsharded || len(plan.Targets) != 1 {
		return s.forward(p, mysql.ComFieldList, (*session).relayFieldList)
	}
	t := plan.Targets[0]
	pl := rt.shardPools[t.Node]
	if s.be != nil && s.be.Pool != pl {
		return s.forward(p, mysql.ComFieldList, (*session).relayFieldList)
	}
	s.cmd.pool = pl
	s.shardScratch = append(append(append(append(s.shardScratch[:0], mysql.ComFieldList), t.Table...), 0), wild...)
	return s.forward(s.shardScratch, mysql.ComFieldList, (*session).relayFieldList)
}

// existingLogicalTables returns the sharded tables of the session's
// database whose first physical table exists (for SHOW TABLES).
func (s *session) existingLogicalTables(rt *runtime) []string {
	out := []string{}
	for _, name := range rt.shard.LogicalTables(s.state.DB) {
		plan, err := rt.shard.Plan("SHOW CREATE TABLE `"+strings.ReplaceAll(name, "`", "``")+"`", s.state.DB)
		if err != nil || len(plan.Targets) != 1 {
			continue
		}
		t := plan.Targets[0]
		pl := rt.shardPools[t.Node]
		c := s.be
		if c == nil || c.Pool != pl {
			var err error
			if c, err = getConn(pl, backend.Variant{}); err != nil {
				continue
			}
		}
		found := false
		_ = c.QueryRows("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = "+sqlString(t.Schema)+
			" AND TABLE_NAME = "+sqlString(t.Table), func([]string) { found = true })
		if c != s.be {
			c.Pool.Put(c)
		}
		if found {
			out = append(out, name)
		}
	}
	return out
}

// txControl classifies a COM_QUERY text that is one plain transaction
// statement — BEGIN [WORK], START TRANSACTION [characteristics], COMMIT
// [WORK], ROLLBACK [WORK] — without the parser (a sharding listener without
// governance or read/write splitting parses statements only in the
// planner). Anything else, including COMMIT AND CHAIN, ROLLBACK TO and
// several statements, is sqlparse.KindOther.
func txControl(q []byte) sqlparse.Kind {
	i := skipSpaceAndComments(q)
	rest := bytes.TrimSpace(bytes.TrimRight(bytes.TrimSpace(q[i:]), ";"))
	if bytes.ContainsAny(rest, ";'\"`#") || bytes.Contains(rest, []byte("/*")) || bytes.Contains(rest, []byte("--")) {
		return sqlparse.KindOther
	}
	words := strings.Fields(strings.ToUpper(string(rest)))
	plain := func(n int) bool { return len(words) == n || (len(words) == n+1 && words[n] == "WORK") }
	switch {
	case len(words) == 0:
	case words[0] == "BEGIN" && plain(1):
		return sqlparse.KindBegin
	case words[0] == "START" && len(words) >= 2 && words[1] == "TRANSACTION":
		return sqlparse.KindBegin
	case words[0] == "COMMIT" && plain(1):
		return sqlparse.KindCommit
	case words[0] == "ROLLBACK" && plain(1):
		return sqlparse.KindRollback
	}
	return sqlparse.KindOther
}

// compared reports whether merging by spec compares the values of shard
// column i (sorting, grouping, HAVING, MIN/MAX, DISTINCT).
func compared(spec *shard.Merge, i int) bool {
	for _, k := range spec.OrderBy {
		if k.Column == i {
			return true
		}
	}
	for _, k := range spec.Resort {
		if k.Column == i {
			return true
		}
	}
	for _, g := range spec.GroupBy {
		if g == i {
			return true
		}
	}
	for _, c := range spec.Having {
		if c.Column == i {
			return true
		}
	}
	for _, a := range spec.Aggregates {
		if a.Column == i && (a.Kind == shard.AggMin || a.Kind == shard.AggMax) {
			return true
		}
	}
	return spec.Distinct && i < spec.Columns
}
