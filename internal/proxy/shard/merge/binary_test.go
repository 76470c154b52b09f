package merge

import (
	"bytes"
	"io"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
)

// TestBinaryProjection merges binary rows of every column type ordered by
// a BIGINT and strips derived columns: the visible part must be byte for
// byte the row a server would send for the visible columns alone (the
// NULL bitmap rebuilt for fewer columns).
func TestBinaryProjection(t *testing.T) {
	cols := []Column{
		col(t, "ti", TypeTiny, FlagUnsigned, 63, 0),
		col(t, "si", TypeShort, 0, 63, 0),
		col(t, "mi", TypeInt24, 0, 63, 0),
		col(t, "i", TypeLong, 0, 63, 0),
		col(t, "fl", TypeFloat, 0, 63, 31),
		col(t, "db", TypeDouble, 0, 63, 31),
		decCol(t, "dec", 2),
		col(t, "d", TypeDate, 0, 63, 0),
		col(t, "dt", TypeDateTime, 0, 63, 6),
		col(t, "ts", TypeTimestamp, 0, 63, 0),
		col(t, "tm", TypeTime, 0, 63, 3),
		col(t, "y", TypeYear, FlagUnsigned, 63, 0),
		strCol(t, "vc", 45),
		col(t, "bl", TypeBlob, FlagBinary, 63, 0),
		col(t, "bit", TypeBit, FlagUnsigned, 63, 0),
		col(t, "js", TypeJSON, FlagBinary, 63, 0), // MySQL's JSON type; MariaDB sends LONGTEXT
		col(t, "geo", TypeGeometry, FlagBinary, 63, 0),
		col(t, "en", TypeString, FlagEnum, 45, 0),
		col(t, "nl", TypeNull, 0, 63, 0),
		col(t, "k", TypeLongLong, 0, 63, 0), // derived sort key
		col(t, "k2", TypeVarString, 0, 45, 0),
	}
	const visible = 19
	mk := func(k int, nulls bool) []any {
		vals := []any{255, -32768, -8388608, 2147483647, "1.5", "-2.25e-300", "-123.45",
			"2024-02-29", "2024-02-29 23:59:58.123456", "1970-01-01 00:00:01", "-838:59:59.999",
			2155, "héllo", "\x00\xff", "\x01\x02", `{"a":1}`, "\x00\x00\x00\x00\x01\x01", "red", nil, k, "x"}
		if nulls {
			for i := 0; i < len(vals); i += 2 {
				if i != 19 {
					vals[i] = nil
				}
			}
		}
		return vals
	}
	shards := [][][]byte{{}, {}, {}}
	var want [][]byte
	for k := 0; k < 30; k++ {
		vals := mk(k, k%3 == 1)
		shards[k%3] = append(shards[k%3], binRow(t, cols, vals...))
		want = append(want, binRow(t, cols[:visible], vals[:visible]...))
	}
	spec := &shard.Merge{Columns: visible, OrderBy: []shard.SortKey{{Column: 19}, {Column: 20}}}
	m, err := New(spec, cols, true, sources(shards...))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		row, err := m.Next()
		if err == io.EOF {
			if i != len(want) {
				t.Fatalf("%d rows, want %d", i, len(want))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(row, want[i]) {
			t.Fatalf("row %d:\ngot  %x\nwant %x", i, row, want[i])
		}
	}
	// The same rows in the text protocol: a prefix of each row.
	var tshards [][][]byte = [][][]byte{{}, {}, {}}
	var twant [][]byte
	for k := 0; k < 30; k++ {
		vals := mk(k, k%3 == 1)
		tshards[k%3] = append(tshards[k%3], textRow(vals...))
		twant = append(twant, textRow(vals[:visible]...))
	}
	m, err = New(spec, cols, false, sources(tshards...))
	if err != nil {
		t.Fatal(err)
	}
	for i := range twant {
		row, err := m.Next()
		if err != nil || !bytes.Equal(row, twant[i]) {
			t.Fatalf("text row %d: %x %v", i, row, err)
		}
	}
}

// TestResultRowsStayValid: a merged row stays valid until the next call
// even when its source reuses its buffer (rowsSource overwrites it).
func TestResultRowsStayValid(t *testing.T) {
	cols := []Column{intCol(t, "k"), strCol(t, "s", 63)}
	spec := &shard.Merge{Columns: 1, OrderBy: []shard.SortKey{{Column: 0}}}
	m, err := New(spec, cols, false, sources(textRows(v(1, "a"), v(3, "c")), textRows(v(2, "b"))))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"1", "2", "3"} {
		row, err := m.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(row, textRow(w)) {
			t.Fatalf("got %x want %s", row, w)
		}
	}
}
