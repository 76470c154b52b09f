package crypt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// Column types and flags used here (Protocol::ColumnType).
const (
	typeDecimal    = 0x00
	typeTiny       = 0x01
	typeShort      = 0x02
	typeLong       = 0x03
	typeFloat      = 0x04
	typeDouble     = 0x05
	typeNull       = 0x06
	typeTimestamp  = 0x07
	typeLongLong   = 0x08
	typeInt24      = 0x09
	typeDate       = 0x0a
	typeTime       = 0x0b
	typeDateTime   = 0x0c
	typeYear       = 0x0d
	typeNewDate    = 0x0e
	typeTimestamp2 = 0x11
	typeDateTime2  = 0x12
	typeTime2      = 0x13
	typeVarString  = 0xfd

	flagNotNull  = 0x0001
	flagUnsigned = 0x0020
	flagBlob     = 0x0010
	flagBinary   = 0x0080
)

// DefaultCollation is the collation id given to decrypted and masked
// columns when the session's is unknown (utf8mb4_general_ci).
const DefaultCollation = 45

type colAction uint8

const (
	actPass colAction = iota
	actDecrypt
	actDrop
)

type colPlan struct {
	act      colAction
	col      *Column
	mask     *Mask
	typ      byte
	unsigned bool
	decimals byte
}

// Transformer rewrites the result sets of statements that name encrypted
// or masked tables: it decrypts cipher columns (found by the column
// definitions' org_table and org_name, so SELECT * works), drops the
// assisted and plain columns, and masks the columns the session user's
// masking rules name. Rows are transformed one at a time (streaming).
//
// One Transformer serves one session (it keeps a scratch buffer); Columns
// sets it up for each result set.
type Transformer struct {
	s     *Schema
	masks []*Mask
	// Collation is the collation id written into the definitions of
	// decrypted and masked columns.
	Collation uint16

	cols     []colPlan
	out      int
	identity bool
	defs     [][]byte
	defBuf   []byte
	plain    []byte
	masked   []byte
	// Decrypted and Masked count values since the last ResetCounts;
	// Applied lists the masking rules applied (for the audit log).
	Decrypted uint64
	MaskedN   uint64
	Applied   []string
}

// NewTransformer returns a Transformer for a session of user.
func (s *Schema) NewTransformer(user string) *Transformer {
	return &Transformer{s: s, masks: s.Masks(user), Collation: DefaultCollation}
}

// Masks returns the masking rules of the transformer's user.
func (t *Transformer) Masks() []*Mask { return t.masks }

// Schema returns the schema the transformer was made for.
func (t *Transformer) Schema() *Schema { return t.s }

// ResetCounts clears the per-statement counters.
func (t *Transformer) ResetCounts() {
	t.Decrypted, t.MaskedN = 0, 0
	t.Applied = t.Applied[:0]
}

// Identity reports whether the current result set passes unchanged.
func (t *Transformer) Identity() bool { return t.identity }

// OutColumns is the number of columns the client gets.
func (t *Transformer) OutColumns() int { return t.out }

// colDef is the part of a column definition the transformer reads.
type colDef struct {
	orgTable, name, orgName []byte
	nameOff, fixedOff       int // offsets of name and of the 0x0c byte
	extOff                  int // offset after org_name
}

func parseColDef(p []byte) (colDef, error) {
	var d colDef
	off := 0
	for i := 0; i < 6; i++ {
		s, null, n, err := mysql.ReadLenEncBytes(p[off:])
		if err != nil || null {
			return d, fmt.Errorf("crypt: column definition field %d: %w", i, mysql.ErrMalformed)
		}
		switch i {
		case 3:
			d.orgTable = s
		case 4:
			d.name, d.nameOff = s, off
		case 5:
			d.orgName = s
		}
		off += n
	}
	d.extOff = off
	rest := p[off:]
	if !(len(rest) == 13 && rest[0] == 0x0c) {
		if _, null, n, err := mysql.ReadLenEncBytes(rest); err == nil && !null && len(rest) >= n+13 && rest[n] == 0x0c {
			off += n
		}
	}
	if len(p) < off+13 || p[off] != 0x0c {
		return d, fmt.Errorf("crypt: column definition fixed fields: %w", mysql.ErrMalformed)
	}
	d.fixedOff = off
	return d, nil
}

