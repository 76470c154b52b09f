package backend

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// trackingSQL turns on the session trackers the proxy relies on: every
// system variable change, schema changes and a flag for any other state
// change (user variables, temporary tables, prepared statements…).
const trackingSQL = "SET SESSION session_track_system_variables='*', session_track_schema=ON, session_track_state_change=ON"

// unknownValue marks a recorded variable whose server value is unknown (a SET
// that failed): it never equals a wanted value, so the next Sync sets it.
const unknownValue = "\x00unknown"

// connectAttrs is the lenenc key/value block sent in every handshake.
var connectAttrs = func() []byte {
	var b []byte
	for _, kv := range [][2]string{{"_client_name", "pisa-proxy"}, {"program_name", "pisa-proxy"}} {
		b = mysql.AppendLenEncString(b, kv[0])
		b = mysql.AppendLenEncString(b, kv[1])
	}
	return b
}()

// attrsFor returns the attributes to send when dialing for v.
func attrsFor(v Variant) []byte {
	if len(v.ClientAttrs) == 0 {
		return connectAttrs
	}
	b := append([]byte(nil), v.ClientAttrs...)
	b = mysql.AppendLenEncString(b, "pisa_proxy")
	return mysql.AppendLenEncString(b, "1")
}

var errBroken = errors.New("backend connection is broken")

// Conn is one backend connection. It records the session state as applied on
// the server so that Sync only sends what differs. A Conn is used by one
// goroutine at a time.
type Conn struct {
	*mysql.Conn
	// Info comes from the handshake; Info.ConnectionID is the backend thread id.
	Info *mysql.ServerInfo
	Pool *Pool

	// Session state as applied on the server.
	db       string
	vars     map[string]string
	multi    bool
	status   uint16 // status flags of the last OK/EOF seen
	tracking bool   // CLIENT_SESSION_TRACK negotiated and trackers enabled
	// baseline holds the character set variables the server gave c in its
	// handshake (and restores on COM_RESET_CONNECTION).
	baseline map[string]string

	// Sync fast path: the state c was last synced to, and its Gen then.
	syncedTo  *SessionState
	syncedGen uint64

	dirty, broken bool
	pooled        bool // in the pool's idle list (guarded by Pool.mu)
	variant       Variant
	created       time.Time
	lastUsed      time.Time // when it was last returned to the pool

	cmd     []byte   // reusable command buffer
	scratch []string // reusable list of variable names for Sync

	// stmts are the statements the proxy keeps prepared on c (clients'
	// statements and those on sharded tables), least recently used
	// evicted: the server keeps them until c is reset or closed.
	stmts stmtCache
}

// MarkBroken marks c unusable: Put closes it.
func (c *Conn) MarkBroken() { c.broken = true }

// Broken reports whether c was marked broken (by MarkBroken or an I/O error).
func (c *Conn) Broken() bool { return c.broken }

// MarkDirty records that c holds session state that cannot be replayed
// (user variables, temporary tables…): Put resets it before reuse.
func (c *Conn) MarkDirty() { c.dirty = true }

// Dirty reports whether c was marked dirty.
func (c *Conn) Dirty() bool { return c.dirty }

// DB returns the current database as recorded.
func (c *Conn) DB() string { return c.db }

// Variant returns the capability variant c was dialed with.
func (c *Conn) Variant() Variant { return c.variant }

// Alive is a cheap liveness check without a round trip: a non-blocking peek
// on the socket. A closed socket, a socket error or unexpected pending data
// (e.g. an error packet sent by a server that killed the connection) mean
// dead.
func (c *Conn) Alive() bool {
	if c.broken || c.Buffered() > 0 {
		return false
	}
	return peekAlive(c.TCPConn())
}

// fail marks c broken after an I/O or protocol error.
func (c *Conn) fail(err error) error {
	c.broken = true
	return fmt.Errorf("backend connection %d: %w", c.Info.ConnectionID, err)
}

// writeCommand starts a new command and sends it.
func (c *Conn) writeCommand(cmd byte, arg string) error {
	if c.broken {
		return errBroken
	}
	c.cmd = append(append(c.cmd[:0], cmd), arg...)
	c.ResetSeq()
	if err := c.WritePacketFlush(c.cmd); err != nil {
		return c.fail(err)
	}
	return nil
}

