package proxy

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/crypt"
)

// secState is a session's security claim state.
type secState struct {
	tr     *crypt.Transformer
	user   string
	masked []string // masking rules applied to the last statement (audit)
	active bool     // the running statement's results go through relaySecureResultSet
	defs   [][]byte
	defBuf []byte
	row    []byte
}

// secTransformer returns the session's transformer for the runtime's
// schema and the session's user, describing decrypted and masked columns
// in the session's character_set_results.
func (s *session) secTransformer(sc *crypt.Schema) *crypt.Transformer {
	if s.sec.tr == nil || s.sec.tr.Schema() != sc || s.sec.user != s.user {
		s.sec.tr = sc.NewTransformer(s.user)
		s.sec.user = s.user
	}
	s.sec.tr.Collation = crypt.DefaultCollation
	if id, ok := charsetCollations[strings.ToLower(s.state.Vars["character_set_results"])]; ok {
		s.sec.tr.Collation = id
	}
	return s.sec.tr
}

// charsetCollations are MariaDB's default collation ids of character sets:
// the id the server reports for a string column sent in that
// character_set_results.
var charsetCollations = map[string]uint16{
	"big5": 1, "dec8": 3, "cp850": 4, "hp8": 6, "koi8r": 7, "latin1": 8, "latin2": 9, "swe7": 10,
	"ascii": 11, "ujis": 12, "sjis": 13, "hebrew": 16, "tis620": 18, "euckr": 19, "koi8u": 22,
	"gb2312": 24, "greek": 25, "cp1250": 26, "gbk": 28, "latin5": 30, "armscii8": 32, "utf8": 33,
	"utf8mb3": 33, "ucs2": 35, "cp866": 36, "keybcs2": 37, "macce": 38, "macroman": 39, "cp852": 40,
	"latin7": 41, "utf8mb4": 45, "cp1251": 51, "utf16": 54, "utf16le": 56, "cp1256": 57, "cp1257": 59,
	"utf32": 60, "binary": 63, "geostd8": 92, "cp932": 95, "eucjpms": 97,
}

// secQuery rewrites a COM_QUERY packet for the listener's security claim.
// It returns the packet to send (p when unchanged); an error is the
// refusal to send to the client.
func (s *session) secQuery(rt *runtime, p []byte) ([]byte, error) {
	s.sec.active = false
	sc := rt.sec
	if sc == nil || len(p) < 2 {
		return p, nil
	}
	tr := s.secTransformer(sc)
	r, err := sc.RewriteFor(s.l.proxy.parser, unsafe.String(&p[1], len(p)-1), tr.Masks())
	if err != nil {
		sc.CountRefusal()
		return p, err
	}
	if r.Touched {
		s.sec.active = true
		tr.ResetCounts()
	}
	if !r.Changed {
		return p, nil
	}
	// A packet of its own: a retry or a transaction log may keep it.
	np := make([]byte, 0, 1+len(r.SQL))
	return append(append(np, mysql.ComQuery), r.SQL...), nil
}

// secPrepare rewrites a COM_STMT_PREPARE packet; st is nil when the
// statement names no encrypted or masked table.
func (s *session) secPrepare(rt *runtime, p []byte) ([]byte, *crypt.Stmt, error) {
	sc := rt.sec
	if sc == nil || len(p) < 2 {
		return p, nil, nil
	}
	tr := s.secTransformer(sc)
	r, err := sc.RewriteFor(s.l.proxy.parser, string(p[1:]), tr.Masks())
	if err != nil {
		sc.CountRefusal()
		return p, nil, err
	}
	if !r.Touched {
		return p, nil, nil
	}
	st := crypt.NewStmt(&r)
	if !r.Changed {
		return p, st, nil
	}
	return append([]byte{mysql.ComStmtPrepare}, r.SQL...), st, nil
}

// secExecute rebuilds a COM_STMT_EXECUTE (its statement id already
// mapped) for a statement on encrypted or masked tables.
func (s *session) secExecute(rt *runtime, st *crypt.Stmt, p []byte) ([]byte, error) {
	s.sec.active = false
	sc := rt.sec
	if sc == nil {
		return p, Refusal("a statement prepared under a security claim that the configuration no longer has (prepare it again)")
	}
	if p[0] == mysql.ComStmtBulkExecute {
		sc.CountRefusal()
		return p, crypt.Refusal("COM_STMT_BULK_EXECUTE on a statement over an encrypted or masked table")
	}
	np, err := sc.Execute(make([]byte, 0, len(p)+64*st.BackendParams), st, p)
	if err != nil {
		var me *mysql.Error
		if errors.As(err, &me) && me.Code == 1235 {
			sc.CountRefusal()
		}
		return p, err
	}
	s.sec.active = true
	s.secTransformer(sc).ResetCounts()
	return np, nil
}

