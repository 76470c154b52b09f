package merge

import (
	"errors"
	"io"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
)

func TestParseColumn(t *testing.T) {
	p := colDef("amount", TypeNewDecimal, FlagUnsigned|FlagBinary, 63, 2, 12)
	c, err := ParseColumn(p)
	if err != nil {
		t.Fatal(err)
	}
	want := Column{Name: "amount", Type: TypeNewDecimal, Flags: FlagUnsigned | FlagBinary, Collation: 63, Decimals: 2, Length: 12}
	if c != want {
		t.Fatalf("got %+v want %+v", c, want)
	}
	// MariaDB extended metadata: a length-encoded block before 0x0c.
	var ext []byte
	for _, s := range []string{"def", "test", "t", "t", "doc", "doc"} {
		ext = mysql.AppendLenEncString(ext, s)
	}
	ext = mysql.AppendLenEncString(ext, "\x01\x04json")
	ext = append(ext, p[len(p)-13:]...)
	c, err = ParseColumn(ext)
	if err != nil {
		t.Fatal(err)
	}
	want.Name = "doc"
	if c != want {
		t.Fatalf("extended: got %+v want %+v", c, want)
	}
	// An empty extended block.
	empty := append(append([]byte{}, ext[:len(ext)-13-8]...), 0)
	empty = append(empty, p[len(p)-13:]...)
	if c, err = ParseColumn(empty); err != nil || c != want {
		t.Fatalf("empty extended: %+v %v", c, err)
	}
	for _, bad := range [][]byte{nil, p[:5], p[:len(p)-1], append(p[:len(p)-13:len(p)-13], 0x0b, 1, 2)} {
		if _, err := ParseColumn(bad); err == nil {
			t.Errorf("ParseColumn(%x): no error", bad)
		}
	}
}

func TestOrderBy(t *testing.T) {
	cols := []Column{intCol(t, "id"), strCol(t, "name", 45)}
	spec := &shard.Merge{Columns: 2, OrderBy: []shard.SortKey{{Column: 0}}}
	got := mustRun(t, spec, cols, false, sources(
		textRows(v(1, "a"), v(4, "d"), v(9, "i")),
		textRows(v(2, "b"), v(3, "c"), v(10, "j")),
		textRows(),
		textRows(v(nil, "null"), v(5, "e")),
	))
	expectRows(t, got, r(null, "null"), r("1", "a"), r("2", "b"), r("3", "c"), r("4", "d"), r("5", "e"), r("9", "i"), r("10", "j"))

	// DESC: NULL last; ties keep shard order.
	spec = &shard.Merge{Columns: 2, OrderBy: []shard.SortKey{{Column: 0, Desc: true}}}
	got = mustRun(t, spec, cols, false, sources(
		textRows(v(3, "s0"), v(1, "s0")),
		textRows(v(3, "s1"), v(2, "s1"), v(nil, "s1")),
		textRows(v(3, "s2"), v(1, "s2")),
	))
	expectRows(t, got, r("3", "s0"), r("3", "s1"), r("3", "s2"), r("2", "s1"), r("1", "s0"), r("1", "s2"), r(null, "s1"))

	// Two keys, second DESC, derived sort column stripped.
	cols = []Column{strCol(t, "name", 63), intCol(t, "a"), intCol(t, "b")}
	spec = &shard.Merge{Columns: 1, OrderBy: []shard.SortKey{{Column: 1}, {Column: 2, Desc: true}}}
	got = mustRun(t, spec, cols, false, sources(
		textRows(v("x1", 1, 5), v("x2", 2, 1)),
		textRows(v("y1", 1, 7), v("y2", 1, 6), v("y3", 2, 2)),
	))
	expectRows(t, got, r("y1"), r("y2"), r("x1"), r("y3"), r("x2"))
}