// Exec runs sql with COM_QUERY and reads and discards the whole response,
// multi-results included, returning the final OK (for a result set: an OK
// with the status and warnings of its closing EOF). Session-state changes
// reported by the server are applied to c's recorded state. An ERR from the
// server is returned as *mysql.Error and c stays usable; other errors mark c
// broken.
func (c *Conn) Exec(sql string) (mysql.OK, error) {
	ok, err := c.exec(sql, true)
	if err != nil {
		return mysql.OK{}, err
	}
	// The slices alias the read buffer; give the caller its own copies.
	ok.Info = slices.Clone(ok.Info)
	ok.SessionState = slices.Clone(ok.SessionState)
	return ok, nil
}

// ExecPipelined runs the statements with one COM_QUERY each, sent together
// and answered in order: one round trip for all (backend connections are
// never compressed, where the server might read them otherwise). It returns
// the first error; the server runs every command it receives, so the
// statements after one that failed with an ERR still ran (XA PREPARE after
// a failed XA END fails too). An error other than an ERR marks c broken and
// ends the reading.
func (c *Conn) ExecPipelined(sqls ...string) error {
	if err := c.SendPipelined(sqls...); err != nil {
		return err
	}
	return c.ReadPipelined(len(sqls))
}

// SendPipelined is the first half of ExecPipelined: it sends the statements
// and reads nothing. ReadPipelined(len(sqls)) must follow before c is used
// again; meanwhile other connections can be sent theirs, so that several
// servers work at once without a goroutine each.
func (c *Conn) SendPipelined(sqls ...string) error {
	if c.broken {
		return errBroken
	}
	for _, q := range sqls {
		c.cmd = append(append(c.cmd[:0], mysql.ComQuery), q...)
		c.ResetSeq()
		if err := c.WritePacket(c.cmd); err != nil {
			return c.fail(err)
		}
	}
	if err := c.Flush(); err != nil {
		return c.fail(err)
	}
	return nil
}

// ReadPipelined reads the answers of the n statements SendPipelined sent,
// returning the first error (see ExecPipelined).
func (c *Conn) ReadPipelined(n int) error {
	var first error
	for range n {
		c.SetSeq(1) // each answer follows its command's packet 0
		if _, err := c.readResult(true); err != nil {
			var me *mysql.Error
			if !errors.As(err, &me) {
				return err
			}
			if first == nil {
				first = err
			}
		}
	}
	return first
}

// exec is Exec without copying; observe says whether session-state changes
// are applied to c's recorded state (Sync records its own results).
func (c *Conn) exec(sql string, observe bool) (mysql.OK, error) {
	if err := c.writeCommand(mysql.ComQuery, sql); err != nil {
		return mysql.OK{}, err
	}
	return c.readResult(observe)
}

// readResult reads a command's response up to its final OK, EOF or ERR.
func (c *Conn) readResult(observe bool) (mysql.OK, error) {
	for {
		p, err := c.ReadPacket()
		if err != nil {
			return mysql.OK{}, c.fail(err)
		}
		if len(p) == 0 {
			return mysql.OK{}, c.fail(mysql.ErrMalformed)
		}
		switch p[0] {
		case mysql.OKHeader:
			ok, err := mysql.ParseOK(p, c.Info.Capabilities)
			if err != nil {
				return ok, c.fail(err)
			}
			c.status = ok.Status
			if observe {
				c.ObserveOK(&ok)
			}
			if ok.Status&mysql.StatusMoreResultsExists != 0 {
				continue
			}
			return ok, nil
		case mysql.ERRHeader:
			if isProgress(p) {
				continue
			}
			return mysql.OK{}, mysql.ParseErr(p)
		case mysql.LocalInfileHeader:
			// LOAD DATA LOCAL: we have no file to send; an empty packet
			// ends the transfer and the server answers with OK or ERR.
			if err := c.WritePacketFlush(nil); err != nil {
				return mysql.OK{}, c.fail(err)
			}
		default:
			ok, err := c.skipResultSet(p)
			if err != nil {
				return ok, err
			}
			if ok.Status&mysql.StatusMoreResultsExists != 0 {
				continue
			}
			return ok, nil
		}
	}
}