func lowerEq(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		d := s[i]
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// Columns plans a result set from its column definitions and returns the
// definitions to send (valid until the next call).
func (t *Transformer) Columns(defs [][]byte) ([][]byte, error) {
	t.cols = t.cols[:0]
	t.defs = t.defs[:0]
	t.defBuf = t.defBuf[:0]
	t.identity = true
	type span struct{ start, end int }
	var spans []span
	for _, p := range defs {
		d, err := parseColDef(p)
		if err != nil {
			return nil, err
		}
		f := p[d.fixedOff+1:]
		cp := colPlan{typ: f[6], unsigned: (uint16(f[7])|uint16(f[8])<<8)&flagUnsigned != 0, decimals: f[9]}
		var logical string
		orgTable := lower(d.orgTable)
		if l, ok := t.s.physical[string(orgTable)]; ok {
			// A sharded table's physical table (t_user_1): its logical
			// table's columns and masking rules apply.
			orgTable = []byte(l)
		}
		if tb := t.s.tables[string(orgTable)]; tb != nil {
			if pc, ok := tb.phys[string(lower(d.orgName))]; ok {
				switch pc.role {
				case roleCipher:
					cp.act, cp.col = actDecrypt, pc.col
					logical = pc.col.Name
				default:
					cp.act = actDrop
				}
			}
		}
		if cp.act != actDrop {
			for _, m := range t.masks {
				if lowerEq(orgTable, m.table) && (lowerEq(d.orgName, m.column) || (cp.col != nil && lowerEq([]byte(cp.col.Name), m.column))) {
					cp.mask = m
					break
				}
			}
		}
		t.cols = append(t.cols, cp)
		start := len(t.defBuf)
		switch {
		case cp.act == actDrop:
			t.identity = false
			continue
		case cp.act == actDecrypt || (cp.mask != nil && !cp.mask.Null()):
			t.identity = false
			t.defBuf = t.appendDef(t.defBuf, p, &d, logical)
		default:
			t.defBuf = append(t.defBuf, p...)
			if cp.mask != nil {
				// Masked to NULL: the column is no longer NOT NULL.
				t.identity = false
				t.defBuf[start+d.fixedOff+8] &^= byte(flagNotNull)
			}
		}
		spans = append(spans, span{start, len(t.defBuf)})
	}
	t.out = len(spans)
	for _, sp := range spans {
		t.defs = append(t.defs, t.defBuf[sp.start:sp.end])
	}
	return t.defs, nil
}

func lower(b []byte) []byte {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			out := make([]byte, len(b))
			for i, c := range b {
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				out[i] = c
			}
			return out
		}
	}
	return b
}

// appendDef writes a definition for a column whose values become text:
// the logical name (when the column was not aliased), the session's
// collation, type VAR_STRING, no BINARY or BLOB flag.
func (t *Transformer) appendDef(dst, p []byte, d *colDef, logical string) []byte {
	// catalog, schema, table, org_table
	dst = append(dst, p[:d.nameOff]...)
	name := d.name
	if logical != "" && lowerEq(d.name, string(d.orgName)) {
		name = []byte(logical)
	}
	dst = mysql.AppendLenEncInt(dst, uint64(len(name)))
	dst = append(dst, name...)
	orgName := d.orgName
	if logical != "" {
		orgName = []byte(logical)
	}
	dst = mysql.AppendLenEncInt(dst, uint64(len(orgName)))
	dst = append(dst, orgName...)
	dst = append(dst, p[d.extOff:d.fixedOff]...) // extended metadata, if any
	f := p[d.fixedOff:]
	fixed := len(dst)
	dst = append(dst, f...)
	g := dst[fixed+1:]
	g[0], g[1] = byte(t.Collation), byte(t.Collation>>8)
	if logical != "" && binary.LittleEndian.Uint32(g[2:6]) < 1024 {
		binary.LittleEndian.PutUint32(g[2:6], 1024)
	}
	g[6] = typeVarString
	flags := uint16(g[7]) | uint16(g[8])<<8
	flags &^= flagBinary | flagBlob | flagUnsigned
	g[7], g[8] = byte(flags), byte(flags>>8)
	g[9] = 0
	return dst
}

// ErrDecrypt wraps a stored value that does not decrypt.
var ErrDecrypt = errors.New("crypt: stored value does not decrypt")