func TestOrderByTypes(t *testing.T) {
	tests := []struct {
		name string
		col  Column
		in   [][]any // shards, each sorted
		want []string
	}{
		{"unsigned", col(t, "u", TypeLongLong, FlagUnsigned, 63, 0),
			[][]any{{"1", "18446744073709551615"}, {"9223372036854775808"}},
			[]string{"1", "9223372036854775808", "18446744073709551615"}},
		{"signed", col(t, "i", TypeLong, 0, 63, 0),
			[][]any{{"-10", "3"}, {"-2147483648", "-9", "100"}},
			[]string{"-2147483648", "-10", "-9", "3", "100"}},
		{"decimal", decCol(t, "d", 3),
			[][]any{{"-10.500", "-0.001", "2.000", "10.000"}, {"-2.000", "0.000", "9.999", "100.000"}},
			[]string{"-10.500", "-2.000", "-0.001", "0.000", "2.000", "9.999", "10.000", "100.000"}},
		{"double", col(t, "f", TypeDouble, 0, 63, 31),
			[][]any{{"-1e300", "0.5", "1e20"}, {"-3", "2", "100"}},
			[]string{"-1e300", "-3", "0.5", "2", "100", "1e20"}},
		{"datetime", col(t, "dt", TypeDateTime, 0, 63, 0),
			[][]any{{"0000-00-00 00:00:00", "2020-01-02 03:04:05"}, {"1999-12-31 23:59:59", "2020-01-02 03:04:06"}},
			[]string{"0000-00-00 00:00:00", "1999-12-31 23:59:59", "2020-01-02 03:04:05", "2020-01-02 03:04:06"}},
		{"time", col(t, "tm", TypeTime, 0, 63, 1),
			[][]any{{"-838:59:59.0", "-1:00:00.0", "10:00:00.5"}, {"-10:00:00.0", "00:00:00.0", "100:00:00.0"}},
			[]string{"-838:59:59.0", "-10:00:00.0", "-1:00:00.0", "00:00:00.0", "10:00:00.5", "100:00:00.0"}},
		{"date", col(t, "d", TypeDate, 0, 63, 0),
			[][]any{{"1000-01-01", "9999-12-31"}, {"2024-02-29"}},
			[]string{"1000-01-01", "2024-02-29", "9999-12-31"}},
	}
	for _, tc := range tests {
		for _, bin := range []bool{false, true} {
			name := tc.name + map[bool]string{false: "/text", true: "/binary"}[bin]
			t.Run(name, func(t *testing.T) {
				cols := []Column{tc.col}
				var srcs []Source
				for _, shardRows := range tc.in {
					var rows [][]byte
					for _, x := range shardRows {
						if bin {
							rows = append(rows, binRow(t, cols, x))
						} else {
							rows = append(rows, textRow(x))
						}
					}
					srcs = append(srcs, &rowsSource{rows: rows})
				}
				spec := &shard.Merge{Columns: 1, OrderBy: []shard.SortKey{{Column: 0}}}
				got := mustRun(t, spec, cols, bin, srcs)
				var want [][]string
				for _, w := range tc.want {
					if bin {
						// Compare through the same binary encoding.
						row := binRow(t, cols, w)
						want = append(want, decodeOut(t, row, cols, true))
					} else {
						want = append(want, []string{w})
					}
				}
				expectRows(t, got, want...)
			})
		}
	}
}

func TestLimitOffset(t *testing.T) {
	cols := []Column{intCol(t, "id")}
	shards := func() []Source {
		return sources(textRows(v(1), v(3), v(5), v(7)), textRows(v(2), v(4), v(6), v(8)))
	}
	for _, tc := range []struct {
		offset, limit uint64
		has           bool
		want          []string
	}{
		{0, 3, true, []string{"1", "2", "3"}},
		{2, 3, true, []string{"3", "4", "5"}},
		{7, 3, true, []string{"8"}},
		{9, 3, true, nil},
		{0, 0, true, nil},
		{6, 0, false, []string{"7", "8"}},
	} {
		spec := &shard.Merge{Columns: 1, OrderBy: []shard.SortKey{{Column: 0}}, Offset: tc.offset, Limit: tc.limit, HasLimit: tc.has}
		got := mustRun(t, spec, cols, false, shards())
		var want [][]string
		for _, w := range tc.want {
			want = append(want, r(w))
		}
		expectRows(t, got, want...)
	}
	// Without ORDER BY the shards are concatenated in shard order.
	spec := &shard.Merge{Columns: 1, Offset: 3, Limit: 2, HasLimit: true}
	expectRows(t, mustRun(t, spec, cols, false, shards()), r("7"), r("2"))
}