// isProgress reports a MariaDB progress report (an ERR packet with code
// 0xffff, sent only to clients that asked for progress reports).
func isProgress(p []byte) bool { return len(p) >= 3 && p[1] == 0xff && p[2] == 0xff }

// skipResultSet reads and discards a text result set whose column-count
// packet is first.
func (c *Conn) skipResultSet(first []byte) (mysql.OK, error) {
	return c.readResultSet(first, nil)
}

// readResultSet reads a text result set up to its closing EOF, calling row
// for each row (nil = discard). It returns an OK holding the closing EOF's
// status and warnings.
func (c *Conn) readResultSet(first []byte, row func([]byte) error) (mysql.OK, error) {
	n, _, _, err := mysql.ReadLenEncInt(first)
	if err != nil {
		return mysql.OK{}, c.fail(err)
	}
	for i := uint64(0); i < n; i++ { // column definitions
		if _, err := c.ReadPacket(); err != nil {
			return mysql.OK{}, c.fail(err)
		}
	}
	p, err := c.ReadPacket()
	if err != nil {
		return mysql.OK{}, c.fail(err)
	}
	if !mysql.IsEOF(p) {
		return mysql.OK{}, c.fail(fmt.Errorf("expected EOF after column definitions, got 0x%02x", p[0]))
	}
	for {
		p, err := c.ReadPacket()
		if err != nil {
			return mysql.OK{}, c.fail(err)
		}
		switch {
		case mysql.IsEOF(p):
			var ok mysql.OK
			ok.Warnings, ok.Status = mysql.ParseEOF(p)
			c.status = ok.Status
			return ok, nil
		case len(p) > 0 && p[0] == mysql.ERRHeader:
			return mysql.OK{}, mysql.ParseErr(p)
		}
		if row != nil {
			if err := row(p); err != nil {
				return mysql.OK{}, err
			}
		}
	}
}

