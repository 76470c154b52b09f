package crypt

import (
	"encoding/binary"
	"fmt"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

const (
	typeBlob          = 0xfc
	errWrongArguments = 1210 // ER_WRONG_ARGUMENTS
)

// Stmt is the proxy's state for a prepared statement whose text was
// rewritten: how to build the backend's parameters from the client's.
type Stmt struct {
	// SQL is the rewritten text (prepared again after a lost backend).
	SQL          string
	Params       []Param
	ClientParams int
	// BackendParams is the parameter count of the rewritten text.
	BackendParams int
	// LongData is set when the client sent COM_STMT_SEND_LONG_DATA, which
	// cannot be encrypted: the next execute is refused.
	LongData bool
	types    []byte // the client's last bound parameter types
	plain    []byte
}

// NewStmt returns the state for a rewritten prepared statement.
func NewStmt(r *Rewritten) *Stmt {
	st := &Stmt{SQL: r.SQL, Params: r.Params, ClientParams: r.ClientParams, BackendParams: len(r.Params)}
	if r.Params == nil {
		st.BackendParams = r.ClientParams
	}
	return st
}

// Execute builds the backend's COM_STMT_EXECUTE from the client's packet
// p, appending it to dst. The statement id is copied (the caller maps it).
func (s *Schema) Execute(dst []byte, st *Stmt, p []byte) ([]byte, error) {
	if len(p) < 10 {
		return dst, mysql.NewError(mysql.ErrCodeUnknownCom, "08S01", "Malformed COM_STMT_EXECUTE")
	}
	if st.LongData {
		st.LongData = false
		return dst, Refusal("COM_STMT_SEND_LONG_DATA for a statement on an encrypted table (send the value with the execute)")
	}
	if p[5] != 0 {
		return dst, Refusal("a cursor (COM_STMT_EXECUTE flags %d) on a statement over an encrypted or masked table", p[5])
	}
	if st.Params == nil {
		// The parameters are the client's: only the text changed.
		return append(dst, p...), nil
	}
	n := st.ClientParams
	rest := p[10:]
	var bitmap []byte
	var values [][]byte // with their length headers
	if n > 0 {
		nb := (n + 7) / 8
		if len(rest) < nb+1 {
			return dst, mysql.NewError(errWrongArguments, "HY000", "Incorrect arguments to mysqld_stmt_execute")
		}
		bitmap = rest[:nb]
		bound := rest[nb]
		rest = rest[nb+1:]
		if bound == 1 {
			if len(rest) < 2*n {
				return dst, mysql.NewError(errWrongArguments, "HY000", "Incorrect arguments to mysqld_stmt_execute")
			}
			st.types = append(st.types[:0], rest[:2*n]...)
			rest = rest[2*n:]
		}
		if len(st.types) != 2*n {
			return dst, mysql.NewError(errWrongArguments, "HY000", "Incorrect arguments to mysqld_stmt_execute (no parameter types bound)")
		}
		values = make([][]byte, n)
		for i := 0; i < n; i++ {
			if bitmap[i/8]&(1<<(i%8)) != 0 {
				continue
			}
			l, hdr, err := binLen(st.types[2*i], rest)
			if err != nil {
				return dst, mysql.NewError(errWrongArguments, "HY000", "Incorrect arguments to mysqld_stmt_execute")
			}
			values[i] = rest[:hdr+l]
			rest = rest[hdr+l:]
		}
	}
	dst = append(dst, p[:10]...)
	m := len(st.Params)
	if m == 0 {
		return dst, nil
	}
	bm := len(dst)
	for i := 0; i < (m+7)/8; i++ {
		dst = append(dst, 0)
	}
	dst = append(dst, 1)
	for _, pr := range st.Params {
		if pr.From >= n {
			return dst, fmt.Errorf("crypt: parameter %d of %d", pr.From, n)
		}
		if pr.Op == ParamCopy {
			dst = append(dst, st.types[2*pr.From], st.types[2*pr.From+1])
		} else {
			dst = append(dst, typeBlob, 0)
		}
	}
	for j, pr := range st.Params {
		v := values[pr.From]
		if v == nil {
			dst[bm+j/8] |= 1 << (j % 8)
			continue
		}
		if pr.Op == ParamCopy {
			dst = append(dst, v...)
			continue
		}
		cp := colPlan{typ: st.types[2*pr.From], unsigned: st.types[2*pr.From+1]&0x80 != 0, decimals: 6}
		if isTemporal(cp.typ) && len(v) > 0 && (int(v[0]) == 7 || int(v[0]) == 4 || int(v[0]) == 8) {
			cp.decimals = 0 // no microseconds sent
		}
		var err error
		st.plain, err = binText(st.plain[:0], &cp, v)
		if err != nil {
			return dst, mysql.NewError(errWrongArguments, "HY000", "Incorrect arguments to mysqld_stmt_execute")
		}
		start := len(dst)
		dst = append(dst, make([]byte, 9)...) // room for the length header
		body := len(dst)
		if pr.Op == ParamEncrypt {
			dst = s.Keys.Encrypt(dst, st.plain, pr.Col.aad)
			s.cEncrypt.add(1)
		} else {
			dst = s.Keys.Assist(dst, st.plain)
			s.cAssist.add(1)
		}
		dst = putLenEnc(dst, start, body)
	}
	return dst, nil
}

func isTemporal(t byte) bool {
	switch t {
	case typeDate, typeDateTime, typeTimestamp, typeTime, typeNewDate, typeTimestamp2, typeDateTime2, typeTime2:
		return true
	}
	return false
}

// putLenEnc writes the length-encoded length of dst[body:] at dst[start:]
// (9 bytes reserved there) and closes the gap.
func putLenEnc(dst []byte, start, body int) []byte {
	l := len(dst) - body
	var hdr [9]byte
	h := mysql.AppendLenEncInt(hdr[:0], uint64(l))
	copy(dst[start:], h)
	copy(dst[start+len(h):], dst[body:])
	return dst[:start+len(h)+l]
}

// PrepareOK rewrites the backend's COM_STMT_PREPARE OK packet for the
// client: its parameter count becomes the client's.
func PrepareOK(p []byte, st *Stmt) {
	if len(p) >= 9 {
		binary.LittleEndian.PutUint16(p[7:], uint16(st.ClientParams))
	}
}
