package merge

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// kind is how values of a column compare.
type kind uint8

const (
	kindString   kind = iota // by collation (coll)
	kindInt                  // signed integer
	kindUint                 // unsigned integer
	kindFloat                // FLOAT, DOUBLE
	kindDecimal              // DECIMAL: decimal string
	kindDateTime             // DATE, DATETIME, TIMESTAMP: packed integer
	kindTime                 // TIME: signed microseconds
	kindNone                 // cannot be compared exactly (ENUM, SET, unknown collation)
)

// colInfo is a column with what comparing and encoding its values needs.
type colInfo struct {
	Column
	kind kind
	coll *collation // kindString only; nil when the collation is unsupported
	why  string     // kindNone: the reason, for the 1235 message
}

func newColInfo(c Column) colInfo {
	ci := colInfo{Column: c}
	switch c.Type {
	case TypeTiny, TypeShort, TypeLong, TypeInt24, TypeLongLong, TypeYear:
		if c.Unsigned() || c.Type == TypeYear {
			ci.kind = kindUint
		} else {
			ci.kind = kindInt
		}
	case TypeFloat, TypeDouble:
		ci.kind = kindFloat
	case TypeDecimal, TypeNewDecimal:
		ci.kind = kindDecimal
	case TypeDate, TypeNewDate, TypeDateTime, TypeTimestamp, TypeDateTime2, TypeTimestamp2:
		ci.kind = kindDateTime
	case TypeTime, TypeTime2:
		ci.kind = kindTime
	case TypeNull:
		ci.kind = kindInt // always NULL
	case TypeEnum, TypeSet:
		ci.kind = kindNone
		ci.why = "ENUM/SET column (sorted by index, not text)"
	case TypeBit, TypeGeometry:
		ci.kind = kindString
		ci.coll = collationByID(CollationBinary)
	default:
		ci.kind = kindString
		switch {
		case c.Flags&FlagEnum != 0 || c.Flags&FlagSet != 0:
			ci.kind = kindNone
			ci.why = "ENUM/SET column (sorted by index, not text)"
		default:
			ci.coll = collationFor(c)
			if ci.coll == nil {
				ci.kind = kindNone
				ci.why = "string column with collation id " + strconv.Itoa(int(c.Collation))
			}
		}
	}
	return ci
}

// field locates one value in a row payload.
type field struct {
	start, end int // the whole encoding (length prefix included)
	val        int // where the value itself starts
	null       bool
}

func (f *field) value(row []byte) []byte { return row[f.val:f.end] }

// decodeRow finds the values of a row payload. fields has one entry per
// column.
func decodeRow(row []byte, bin bool, cols []colInfo, fields []field) error {
	if !bin {
		off := 0
		for i := range fields {
			if off >= len(row) {
				return errShortRow
			}
			if row[off] == 0xfb {
				fields[i] = field{start: off, end: off + 1, val: off + 1, null: true}
				off++
				continue
			}
			s, null, n, err := mysql.ReadLenEncBytes(row[off:])
			if err != nil || null {
				return errBadRow
			}
			fields[i] = field{start: off, end: off + n, val: off + n - len(s)}
			off += n
		}
		if off != len(row) {
			return errBadRow
		}
		return nil
	}
	nb := (len(fields) + 7 + 2) / 8
	if len(row) < 1+nb || row[0] != 0x00 {
		return errBadRow
	}
	bitmap := row[1 : 1+nb]
	off := 1 + nb
	for i := range fields {
		bit := i + 2
		if bitmap[bit>>3]&(1<<(bit&7)) != 0 {
			fields[i] = field{start: off, end: off, val: off, null: true}
			continue
		}
		n, hdr := 0, 0
		switch cols[i].Type {
		case TypeTiny:
			n = 1
		case TypeShort, TypeYear:
			n = 2
		case TypeLong, TypeInt24, TypeFloat:
			n = 4
		case TypeLongLong, TypeDouble:
			n = 8
		case TypeNull:
			n = 0
		case TypeDate, TypeNewDate, TypeDateTime, TypeTimestamp, TypeDateTime2, TypeTimestamp2,
			TypeTime, TypeTime2:
			if off >= len(row) {
				return errShortRow
			}
			hdr, n = 1, int(row[off])
		default:
			v, null, k, err := mysql.ReadLenEncInt(row[off:])
			if err != nil || null || v > uint64(len(row)) {
				return errBadRow
			}
			hdr, n = k, int(v)
		}
		if len(row)-off < hdr+n {
			return errShortRow
		}
		fields[i] = field{start: off, end: off + hdr + n, val: off + hdr}
		off += hdr + n
	}
	if off != len(row) {
		return errBadRow
	}
	return nil
}