// takeMasked returns the masking rules the last statement applied (for
// the audit record) and forgets them.
func (st *secState) takeMasked() []string {
	if len(st.masked) == 0 {
		return nil
	}
	m := append([]string(nil), st.masked...)
	st.masked = st.masked[:0]
	return m
}

// Refusal is a 1235 error of the security claim.
func Refusal(format string, args ...any) *mysql.Error { return crypt.Refusal(format, args...) }

// secDone ends a statement that went through relaySecureResultSet: counts its
// operations and tells the audit log which masking rules applied.
func (s *session) secDone(rt *runtime) {
	if !s.sec.active {
		return
	}
	s.sec.active = false
	if tr := s.sec.tr; tr != nil && rt.sec != nil {
		rt.sec.CountTransformed(tr)
		s.sec.masked = append(s.sec.masked[:0], tr.Applied...)
	}
}

// readDefs reads n column definitions and the EOF after them into the
// session's buffers. It returns the EOF (or an ERR packet, eofIsErr).
func (s *session) readDefs(n uint64) (defs [][]byte, eof []byte, isErr bool, err error) {
	s.sec.defBuf = s.sec.defBuf[:0]
	offs := make([]int, 0, n+1)
	for i := uint64(0); i < n; i++ {
		p, err := s.readBackend()
		if err != nil {
			return nil, nil, false, err
		}
		if p[0] == mysql.ERRHeader {
			return nil, p, true, nil
		}
		offs = append(offs, len(s.sec.defBuf))
		s.sec.defBuf = append(s.sec.defBuf, p...)
	}
	offs = append(offs, len(s.sec.defBuf))
	s.sec.defs = s.sec.defs[:0]
	for i := 0; i+1 < len(offs); i++ {
		s.sec.defs = append(s.sec.defs, s.sec.defBuf[offs[i]:offs[i+1]])
	}
	p, err := s.readBackend()
	if err != nil {
		return nil, nil, false, err
	}
	if p[0] == mysql.ERRHeader {
		return nil, p, true, nil
	}
	if !mysql.IsEOF(p) {
		return nil, nil, false, &backendReadError{fmt.Errorf("expected EOF after column definitions, got 0x%02x", p[0])}
	}
	return s.sec.defs, p, false, nil
}

