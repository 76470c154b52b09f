package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
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
	pc := &pconn{c: c, nc: nc, caps: caps, ext: ext, salt: g.salt, connID: g.connID, version: g.version, plugin: g.plugin}
	auth := mysql.ScrambleNative(g.salt, o.password)
	resp := binary.LittleEndian.AppendUint32(nil, caps)
	resp = binary.LittleEndian.AppendUint32(resp, 1<<24)
	resp = append(resp, mysql.DefaultCollationID)
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
