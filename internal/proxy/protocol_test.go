package proxy

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// This file tests the client side of the proxy (the proxy as a server) at
// the packet level, against the real MariaDB behind it: a hand-written
// client (pconn) with full control over capabilities, the scramble and the
// bytes of every command.

// pcBaseCaps are the capabilities pconn asks for unless told otherwise.
const pcBaseCaps = mysql.ClientLongPassword | mysql.ClientLongFlag | mysql.ClientProtocol41 |
	mysql.ClientTransactions | mysql.ClientSecureConnection | mysql.ClientMultiResults |
	mysql.ClientPSMultiResults | mysql.ClientPluginAuth | mysql.ClientPluginAuthLenencClientData |
	mysql.ClientLocalFiles

type pcOpts struct {
	user, password, db string
	caps               uint32 // requested capabilities; pcBaseCaps when zero
	extraCaps          uint32 // added to caps
	ext                uint32 // MariaDB extended capabilities to request
	coll               uint8  // handshake collation id; utf8mb4_general_ci when zero
	noColl             bool   // send collation id 0
}

// pconn is a raw protocol client.
type pconn struct {
	c       *mysql.Conn
	nc      net.Conn
	caps    uint32 // negotiated
	ext     uint32 // negotiated MariaDB extended capabilities
	salt    []byte
	connID  uint32
	version string
	plugin  string
	// greeting is the raw greeting packet.
	greeting []byte
}

// greeting is the parsed initial handshake packet.
type greeting struct {
	version string
	connID  uint32
	caps    uint32
	ext     uint32
	salt    []byte
	plugin  string
}

func parseGreetingPacket(p []byte) (*greeting, error) {
	if len(p) < 1 || p[0] != 10 {
		return nil, fmt.Errorf("bad greeting %q", p)
	}
	i := bytes.IndexByte(p[1:], 0)
	if i < 0 {
		return nil, errors.New("greeting: no version terminator")
	}
	g := &greeting{version: string(p[1 : 1+i])}
	r := p[2+i:]
	if len(r) < 4+8+1+2+1+2+2+1+6+4 {
		return nil, errors.New("greeting too short")
	}
	g.connID = binary.LittleEndian.Uint32(r)
	g.salt = append([]byte(nil), r[4:12]...)
	g.caps = uint32(binary.LittleEndian.Uint16(r[13:]))
	g.caps |= uint32(binary.LittleEndian.Uint16(r[18:])) << 16
	saltLen := int(r[20])
	g.ext = binary.LittleEndian.Uint32(r[27:])
	r = r[31:]
	n := saltLen - 8
	if n < 13 {
		n = 13
	}
	if len(r) < n {
		return nil, errors.New("greeting: short salt")
	}
	g.salt = append(g.salt, bytes.TrimRight(r[:n], "\x00")...)
	r = r[n:]
	if j := bytes.IndexByte(r, 0); j >= 0 {
		g.plugin = string(r[:j])
	} else {
		g.plugin = string(r)
	}
	return g, nil
}

// pdial connects and logs in; a login refused by the server returns the
// connection (still open on our side) with a *mysql.Error.
func pdial(t testing.TB, addr string, o pcOpts) (*pconn, error) {
	t.Helper()
	testutil.SkipShort(t)
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
	c := mysql.NewConn(nc)
	p, err := c.ReadPacket()
	if err != nil {
		t.Fatalf("read greeting: %v", err)
	}
	g, err := parseGreetingPacket(p)
	if err != nil {
		t.Fatal(err)
	}
	caps := o.caps
	if caps == 0 {
		caps = pcBaseCaps
	}
	caps |= o.extraCaps
	if o.db != "" {
		caps |= mysql.ClientConnectWithDB
	}
	mariaExt := g.caps&mysql.ClientLongPassword == 0
	if mariaExt {
		caps &^= mysql.ClientLongPassword
	}
	caps &= g.caps | mysql.ClientLongPassword
	var ext uint32
	if mariaExt {
		ext = o.ext & g.ext
	}
	pc := &pconn{c: c, nc: nc, caps: caps, ext: ext, salt: g.salt, connID: g.connID, version: g.version, plugin: g.plugin, greeting: bytes.Clone(p)}
	auth := mysql.ScrambleNative(g.salt, o.password)
	resp := binary.LittleEndian.AppendUint32(nil, caps)
	resp = binary.LittleEndian.AppendUint32(resp, 1<<24)
	coll := o.coll
	if coll == 0 && !o.noColl {
		coll = mysql.DefaultCollationID
	}
	resp = append(resp, coll)
	resp = append(resp, make([]byte, 19)...)
	resp = binary.LittleEndian.AppendUint32(resp, o.ext)
	resp = append(resp, o.user...)
	resp = append(resp, 0)
	resp = mysql.AppendLenEncInt(resp, uint64(len(auth)))
	resp = append(resp, auth...)
	if caps&mysql.ClientConnectWithDB != 0 {
		resp = append(resp, o.db...)
		resp = append(resp, 0)
	}
	resp = append(resp, mysql.AuthNativePassword...)
	resp = append(resp, 0)
	if err := c.WritePacketFlush(resp); err != nil {
		t.Fatal(err)
	}
	for {
		p, err = c.ReadPacket()
		if err != nil {
			t.Fatalf("read auth result: %v", err)
		}
		switch p[0] {
		case mysql.OKHeader:
			if caps&mysql.ClientCompress != 0 {
				c.EnableCompression()
			}
			return pc, nil
		case mysql.ERRHeader:
			return pc, mysql.ParseErr(p)
		case mysql.AuthSwitchRequest:
			i := bytes.IndexByte(p[1:], 0)
			if string(p[1:1+i]) != mysql.AuthNativePassword {
				t.Fatalf("auth switch to %q", p[1:1+i])
			}
			pc.salt = append([]byte(nil), bytes.TrimRight(p[2+i:], "\x00")...)
			if err := c.WritePacketFlush(mysql.ScrambleNative(pc.salt, o.password)); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("unexpected auth packet %q", p)
		}
	}
}

// pdialProxy logs in to a proxy listener as proxy/proxypass on db test.
func pdialProxy(t testing.TB, addr string, caps uint32, ext uint32) *pconn {
	t.Helper()
	pc, err := pdial(t, addr, pcOpts{user: "proxy", password: "proxypass", db: "test", extraCaps: caps, ext: ext})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return pc
}

func (pc *pconn) deprecateEOF() bool { return pc.caps&mysql.ClientDeprecateEOF != 0 }