// key is a decoded value, ready to compare.
type key struct {
	null bool
	i    int64
	u    uint64
	f    float64
	b    []byte // kindString, kindDecimal: the bytes (aliasing the row)
}

// decodeKey decodes the value of column c in field f of row.
func decodeKey(row []byte, f *field, c *colInfo, bin bool, k *key) error {
	*k = key{}
	if f.null {
		k.null = true
		return nil
	}
	v := f.value(row)
	if bin {
		return decodeBinaryKey(v, c, k)
	}
	return decodeTextKey(v, c, k)
}

func decodeTextKey(v []byte, c *colInfo, k *key) error {
	var ok bool
	switch c.kind {
	case kindInt:
		k.i, ok = parseInt(v)
	case kindUint:
		k.u, ok = parseUint(v)
	case kindFloat:
		if ok = floatText(v); ok {
			var err error
			k.f, err = strconv.ParseFloat(string(v), 64)
			ok = err == nil
		}
	case kindDecimal:
		k.b, ok = v, validDecimal(v)
	case kindDateTime:
		k.i, ok = parseDateTime(v)
	case kindTime:
		k.i, ok = parseTime(v)
	default:
		k.b, ok = v, true
	}
	if !ok {
		return errBadValue
	}
	return nil
}

func decodeBinaryKey(v []byte, c *colInfo, k *key) error {
	switch c.Type {
	case TypeTiny, TypeShort, TypeYear, TypeLong, TypeInt24, TypeLongLong:
		var u uint64
		var s int64
		switch len(v) {
		case 1:
			u, s = uint64(v[0]), int64(int8(v[0]))
		case 2:
			x := binary.LittleEndian.Uint16(v)
			u, s = uint64(x), int64(int16(x))
		case 4:
			x := binary.LittleEndian.Uint32(v)
			u, s = uint64(x), int64(int32(x))
		case 8:
			u = binary.LittleEndian.Uint64(v)
			s = int64(u)
		default:
			return errBadValue
		}
		if c.kind == kindUint {
			k.u = u
		} else {
			k.i = s
		}
	case TypeFloat:
		if len(v) != 4 {
			return errBadValue
		}
		k.f = float64(math.Float32frombits(binary.LittleEndian.Uint32(v)))
	case TypeDouble:
		if len(v) != 8 {
			return errBadValue
		}
		k.f = math.Float64frombits(binary.LittleEndian.Uint64(v))
	case TypeNull:
	case TypeDate, TypeNewDate, TypeDateTime, TypeTimestamp, TypeDateTime2, TypeTimestamp2:
		var y, mo, d, h, mi, s, us int64
		switch len(v) {
		case 0:
		case 4, 7, 11:
			y, mo, d = int64(binary.LittleEndian.Uint16(v)), int64(v[2]), int64(v[3])
			if len(v) >= 7 {
				h, mi, s = int64(v[4]), int64(v[5]), int64(v[6])
			}
			if len(v) == 11 {
				us = int64(binary.LittleEndian.Uint32(v[7:]))
			}
		default:
			return errBadValue
		}
		k.i = packDateTime(y, mo, d, h, mi, s, us)
	case TypeTime, TypeTime2:
		var neg bool
		var days, h, mi, s, us int64
		switch len(v) {
		case 0:
		case 8, 12:
			neg = v[0] == 1
			days = int64(binary.LittleEndian.Uint32(v[1:]))
			h, mi, s = int64(v[5]), int64(v[6]), int64(v[7])
			if len(v) == 12 {
				us = int64(binary.LittleEndian.Uint32(v[8:]))
			}
		default:
			return errBadValue
		}
		t := ((((days*24+h)*60+mi)*60+s)*1000000 + us)
		if neg {
			t = -t
		}
		k.i = t
	default:
		if c.kind == kindDecimal {
			if !validDecimal(v) {
				return errBadValue
			}
		}
		k.b = v
	}
	return nil
}

// compareKeys orders two values of column c: NULL first, then by kind.
func compareKeys(a, b *key, c *colInfo) int {
	if a.null || b.null {
		switch {
		case a.null && b.null:
			return 0
		case a.null:
			return -1
		default:
			return 1
		}
	}
	switch c.kind {
	case kindInt, kindDateTime, kindTime:
		return cmp3(a.i < b.i, a.i > b.i)
	case kindUint:
		return cmp3(a.u < b.u, a.u > b.u)
	case kindFloat:
		return cmp3(a.f < b.f, a.f > b.f)
	case kindDecimal:
		return compareDecimal(a.b, b.b)
	case kindString:
		return c.coll.compare(a.b, b.b)
	}
	return 0
}

func cmp3(lt, gt bool) int {
	if lt {
		return -1
	}
	if gt {
		return 1
	}
	return 0
}