func (s *session) writeDefs(defs [][]byte) error {
	convert := s.extMetaMismatch()
	for _, d := range defs {
		if convert {
			d = s.convertColumnDef(d)
		}
		if err := s.writeClient(d); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) relaySecureResultSet(cols uint64, binary bool, r *result) error {
	defs, eof, isErr, err := s.readDefs(cols)
	if err != nil {
		return err
	}
	if isErr {
		return s.relayErr(eof, r)
	}
	tr := s.sec.tr
	out, err := tr.Columns(defs)
	if err != nil {
		return &backendReadError{err}
	}
	s.scratch = mysql.AppendLenEncInt(s.scratch[:0], uint64(len(out)))
	if err := s.writeClient(s.scratch); err != nil {
		return err
	}
	r.sent = true
	if err := s.writeDefs(out); err != nil {
		return err
	}
	if err := s.writeEOF(eof, r, false); err != nil {
		return err
	}
	if binary && r.status&mysql.StatusCursorExists != 0 {
		// Cursors are refused for these statements (crypt.Schema.Execute).
		return &backendReadError{errors.New("a cursor was opened for a statement on an encrypted table")}
	}
	if tr.Identity() {
		return s.relayRows(r)
	}
	for {
		p, err := s.readBackend()
		if err != nil {
			return err
		}
		if len(p) < 9 && p[0] == mysql.EOFHeader {
			return s.writeEOF(p, r, true)
		}
		if p[0] == mysql.ERRHeader {
			return s.relayErr(p, r)
		}
		row, terr := tr.Row(s.sec.row[:0], p, binary)
		s.sec.row = row
		if terr != nil {
			return s.secRowFailed(terr, r)
		}
		if err := s.writeClient(row); err != nil {
			return err
		}
		r.rows++
	}
}

// secRowFailed ends a result set whose row could not be transformed (a
// stored value that does not decrypt): the client gets an ERR in place of
// the rest of the rows, which are read and dropped so that the backend
// connection stays usable.
func (s *session) secRowFailed(terr error, r *result) error {
	if rt := s.l.rt.Load(); rt.sec != nil {
		rt.sec.CountDecryptFailure()
	}
	if ok, n := s.l.logLimit.allow("security_claim_decrypt"); ok {
		s.logger.Warn("result row not sent: a stored value does not decrypt", "error", terr, "suppressed_since_last", n)
	}
	for {
		p, err := s.readBackend()
		if err != nil {
			return err
		}
		if len(p) < 9 && p[0] == mysql.EOFHeader {
			_, r.status = mysql.ParseEOF(p)
			s.status = r.status & persistentStatus
			break
		}
		if p[0] == mysql.ERRHeader {
			break
		}
	}
	r.status &^= mysql.StatusMoreResultsExists
	me := mysql.NewError(mysql.ErrCodeUnknown, "HY000", "%s", "pisa-proxy security claim: "+terr.Error())
	r.err = me
	s.errSent = true
	s.scratch = mysql.AppendErr(s.scratch[:0], me)
	return s.writeClient(s.scratch)
}

// relayPrepareSecure is relayPrepare for a statement on encrypted or
// masked tables: the client is told its own parameter count, and the
// result columns as relaySecureResultSet will send them. It returns the backend's
// parameter count (compared when the statement is prepared again).
func (s *session) relayPrepareSecure(proxyID uint32, st *crypt.Stmt) (result, uint32, uint16, error) {
	var r result
	p, err := s.readBackend()
	if err != nil {
		return r, 0, 0, err
	}
	if p[0] == mysql.ERRHeader {
		return r, 0, 0, s.relayErr(p, &r)
	}
	if p[0] != mysql.OKHeader || len(p) < 12 {
		return r, 0, 0, &backendReadError{fmt.Errorf("bad prepare response")}
	}
	head := append([]byte(nil), p...)
	backendID := uint32(head[1]) | uint32(head[2])<<8 | uint32(head[3])<<16 | uint32(head[4])<<24
	cols := uint64(head[5]) | uint64(head[6])<<8
	params := uint64(head[7]) | uint64(head[8])<<8
	var paramDefs [][]byte
	var paramEOF []byte
	if params > 0 {
		defs, eof, isErr, err := s.readDefs(params)
		if err != nil {
			return r, backendID, uint16(params), err
		}
		if isErr {
			return r, backendID, uint16(params), s.relayErr(eof, &r)
		}
		// Copies: readDefs reuses its buffers for the columns.
		for _, d := range defs[:min(len(defs), st.ClientParams)] {
			paramDefs = append(paramDefs, append([]byte(nil), d...))
		}
		paramEOF = append([]byte(nil), eof...)
	}
	var colDefs [][]byte
	var colEOF []byte
	if cols > 0 {
		defs, eof, isErr, err := s.readDefs(cols)
		if err != nil {
			return r, backendID, uint16(params), err
		}
		if isErr {
			return r, backendID, uint16(params), s.relayErr(eof, &r)
		}
		if colDefs, err = s.sec.tr.Columns(defs); err != nil {
			return r, backendID, uint16(params), &backendReadError{err}
		}
		colEOF = eof
	}
	head[1], head[2], head[3], head[4] = byte(proxyID), byte(proxyID>>8), byte(proxyID>>16), byte(proxyID>>24)
	n := len(colDefs)
	head[5], head[6] = byte(n), byte(n>>8)
	crypt.PrepareOK(head, st)
	if err := s.writeClient(head); err != nil {
		return r, backendID, uint16(params), err
	}
	r.sent = true
	if st.ClientParams > 0 {
		if err := s.writeDefs(paramDefs); err != nil {
			return r, backendID, uint16(params), err
		}
		if err := s.writeEOF(paramEOF, &r, false); err != nil {
			return r, backendID, uint16(params), err
		}
	}
	if n > 0 {
		if err := s.writeDefs(colDefs); err != nil {
			return r, backendID, uint16(params), err
		}
		if err := s.writeEOF(colEOF, &r, false); err != nil {
			return r, backendID, uint16(params), err
		}
	}
	return r, backendID, uint16(params), nil
}