// send starts a new command.
func (pc *pconn) send(t testing.TB, payload ...[]byte) {
	t.Helper()
	for _, p := range payload {
		pc.c.ResetSeq()
		if err := pc.c.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := pc.c.Flush(); err != nil {
		t.Fatal(err)
	}
}

func (pc *pconn) read(t testing.TB) []byte {
	t.Helper()
	p, err := pc.c.ReadPacket()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return bytes.Clone(p)
}

// cmd sends a command and returns the first response packet.
func (pc *pconn) cmd(t testing.TB, payload []byte) []byte {
	t.Helper()
	pc.send(t, payload)
	return pc.read(t)
}

func (pc *pconn) ping(t testing.TB) {
	t.Helper()
	if p := pc.cmd(t, []byte{mysql.ComPing}); p[0] != mysql.OKHeader {
		t.Fatalf("COM_PING: %q", p)
	}
}

// pres is one result of a response.
type pres struct {
	ok       *mysql.OK
	err      *mysql.Error
	cols     [][]byte
	colsEOF  []byte // the EOF after the column definitions (classic only)
	rows     [][]byte
	end      []byte // the packet that ended the rows
	status   uint16
	warnings uint16
}

func (r *pres) String() string {
	switch {
	case r.ok != nil:
		return fmt.Sprintf("OK(affected=%d status=%#x)", r.ok.AffectedRows, r.status)
	case r.err != nil:
		return "ERR " + r.err.Error()
	}
	return fmt.Sprintf("resultset(cols=%d rows=%d status=%#x)", len(r.cols), len(r.rows), r.status)
}

// isEnd reports whether p ends a row stream for this connection.
func (pc *pconn) isEnd(p []byte) bool {
	if len(p) == 0 || p[0] != mysql.EOFHeader {
		return false
	}
	if pc.deprecateEOF() {
		return len(p) < 0xffffff
	}
	return len(p) < 9
}

// parseEnd decodes the packet ending a row stream (EOF, or OK with an 0xfe
// header under CLIENT_DEPRECATE_EOF).
func (pc *pconn) parseEnd(t testing.TB, p []byte) (status, warnings uint16) {
	t.Helper()
	if pc.deprecateEOF() {
		ok, err := mysql.ParseOK(p, pc.caps)
		if err != nil {
			t.Fatalf("bad OK-as-EOF %q: %v", p, err)
		}
		return ok.Status, ok.Warnings
	}
	if len(p) != 5 {
		t.Fatalf("EOF packet of %d bytes: %q", len(p), p)
	}
	w, s := mysql.ParseEOF(p)
	return s, w
}

// readResult reads one result (OK, ERR or a result set) starting with
// first. cursor says a COM_STMT_EXECUTE that opened a cursor: no rows
// follow the column definitions.
func (pc *pconn) readResult(t testing.TB, first []byte, binaryRows bool) *pres {
	t.Helper()
	r := &pres{}
	switch first[0] {
	case mysql.OKHeader:
		ok, err := mysql.ParseOK(first, pc.caps)
		if err != nil {
			t.Fatalf("bad OK %q: %v", first, err)
		}
		r.ok = &ok
		r.status = ok.Status
		return r
	case mysql.ERRHeader:
		r.err = mysql.ParseErr(first)
		return r
	case mysql.LocalInfileHeader:
		t.Fatalf("unexpected LOCAL INFILE request")
	}
	n, _, _, err := mysql.ReadLenEncInt(first)
	if err != nil || n == 0 {
		t.Fatalf("bad column count %q", first)
	}
	for i := uint64(0); i < n; i++ {
		p := pc.read(t)
		if p[0] == mysql.ERRHeader || pc.isEnd(p) && len(p) < 9 {
			t.Fatalf("column definition %d is %q", i, p)
		}
		r.cols = append(r.cols, p)
	}
	if !pc.deprecateEOF() {
		p := pc.read(t)
		if !mysql.IsEOF(p) {
			t.Fatalf("no EOF after column definitions: %q", p)
		}
		r.colsEOF = p
		r.warnings, r.status = mysql.ParseEOF(p)
		if binaryRows && r.status&mysql.StatusCursorExists != 0 {
			return r
		}
	}
	for {
		p := pc.read(t)
		if p[0] == mysql.ERRHeader {
			r.err = mysql.ParseErr(p)
			return r
		}
		if pc.isEnd(p) {
			r.end = p
			r.status, r.warnings = pc.parseEnd(t, p)
			return r
		}
		r.rows = append(r.rows, p)
	}
}

// readResults reads results until one without SERVER_MORE_RESULTS_EXISTS.
func (pc *pconn) readResults(t testing.TB, first []byte, binaryRows bool) []*pres {
	t.Helper()
	var out []*pres
	for {
		r := pc.readResult(t, first, binaryRows)
		out = append(out, r)
		if r.err != nil || r.status&mysql.StatusMoreResultsExists == 0 {
			return out
		}
		first = pc.read(t)
	}
}

// query runs a COM_QUERY and returns all its results.
func (pc *pconn) query(t testing.TB, sql string) []*pres {
	t.Helper()
	return pc.readResults(t, pc.cmd(t, append([]byte{mysql.ComQuery}, sql...)), false)
}

// queryOK runs a statement that must succeed and returns its last result.
func (pc *pconn) mustQuery(t testing.TB, sql string) *pres {
	t.Helper()
	rs := pc.query(t, sql)
	last := rs[len(rs)-1]
	if last.err != nil {
		t.Fatalf("%s: %v", sql, last.err)
	}
	return last
}

// textRow decodes a text-protocol row (NULL as "<NULL>").
func textRow(t testing.TB, p []byte) []string {
	t.Helper()
	var out []string
	for len(p) > 0 {
		v, null, n, err := mysql.ReadLenEncBytes(p)
		if err != nil {
			t.Fatalf("bad row: %v", err)
		}
		if null {
			out = append(out, "<NULL>")
		} else {
			out = append(out, string(v))
		}
		p = p[n:]
	}
	return out
}

// scalar runs a query returning one row and one column.
func (pc *pconn) scalar(t testing.TB, sql string) string {
	t.Helper()
	r := pc.mustQuery(t, sql)
	if len(r.rows) != 1 {
		t.Fatalf("%s: %d rows", sql, len(r.rows))
	}
	return textRow(t, r.rows[0])[0]
}

// expectClosed asserts that the peer closed the connection: the next read
// returns EOF (or a reset) without any packet.
func (pc *pconn) expectClosed(t testing.TB) {
	t.Helper()
	_ = pc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := pc.c.ReadPacket()
	if err == nil {
		t.Fatalf("connection still open: got packet %q", p)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection not closed: read timed out")
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read after close: %v", err)
	}
}

func errCode(t testing.TB, p []byte) uint16 {
	t.Helper()
	if len(p) < 3 || p[0] != mysql.ERRHeader {
		t.Fatalf("expected ERR, got %q", p)
	}
	return binary.LittleEndian.Uint16(p[1:])
}

// ---- prepared statements ----

// pstmt is a prepared statement's header.
type pstmt struct {
	id     uint32
	cols   int
	params int
}

func (pc *pconn) readPrepare(t testing.TB) (*pstmt, *mysql.Error) {
	t.Helper()
	p := pc.read(t)
	if p[0] == mysql.ERRHeader {
		return nil, mysql.ParseErr(p)
	}
	if p[0] != mysql.OKHeader || len(p) < 12 {
		t.Fatalf("bad prepare response %q", p)
	}
	st := &pstmt{id: binary.LittleEndian.Uint32(p[1:]), cols: int(binary.LittleEndian.Uint16(p[5:])),
		params: int(binary.LittleEndian.Uint16(p[7:]))}
	for _, n := range []int{st.params, st.cols} {
		if n == 0 {
			continue
		}
		for i := 0; i < n; i++ {
			if d := pc.read(t); d[0] == mysql.ERRHeader || mysql.IsEOF(d) {
				t.Fatalf("prepare: definition %d is %q", i, d)
			}
		}
		if !pc.deprecateEOF() {
			if d := pc.read(t); !mysql.IsEOF(d) {
				t.Fatalf("prepare: no EOF after definitions: %q", d)
			}
		}
	}
	return st, nil
}

func (pc *pconn) prepare(t testing.TB, sql string) *pstmt {
	t.Helper()
	pc.send(t, append([]byte{mysql.ComStmtPrepare}, sql...))
	st, e := pc.readPrepare(t)
	if e != nil {
		t.Fatalf("prepare %q: %v", sql, e)
	}
	return st
}

// Binary protocol types used here.
const (
	typeLongLong  = 0x08
	typeVarString = 0xfd
	typeBlob      = 0xfc
	typeNull      = 0x06
)

// bparam is one COM_STMT_EXECUTE parameter.
type bparam struct {
	typ      byte
	null     bool
	longData bool // value already sent with COM_STMT_SEND_LONG_DATA
	val      []byte
}

func strParam(s string) bparam { return bparam{typ: typeVarString, val: []byte(s)} }
func intParam(v int64) bparam {
	return bparam{typ: typeLongLong, val: binary.LittleEndian.AppendUint64(nil, uint64(v))}
}

// execPacket builds COM_STMT_EXECUTE.
func execPacket(id uint32, flags byte, params []bparam) []byte {
	p := []byte{mysql.ComStmtExecute}
	p = binary.LittleEndian.AppendUint32(p, id)
	p = append(p, flags)
	p = binary.LittleEndian.AppendUint32(p, 1)
	if len(params) == 0 {
		return p
	}
	bitmap := make([]byte, (len(params)+7)/8)
	for i, bp := range params {
		if bp.null {
			bitmap[i/8] |= 1 << (i % 8)
		}
	}
	p = append(p, bitmap...)
	p = append(p, 1) // new params bound
	for _, bp := range params {
		p = append(p, bp.typ, 0)
	}
	for _, bp := range params {
		if bp.null || bp.longData {
			continue
		}
		switch bp.typ {
		case typeLongLong:
			p = append(p, bp.val...)
		default:
			p = mysql.AppendLenEncInt(p, uint64(len(bp.val)))
			p = append(p, bp.val...)
		}
	}
	return p
}

func (pc *pconn) execute(t testing.TB, id uint32, flags byte, params ...bparam) []*pres {
	t.Helper()
	return pc.readResults(t, pc.cmd(t, execPacket(id, flags, params)), true)
}

func stmtPacket(cmd byte, id uint32, extra ...byte) []byte {
	p := binary.LittleEndian.AppendUint32([]byte{cmd}, id)
	return append(p, extra...)
}

// binaryRow decodes a binary row whose columns are all of the given types
// (LONGLONG or a length-encoded string type).
func binaryRow(t testing.TB, p []byte, types []byte) []string {
	t.Helper()
	if p[0] != 0 {
		t.Fatalf("binary row header %#x", p[0])
	}
	nb := (len(types) + 7 + 2) / 8
	bitmap := p[1 : 1+nb]
	p = p[1+nb:]
	out := make([]string, len(types))
	for i, typ := range types {
		if bitmap[(i+2)/8]&(1<<((i+2)%8)) != 0 {
			out[i] = "<NULL>"
			continue
		}
		switch typ {
		case typeLongLong:
			out[i] = fmt.Sprint(binary.LittleEndian.Uint64(p))
			p = p[8:]
		default:
			v, _, n, err := mysql.ReadLenEncBytes(p)
			if err != nil {
				t.Fatalf("binary row: %v", err)
			}
			out[i] = string(v)
			p = p[n:]
		}
	}
	return out
}

// columnDef decodes a column definition: its name, type and, when
// extended is set, MariaDB's extended metadata block after org_name.
func columnDef(t testing.TB, p []byte, extended bool) (name string, typ byte, ext []byte) {
	t.Helper()
	var fields [][]byte
	for i := 0; i < 6; i++ {
		v, _, n, err := mysql.ReadLenEncBytes(p)
		if err != nil {
			t.Fatalf("column definition: %v", err)
		}
		fields = append(fields, v)
		p = p[n:]
	}
	if extended {
		v, _, n, err := mysql.ReadLenEncBytes(p)
		if err != nil {
			t.Fatalf("extended metadata: %v", err)
		}
		ext = v
		p = p[n:]
	}
	if p[0] != 0x0c || len(p) < 13 {
		t.Fatalf("column definition fixed part %q", p)
	}
	return string(fields[4]), p[7], ext
}

// ---- targets ----

// mariaProxy starts a proxy listener announcing itself as MariaDB, so that
// it offers MariaDB's extended capabilities (bulk operations, extended
// column metadata).
func mariaProxy(t testing.TB) *testProxy {
	testutil.SkipShort(t)
	cfg := baseConfig("127.0.0.1:3306")
	cfg.Proxy.Config[0].ServerVersion = "10.11.99-MariaDB-pisa"
	return startProxy(t, cfg)
}

// target is a server the raw tests run against: the proxy, or MariaDB
// directly as the reference for the expected packet shapes.
type target struct {
	name string
	dial func(t testing.TB, caps, ext uint32) *pconn
}

func targets(t testing.TB, tp *testProxy) []target {
	direct := func(t testing.TB, caps, ext uint32) *pconn {
		pc, err := pdial(t, "127.0.0.1:3306", pcOpts{user: "root", db: "test", extraCaps: caps, ext: ext})
		if err != nil {
			t.Fatalf("direct login: %v", err)
		}
		return pc
	}
	return []target{
		{"proxy", func(t testing.TB, caps, ext uint32) *pconn { return pdialProxy(t, tp.addr, caps, ext) }},
		{"direct", direct},
	}
}

// rootExec runs statements on MariaDB directly.
func rootExec(t testing.TB, sqls ...string) {
	t.Helper()
	pc, err := pdial(t, "127.0.0.1:3306", pcOpts{user: "root", db: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range sqls {
		pc.mustQuery(t, q)
	}
	pc.send(t, []byte{mysql.ComQuit})
}

// shape summarizes results for comparison between the proxy and MariaDB.
func shape(rs []*pres) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s;", r)
	}
	return b.String()
}

const flagMask = mysql.StatusInTrans | mysql.StatusMoreResultsExists | mysql.StatusAutocommit |
	mysql.StatusCursorExists | mysql.StatusLastRowSent

func masked(rs []*pres) []*pres {
	for _, r := range rs {
		r.status &= flagMask
	}
	return rs
}

// ---- tests ----

// Status flags (SERVER_MORE_RESULTS_EXISTS, SERVER_STATUS_IN_TRANS) reach
// the client in every packet that carries them, with and without
// CLIENT_DEPRECATE_EOF, exactly as MariaDB sends them.
func TestRawStatusFlags(t *testing.T) {
	tp := defaultProxy(t)
	rootExec(t, "DROP PROCEDURE IF EXISTS pisa_proto_call",
		"CREATE PROCEDURE pisa_proto_call() BEGIN SELECT 1 AS a; SELECT 2 AS b, 3 AS c; END")
	t.Cleanup(func() { rootExec(t, "DROP PROCEDURE IF EXISTS pisa_proto_call") })
	for _, deprecate := range []uint32{0, mysql.ClientDeprecateEOF} {
		var want []string
		for _, tg := range []string{"direct", "proxy"} {
			t.Run(fmt.Sprintf("%s/deprecateEOF=%v", tg, deprecate != 0), func(t *testing.T) {
				var pc *pconn
				if tg == "proxy" {
					pc = pdialProxy(t, tp.addr, mysql.ClientMultiStatements|deprecate, 0)
				} else {
					pc = targets(t, tp)[1].dial(t, mysql.ClientMultiStatements|deprecate, 0)
				}
				if pc.deprecateEOF() != (deprecate != 0) {
					t.Fatalf("CLIENT_DEPRECATE_EOF not negotiated as asked")
				}
				step := 0
				check := func(sql string, statuses ...uint16) {
					t.Helper()
					step++
					rs := masked(pc.query(t, sql))
					if len(rs) != len(statuses) {
						t.Fatalf("%s: %d results (%s), want %d", sql, len(rs), shape(rs), len(statuses))
					}
					for i, r := range rs {
						if r.err != nil {
							t.Fatalf("%s: result %d: %v", sql, i, r.err)
						}
						if r.status != statuses[i] {
							t.Errorf("%s: result %d status %#x, want %#x", sql, i, r.status, statuses[i])
						}
						if r.colsEOF != nil {
							_, st := mysql.ParseEOF(r.colsEOF)
							if st&mysql.StatusMoreResultsExists != statuses[i]&mysql.StatusMoreResultsExists {
								t.Errorf("%s: result %d: EOF after columns has status %#x", sql, i, st)
							}
						}
					}
					if tg == "direct" {
						want = append(want, shape(rs))
					} else if w := want[step-1]; w != shape(rs) {
						t.Errorf("%s:\nproxy  %s\ndirect %s", sql, shape(rs), w)
					}
				}
				const ac, more, tx = mysql.StatusAutocommit, mysql.StatusMoreResultsExists, mysql.StatusInTrans
				check("SELECT 1; SELECT 2, 3", ac|more, ac)
				check("SET @pisa_a = 1; SELECT @pisa_a; DO 1", ac|more, ac|more, ac)
				check("CALL pisa_proto_call()", ac|more, ac|more, ac)
				check("BEGIN", ac|tx)
				check("SELECT 1", ac|tx)
				check("SELECT 1; SELECT 2", ac|tx|more, ac|tx)
				check("COMMIT", ac)
				check("START TRANSACTION; SELECT 1; ROLLBACK", ac|tx|more, ac|tx|more, ac)
				check("SELECT 1", ac)
				// An error ends a multi-statement batch.
				rs := pc.query(t, "SELECT 1; SELECT * FROM no_such_table_pisa; SELECT 3")
				if len(rs) != 2 || rs[1].err == nil || rs[1].err.Code != 1146 {
					t.Fatalf("batch with error: %s", shape(rs))
				}
				pc.ping(t)
			})
		}
	}
}

func TestRawInitDBPingQuit(t *testing.T) {
	tp := defaultProxy(t)
	pc := pdialProxy(t, tp.addr, 0, 0)
	pc.ping(t)
	if p := pc.cmd(t, append([]byte{mysql.ComInitDB}, "mysql"...)); p[0] != mysql.OKHeader {
		t.Fatalf("COM_INIT_DB mysql: %q", p)
	}
	if db := pc.scalar(t, "SELECT DATABASE()"); db != "mysql" {
		t.Fatalf("DATABASE() = %q", db)
	}
	if code := errCode(t, pc.cmd(t, append([]byte{mysql.ComInitDB}, "no_such_db_pisa"...))); code != 1049 {
		t.Fatalf("COM_INIT_DB unknown: %d", code)
	}
	if db := pc.scalar(t, "SELECT DATABASE()"); db != "mysql" {
		t.Fatalf("DATABASE() after failed COM_INIT_DB = %q", db)
	}
	if p := pc.cmd(t, append([]byte{mysql.ComInitDB}, "test"...)); p[0] != mysql.OKHeader {
		t.Fatalf("COM_INIT_DB test: %q", p)
	}
	if db := pc.scalar(t, "SELECT DATABASE()"); db != "test" {
		t.Fatalf("DATABASE() = %q", db)
	}
	pc.ping(t)
	before := tp.p.Sessions()
	pc.send(t, []byte{mysql.ComQuit})
	pc.expectClosed(t)
	deadline := time.Now().Add(3 * time.Second)
	for tp.p.Sessions() >= before {
		if time.Now().After(deadline) {
			t.Fatalf("session still registered after COM_QUIT: %d", tp.p.Sessions())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// COM_FIELD_LIST returns the column definitions of a table and an EOF.
func TestRawFieldList(t *testing.T) {
	tp := defaultProxy(t)
	rootExec(t, "DROP TABLE IF EXISTS pisa_fl", "CREATE TABLE pisa_fl (id INT PRIMARY KEY, name VARCHAR(20) DEFAULT 'x', body TEXT)")
	t.Cleanup(func() { rootExec(t, "DROP TABLE IF EXISTS pisa_fl") })
	for _, deprecate := range []uint32{0, mysql.ClientDeprecateEOF} {
		for _, tg := range targets(t, tp) {
			t.Run(fmt.Sprintf("%s/deprecateEOF=%v", tg.name, deprecate != 0), func(t *testing.T) {
				pc := tg.dial(t, deprecate, 0)
				pc.send(t, append([]byte{mysql.ComFieldList}, "pisa_fl\x00"...))
				var names []string
				for {
					p := pc.read(t)
					if p[0] == mysql.ERRHeader {
						t.Fatalf("COM_FIELD_LIST: %v", mysql.ParseErr(p))
					}
					if pc.isEnd(p) {
						st, _ := pc.parseEnd(t, p)
						if st&mysql.StatusAutocommit == 0 {
							t.Errorf("end packet status %#x", st)
						}
						break
					}
					name, _, _ := columnDef(t, p, false)
					names = append(names, name)
				}
				if strings.Join(names, ",") != "id,name,body" {
					t.Fatalf("columns %v", names)
				}
				// An unknown table is an error; the session goes on.
				if code := errCode(t, pc.cmd(t, append([]byte{mysql.ComFieldList}, "no_such_pisa\x00"...))); code != 1146 {
					t.Fatalf("unknown table: %d", code)
				}
				pc.ping(t)
			})
		}
	}
}

// COM_STMT_SEND_LONG_DATA in pieces, then COM_STMT_EXECUTE of an INSERT
// stores the concatenation; COM_STMT_RESET discards pending long data;
// COM_STMT_CLOSE frees the statement.
func TestRawStmtLongDataResetClose(t *testing.T) {
	tp := defaultProxy(t)
	pc := pdialProxy(t, tp.addr, 0, 0)
	pc.mustQuery(t, "DROP TABLE IF EXISTS pisa_long")
	pc.mustQuery(t, "CREATE TABLE pisa_long (id INT PRIMARY KEY, b LONGBLOB)")
	t.Cleanup(func() { rootExec(t, "DROP TABLE IF EXISTS pisa_long") })
	st := pc.prepare(t, "INSERT INTO pisa_long VALUES (?, ?)")
	if st.params != 2 || st.cols != 0 || st.id == 0 {
		t.Fatalf("prepare: %+v", st)
	}
	var want bytes.Buffer
	for i := 0; i < 40; i++ {
		piece := bytes.Repeat([]byte{byte('a' + i%26)}, 100_000+i)
		want.Write(piece)
		// No response to SEND_LONG_DATA: send several back to back.
		pc.send(t, append(stmtPacket(mysql.ComStmtSendLongData, st.id, 1, 0), piece...))
	}
	rs := pc.execute(t, st.id, 0, intParam(1), bparam{typ: typeBlob, longData: true})
	if rs[0].ok == nil || rs[0].ok.AffectedRows != 1 {
		t.Fatalf("execute insert: %s", shape(rs))
	}
	got := pc.scalar(t, "SELECT CONCAT(LENGTH(b), ':', MD5(b)) FROM pisa_long WHERE id = 1")
	if wantS := fmt.Sprintf("%d:%x", want.Len(), md5sum(want.Bytes())); got != wantS {
		t.Fatalf("stored blob %s, want %s", got, wantS)
	}

	// RESET discards long data sent since the last execute.
	pc.send(t, append(stmtPacket(mysql.ComStmtSendLongData, st.id, 1, 0), "discarded"...))
	if p := pc.cmd(t, stmtPacket(mysql.ComStmtReset, st.id)); p[0] != mysql.OKHeader {
		t.Fatalf("COM_STMT_RESET: %q", p)
	}
	rs = pc.execute(t, st.id, 0, intParam(2), strParam("inline"))
	if rs[0].ok == nil {
		t.Fatalf("execute after reset: %s", shape(rs))
	}
	if got := pc.scalar(t, "SELECT b FROM pisa_long WHERE id = 2"); got != "inline" {
		t.Fatalf("after COM_STMT_RESET the value is %q", got)
	}
	// RESET of an unknown statement is an error.
	if code := errCode(t, pc.cmd(t, stmtPacket(mysql.ComStmtReset, 98765))); code != 1243 {
		t.Fatalf("reset unknown: %d", code)
	}

	// CLOSE has no response; the statement is gone afterwards.
	pc.send(t, stmtPacket(mysql.ComStmtClose, st.id))
	rs = pc.execute(t, st.id, 0, intParam(3), strParam("x"))
	if rs[0].err == nil || rs[0].err.Code != 1243 {
		t.Fatalf("execute after close: %s", shape(rs))
	}
	pc.ping(t)
	if n := pc.scalar(t, "SELECT COUNT(*) FROM pisa_long"); n != "2" {
		t.Fatalf("rows %s", n)
	}
}

// A read-only cursor: COM_STMT_EXECUTE with CURSOR_TYPE_READ_ONLY, then
// COM_STMT_FETCH in batches until SERVER_STATUS_LAST_ROW_SENT.
func TestRawStmtCursorFetch(t *testing.T) {
	tp := defaultProxy(t)
	for _, deprecate := range []uint32{0, mysql.ClientDeprecateEOF} {
		for _, tg := range targets(t, tp) {
			t.Run(fmt.Sprintf("%s/deprecateEOF=%v", tg.name, deprecate != 0), func(t *testing.T) {
				pc := tg.dial(t, deprecate, 0)
				st := pc.prepare(t, "SELECT seq, CONCAT('r', seq) FROM seq_1_to_100 WHERE seq > ?")
				first := pc.cmd(t, execPacket(st.id, 1 /* CURSOR_TYPE_READ_ONLY */, []bparam{intParam(0)}))
				r := pc.readResult(t, first, true)
				if r.err != nil || len(r.cols) != 2 {
					t.Fatalf("execute with cursor: %s", r)
				}
				if !pc.deprecateEOF() {
					if r.status&mysql.StatusCursorExists == 0 || len(r.rows) != 0 {
						t.Fatalf("execute with cursor: %s", r)
					}
				} else if len(r.rows) != 0 || r.status&mysql.StatusCursorExists == 0 {
					t.Fatalf("execute with cursor (deprecate EOF): %s", r)
				}
				var types []byte
				for _, c := range r.cols {
					_, typ, _ := columnDef(t, c, false)
					types = append(types, typ)
				}
				var got []string
				fetches := 0
				for {
					fetches++
					if fetches > 50 {
						t.Fatal("no LAST_ROW_SENT after 50 fetches")
					}
					pc.send(t, binary.LittleEndian.AppendUint32(stmtPacket(mysql.ComStmtFetch, st.id), 7))
					var status uint16
					n := 0
					for {
						p := pc.read(t)
						if p[0] == mysql.ERRHeader {
							t.Fatalf("fetch: %v", mysql.ParseErr(p))
						}
						if pc.isEnd(p) {
							status, _ = pc.parseEnd(t, p)
							break
						}
						row := binaryRow(t, p, types)
						got = append(got, row[0]+"="+row[1])
						n++
					}
					if n > 7 {
						t.Fatalf("fetch of 7 returned %d rows", n)
					}
					if status&mysql.StatusLastRowSent != 0 {
						break
					}
					if status&mysql.StatusCursorExists == 0 {
						t.Fatalf("fetch ended with status %#x", status)
					}
				}
				if len(got) != 100 || got[0] != "1=r1" || got[99] != "100=r100" {
					t.Fatalf("%d rows via cursor: %v", len(got), got)
				}
				if fetches != 15 {
					t.Errorf("%d fetches for 100 rows in batches of 7", fetches)
				}
				// The statement can be executed again without a cursor.
				rs := pc.execute(t, st.id, 0, intParam(95))
				if len(rs) != 1 || len(rs[0].rows) != 5 {
					t.Fatalf("execute without cursor: %s", shape(rs))
				}
				pc.send(t, stmtPacket(mysql.ComStmtClose, st.id))
				pc.ping(t)
			})
		}
	}
}

func md5sum(b []byte) []byte {
	h := md5.Sum(b)
	return h[:]
}

// COM_RESET_CONNECTION forgets user variables, temporary tables and
// prepared statements; the session stays usable.
func TestRawResetConnection(t *testing.T) {
	tp := defaultProxy(t)
	pc := pdialProxy(t, tp.addr, 0, 0)
	pc.mustQuery(t, "SET @pisa_reset = 42")
	pc.mustQuery(t, "CREATE TEMPORARY TABLE pisa_reset_tmp (a INT)")
	pc.mustQuery(t, "INSERT INTO pisa_reset_tmp VALUES (1)")
	pc.mustQuery(t, "USE mysql")
	st := pc.prepare(t, "SELECT ?")
	if v := pc.scalar(t, "SELECT @pisa_reset"); v != "42" {
		t.Fatalf("@pisa_reset = %q", v)
	}
	if p := pc.cmd(t, []byte{mysql.ComResetConnection}); p[0] != mysql.OKHeader {
		t.Fatalf("COM_RESET_CONNECTION: %q", p)
	}
	if v := pc.scalar(t, "SELECT @pisa_reset"); v != "<NULL>" {
		t.Fatalf("user variable survived the reset: %q", v)
	}
	rs := pc.query(t, "SELECT * FROM test.pisa_reset_tmp")
	if rs[0].err == nil || rs[0].err.Code != 1146 {
		t.Fatalf("temporary table survived the reset: %s", shape(rs))
	}
	rs = pc.execute(t, st.id, 0, strParam("x"))
	if rs[0].err == nil || rs[0].err.Code != 1243 {
		t.Fatalf("prepared statement survived the reset: %s", shape(rs))
	}
	// MySQL keeps the current schema across COM_RESET_CONNECTION; the proxy
	// goes back to the listener's; either way a schema is selected.
	if db := pc.scalar(t, "SELECT DATABASE()"); db == "<NULL>" {
		t.Fatalf("no schema after reset")
	}
	if v := pc.scalar(t, "SELECT 6*7"); v != "42" {
		t.Fatal(v)
	}
	pc.ping(t)
}

// changeUserPacket builds COM_CHANGE_USER.
func changeUserPacket(pc *pconn, user, password, db string) []byte {
	auth := mysql.ScrambleNative(pc.salt, password)
	p := []byte{mysql.ComChangeUser}
	p = append(p, user...)
	p = append(p, 0)
	p = append(p, byte(len(auth)))
	p = append(p, auth...)
	p = append(p, db...)
	p = append(p, 0)
	p = binary.LittleEndian.AppendUint16(p, mysql.DefaultCollationID)
	p = append(p, mysql.AuthNativePassword...)
	return append(p, 0)
}

// COM_CHANGE_USER to a user without password and back with the right
// scramble (computed with the salt of the initial handshake); state is
// reset at each change; a wrong password ends the connection with 1045.
func TestRawChangeUser(t *testing.T) {
	tp := defaultProxy(t)
	pc := pdialProxy(t, tp.addr, 0, 0)
	pc.mustQuery(t, "SET @pisa_cu = 1")
	if p := pc.cmd(t, changeUserPacket(pc, "nopass", "", "test")); p[0] != mysql.OKHeader {
		t.Fatalf("change to nopass: %q", p)
	}
	if v := pc.scalar(t, "SELECT @pisa_cu"); v != "<NULL>" {
		t.Fatalf("user variable survived COM_CHANGE_USER: %q", v)
	}
	pc.mustQuery(t, "SET @pisa_cu = 2")
	if p := pc.cmd(t, changeUserPacket(pc, "proxy", "proxypass", "mysql")); p[0] != mysql.OKHeader {
		t.Fatalf("change back to proxy: %q", p)
	}
	if db := pc.scalar(t, "SELECT DATABASE()"); db != "mysql" {
		t.Fatalf("db after change user = %q", db)
	}
	if v := pc.scalar(t, "SELECT @pisa_cu"); v != "<NULL>" {
		t.Fatalf("user variable survived COM_CHANGE_USER: %q", v)
	}
	pc.ping(t)
	// A wrong password: ERR 1045 and the connection is closed.
	p := pc.cmd(t, changeUserPacket(pc, "proxy", "wrong", "test"))
	if code := errCode(t, p); code != 1045 {
		t.Fatalf("bad password: %d", code)
	}
	if st := mysql.ParseErr(p).SQLState; st != "28000" {
		t.Fatalf("bad password: SQLSTATE %s", st)
	}
	pc.expectClosed(t)
}

// COM_SET_OPTION switches multi-statements off and on.
func TestRawSetOption(t *testing.T) {
	tp := defaultProxy(t)
	for _, deprecate := range []uint32{0, mysql.ClientDeprecateEOF} {
		for _, tg := range targets(t, tp) {
			for _, initial := range []uint32{0, mysql.ClientMultiStatements} {
				t.Run(fmt.Sprintf("%s/deprecateEOF=%v/multi=%v", tg.name, deprecate != 0, initial != 0), func(t *testing.T) {
					pc := tg.dial(t, deprecate|initial, 0)
					setOpt := func(v uint16) {
						t.Helper()
						p := pc.cmd(t, binary.LittleEndian.AppendUint16([]byte{mysql.ComSetOption}, v))
						if p[0] == mysql.ERRHeader {
							t.Fatalf("COM_SET_OPTION %d: %v", v, mysql.ParseErr(p))
						}
						if p[0] != mysql.EOFHeader && p[0] != mysql.OKHeader {
							t.Fatalf("COM_SET_OPTION %d: %q", v, p)
						}
					}
					setOpt(1) // MYSQL_OPTION_MULTI_STATEMENTS_OFF
					rs := pc.query(t, "SELECT 1; SELECT 2")
					if len(rs) != 1 || rs[0].err == nil || rs[0].err.Code != 1064 {
						t.Fatalf("multi statement with the option off: %s", shape(rs))
					}
					setOpt(0) // MYSQL_OPTION_MULTI_STATEMENTS_ON
					rs = pc.query(t, "SELECT 1; SELECT 2")
					if len(rs) != 2 || rs[0].err != nil || rs[1].err != nil {
						t.Fatalf("multi statement with the option on: %s", shape(rs))
					}
					if code := errCode(t, pc.cmd(t, []byte{mysql.ComSetOption, 7, 0})); code != 1047 {
						t.Fatalf("bad option: %d", code)
					}
					pc.ping(t)
				})
			}
		}
	}
}

func TestRawStatistics(t *testing.T) {
	tp := defaultProxy(t)
	pc := pdialProxy(t, tp.addr, 0, 0)
	p := pc.cmd(t, []byte{mysql.ComStatistics})
	if !strings.HasPrefix(string(p), "Uptime: ") || !strings.Contains(string(p), "Threads: ") {
		t.Fatalf("COM_STATISTICS: %q", p)
	}
	pc.ping(t)
}

// bulkPacket builds MariaDB's COM_STMT_BULK_EXECUTE with types sent
// (SEND_TYPES_TO_SERVER): rows of (indicator, value) per parameter.
func bulkPacket(id uint32, types []byte, rows [][]bparam) []byte {
	p := binary.LittleEndian.AppendUint32([]byte{mysql.ComStmtBulkExecute}, id)
	p = binary.LittleEndian.AppendUint16(p, 128)
	for _, typ := range types {
		p = append(p, typ, 0)
	}
	for _, row := range rows {
		for _, bp := range row {
			if bp.null {
				p = append(p, 1) // STMT_INDICATOR_NULL
				continue
			}
			p = append(p, 0)
			if bp.typ == typeLongLong {
				p = append(p, bp.val...)
			} else {
				p = mysql.AppendLenEncInt(p, uint64(len(bp.val)))
				p = append(p, bp.val...)
			}
		}
	}
	return p
}

// MariaDB's COM_STMT_BULK_EXECUTE, offered when the listener announces a
// MariaDB version.
func TestRawBulkExecute(t *testing.T) {
	tp := mariaProxy(t)
	pc := pdialProxy(t, tp.addr, 0, mysql.MariaDBClientStmtBulkOps)
	if pc.ext&mysql.MariaDBClientStmtBulkOps == 0 {
		t.Fatalf("MARIADB_CLIENT_STMT_BULK_OPERATIONS not offered (greeting ext caps for %q)", pc.version)
	}
	pc.mustQuery(t, "DROP TABLE IF EXISTS pisa_bulk")
	pc.mustQuery(t, "CREATE TABLE pisa_bulk (id INT PRIMARY KEY, v VARCHAR(20))")
	t.Cleanup(func() { rootExec(t, "DROP TABLE IF EXISTS pisa_bulk") })
	st := pc.prepare(t, "INSERT INTO pisa_bulk VALUES (?, ?)")
	var rows [][]bparam
	for i := 1; i <= 50; i++ {
		v := strParam(fmt.Sprintf("v%d", i))
		if i == 7 {
			v = bparam{typ: typeVarString, null: true}
		}
		rows = append(rows, []bparam{intParam(int64(i)), v})
	}
	rs := pc.readResults(t, pc.cmd(t, bulkPacket(st.id, []byte{typeLongLong, typeVarString}, rows)), true)
	if len(rs) != 1 || rs[0].ok == nil || rs[0].ok.AffectedRows != 50 {
		t.Fatalf("bulk insert: %s", shape(rs))
	}
	if got := pc.scalar(t, "SELECT CONCAT(COUNT(*), ':', COUNT(v), ':', MAX(id), ':', (SELECT v FROM pisa_bulk WHERE id = 50)) FROM pisa_bulk"); got != "50:49:50:v50" {
		t.Fatalf("table after bulk insert: %s", got)
	}
	// A duplicate key fails the whole batch with the server's error.
	rs = pc.readResults(t, pc.cmd(t, bulkPacket(st.id, []byte{typeLongLong, typeVarString}, rows[:2])), true)
	if rs[0].err == nil || rs[0].err.Code != 1062 {
		t.Fatalf("duplicate bulk insert: %s", shape(rs))
	}
	// An unknown statement id.
	if code := errCode(t, pc.cmd(t, bulkPacket(4242, []byte{typeLongLong}, nil))); code != 1243 {
		t.Fatalf("bulk on unknown statement: %d", code)
	}
	pc.ping(t)
}

// MariaDB "execute direct": COM_STMT_PREPARE immediately followed, in the
// same write, by COM_STMT_EXECUTE with statement id 0xffffffff (the
// statement just prepared).
func TestRawExecuteDirect(t *testing.T) {
	tp := mariaProxy(t)
	for _, tg := range targets(t, tp) {
		t.Run(tg.name, func(t *testing.T) {
			pc := tg.dial(t, 0, mysql.MariaDBClientStmtBulkOps)
			pc.send(t, append([]byte{mysql.ComStmtPrepare}, "SELECT ? + 1, CONCAT(?, 'z')"...),
				execPacket(0xffffffff, 0, []bparam{intParam(41), strParam("y")}))
			st, e := pc.readPrepare(t)
			if e != nil {
				t.Fatalf("prepare: %v", e)
			}
			pc.c.SetSeq(1) // the response to the second command
			rs := pc.readResults(t, pc.read(t), true)
			if len(rs) != 1 || rs[0].err != nil || len(rs[0].rows) != 1 {
				t.Fatalf("execute direct: %s", shape(rs))
			}
			types := make([]byte, len(rs[0].cols))
			for i, c := range rs[0].cols {
				_, types[i], _ = columnDef(t, c, false)
			}
			if row := binaryRow(t, rs[0].rows[0], types); row[0] != "42" || row[1] != "yz" {
				t.Fatalf("row %v", row)
			}
			// The statement stays usable under its id.
			rs = pc.execute(t, st.id, 0, intParam(1), strParam("a"))
			if len(rs) != 1 || len(rs[0].rows) != 1 || binaryRow(t, rs[0].rows[0], types)[0] != "2" {
				t.Fatalf("execute by id: %s", shape(rs))
			}
			// A failed prepare makes the direct execute fail too, and the
			// session goes on.
			pc.send(t, append([]byte{mysql.ComStmtPrepare}, "SELEC broken ?"...),
				execPacket(0xffffffff, 0, []bparam{intParam(1)}))
			if _, e := pc.readPrepare(t); e == nil || e.Code != 1064 {
				t.Fatalf("bad prepare: %v", e)
			}
			pc.c.SetSeq(1)
			if p := pc.read(t); p[0] != mysql.ERRHeader {
				t.Fatalf("execute direct after a failed prepare: %q", p)
			}
			pc.ping(t)
		})
	}
}

// A client that negotiates CLIENT_DEPRECATE_EOF gets no EOF after column
// definitions and an OK packet with an 0xfe header at the end of rows; a
// client that does not gets classic EOF packets.
func TestRawDeprecateEOF(t *testing.T) {
	tp := defaultProxy(t)
	queries := []string{"SELECT seq, 'x' FROM seq_1_to_5", "SELECT 1 FROM DUAL WHERE 1 = 0"}
	for _, deprecate := range []bool{false, true} {
		t.Run(fmt.Sprintf("deprecateEOF=%v", deprecate), func(t *testing.T) {
			var caps uint32
			if deprecate {
				caps = mysql.ClientDeprecateEOF
			}
			pc := pdialProxy(t, tp.addr, caps, 0)
			if pc.deprecateEOF() != deprecate {
				t.Fatalf("CLIENT_DEPRECATE_EOF negotiated=%v", pc.deprecateEOF())
			}
			for i, q := range queries {
				pc.send(t, append([]byte{mysql.ComQuery}, q...))
				first := pc.read(t)
				ncols, _, _, _ := mysql.ReadLenEncInt(first)
				var packets [][]byte
				for {
					p := pc.read(t)
					packets = append(packets, p)
					if p[0] == mysql.EOFHeader && len(p) < 9 && !deprecate && len(packets) > int(ncols)+1 {
						break
					}
					if p[0] == mysql.EOFHeader && deprecate {
						break
					}
				}
				wantRows := []int{5, 0}[i]
				if deprecate {
					// columns, rows, OK(0xfe): no EOF in between.
					if len(packets) != int(ncols)+wantRows+1 {
						t.Fatalf("%s: %d packets after the column count, want %d", q, len(packets), int(ncols)+wantRows+1)
					}
					for _, p := range packets[:len(packets)-1] {
						if p[0] == mysql.EOFHeader {
							t.Fatalf("%s: EOF packet before the end: %q", q, p)
						}
					}
					end := packets[len(packets)-1]
					ok, err := mysql.ParseOK(end, pc.caps)
					if err != nil || ok.Status&mysql.StatusAutocommit == 0 {
						t.Fatalf("%s: end packet %q: %+v %v", q, end, ok, err)
					}
					if len(end) < 7 {
						t.Fatalf("%s: end packet is an EOF, not an OK: %q", q, end)
					}
				} else {
					if len(packets) != int(ncols)+1+wantRows+1 {
						t.Fatalf("%s: %d packets after the column count", q, len(packets))
					}
					for _, p := range []([]byte){packets[ncols], packets[len(packets)-1]} {
						if len(p) != 5 || p[0] != mysql.EOFHeader {
							t.Fatalf("%s: not a classic EOF: %q", q, p)
						}
					}
				}
			}
			// Prepared statements too.
			st := pc.prepare(t, "SELECT ?, seq FROM seq_1_to_3")
			rs := pc.execute(t, st.id, 0, strParam("p"))
			if len(rs) != 1 || len(rs[0].rows) != 3 {
				t.Fatalf("execute: %s", shape(rs))
			}
			if (rs[0].colsEOF == nil) != deprecate {
				t.Fatalf("EOF after columns present=%v with deprecateEOF=%v", rs[0].colsEOF != nil, deprecate)
			}
			if deprecate && len(rs[0].end) < 7 {
				t.Fatalf("execute end packet is an EOF: %q", rs[0].end)
			}
			pc.ping(t)
		})
	}
}

// With CLIENT_SESSION_TRACK the server's session-state block reaches the
// client; without it the client gets a well-formed OK without the block.
func TestRawSessionTrack(t *testing.T) {
	tp := defaultProxy(t)
	t.Run("with", func(t *testing.T) {
		pc := pdialProxy(t, tp.addr, mysql.ClientSessionTrack, 0)
		if pc.caps&mysql.ClientSessionTrack == 0 {
			t.Fatal("CLIENT_SESSION_TRACK not negotiated")
		}
		// The client's trackers report what a direct connection's would:
		// time_zone is in MariaDB's default list, sql_mode is not.
		if r := pc.mustQuery(t, "SET SESSION sql_mode = 'ANSI_QUOTES'"); r.status&mysql.StatusSessionStateChange != 0 {
			t.Fatalf("untracked sql_mode reported: %+v", r.ok)
		}
		r := pc.mustQuery(t, "SET SESSION time_zone = '+03:00'")
		if r.ok == nil || r.status&mysql.StatusSessionStateChange == 0 || len(r.ok.SessionState) == 0 {
			t.Fatalf("no session state change in %s (%+v)", r, r.ok)
		}
		var vars []string
		if err := mysql.ParseSessionState(r.ok.SessionState, func(c mysql.SessionChange) {
			if c.Type == mysql.SessionTrackSystemVariables {
				vars = append(vars, c.Name+"="+c.Value)
			}
		}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(vars, ","), "time_zone=+03:00") {
			t.Fatalf("session state %v does not name time_zone", vars)
		}
		r = pc.mustQuery(t, "USE mysql")
		found := false
		_ = mysql.ParseSessionState(r.ok.SessionState, func(c mysql.SessionChange) {
			found = found || c.Type == mysql.SessionTrackSchema && c.Name == "mysql"
		})
		if !found {
			t.Fatalf("USE mysql: no schema change in %q", r.ok.SessionState)
		}
		if v := pc.scalar(t, "SELECT @@SESSION.sql_mode"); v != "ANSI_QUOTES" {
			t.Fatalf("sql_mode = %q", v)
		}
	})
	t.Run("without", func(t *testing.T) {
		pc := pdialProxy(t, tp.addr, 0, 0)
		if pc.caps&mysql.ClientSessionTrack != 0 {
			t.Fatal("CLIENT_SESSION_TRACK negotiated")
		}
		for _, q := range []string{"SET SESSION sql_mode = 'ANSI_QUOTES'", "USE mysql", "SET @x = 1", "SET autocommit = 0", "SET autocommit = 1"} {
			pc.send(t, append([]byte{mysql.ComQuery}, q...))
			p := pc.read(t)
			ok, err := mysql.ParseOK(p, pc.caps)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			if len(ok.Info) != 0 || ok.Status&mysql.StatusSessionStateChange != 0 {
				t.Fatalf("%s: OK carries session state for a client without CLIENT_SESSION_TRACK: %q", q, p)
			}
			if len(p) != 7 {
				t.Fatalf("%s: OK of %d bytes: %q", q, len(p), p)
			}
		}
		if v := pc.scalar(t, "SELECT CONCAT(@@SESSION.sql_mode, ':', DATABASE())"); v != "ANSI_QUOTES:mysql" {
			t.Fatalf("state = %q", v)
		}
	})
}

// MariaDB's extended column metadata: a client that asks for it gets the
// block after org_name (format json, type point); one that does not gets
// standard column definitions.
func TestRawExtendedMetadata(t *testing.T) {
	tp := mariaProxy(t)
	rootExec(t, "DROP TABLE IF EXISTS pisa_extmeta", "CREATE TABLE pisa_extmeta (j JSON, p POINT)",
		"INSERT INTO pisa_extmeta VALUES ('{}', POINT(1,1))")
	t.Cleanup(func() { rootExec(t, "DROP TABLE IF EXISTS pisa_extmeta") })
	const q = "SELECT j, p, JSON_OBJECT('a', 1) o, 1 n FROM pisa_extmeta"
	for _, tg := range targets(t, tp) {
		for _, ext := range []uint32{0, mysql.MariaDBClientExtendedMetadata} {
			t.Run(fmt.Sprintf("%s/extended=%v", tg.name, ext != 0), func(t *testing.T) {
				pc := tg.dial(t, 0, ext)
				if pc.ext&mysql.MariaDBClientExtendedMetadata != ext {
					t.Fatalf("extended metadata negotiated %#x, asked %#x", pc.ext, ext)
				}
				check := func(cols [][]byte) {
					t.Helper()
					var metas []string
					for _, c := range cols {
						name, _, meta := columnDef(t, c, ext != 0)
						var kv []string
						for m := meta; len(m) > 0; {
							v, _, n, err := mysql.ReadLenEncBytes(m[1:])
							if err != nil {
								t.Fatalf("extended metadata %q: %v", meta, err)
							}
							kv = append(kv, fmt.Sprintf("%d:%s", m[0], v))
							m = m[1+n:]
						}
						metas = append(metas, name+"{"+strings.Join(kv, ",")+"}")
					}
					got := strings.Join(metas, " ")
					if ext != 0 {
						if !strings.Contains(got, "j{1:json}") || !strings.Contains(got, "p{0:point}") || !strings.Contains(got, "n{}") {
							t.Fatalf("extended metadata: %s", got)
						}
					} else if got != "j{} p{} o{} n{}" {
						t.Fatalf("metadata: %s", got)
					}
				}
				r := pc.mustQuery(t, q)
				if len(r.rows) != 1 {
					t.Fatalf("rows: %s", r)
				}
				check(r.cols)
				st := pc.prepare(t, q)
				rs := pc.execute(t, st.id, 0)
				check(rs[0].cols)
				pc.ping(t)
			})
		}
	}
}

// Two sessions preparing concurrently get their own statement ids (each
// numbering from 1) and their own results.
func TestConcurrentSessionsStmtIDs(t *testing.T) {
	tp := defaultProxy(t)
	const sessions, rounds = 4, 50
	ids := make([][]uint32, sessions)
	errc := make(chan error, sessions)
	for s := 0; s < sessions; s++ {
		pc := pdialProxy(t, tp.addr, 0, 0)
		go func() {
			errc <- func() (err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("%v", r)
					}
				}()
				ft := &fatalTB{TB: t}
				var open []*pstmt
				for i := 0; i < rounds; i++ {
					st := pc.prepare(ft, fmt.Sprintf("SELECT %d + ?, CONCAT('s%d-', ?)", s*1000, s))
					ids[s] = append(ids[s], st.id)
					open = append(open, st)
					for _, o := range open {
						rs := pc.execute(ft, o.id, 0, intParam(int64(i)), strParam(fmt.Sprint(i)))
						if len(rs) != 1 || len(rs[0].rows) != 1 {
							return fmt.Errorf("session %d: execute: %s", s, shape(rs))
						}
						row := binaryRow(ft, rs[0].rows[0], []byte{typeLongLong, typeVarString})
						if want := fmt.Sprintf("%d s%d-%d", s*1000+i, s, i); row[0]+" "+row[1] != want {
							return fmt.Errorf("session %d got %v, want %s", s, row, want)
						}
					}
					if len(open) == 3 {
						pc.send(ft, stmtPacket(mysql.ComStmtClose, open[0].id))
						open = open[1:]
					}
				}
				return nil
			}()
		}()
	}
	for s := 0; s < sessions; s++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	for s := 0; s < sessions; s++ {
		for i, id := range ids[s] {
			if id != uint32(i+1) {
				t.Fatalf("session %d: statement ids %v are not its own sequence", s, ids[s])
			}
		}
	}
}

// fatalTB turns Fatal into a panic so that helpers can run in goroutines.
type fatalTB struct{ testing.TB }

func (f *fatalTB) Helper()                   {}
func (f *fatalTB) Fatal(args ...any)         { panic(fmt.Sprint(args...)) }
func (f *fatalTB) Fatalf(s string, a ...any) { panic(fmt.Sprintf(s, a...)) }

// Commands the proxy does not support get ERR 1047 (08S01) naming the
// command, and the session goes on.
func TestRawUnsupportedCommands(t *testing.T) {
	tp := defaultProxy(t)
	pc := pdialProxy(t, tp.addr, 0, 0)
	for _, c := range []struct {
		p    []byte
		name string
	}{
		{[]byte{mysql.ComRegisterSlave, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "COM_REGISTER_SLAVE"},
		{[]byte{mysql.ComDaemon}, "COM_DAEMON"},
		{[]byte{0x99, 1, 2, 3}, "COM_UNKNOWN"},
		{[]byte{mysql.ComBinlogDumpGTID, 0, 0}, "COM_BINLOG_DUMP_GTID"},
		{[]byte{mysql.ComShutdown}, "COM_SHUTDOWN"},
		{[]byte{mysql.ComTableDump, 0, 0}, "COM_TABLE_DUMP"},
	} {
		p := pc.cmd(t, c.p)
		if code := errCode(t, p); code != 1047 {
			t.Fatalf("%s: code %d", c.name, code)
		}
		e := mysql.ParseErr(p)
		if e.SQLState != "08S01" || !strings.Contains(e.Message, c.name) {
			t.Fatalf("%s: %v", c.name, e)
		}
		pc.ping(t)
	}
	if v := pc.scalar(t, "SELECT 'alive'"); v != "alive" {
		t.Fatal(v)
	}
}

// A failed login gets ERR 1045 (28000) and the connection is closed, also
// for a client that ignores the error and sends a command.
func TestRawAuthFailureCloses(t *testing.T) {
	tp := defaultProxy(t)
	for _, c := range []struct {
		name   string
		o      pcOpts
		ignore bool
	}{
		{"wrong password", pcOpts{user: "proxy", password: "bad", db: "test"}, false},
		{"unknown user", pcOpts{user: "nobody", password: "x", db: "test"}, false},
		{"empty password for a user with one", pcOpts{user: "proxy", db: "test"}, false},
		{"client ignores the error", pcOpts{user: "proxy", password: "bad", db: "test"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			pc, err := pdial(t, tp.addr, c.o)
			var me *mysql.Error
			if !errors.As(err, &me) || me.Code != 1045 || me.SQLState != "28000" {
				t.Fatalf("want ERR 1045 (28000), got %v", err)
			}
			if !strings.Contains(me.Message, "Access denied for user '"+c.o.user+"'") {
				t.Fatalf("message %q", me.Message)
			}
			if c.ignore {
				pc.c.ResetSeq()
				_ = pc.c.WritePacketFlush(append([]byte{mysql.ComQuery}, "SELECT 1"...))
			}
			pc.expectClosed(t)
		})
	}
}

// LOAD DATA LOCAL INFILE from a client that did not offer
// CLIENT_LOCAL_FILES fails with MariaDB's error; the session stays in sync,
// also inside a multi-statement batch.
func TestRawLocalInfileWithoutCapability(t *testing.T) {
	tp := defaultProxy(t)
	rootExec(t, "DROP TABLE IF EXISTS pisa_noinfile", "CREATE TABLE pisa_noinfile (a INT)")
	t.Cleanup(func() { rootExec(t, "DROP TABLE IF EXISTS pisa_noinfile") })
	for _, tg := range targets(t, tp) {
		t.Run(tg.name, func(t *testing.T) {
			pc, err := func() (*pconn, error) {
				if tg.name == "proxy" {
					return pdial(t, tp.addr, pcOpts{user: "proxy", password: "proxypass", db: "test",
						caps: pcBaseCaps&^mysql.ClientLocalFiles | mysql.ClientMultiStatements})
				}
				return pdial(t, "127.0.0.1:3306", pcOpts{user: "root", db: "test",
					caps: pcBaseCaps&^mysql.ClientLocalFiles | mysql.ClientMultiStatements})
			}()
			if err != nil {
				t.Fatal(err)
			}
			rs := pc.query(t, "LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE pisa_noinfile")
			if len(rs) != 1 || rs[0].err == nil || rs[0].err.Code != 4166 {
				t.Fatalf("LOAD DATA LOCAL without CLIENT_LOCAL_FILES: %s", shape(rs))
			}
			pc.ping(t)
			rs = pc.query(t, "LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE pisa_noinfile; SELECT 'next'")
			if rs[0].err == nil && len(rs) != 2 {
				t.Fatalf("batch: %s", shape(rs))
			}
			if v := pc.scalar(t, "SELECT 'in sync'"); v != "in sync" {
				t.Fatal(v)
			}
		})
	}
}

// ---- packets larger than 16 MiB, compression ----

// bigPacketBackend returns a MariaDB whose max_allowed_packet accepts
// statements over 32 MiB: the shared server when it does, else a
// throwaway instance (the shared server's global is left alone).
func bigPacketBackend(t *testing.T) string {
	t.Helper()
	pc, err := pdial(t, "127.0.0.1:3306", pcOpts{user: "root", db: "test"})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := strconv.Atoi(pc.scalar(t, "SELECT @@GLOBAL.max_allowed_packet"))
	if v >= 40<<20 {
		return "127.0.0.1:3306"
	}
	if testing.Short() {
		t.Skipf("the shared MariaDB has max_allowed_packet=%d (< 40 MiB) and -short forbids starting a throwaway server with a larger one", v)
	}
	return testutil.StartMariaDB(t, "--max-allowed-packet=64M").Addr
}

// Packets of 16 MiB and more in both directions: exactly 0xffffff bytes
// (followed by an empty packet), one more, and 17 MiB; through the raw
// client, go-sql-driver (text and binary protocol) and compression.
func TestLargePacketsBothDirections(t *testing.T) {
	addr := bigPacketBackend(t)
	cfg := baseConfig(addr)
	cfg.Proxy.Config[0].MaxAllowedPacket = 64 << 20 // the backend's too
	tp := startProxy(t, cfg)
	for _, deprecate := range []uint32{0, mysql.ClientDeprecateEOF} {
		pc := pdialProxy(t, tp.addr, deprecate, 0)
		// client → server
		prefix := "SELECT LENGTH('"
		for _, total := range []int{mysql.MaxPayload, mysql.MaxPayload + 1, 17 << 20} {
			n := total - 1 - len(prefix) - 2
			q := prefix + strings.Repeat("q", n) + "')"
			if 1+len(q) != total {
				t.Fatalf("bad size arithmetic")
			}
			if got := pc.scalar(t, q); got != strconv.Itoa(n) {
				t.Fatalf("COM_QUERY of %d bytes: LENGTH = %s, want %d", total, got, n)
			}
		}
		// server → client: a row packet of exactly 0xffffff bytes (a
		// 3-byte length prefix plus the value), one more, and 17 MiB.
		for _, n := range []int{mysql.MaxPayload - 4, mysql.MaxPayload - 3, 17 << 20} {
			r := pc.mustQuery(t, fmt.Sprintf("SELECT REPEAT('r', %d), 'after'", n))
			if len(r.rows) != 1 {
				t.Fatalf("REPEAT %d: %s", n, r)
			}
			row := textRow(t, r.rows[0])
			if len(row[0]) != n || row[1] != "after" {
				t.Fatalf("REPEAT %d: got %d bytes, %q", n, len(row[0]), row[1])
			}
		}
		pc.ping(t)
	}

	blob := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), (17<<20)/36+1)
	sum := fmt.Sprintf("%x", md5sum(blob))
	root := openDB(t, fmt.Sprintf("root:@tcp(%s)/test", addr))
	root.Exec("DROP TABLE IF EXISTS pisa_big")
	if _, err := root.Exec("CREATE TABLE pisa_big (id INT PRIMARY KEY, b LONGBLOB)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Exec("DROP TABLE IF EXISTS pisa_big") })
	for i, params := range []string{"interpolateParams=true", "", "compress=true&interpolateParams=true", "compress=true"} {
		t.Run(params, func(t *testing.T) {
			db := openDB(t, tp.dsn("maxAllowedPacket=0&"+params))
			if _, err := db.Exec("INSERT INTO pisa_big VALUES (?, ?)", i, blob); err != nil {
				t.Fatalf("insert of %d bytes: %v", len(blob), err)
			}
			var n int
			var got string
			if err := db.QueryRow("SELECT LENGTH(b), MD5(b) FROM pisa_big WHERE id = ?", i).Scan(&n, &got); err != nil {
				t.Fatal(err)
			}
			if n != len(blob) || got != sum {
				t.Fatalf("stored %d bytes %s, want %d %s", n, got, len(blob), sum)
			}
			var back []byte
			if err := db.QueryRow("SELECT b FROM pisa_big WHERE id = ?", i).Scan(&back); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, blob) {
				t.Fatalf("read back %d bytes, differs", len(back))
			}
		})
	}
}

// compressedSessions counts the proxy's sessions using compression.
func compressedSessions(tp *testProxy) int {
	tp.p.sessions.mu.RLock()
	defer tp.p.sessions.mu.RUnlock()
	n := 0
	for _, s := range tp.p.sessions.m {
		if s.client.Compressed() {
			n++
		}
	}
	return n
}

// The compression protocol: queries, multiple results, a large result,
// prepared statements, with go-sql-driver and the raw client.
func TestCompressionProtocol(t *testing.T) {
	tp := defaultProxy(t)
	t.Run("go-sql-driver", func(t *testing.T) {
		db := openDB(t, tp.dsn("compress=true&multiStatements=true&maxAllowedPacket=0"))
		db.SetMaxOpenConns(1)
		if got := queryString(t, db, "SELECT CONCAT('com', 'pressed')"); got != "compressed" {
			t.Fatal(got)
		}
		if n := compressedSessions(tp); n != 1 {
			t.Fatalf("%d compressed sessions", n)
		}
		var cnt, total int64
		if err := db.QueryRow("SELECT COUNT(*), SUM(LENGTH(x)) FROM (SELECT REPEAT('x', seq % 1000) x FROM seq_1_to_50000) t").Scan(&cnt, &total); err != nil {
			t.Fatal(err)
		}
		rows, err := db.Query("SELECT seq, REPEAT(CHAR(65 + seq % 26), 300) FROM seq_1_to_100000")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var id int
			var s string
			if err := rows.Scan(&id, &s); err != nil {
				t.Fatal(err)
			}
			n++
			if id != n || len(s) != 300 || s[0] != byte(65+n%26) {
				t.Fatalf("row %d: %d %q", n, id, s[:3])
			}
		}
		if err := rows.Err(); err != nil || n != 100000 {
			t.Fatalf("%d rows, %v", n, err)
		}
		rows.Close()
		// A row over 16 MiB crosses the packet split inside compressed packets.
		var a, b []byte
		if err := db.QueryRow("SELECT REPEAT('a', 9*1024*1024), REPEAT('b', 9*1024*1024)").Scan(&a, &b); err != nil {
			t.Fatal(err)
		}
		if len(a) != 9<<20 || len(b) != 9<<20 || b[0] != 'b' {
			t.Fatalf("big row %d %d", len(a), len(b))
		}
		// Multiple results.
		rows, err = db.Query("SELECT 1; SELECT 2; SELECT 3")
		if err != nil {
			t.Fatal(err)
		}
		sets := 0
		for {
			for rows.Next() {
			}
			sets++
			if !rows.NextResultSet() {
				break
			}
		}
		rows.Close()
		if sets != 3 {
			t.Fatalf("%d result sets", sets)
		}
		// Prepared statements.
		st, err := db.Prepare("SELECT ? * 3, REPEAT(?, 100)")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		for i := 0; i < 50; i++ {
			var v int
			var s string
			if err := st.QueryRow(i, "ab").Scan(&v, &s); err != nil || v != 3*i || len(s) != 200 {
				t.Fatalf("prepared %d: %v %d %d", i, err, v, len(s))
			}
		}
	})
	t.Run("raw", func(t *testing.T) {
		for _, deprecate := range []uint32{0, mysql.ClientDeprecateEOF} {
			pc := pdialProxy(t, tp.addr, mysql.ClientCompress|mysql.ClientMultiStatements|deprecate, 0)
			if pc.caps&mysql.ClientCompress == 0 {
				t.Fatal("compression not negotiated")
			}
			rs := pc.query(t, "SELECT seq FROM seq_1_to_3000; SELECT 'two'")
			if len(rs) != 2 || len(rs[0].rows) != 3000 || len(rs[1].rows) != 1 {
				t.Fatalf("compressed multi result: %s", shape(rs))
			}
			st := pc.prepare(t, "SELECT seq, CONCAT('c', seq) FROM seq_1_to_1000 WHERE seq >= ?")
			rs = pc.execute(t, st.id, 0, intParam(1))
			if len(rs) != 1 || len(rs[0].rows) != 1000 {
				t.Fatalf("compressed execute: %s", shape(rs))
			}
			// A cursor over compression.
			r := pc.readResult(t, pc.cmd(t, execPacket(st.id, 1, []bparam{intParam(501)})), true)
			if r.status&mysql.StatusCursorExists == 0 {
				t.Fatalf("cursor: %s", r)
			}
			got := 0
			for {
				pc.send(t, binary.LittleEndian.AppendUint32(stmtPacket(mysql.ComStmtFetch, st.id), 100))
				var status uint16
				for {
					p := pc.read(t)
					if pc.isEnd(p) {
						status, _ = pc.parseEnd(t, p)
						break
					}
					if p[0] == mysql.ERRHeader {
						t.Fatal(mysql.ParseErr(p))
					}
					got++
				}
				if status&mysql.StatusLastRowSent != 0 {
					break
				}
			}
			if got != 500 {
				t.Fatalf("%d rows through the cursor", got)
			}
			pc.ping(t)
		}
	})
}