// Row transforms one row packet (text or binary protocol), appending the
// new row to dst.
func (t *Transformer) Row(dst, row []byte, bin bool) ([]byte, error) {
	if bin {
		return t.binaryRow(dst, row)
	}
	off := 0
	for i := range t.cols {
		cp := &t.cols[i]
		if off >= len(row) {
			return dst, fmt.Errorf("crypt: text row: %w", mysql.ErrMalformed)
		}
		if row[off] == 0xfb {
			off++
			if cp.act != actDrop {
				dst = append(dst, 0xfb)
			}
			continue
		}
		v, _, n, err := mysql.ReadLenEncBytes(row[off:])
		if err != nil {
			return dst, fmt.Errorf("crypt: text row: %w", err)
		}
		off += n
		if cp.act == actDrop {
			continue
		}
		if cp.act == actDecrypt {
			if v, err = t.decrypt(v, cp.col); err != nil {
				return dst, err
			}
		}
		if cp.mask != nil {
			if cp.mask.Null() {
				t.noteMask(cp.mask)
				dst = append(dst, 0xfb)
				continue
			}
			v = t.mask(v, cp.mask)
		}
		dst = mysql.AppendLenEncInt(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	return dst, nil
}

func (t *Transformer) decrypt(v []byte, c *Column) ([]byte, error) {
	pl, err := t.s.Keys.Decrypt(t.plain[:0], v, c.aad)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDecrypt, c.QualifiedName(), err)
	}
	t.plain = pl
	t.Decrypted++
	return pl, nil
}

func (t *Transformer) mask(v []byte, m *Mask) []byte {
	t.masked = m.Apply(t.masked[:0], v)
	t.noteMask(m)
	return t.masked
}

func (t *Transformer) noteMask(m *Mask) {
	t.MaskedN++
	for _, n := range t.Applied {
		if n == m.Name {
			return
		}
	}
	t.Applied = append(t.Applied, m.Name)
}

// binaryRow transforms a binary protocol row: 0x00, the NULL bitmap (two
// bits offset), then the non-NULL values.
func (t *Transformer) binaryRow(dst, row []byte) ([]byte, error) {
	n := len(t.cols)
	nb := (n + 7 + 2) / 8
	if len(row) < 1+nb || row[0] != 0 {
		return dst, fmt.Errorf("crypt: binary row: %w", mysql.ErrMalformed)
	}
	bitmap := row[1 : 1+nb]
	onb := (t.out + 7 + 2) / 8
	dst = append(dst, 0)
	bm := len(dst)
	for i := 0; i < onb; i++ {
		dst = append(dst, 0)
	}
	off := 1 + nb
	o := 0
	for i := 0; i < n; i++ {
		cp := &t.cols[i]
		null := bitmap[(i+2)/8]&(1<<((i+2)%8)) != 0
		var v []byte
		if !null {
			l, hdr, err := binLen(cp.typ, row[off:])
			if err != nil {
				return dst, err
			}
			v = row[off : off+hdr+l]
			off += hdr + l
			if cp.act == actDrop {
				continue
			}
			if cp.act == actDecrypt {
				v = v[hdr:]
			}
		}
		if cp.act == actDrop {
			continue
		}
		if !null && cp.act == actDecrypt {
			var err error
			if v, err = t.decrypt(v, cp.col); err != nil {
				return dst, err
			}
		}
		if !null && cp.mask != nil {
			if cp.mask.Null() {
				t.noteMask(cp.mask)
				null = true
			} else {
				if cp.act != actDecrypt {
					var err error
					if v, err = binText(t.masked[:0], cp, v); err != nil {
						return dst, err
					}
					v = append([]byte(nil), v...)
				}
				v = t.mask(v, cp.mask)
			}
		}
		if null {
			dst[bm+(o+2)/8] |= 1 << ((o + 2) % 8)
		} else if cp.act == actDecrypt || cp.mask != nil {
			dst = mysql.AppendLenEncInt(dst, uint64(len(v)))
			dst = append(dst, v...)
		} else {
			dst = append(dst, v...)
		}
		o++
	}
	return dst, nil
}

// binLen returns the length of a binary protocol value of type typ at b
// and the size of its length header.
func binLen(typ byte, b []byte) (n, hdr int, err error) {
	fixed := 0
	switch typ {
	case typeNull:
		return 0, 0, nil
	case typeTiny:
		fixed = 1
	case typeShort, typeYear:
		fixed = 2
	case typeLong, typeInt24, typeFloat:
		fixed = 4
	case typeLongLong, typeDouble:
		fixed = 8
	case typeDate, typeDateTime, typeTimestamp, typeTime, typeNewDate, typeTimestamp2, typeDateTime2, typeTime2:
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return 0, 0, fmt.Errorf("crypt: binary temporal value: %w", mysql.ErrMalformed)
		}
		return int(b[0]), 1, nil
	default:
		v, null, k, err := mysql.ReadLenEncInt(b)
		if err != nil || null || uint64(len(b)-k) < v {
			return 0, 0, fmt.Errorf("crypt: binary value: %w", mysql.ErrMalformed)
		}
		return int(v), k, nil
	}
	if len(b) < fixed {
		return 0, 0, fmt.Errorf("crypt: binary value: %w", mysql.ErrMalformed)
	}
	return fixed, 0, nil
}