func TestAggregatesNoGroup(t *testing.T) {
	// SELECT COUNT(*), SUM(i), SUM(d), MIN(s), MAX(s), AVG(i) [, SUM(i), COUNT(i)]
	cols := []Column{
		col(t, "count(*)", TypeLongLong, FlagNotNull|FlagBinary, 63, 0),
		decCol(t, "sum(i)", 0),
		decCol(t, "sum(d)", 2),
		strCol(t, "min(s)", 45),
		strCol(t, "max(s)", 45),
		decCol(t, "avg(i)", 4),
		decCol(t, "sum(i)", 0),
		col(t, "count(i)", TypeLongLong, FlagNotNull|FlagBinary, 63, 0),
	}
	spec := &shard.Merge{Columns: 6, Aggregates: []shard.Aggregate{
		{Column: 0, Kind: shard.AggCount},
		{Column: 1, Kind: shard.AggSum},
		{Column: 2, Kind: shard.AggSum},
		{Column: 3, Kind: shard.AggMin},
		{Column: 4, Kind: shard.AggMax},
		{Column: 5, Kind: shard.AggAvg, SumColumn: 6, CountColumn: 7},
	}}
	for _, bin := range []bool{false, true} {
		mk := func(vals ...any) []byte {
			if bin {
				return binRow(t, cols, vals...)
			}
			return textRow(vals...)
		}
		got := mustRun(t, spec, cols, bin, []Source{
			&rowsSource{rows: [][]byte{mk(3, "9223372036854775807", "1.25", "b", "Y", "3.0000", "9223372036854775807", 3)}},
			&rowsSource{rows: [][]byte{mk(0, nil, nil, nil, nil, nil, nil, 0)}},
			&rowsSource{rows: [][]byte{mk(2, "10", "-0.30", "A", "z", "5.0000", "10", 2)}},
		})
		// avg = (9223372036854775807+10)/5 = 1844674407370955163.4
		want := r("5", "9223372036854775817", "0.95", "A", "z", "1844674407370955163.4000")
		if bin {
			want[0] = "5"
		}
		expectRows(t, got, want)

		// Everything NULL: SUM/MIN/MAX/AVG are NULL, COUNT 0.
		got = mustRun(t, spec, cols, bin, []Source{
			&rowsSource{rows: [][]byte{mk(0, nil, nil, nil, nil, nil, nil, 0)}},
			&rowsSource{rows: [][]byte{mk(0, nil, nil, nil, nil, nil, nil, 0)}},
		})
		expectRows(t, got, r("0", null, null, null, null, null))
	}
}

func TestAvgRounding(t *testing.T) {
	// AVG of ints: 4 more decimals, half away from zero, like MariaDB.
	cols := []Column{decCol(t, "avg(x)", 4), decCol(t, "sum(x)", 0), intCol(t, "count(x)")}
	spec := &shard.Merge{Columns: 1, Aggregates: []shard.Aggregate{{Column: 0, Kind: shard.AggAvg, SumColumn: 1, CountColumn: 2}}}
	for _, tc := range []struct {
		sums, counts []any
		want         string
	}{
		{[]any{"1", "1"}, []any{2, 1}, "0.6667"},
		{[]any{"-1", "-1"}, []any{2, 1}, "-0.6667"},
		{[]any{"1", "0"}, []any{6, 2}, "0.1250"},     // exact
		{[]any{"1", "0"}, []any{16000, 0}, "0.0001"}, // 0.0000625 rounds up
		{[]any{"-1", "0"}, []any{16000, 0}, "-0.0001"},
		{[]any{nil, nil}, []any{0, 0}, null},
	} {
		var srcs []Source
		for i := range tc.sums {
			srcs = append(srcs, &rowsSource{rows: [][]byte{textRow("x", tc.sums[i], tc.counts[i])}})
		}
		expectRows(t, mustRun(t, spec, cols, false, srcs), r(tc.want))
	}
}