// A client of the proxy must not be able to kill backend threads it does
// not own by writing KILL in a form the proxy does not parse (MariaDB's
// KILL takes an expression): the victim, a direct connection to MariaDB,
// survives.
func TestKillCannotReachForeignBackendThreads(t *testing.T) {
	tp := defaultProxy(t)
	victim, err := pdial(t, "127.0.0.1:3306", pcOpts{user: "root", db: "test"})
	if err != nil {
		t.Fatal(err)
	}
	tid := victim.connID
	pc := pdialProxy(t, tp.addr, 0, 0)
	for _, q := range []string{
		fmt.Sprintf("KILL %d+0", tid),
		fmt.Sprintf("KILL (%d)", tid),
		fmt.Sprintf("KILL CONNECTION %d*1", tid),
		fmt.Sprintf("KILL HARD %d", tid),
		fmt.Sprintf("KILL QUERY ID %d", tid),
		fmt.Sprintf("/*!KILL %d+0*/", tid),
		fmt.Sprintf("/*M!100000 KILL %d+0 */", tid),
		fmt.Sprintf(" ( KILL %d+0 )", tid),
		"KILL USER root",
	} {
		rs := pc.query(t, q)
		victim.ping(t)
		if rs[0].err == nil {
			t.Errorf("%s: accepted (%s)", q, shape(rs))
		}
	}
	// KILL HARD/SOFT of a proxy connection id is the proxy's KILL.
	other := pdialProxy(t, tp.addr, 0, 0)
	other.ping(t)
	if r := pc.mustQuery(t, fmt.Sprintf("KILL SOFT QUERY %d", other.connID)); r.ok == nil {
		t.Fatalf("KILL SOFT QUERY: %s", r)
	}
	other.ping(t)
	if r := pc.mustQuery(t, fmt.Sprintf("KILL HARD %d", other.connID)); r.ok == nil {
		t.Fatalf("KILL HARD: %s", r)
	}
	other.expectClosed(t)

	t.Run("multi-statement", func(t *testing.T) {
		pc := pdialProxy(t, tp.addr, mysql.ClientMultiStatements, 0)
		rs := pc.query(t, fmt.Sprintf("SELECT 1; KILL %d", tid))
		victim.c.ResetSeq()
		_ = victim.c.WritePacketFlush([]byte{mysql.ComPing})
		_ = victim.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if p, err := victim.c.ReadPacket(); err != nil || p[0] != mysql.OKHeader {
			t.Fatalf("a KILL after the first statement of a multi-statement batch reached the backend "+
				"and killed backend thread %d (results %s)", tid, shape(rs))
		}
		// The proxy runs the KILL: a backend thread id is not one of its
		// connection ids.
		if len(rs) != 2 || rs[1].err == nil || rs[1].err.Code != 1094 {
			t.Fatalf("batch with KILL: want a result and ERR 1094, got %s", shape(rs))
		}
	})
}