// queryRow runs sql and returns the first row of its first result set as
// strings (NULL → ""), draining everything else. nil when there is no row.
func (c *Conn) queryRow(sql string) ([]string, error) {
	if err := c.writeCommand(mysql.ComQuery, sql); err != nil {
		return nil, err
	}
	p, err := c.ReadPacket()
	if err != nil {
		return nil, c.fail(err)
	}
	if len(p) == 0 {
		return nil, c.fail(mysql.ErrMalformed)
	}
	switch p[0] {
	case mysql.ERRHeader:
		return nil, mysql.ParseErr(p)
	case mysql.OKHeader:
		ok, err := mysql.ParseOK(p, c.Info.Capabilities)
		if err != nil {
			return nil, c.fail(err)
		}
		if ok.Status&mysql.StatusMoreResultsExists != 0 {
			_, err = c.readResult(false)
		}
		return nil, err
	}
	var vals []string
	ok, err := c.readResultSet(p, func(row []byte) error {
		if vals != nil {
			return nil
		}
		vals = []string{}
		for len(row) > 0 {
			v, _, n, err := mysql.ReadLenEncBytes(row)
			if err != nil {
				return c.fail(err)
			}
			vals = append(vals, string(v))
			row = row[n:]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if ok.Status&mysql.StatusMoreResultsExists != 0 {
		if _, err := c.readResult(false); err != nil {
			return vals, err
		}
	}
	return vals, nil
}

// ObserveOK applies the session-state block of an OK relayed to the client
// (schema, system variables) to c's recorded state. A change of a variable
// that is never replayed but leaves state behind (insert_id, session_track_*…)
// marks c dirty, so that it is reset before reuse.
func (c *Conn) ObserveOK(ok *mysql.OK) {
	c.status = ok.Status
	if ok.Status&mysql.StatusSessionStateChange == 0 || len(ok.SessionState) == 0 {
		return
	}
	var seen uint8
	_ = mysql.ParseSessionState(ok.SessionState, func(ch mysql.SessionChange) {
		switch ch.Type {
		case mysql.SessionTrackSystemVariables:
			if ignoredVar(ch.Name) {
				if clientOnlyVar(ch.Name) {
					c.dirty = true
				}
				return
			}
			seen |= charsetBit(ch.Name)
			if old, ok := c.vars[ch.Name]; !ok || old != ch.Value {
				c.vars[ch.Name] = ch.Value
				c.syncedTo = nil
			}
		case mysql.SessionTrackSchema:
			if c.db != ch.Name {
				c.db = ch.Name
				c.syncedTo = nil
			}
		}
	})
	if seen != 0 && dropImpliedCollations(c.vars, seen) {
		c.syncedTo = nil
	}
}

// Sync makes the server session match want: COM_INIT_DB when the database
// differs, one SET for the system variables that differ (variables c has and
// want has not go back to DEFAULT), COM_SET_OPTION when multi-statements
// differ. It does nothing when c was last synced to want at the same Gen.
// An ERR from the server is returned as *mysql.Error and c stays usable.
func (c *Conn) Sync(want *SessionState) error {
	if c.syncedTo == want && c.syncedGen == want.Gen {
		return nil
	}
	c.syncedTo = nil
	if c.broken {
		return errBroken
	}
	if want.DB != "" && want.DB != c.db {
		if err := c.initDB(want.DB); err != nil {
			return err
		}
		c.db = want.DB
	}
	if err := c.syncVars(want.Vars); err != nil {
		return err
	}
	if want.MultiStatements != c.multi {
		if err := c.setMultiStatements(want.MultiStatements); err != nil {
			return err
		}
	}
	c.syncedTo, c.syncedGen = want, want.Gen
	return nil
}

// initDB sends COM_INIT_DB db and reads its answer (an ERR is returned as
// *mysql.Error, c usable).
func (c *Conn) initDB(db string) error {
	if err := c.writeCommand(mysql.ComInitDB, db); err != nil {
		return err
	}
	_, err := c.readResult(false)
	return err
}

// syncVars sends one SET for every variable that differs.
func (c *Conn) syncVars(want map[string]string) error {
	names := c.scratch[:0]
	for name, v := range want {
		if cur, ok := c.vars[name]; (!ok || cur != v) && validVarName(name) {
			names = append(names, name)
		}
	}
	for name := range c.vars {
		if _, ok := want[name]; !ok {
			names = append(names, name)
		}
	}
	// A collation going back to DEFAULT would also reset its character set
	// to the server default: when a character set is wanted, setting it
	// instead gives the wanted character set with its default collation.
	for _, p := range charsetPairs {
		if i := slices.Index(names, p[1]); i >= 0 {
			if _, keep := want[p[1]]; keep {
				continue
			}
			if _, ok := want[p[0]]; ok {
				names = slices.Delete(names, i, i+1)
				if !slices.Contains(names, p[0]) {
					names = append(names, p[0])
				}
			}
		}
	}
	c.scratch = names[:0]
	if len(names) == 0 {
		return nil
	}
	// Sorted: deterministic, and character_set_* comes before collation_*
	// (setting a character set resets the matching collation).
	slices.Sort(names)
	noBackslash := c.status&mysql.StatusNoBackslashEscapes != 0
	q := append(c.cmd[:0], mysql.ComQuery)
	q = append(q, "SET "...)
	for i, name := range names {
		if i > 0 {
			q = append(q, ", "...)
		}
		q = append(q, "@@SESSION."...)
		q = append(q, name...)
		q = append(q, " = "...)
		if v, ok := want[name]; ok {
			q = appendValue(q, name, v, noBackslash)
		} else {
			q = append(q, "DEFAULT"...)
		}
	}
	c.cmd = q
	c.ResetSeq()
	if err := c.WritePacketFlush(q); err != nil {
		return c.fail(err)
	}
	if _, err := c.readResult(false); err != nil {
		// A failed SET may have applied some assignments: make every
		// variable involved differ from anything wanted.
		for _, name := range names {
			c.vars[name] = unknownValue
		}
		return err
	}
	clear(c.vars)
	for name, v := range want {
		if validVarName(name) {
			c.vars[name] = v
		}
	}
	return nil
}

// setMultiStatements sends COM_SET_OPTION (the answer is an EOF, or an OK
// for clients with CLIENT_DEPRECATE_EOF, or ERR).
func (c *Conn) setMultiStatements(on bool) error {
	opt := byte(1) // MYSQL_OPTION_MULTI_STATEMENTS_OFF
	if on {
		opt = 0
	}
	c.cmd = append(c.cmd[:0], mysql.ComSetOption, opt, 0)
	c.ResetSeq()
	if err := c.WritePacketFlush(c.cmd); err != nil {
		return c.fail(err)
	}
	p, err := c.ReadPacket()
	if err != nil {
		return c.fail(err)
	}
	switch {
	case mysql.IsEOF(p):
		_, c.status = mysql.ParseEOF(p)
	case len(p) > 0 && p[0] == mysql.OKHeader:
		ok, err := mysql.ParseOK(p, c.Info.Capabilities)
		if err != nil {
			return c.fail(err)
		}
		c.status = ok.Status
	case len(p) > 0 && p[0] == mysql.ERRHeader:
		return mysql.ParseErr(p)
	default:
		return c.fail(mysql.ErrMalformed)
	}
	c.multi = on
	return nil
}

// validVarName accepts plain identifiers, the only names servers report.
func validVarName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		if !(ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			return false
		}
	}
	return true
}

// appendValue appends v as an SQL literal for variable name: numbers as they
// are, NULL for an empty character_set_results, otherwise a quoted string.
// Quotes are doubled (valid in every sql_mode); backslashes are doubled
// unless the session has NO_BACKSLASH_ESCAPES.
func appendValue(b []byte, name, v string, noBackslash bool) []byte {
	if name == "character_set_results" && (v == "" || v == "NULL") {
		return append(b, "NULL"...)
	}
	if isNumeric(v) {
		return append(b, v...)
	}
	b = append(b, '\'')
	for i := 0; i < len(v); i++ {
		switch ch := v[i]; ch {
		case '\'':
			b = append(b, '\'', '\'')
		case '\\':
			if noBackslash {
				b = append(b, '\\')
			} else {
				b = append(b, '\\', '\\')
			}
		case 0:
			if noBackslash {
				b = append(b, 0)
			} else {
				b = append(b, '\\', '0')
			}
		default:
			b = append(b, ch)
		}
	}
	return append(b, '\'')
}

// isNumeric reports a decimal literal: -?digits(.digits)?
func isNumeric(v string) bool {
	i := 0
	if i < len(v) && v[0] == '-' {
		i++
	}
	digits := 0
	for ; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
		digits++
	}
	if digits == 0 {
		return false
	}
	if i < len(v) && v[i] == '.' {
		i++
		frac := 0
		for ; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
			frac++
		}
		if frac == 0 {
			return false
		}
	}
	return i == len(v)
}