func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	if b[0] == '+' {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

func parseInt(b []byte) (int64, bool) {
	if len(b) > 0 && b[0] == '-' {
		u, ok := parseUint(b[1:])
		if !ok || u > 1<<63 || (len(b) > 1 && b[1] == '+') {
			return 0, false
		}
		return -int64(u), true
	}
	u, ok := parseUint(b)
	if !ok || u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// validDecimal reports whether b is [-]digits[.digits].
func validDecimal(b []byte) bool {
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		b = b[1:]
	}
	if len(b) == 0 {
		return false
	}
	dot, digits := false, 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}

// splitDecimal returns the sign, the integer digits without leading zeros
// and the fraction digits without trailing zeros of a valid decimal.
func splitDecimal(b []byte) (neg bool, ip, fp []byte) {
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	ip = b
	if i := bytes.IndexByte(b, '.'); i >= 0 {
		ip, fp = b[:i], b[i+1:]
	}
	for len(ip) > 0 && ip[0] == '0' {
		ip = ip[1:]
	}
	for len(fp) > 0 && fp[len(fp)-1] == '0' {
		fp = fp[:len(fp)-1]
	}
	if len(ip) == 0 && len(fp) == 0 {
		neg = false // -0 == 0
	}
	return
}

// compareDecimal compares two decimal strings numerically.
func compareDecimal(a, b []byte) int {
	an, ai, af := splitDecimal(a)
	bn, bi, bf := splitDecimal(b)
	if an != bn {
		if an {
			return -1
		}
		return 1
	}
	r := compareMagnitude(ai, af, bi, bf)
	if an {
		return -r
	}
	return r
}

func compareMagnitude(ai, af, bi, bf []byte) int {
	if len(ai) != len(bi) {
		return cmp3(len(ai) < len(bi), len(ai) > len(bi))
	}
	if r := bytes.Compare(ai, bi); r != 0 {
		return r
	}
	return bytes.Compare(af, bf) // no trailing zeros: lexical order is numeric
}

func packDateTime(y, mo, d, h, mi, s, us int64) int64 {
	return (((((y*13+mo)*32+d)*24+h)*60+mi)*60+s)*1000000 + us
}

// digits parses n decimal digits at b[0:].
func digits(b []byte, n int) (int64, bool) {
	if len(b) < n {
		return 0, false
	}
	var v int64
	for _, c := range b[:n] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// fraction parses ".ffffff" (1 to 6 digits) as microseconds; empty is 0.
func fraction(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, true
	}
	if b[0] != '.' || len(b) < 2 || len(b) > 7 {
		return 0, false
	}
	v, ok := digits(b[1:], len(b)-1)
	for i := len(b) - 1; i < 6; i++ {
		v *= 10
	}
	return v, ok
}

// parseDateTime parses "YYYY-MM-DD" or "YYYY-MM-DD HH:MM:SS[.ffffff]".
func parseDateTime(b []byte) (int64, bool) {
	if len(b) < 10 || b[4] != '-' || b[7] != '-' {
		return 0, false
	}
	y, ok1 := digits(b, 4)
	mo, ok2 := digits(b[5:], 2)
	d, ok3 := digits(b[8:], 2)
	if !ok1 || !ok2 || !ok3 {
		return 0, false
	}
	var h, mi, s, us int64
	if len(b) > 10 {
		if len(b) < 19 || b[10] != ' ' || b[13] != ':' || b[16] != ':' {
			return 0, false
		}
		var ok4, ok5, ok6, ok7 bool
		h, ok4 = digits(b[11:], 2)
		mi, ok5 = digits(b[14:], 2)
		s, ok6 = digits(b[17:], 2)
		us, ok7 = fraction(b[19:])
		if !ok4 || !ok5 || !ok6 || !ok7 {
			return 0, false
		}
	}
	return packDateTime(y, mo, d, h, mi, s, us), true
}

// parseTime parses "[-]H+:MM:SS[.ffffff]" as signed microseconds.
func parseTime(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	i := bytes.IndexByte(b, ':')
	if i < 1 || i > 4 || len(b) < i+6 || b[i+3] != ':' {
		return 0, false
	}
	h, ok1 := digits(b, i)
	mi, ok2 := digits(b[i+1:], 2)
	s, ok3 := digits(b[i+4:], 2)
	us, ok4 := fraction(b[i+6:])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return 0, false
	}
	t := ((h*60+mi)*60+s)*1000000 + us
	if neg {
		t = -t
	}
	return t, true
}

// floatText reports whether b looks like a number MariaDB prints for a
// FLOAT or DOUBLE (strconv would also take "inf", "0x1p3", "1_0"...).
func floatText(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+') {
			return false
		}
	}
	return len(b) > 0
}