// binText renders a binary protocol value (with its header) as the text
// the text protocol would send, for masking.
func binText(dst []byte, cp *colPlan, v []byte) ([]byte, error) {
	switch cp.typ {
	case typeTiny:
		if cp.unsigned {
			return strconv.AppendUint(dst, uint64(v[0]), 10), nil
		}
		return strconv.AppendInt(dst, int64(int8(v[0])), 10), nil
	case typeShort, typeYear:
		u := binary.LittleEndian.Uint16(v)
		if cp.unsigned || cp.typ == typeYear {
			return strconv.AppendUint(dst, uint64(u), 10), nil
		}
		return strconv.AppendInt(dst, int64(int16(u)), 10), nil
	case typeLong, typeInt24:
		u := binary.LittleEndian.Uint32(v)
		if cp.unsigned {
			return strconv.AppendUint(dst, uint64(u), 10), nil
		}
		return strconv.AppendInt(dst, int64(int32(u)), 10), nil
	case typeLongLong:
		u := binary.LittleEndian.Uint64(v)
		if cp.unsigned {
			return strconv.AppendUint(dst, u, 10), nil
		}
		return strconv.AppendInt(dst, int64(u), 10), nil
	case typeFloat:
		return strconv.AppendFloat(dst, float64(math.Float32frombits(binary.LittleEndian.Uint32(v))), 'g', -1, 32), nil
	case typeDouble:
		return strconv.AppendFloat(dst, math.Float64frombits(binary.LittleEndian.Uint64(v)), 'g', -1, 64), nil
	case typeDate, typeDateTime, typeTimestamp, typeNewDate, typeTimestamp2, typeDateTime2:
		return appendDateTime(dst, v[1:], cp.typ == typeDate || cp.typ == typeNewDate, cp.decimals), nil
	case typeTime, typeTime2:
		return appendTime(dst, v[1:], cp.decimals), nil
	}
	_, _, k, err := mysql.ReadLenEncInt(v)
	if err != nil {
		return dst, err
	}
	return append(dst, v[k:]...), nil
}

func pad(dst []byte, v, width int) []byte {
	s := strconv.Itoa(v)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

func appendFrac(dst []byte, us uint32, decimals byte) []byte {
	if decimals == 0 || decimals > 6 {
		return dst
	}
	s := strconv.Itoa(int(us))
	for len(s) < 6 {
		s = "0" + s
	}
	return append(append(dst, '.'), s[:decimals]...)
}

func appendDateTime(dst, b []byte, dateOnly bool, decimals byte) []byte {
	var y, mo, d, h, mi, s int
	var us uint32
	if len(b) >= 4 {
		y, mo, d = int(binary.LittleEndian.Uint16(b)), int(b[2]), int(b[3])
	}
	if len(b) >= 7 {
		h, mi, s = int(b[4]), int(b[5]), int(b[6])
	}
	if len(b) >= 11 {
		us = binary.LittleEndian.Uint32(b[7:])
	}
	dst = pad(dst, y, 4)
	dst = append(dst, '-')
	dst = pad(dst, mo, 2)
	dst = append(dst, '-')
	dst = pad(dst, d, 2)
	if dateOnly {
		return dst
	}
	dst = append(dst, ' ')
	dst = pad(dst, h, 2)
	dst = append(dst, ':')
	dst = pad(dst, mi, 2)
	dst = append(dst, ':')
	dst = pad(dst, s, 2)
	return appendFrac(dst, us, decimals)
}

func appendTime(dst, b []byte, decimals byte) []byte {
	var neg bool
	var days uint32
	var h, mi, s int
	var us uint32
	if len(b) >= 8 {
		neg = b[0] == 1
		days = binary.LittleEndian.Uint32(b[1:])
		h, mi, s = int(b[5]), int(b[6]), int(b[7])
	}
	if len(b) >= 12 {
		us = binary.LittleEndian.Uint32(b[8:])
	}
	if neg {
		dst = append(dst, '-')
	}
	dst = pad(dst, int(days)*24+h, 2)
	dst = append(dst, ':')
	dst = pad(dst, mi, 2)
	dst = append(dst, ':')
	dst = pad(dst, s, 2)
	return appendFrac(dst, us, decimals)
}
