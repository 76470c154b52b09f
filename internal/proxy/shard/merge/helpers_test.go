package merge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
)

// colDef builds a column definition payload.
func colDef(name string, typ byte, flags uint16, coll uint16, decimals byte, length uint32) []byte {
	var b []byte
	for _, s := range []string{"def", "test", "t", "t", name, name} {
		b = mysql.AppendLenEncString(b, s)
	}
	b = append(b, 0x0c, byte(coll), byte(coll>>8))
	b = binary.LittleEndian.AppendUint32(b, length)
	b = append(b, typ, byte(flags), byte(flags>>8), decimals, 0, 0)
	return b
}

// col builds a Column through colDef and ParseColumn.
func col(t testing.TB, name string, typ byte, flags uint16, coll uint16, decimals byte) Column {
	t.Helper()
	c, err := ParseColumn(colDef(name, typ, flags, coll, decimals, 20))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Shorthands for common columns.
func intCol(t testing.TB, name string) Column { return col(t, name, TypeLongLong, 0, 63, 0) }
func strCol(t testing.TB, name string, coll uint16) Column {
	return col(t, name, TypeVarString, 0, coll, 0)
}
func decCol(t testing.TB, name string, dec byte) Column {
	return col(t, name, TypeNewDecimal, FlagBinary|FlagNum, 63, dec)
}

// textRow builds a text protocol row: nil is NULL, everything else is
// printed with %v.
func textRow(vals ...any) []byte {
	var b []byte
	for _, v := range vals {
		if v == nil {
			b = append(b, 0xfb)
			continue
		}
		b = mysql.AppendLenEncString(b, fmt.Sprint(v))
	}
	return b
}

// binRow builds a binary protocol row for cols from text values (nil is
// NULL), encoding each as the column type wants.
func binRow(t testing.TB, cols []Column, vals ...any) []byte {
	t.Helper()
	nb := (len(cols) + 7 + 2) / 8
	b := make([]byte, 1+nb)
	for i, v := range vals {
		if v == nil {
			bit := i + 2
			b[1+bit/8] |= 1 << (bit % 8)
			continue
		}
		s := fmt.Sprint(v)
		c := cols[i]
		switch c.Type {
		case TypeTiny, TypeShort, TypeYear, TypeLong, TypeInt24, TypeLongLong:
			var u uint64
			if c.Unsigned() {
				x, err := strconv.ParseUint(s, 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				u = x
			} else {
				x, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				u = uint64(x)
			}
			switch c.Type {
			case TypeTiny:
				b = append(b, byte(u))
			case TypeShort, TypeYear:
				b = binary.LittleEndian.AppendUint16(b, uint16(u))
			case TypeLong, TypeInt24:
				b = binary.LittleEndian.AppendUint32(b, uint32(u))
			default:
				b = binary.LittleEndian.AppendUint64(b, u)
			}
		case TypeFloat:
			f, _ := strconv.ParseFloat(s, 32)
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(f)))
		case TypeDouble:
			f, _ := strconv.ParseFloat(s, 64)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
		case TypeDate, TypeDateTime, TypeTimestamp:
			k, ok := parseDateTime([]byte(s))
			if !ok {
				t.Fatalf("bad date %q", s)
			}
			b = appendBinDateTime(b, k, len(s) > 10)
		case TypeTime:
			k, ok := parseTime([]byte(s))
			if !ok {
				t.Fatalf("bad time %q", s)
			}
			b = appendBinTime(b, k)
		default:
			b = mysql.AppendLenEncString(b, s)
		}
	}
	return b
}

func appendBinDateTime(b []byte, k int64, withTime bool) []byte {
	us := k % 1000000
	k /= 1000000
	s := k % 60
	k /= 60
	mi := k % 60
	k /= 60
	h := k % 24
	k /= 24
	d := k % 32
	k /= 32
	mo := k % 13
	y := k / 13
	switch {
	case y == 0 && mo == 0 && d == 0 && h == 0 && mi == 0 && s == 0 && us == 0:
		return append(b, 0)
	case !withTime || h == 0 && mi == 0 && s == 0 && us == 0:
		return append(b, 4, byte(y), byte(y>>8), byte(mo), byte(d))
	case us == 0:
		return append(b, 7, byte(y), byte(y>>8), byte(mo), byte(d), byte(h), byte(mi), byte(s))
	}
	b = append(b, 11, byte(y), byte(y>>8), byte(mo), byte(d), byte(h), byte(mi), byte(s))
	return binary.LittleEndian.AppendUint32(b, uint32(us))
}