// reset runs COM_RESET_CONNECTION, turns the session trackers back on and
// re-reads the state the server kept (the current database).
func (c *Conn) reset() error {
	_ = c.SetDeadline(time.Now().Add(resetTimeout))
	if err := c.writeCommand(mysql.ComResetConnection, ""); err != nil {
		return err
	}
	if _, err := c.readResult(false); err != nil {
		return err
	}
	clear(c.vars)
	// The server restored the character set of the handshake.
	maps.Copy(c.vars, c.baseline)
	c.stmts.reset() // COM_RESET_CONNECTION closed them
	c.syncedTo = nil
	if c.tracking {
		if _, err := c.exec(trackingSQL, false); err != nil {
			return err
		}
	}
	row, err := c.queryRow("SELECT DATABASE()")
	if err != nil {
		return err
	}
	if len(row) != 1 {
		return c.fail(fmt.Errorf("unexpected answer to SELECT DATABASE(): %q", row))
	}
	c.db = row[0]
	if c.db != "" {
		// The server kept the database but set character_set_database and
		// collation_database to the server's: choosing the database again
		// gives them back its own, as a session on it has them.
		if err := c.initDB(c.db); err != nil {
			return err
		}
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return c.fail(err)
	}
	c.dirty = false
	return nil
}

// quit sends COM_QUIT (unless broken) and closes the socket.
func (c *Conn) quit() {
	if !c.broken {
		_ = c.SetDeadline(time.Now().Add(100 * time.Millisecond))
		c.ResetSeq()
		_ = c.WritePacketFlush([]byte{mysql.ComQuit})
	}
	c.broken = true
	_ = c.Close()
}