func TestSourceError(t *testing.T) {
	boom := errors.New("boom")
	cols := []Column{intCol(t, "id")}
	spec := &shard.Merge{Columns: 1, OrderBy: []shard.SortKey{{Column: 0}}}
	m, err := New(spec, cols, false, []Source{&rowsSource{rows: textRows(v(1)), err: boom}, &rowsSource{rows: textRows(v(2))}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Next(); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if _, err := m.Next(); !errors.Is(err, boom) {
		t.Fatalf("not sticky: %v", err)
	}
	// A malformed row is an error, not a panic.
	m, _ = New(spec, cols, false, []Source{&rowsSource{rows: [][]byte{{0x05, 'a'}}}})
	if _, err := m.Next(); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("got %v", err)
	}
}

func TestRefused(t *testing.T) {
	enum := col(t, "e", TypeString, FlagEnum, 45, 0)
	uca := strCol(t, "s", 2308) // uca1400 (MariaDB 11)
	for _, tc := range []struct {
		name   string
		cols   []Column
		spec   *shard.Merge
		reason shard.Reason
	}{
		{"uca1400", []Column{uca}, &shard.Merge{Columns: 1, OrderBy: []shard.SortKey{{Column: 0}}}, shard.ReasonCollation},
		{"enum", []Column{enum}, &shard.Merge{Columns: 1, OrderBy: []shard.SortKey{{Column: 0}}}, shard.ReasonCollation},
		{"distinct uca1400", []Column{uca}, &shard.Merge{Columns: 1, Distinct: true}, shard.ReasonCollation},
		{"min uca1400", []Column{uca}, &shard.Merge{Columns: 1, Aggregates: []shard.Aggregate{{Column: 0, Kind: shard.AggMin}}}, shard.ReasonCollation},
		{"sum string", []Column{strCol(t, "s", 45)}, &shard.Merge{Columns: 1, Aggregates: []shard.Aggregate{{Column: 0, Kind: shard.AggSum}}}, shard.ReasonAggregate},
		{"column range", []Column{intCol(t, "i")}, &shard.Merge{Columns: 1, OrderBy: []shard.SortKey{{Column: 1}}}, shard.ReasonInternal},
		{"columns", []Column{intCol(t, "i")}, &shard.Merge{Columns: 2}, shard.ReasonInternal},
		{"group not sorted", []Column{intCol(t, "i"), intCol(t, "j")}, &shard.Merge{Columns: 1, GroupBy: []int{0}, OrderBy: []shard.SortKey{{Column: 1}}}, shard.ReasonInternal},
		{"no plan", []Column{intCol(t, "i")}, nil, shard.ReasonInternal},
		{"count string", []Column{strCol(t, "s", 45)}, &shard.Merge{Columns: 1, Aggregates: []shard.Aggregate{{Column: 0, Kind: shard.AggCount}}}, shard.ReasonAggregate},
		{"having literal", []Column{intCol(t, "i")}, &shard.Merge{Columns: 1, Having: []shard.Cond{{Column: 0, Op: shard.OpGT, Value: "abc"}}}, shard.ReasonHaving},
	} {
		_, err := New(tc.spec, tc.cols, false, nil)
		var me *mysql.Error
		if !errors.As(err, &me) || me.Code != 1235 || me.SQLState != "42000" {
			t.Errorf("%s: got %v", tc.name, err)
		} else if r := shard.ReasonOf(err); r != tc.reason {
			t.Errorf("%s: reason %s, want %s (%v)", tc.name, r, tc.reason, err)
		}
	}
}

func TestWildcardSpec(t *testing.T) {
	// SELECT * ... ORDER BY n where n is derived: Columns -1, the last
	// column is the derived key.
	cols := []Column{intCol(t, "id"), strCol(t, "v", 45), intCol(t, "n")}
	spec := &shard.Merge{Columns: -1, Derived: 1, OrderBy: []shard.SortKey{{Column: -1, Desc: true}}}
	got := mustRun(t, &shard.Merge{Columns: 2, Derived: 1, OrderBy: []shard.SortKey{{Column: 2, Desc: true}}}, cols, false,
		sources(textRows(v(1, "a", 9), v(2, "b", 1)), textRows(v(3, "c", 5))))
	expectRows(t, got, r("1", "a"), r("3", "c"), r("2", "b"))
	m, err := New(spec, cols, false, sources(textRows(v(1, "a", 9), v(2, "b", 1)), textRows(v(3, "c", 5))))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"1", "3", "2"} {
		row, err := m.Next()
		if err != nil {
			t.Fatal(err)
		}
		if out := decodeOut(t, row, cols[:2], false); out[0] != w {
			t.Fatalf("got %q want %s", out, w)
		}
	}
	if _, err := New(&shard.Merge{Columns: -1, Derived: 3}, cols, false, nil); err == nil {
		t.Fatal("too few columns accepted")
	}
}