func appendBinTime(b []byte, t int64) []byte {
	neg := byte(0)
	if t < 0 {
		neg, t = 1, -t
	}
	if t == 0 {
		return append(b, 0)
	}
	us := t % 1000000
	t /= 1000000
	s, mi, h, d := t%60, t/60%60, t/3600%24, t/86400
	if us == 0 {
		b = append(b, 8, neg)
		b = binary.LittleEndian.AppendUint32(b, uint32(d))
		return append(b, byte(h), byte(mi), byte(s))
	}
	b = append(b, 12, neg)
	b = binary.LittleEndian.AppendUint32(b, uint32(d))
	b = append(b, byte(h), byte(mi), byte(s))
	return binary.LittleEndian.AppendUint32(b, uint32(us))
}

// rowsSource serves fixed rows; it reuses one buffer so that a merger that
// keeps a row past the next call sees it overwritten.
type rowsSource struct {
	rows [][]byte
	i    int
	buf  []byte
	err  error // returned instead of io.EOF when set
}

func (s *rowsSource) Next() ([]byte, error) {
	if s.i >= len(s.rows) {
		if s.err != nil {
			return nil, s.err
		}
		return nil, io.EOF
	}
	for i := range s.buf {
		s.buf[i] = 0xee
	}
	s.buf = append(s.buf[:0], s.rows[s.i]...)
	s.i++
	return s.buf, nil
}

func sources(shards ...[][]byte) []Source {
	out := make([]Source, len(shards))
	for i, rows := range shards {
		out[i] = &rowsSource{rows: rows}
	}
	return out
}

// textRows builds text rows from value lists.
func textRows(rows ...[]any) [][]byte {
	out := make([][]byte, len(rows))
	for i, r := range rows {
		out[i] = textRow(r...)
	}
	return out
}

const null = "NULL"

// decodeOut turns a merged row into strings (NULL for NULL) using the
// visible columns.
func decodeOut(t testing.TB, row []byte, cols []Column, bin bool) []string {
	t.Helper()
	ci := make([]colInfo, len(cols))
	for i, c := range cols {
		ci[i] = newColInfo(c)
	}
	fields := make([]field, len(cols))
	if err := decodeRow(row, bin, ci, fields); err != nil {
		t.Fatalf("merged row %x: %v", row, err)
	}
	out := make([]string, len(cols))
	for i := range fields {
		f := &fields[i]
		if f.null {
			out[i] = null
			continue
		}
		v := f.value(row)
		if !bin {
			out[i] = string(v)
			continue
		}
		out[i] = binText(t, &ci[i], v)
	}
	return out
}

// binText prints a binary value as the text protocol would.
func binText(t testing.TB, c *colInfo, v []byte) string {
	var k key
	if err := decodeBinaryKey(v, c, &k); err != nil {
		t.Fatalf("binary value %x: %v", v, err)
	}
	switch c.Type {
	case TypeTiny, TypeShort, TypeYear, TypeLong, TypeInt24, TypeLongLong:
		if c.kind == kindUint {
			return strconv.FormatUint(k.u, 10)
		}
		return strconv.FormatInt(k.i, 10)
	case TypeFloat:
		return string(appendDouble(nil, k.f, int(c.Decimals), int(c.Length), 32))
	case TypeDouble:
		return string(appendDouble(nil, k.f, int(c.Decimals), int(c.Length), 64))
	case TypeDate, TypeDateTime, TypeTimestamp, TypeTime:
		return fmt.Sprintf("%s:%d", "k", k.i)
	}
	return string(v)
}

// run merges and returns the rows as strings of the first visible columns.
func run(t testing.TB, spec *shard.Merge, cols []Column, bin bool, srcs []Source) ([][]string, error) {
	t.Helper()
	m, err := New(spec, cols, bin, srcs)
	if err != nil {
		return nil, err
	}
	var out [][]string
	for {
		row, err := m.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, decodeOut(t, row, cols[:spec.Columns], bin))
	}
}

func mustRun(t testing.TB, spec *shard.Merge, cols []Column, bin bool, srcs []Source) [][]string {
	t.Helper()
	out, err := run(t, spec, cols, bin, srcs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func rowsEqual(a, b [][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				return false
			}
		}
	}
	return true
}

func expectRows(t testing.TB, got [][]string, want ...[]string) {
	t.Helper()
	if !rowsEqual(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func r(vals ...string) []string { return vals }
func v(vals ...any) []any       { return vals }