// dial opens and sets up a new backend connection (not counted by the pool).
func (p *Pool) dial(ctx context.Context, v Variant) (*Conn, error) {
	timeout := p.opts.ConnectTimeout
	if timeout <= 0 {
		timeout = defaultConnectTimeout
	}
	d := net.Dialer{
		Timeout:         timeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3},
	}
	nc, err := d.DialContext(ctx, "tcp", p.ep.Addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })

	mc := mysql.NewConn(nc)
	var caps uint32
	if v.FoundRows {
		caps |= mysql.ClientFoundRows
	}
	info, err := mysql.ClientHandshake(mc, &mysql.ClientConfig{
		User:         p.ep.User,
		Password:     p.ep.Password,
		PasswordSHA1: p.ep.PasswordSHA1,
		DB:           p.ep.DB,
		TLS:          p.tls,
		TLSOptional:  p.ep.TLSPreferred,
		Capabilities: caps,
		ExtCaps:      p.opts.ExtCaps,
		Attrs:        attrsFor(v),
	})
	if err != nil {
		stop()
		_ = nc.Close()
		return nil, err
	}
	now := time.Now()
	c := &Conn{
		Conn:     mc,
		Info:     info,
		Pool:     p,
		db:       p.ep.DB,
		vars:     make(map[string]string),
		multi:    true,
		status:   info.Status,
		variant:  v,
		created:  now,
		lastUsed: now,
	}
	if info.Capabilities&mysql.ClientSessionTrack != 0 {
		if _, err := c.exec(trackingSQL, false); err != nil {
			stop()
			_ = nc.Close()
			return nil, err
		}
		c.tracking = true
	}
	sd := p.defaults.Load()
	if sd == nil {
		if sd, err = c.loadDefaults(); err != nil {
			stop()
			_ = nc.Close()
			return nil, fmt.Errorf("read server defaults: %w", err)
		}
		p.defaults.Store(sd)
	}
	c.baseline = sd.charsetVarsOf(info.Collation)
	maps.Copy(c.vars, c.baseline)
	if !stop() {
		// The context ended and its callback is spoiling the deadline.
		_ = nc.Close()
		return nil, context.Cause(ctx)
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		_ = nc.Close()
		return nil, err
	}
	return c, nil
}

// killSQL builds KILL [QUERY] id.
func killSQL(threadID uint32, queryOnly bool) string {
	if queryOnly {
		return "KILL QUERY " + strconv.FormatUint(uint64(threadID), 10)
	}
	return "KILL " + strconv.FormatUint(uint64(threadID), 10)
}

// Prepare runs COM_STMT_PREPARE for sql and reads the whole response,
// returning the server's statement id and parameter count (used to prepare
// a client's statement again on a new connection). An ERR from the server is
// returned as *mysql.Error and c stays usable; other errors mark c broken.
func (c *Conn) Prepare(sql string) (id uint32, params uint16, err error) {
	if err := c.writeCommand(mysql.ComStmtPrepare, sql); err != nil {
		return 0, 0, err
	}
	p, err := c.ReadPacket()
	if err != nil {
		return 0, 0, c.fail(err)
	}
	if len(p) > 0 && p[0] == mysql.ERRHeader {
		return 0, 0, mysql.ParseErr(p)
	}
	if len(p) < 12 || p[0] != mysql.OKHeader {
		return 0, 0, c.fail(fmt.Errorf("bad COM_STMT_PREPARE response"))
	}
	id = uint32(p[1]) | uint32(p[2])<<8 | uint32(p[3])<<16 | uint32(p[4])<<24
	cols := uint16(p[5]) | uint16(p[6])<<8
	params = uint16(p[7]) | uint16(p[8])<<8
	eof := c.Info.Capabilities&mysql.ClientDeprecateEOF == 0
	for _, n := range []uint16{params, cols} {
		if n == 0 {
			continue
		}
		if eof {
			n++
		}
		for i := uint16(0); i < n; i++ {
			if _, err := c.ReadPacket(); err != nil {
				return 0, 0, c.fail(err)
			}
		}
	}
	return id, params, nil
}

// CloseStmt sends COM_STMT_CLOSE for a server statement id (no response).
func (c *Conn) CloseStmt(id uint32) {
	_ = c.writeCommand(mysql.ComStmtClose, string([]byte{byte(id), byte(id >> 8), byte(id >> 16), byte(id >> 24)}))
}

// PrepareCached returns the server id of a statement the proxy prepared on c
// for sql, preparing it the first time (kept under sql as the key, see
// AddStmt).
func (c *Conn) PrepareCached(sql string) (uint32, error) {
	if st := c.CachedStmt(sql); st != nil {
		return st.ID, nil
	}
	st, _, err := c.PrepareStmt(sql, sql)
	if err != nil {
		return 0, err
	}
	return st.ID, nil
}

// PrepareMeta prepares sql like PrepareCached and also returns copies of
// the parameter and column definitions of the response.
func (c *Conn) PrepareMeta(sql string) (id uint32, paramDefs, colDefs [][]byte, err error) {
	if err := c.writeCommand(mysql.ComStmtPrepare, sql); err != nil {
		return 0, nil, nil, err
	}
	p, err := c.ReadPacket()
	if err != nil {
		return 0, nil, nil, c.fail(err)
	}
	if len(p) > 0 && p[0] == mysql.ERRHeader {
		return 0, nil, nil, mysql.ParseErr(p)
	}
	if len(p) < 12 || p[0] != mysql.OKHeader {
		return 0, nil, nil, c.fail(fmt.Errorf("bad COM_STMT_PREPARE response"))
	}
	id = uint32(p[1]) | uint32(p[2])<<8 | uint32(p[3])<<16 | uint32(p[4])<<24
	cols := int(p[5]) | int(p[6])<<8
	params := int(p[7]) | int(p[8])<<8
	eof := c.Info.Capabilities&mysql.ClientDeprecateEOF == 0
	read := func(n int) ([][]byte, error) {
		if n == 0 {
			return nil, nil
		}
		defs := make([][]byte, 0, n)
		for i := 0; i < n; i++ {
			p, err := c.ReadPacket()
			if err != nil {
				return nil, c.fail(err)
			}
			defs = append(defs, append([]byte(nil), p...))
		}
		if eof {
			if _, err := c.ReadPacket(); err != nil {
				return nil, c.fail(err)
			}
		}
		return defs, nil
	}
	if paramDefs, err = read(params); err != nil {
		return 0, nil, nil, err
	}
	if colDefs, err = read(cols); err != nil {
		return 0, nil, nil, err
	}
	if old := c.CachedStmt(sql); old != nil && old.Owner == 0 {
		c.DropStmt(old)
	}
	st, _ := c.AddStmt(sql, id, uint16(params))
	return st.ID, paramDefs, colDefs, nil
}

// ExecPacket sends a ready command packet (a COM_STMT_EXECUTE) and reads its
// whole response like Exec.
func (c *Conn) ExecPacket(p []byte) (mysql.OK, error) {
	if c.broken {
		return mysql.OK{}, errBroken
	}
	c.ResetSeq()
	if err := c.WritePacketFlush(p); err != nil {
		return mysql.OK{}, c.fail(err)
	}
	return c.readResult(true)
}

// QueryRows runs sql and calls row for each row of its first result set
// (values as strings, NULL as ""). An ERR from the server is returned as
// *mysql.Error and c stays usable.
func (c *Conn) QueryRows(sql string, row func([]string)) error {
	if err := c.writeCommand(mysql.ComQuery, sql); err != nil {
		return err
	}
	p, err := c.ReadPacket()
	if err != nil {
		return c.fail(err)
	}
	if len(p) > 0 && p[0] == mysql.ERRHeader {
		return mysql.ParseErr(p)
	}
	if len(p) > 0 && p[0] == mysql.OKHeader {
		return nil
	}
	_, err = c.readResultSet(p, func(b []byte) error {
		var vals []string
		for len(b) > 0 {
			v, _, n, err := mysql.ReadLenEncBytes(b)
			if err != nil {
				return c.fail(err)
			}
			vals = append(vals, string(v))
			b = b[n:]
		}
		row(vals)
		return nil
	})
	return err
}
