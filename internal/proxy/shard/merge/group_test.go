package merge

import (
	"errors"
	"fmt"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
)

// groupCols: SELECT name, COUNT(*), SUM(x), MIN(x), MAX(x), AVG(x), note
// [, SUM(x), COUNT(x)] ... GROUP BY name
func groupCols(t *testing.T) []Column {
	return []Column{
		strCol(t, "name", 45),
		col(t, "count(*)", TypeLongLong, FlagNotNull|FlagBinary, 63, 0),
		decCol(t, "sum(x)", 2),
		decCol(t, "min(x)", 2),
		decCol(t, "max(x)", 2),
		decCol(t, "avg(x)", 6),
		strCol(t, "note", 45),
		decCol(t, "sum(x)", 2),
		col(t, "count(x)", TypeLongLong, FlagNotNull|FlagBinary, 63, 0),
	}
}

func groupSpec() *shard.Merge {
	return &shard.Merge{
		Columns: 7,
		OrderBy: []shard.SortKey{{Column: 0}},
		GroupBy: []int{0},
		Aggregates: []shard.Aggregate{
			{Column: 1, Kind: shard.AggCount},
			{Column: 2, Kind: shard.AggSum},
			{Column: 3, Kind: shard.AggMin},
			{Column: 4, Kind: shard.AggMax},
			{Column: 5, Kind: shard.AggAvg, SumColumn: 7, CountColumn: 8},
		},
	}
}

func groupShards(t *testing.T, cols []Column, bin bool) []Source {
	rows := [][][]any{
		{ // shard 0
			v("a", 2, "3.00", "1.00", "2.00", "1.500000", "s0a", "3.00", 2),
			v("b", 1, nil, nil, nil, nil, "s0b", nil, 0),
			v("d", 5, "10.00", "-1.00", "5.00", "2.000000", "s0d", "10.00", 5),
		},
		{ // shard 1: 'A' is the same group as 'a' under general_ci
			v("A", 1, "-0.50", "-0.50", "-0.50", "-0.500000", "s1A", "-0.50", 1),
			v("c", 3, "1.01", "0.33", "0.34", "0.336667", "s1c", "1.01", 3),
			v("d", 1, "7.00", "7.00", "7.00", "7.000000", "s1d", "7.00", 1),
		},
		{},
		{ // shard 3
			v("á", 1, "0.01", "0.01", "0.01", "0.010000", "s3á", "0.01", 1),
			v("b", 2, "1.00", "0.50", "0.50", "0.500000", "s3b", "1.00", 2),
		},
	}
	srcs := make([]Source, len(rows))
	for i, shardRows := range rows {
		s := &rowsSource{}
		for _, r := range shardRows {
			if bin {
				s.rows = append(s.rows, binRow(t, cols, r...))
			} else {
				s.rows = append(s.rows, textRow(r...))
			}
		}
		srcs[i] = s
	}
	return srcs
}

func TestGroupBy(t *testing.T) {
	cols := groupCols(t)
	want := [][]string{
		// a, A, á: one group; the first row's bytes (shard 0) are kept.
		r("a", "4", "2.51", "-0.50", "2.00", "0.627500", "s0a"),
		r("b", "3", "1.00", "0.50", "0.50", "0.500000", "s0b"),
		r("c", "3", "1.01", "0.33", "0.34", "0.336667", "s1c"),
		r("d", "6", "17.00", "-1.00", "7.00", "2.833333", "s0d"),
	}
	for _, bin := range []bool{false, true} {
		got := mustRun(t, groupSpec(), cols, bin, groupShards(t, cols, bin))
		expectRows(t, got, want...)

		// HAVING COUNT(*) >= 3 AND MAX(x) < 5, then LIMIT 1.
		spec := groupSpec()
		spec.Having = []shard.Cond{{Column: 1, Op: shard.OpGE, Value: "3"}, {Column: 4, Op: shard.OpLT, Value: "5"}}
		expectRows(t, mustRun(t, spec, cols, bin, groupShards(t, cols, bin)), want[0], want[1], want[2])
		spec.HasLimit, spec.Offset, spec.Limit = true, 1, 1
		expectRows(t, mustRun(t, spec, cols, bin, groupShards(t, cols, bin)), want[1])

		// HAVING with a derived column and a decimal literal for a count.
		spec = groupSpec()
		spec.Having = []shard.Cond{{Column: 8, Op: shard.OpGT, Value: "2.5"}, {Column: 0, Op: shard.OpNE, Value: "D"}}
		expectRows(t, mustRun(t, spec, cols, bin, groupShards(t, cols, bin)), want[0], want[2])

		// ORDER BY COUNT(*) DESC, SUM(x): a re-sort of the groups.
		spec = groupSpec()
		spec.Resort = []shard.SortKey{{Column: 1, Desc: true}, {Column: 2}}
		expectRows(t, mustRun(t, spec, cols, bin, groupShards(t, cols, bin)), want[3], want[0], want[1], want[2])
		spec.HasLimit, spec.Offset, spec.Limit = true, 1, 2
		expectRows(t, mustRun(t, spec, cols, bin, groupShards(t, cols, bin)), want[0], want[1])

		// Out of memory.
		spec.MemoryLimit = 100
		_, err := run(t, spec, cols, bin, groupShards(t, cols, bin))
		var me *mysql.Error
		if !errors.As(err, &me) || me.Code != 1038 {
			t.Fatalf("memory limit: %v", err)
		}
	}
}

func TestGroupByDesc(t *testing.T) {
	// GROUP BY k ORDER BY k DESC: groups arrive in descending order.
	cols := []Column{intCol(t, "k"), intCol(t, "count(*)")}
	spec := &shard.Merge{Columns: 2, OrderBy: []shard.SortKey{{Column: 0, Desc: true}}, GroupBy: []int{0},
		Aggregates: []shard.Aggregate{{Column: 1, Kind: shard.AggCount}}}
	got := mustRun(t, spec, cols, false, sources(
		textRows(v(9, 1), v(5, 2), v(nil, 4)),
		textRows(v(9, 3), v(7, 1), v(nil, 1)),
	))
	expectRows(t, got, r("9", "4"), r("7", "1"), r("5", "2"), r(null, "5"))
}

func TestNoGroupPlainColumns(t *testing.T) {
	// SELECT name, COUNT(*), MAX(x) FROM t: shard 0 matched nothing (NULL
	// name), the name comes from the first shard that has one.
	cols := []Column{strCol(t, "name", 45), intCol(t, "count(*)"), intCol(t, "max(x)")}
	spec := &shard.Merge{Columns: 3, Aggregates: []shard.Aggregate{{Column: 1, Kind: shard.AggCount}, {Column: 2, Kind: shard.AggMax}}}
	got := mustRun(t, spec, cols, false, sources(
		textRows(v(nil, 0, nil)),
		textRows(v("x", 2, -5)),
		textRows(v("y", 1, 10)),
	))
	expectRows(t, got, r("x", "3", "10"))
	// No rows at all (no shards): COUNT 0, NULLs.
	expectRows(t, mustRun(t, spec, cols, false, nil), r(null, "0", null))
}

func TestDistinct(t *testing.T) {
	// SELECT DISTINCT name, k ... ORDER BY name, k (general_ci: 'a' = 'A ').
	cols := []Column{strCol(t, "name", 45), intCol(t, "k")}
	spec := &shard.Merge{Columns: 2, Distinct: true, OrderBy: []shard.SortKey{{Column: 0}, {Column: 1}}}
	got := mustRun(t, spec, cols, false, sources(
		textRows(v("a", 1), v("a", 2), v("b", nil), v("c", 1)),
		textRows(v("A ", 1), v("b", nil), v("b", 1)),
		textRows(v("a", 2), v("c", 1)),
	))
	expectRows(t, got, r("a", "1"), r("a", "2"), r("b", null), r("b", "1"), r("c", "1"))
	// DISTINCT with LIMIT/OFFSET counts distinct rows.
	spec.HasLimit, spec.Offset, spec.Limit = true, 1, 2
	got = mustRun(t, spec, cols, false, sources(
		textRows(v("a", 1), v("a", 2), v("b", nil)),
		textRows(v("A ", 1), v("b", nil), v("b", 1)),
	))
	expectRows(t, got, r("a", "2"), r("b", null))
}

func TestDoubleAggregates(t *testing.T) {
	cols := []Column{
		col(t, "sum(f)", TypeDouble, 0, 63, 31),
		col(t, "avg(f)", TypeDouble, 0, 63, 31),
		col(t, "min(f)", TypeDouble, 0, 63, 31),
		col(t, "sum(f)", TypeDouble, 0, 63, 31),
		intCol(t, "count(f)"),
	}
	spec := &shard.Merge{Columns: 3, Aggregates: []shard.Aggregate{
		{Column: 0, Kind: shard.AggSum},
		{Column: 1, Kind: shard.AggAvg, SumColumn: 3, CountColumn: 4},
		{Column: 2, Kind: shard.AggMin},
	}}
	for _, bin := range []bool{false, true} {
		mk := func(vals ...any) [][]byte {
			if bin {
				return [][]byte{binRow(t, cols, vals...)}
			}
			return [][]byte{textRow(vals...)}
		}
		got := mustRun(t, spec, cols, bin, sources(
			mk("0.1", "0.1", "0.1", "0.1", 1),
			mk("0.2", "0.2", "0.2", "0.2", 1),
			mk("1e15", "1e15", "1e15", "1e15", 1),
		))
		expectRows(t, got, r("1000000000000000.2", "333333333333333.44", "0.1"))
	}
}

// TestResortTopN: ORDER BY COUNT(*) DESC LIMIT 3 OFFSET 2 over 20000 groups
// keeps only the rows it may send (a 64 KiB budget suffices) and equals a
// full sort; equal counts keep the group order (stable).
func TestResortTopN(t *testing.T) {
	cols := []Column{intCol(t, "k"), intCol(t, "count(*)")}
	mkShards := func() []Source {
		var a, b [][]byte
		for k := 0; k < 20000; k++ {
			a = append(a, textRow(k, k%97))
			if k%2 == 0 {
				b = append(b, textRow(k, 1))
			}
		}
		return sources(a, b)
	}
	spec := func() *shard.Merge {
		return &shard.Merge{Columns: 2, OrderBy: []shard.SortKey{{Column: 0}}, GroupBy: []int{0},
			Aggregates: []shard.Aggregate{{Column: 1, Kind: shard.AggCount}},
			Resort:     []shard.SortKey{{Column: 1, Desc: true}}}
	}
	full := mustRun(t, spec(), cols, false, mkShards())
	if len(full) != 20000 || full[0][1] != "97" {
		t.Fatalf("full sort: %d rows, first %q", len(full), full[0])
	}
	s := spec()
	s.HasLimit, s.Offset, s.Limit, s.MemoryLimit = true, 2, 3, 64<<10
	got := mustRun(t, s, cols, false, mkShards())
	expectRows(t, got, full[2:5]...)
	// Stable: k=96 and k=290 ... all have count 97; they come in k order.
	if full[0][0] != "96" || full[1][0] != "290" {
		t.Fatalf("not stable: %q %q", full[0], full[1])
	}
	// The same budget without LIMIT is not enough.
	s.HasLimit = false
	if _, err := run(t, s, cols, false, mkShards()); err == nil {
		t.Fatal("no out-of-memory error")
	}
}

func TestGroupByWithoutAggregates(t *testing.T) {
	// SELECT v FROM t GROUP BY v (utf8mb4_unicode_ci): duplicates across
	// shards collapse, 'ß' = 'ss' under UCA.
	cols := []Column{strCol(t, "v", 224)}
	spec := &shard.Merge{Columns: 1, OrderBy: []shard.SortKey{{Column: 0}}, GroupBy: []int{0}}
	got := mustRun(t, spec, cols, false, sources(
		textRows(v("a"), v("ss"), v("z")),
		textRows(v("A"), v("ß"), v("Z ")),
	))
	expectRows(t, got, r("a"), r("ss"), r("z"))
}

func TestHavingTypes(t *testing.T) {
	cols := []Column{
		strCol(t, "s", 45), col(t, "dt", TypeDateTime, 0, 63, 0), col(t, "tm", TypeTime, 0, 63, 0),
		col(t, "f", TypeDouble, 0, 63, 31), col(t, "u", TypeLongLong, FlagUnsigned, 63, 0), decCol(t, "d", 2),
	}
	rows := [][]any{
		v("apple", "2024-01-01 00:00:00", "-01:00:00", "1.5", "18446744073709551615", "-1.50"),
		v("Banana", "2024-06-01 12:00:00", "25:00:00", "-2e10", "3", "0.00"),
		v(nil, nil, nil, nil, nil, nil),
	}
	for _, tc := range []struct {
		cond shard.Cond
		want []string // values of s
	}{
		{shard.Cond{Column: 0, Op: shard.OpEQ, Value: "APPLE"}, []string{"apple"}},
		{shard.Cond{Column: 0, Op: shard.OpGT, Value: "c"}, []string{}},
		{shard.Cond{Column: 0, Op: shard.OpGT, Value: "b"}, []string{"Banana"}},
		{shard.Cond{Column: 0, Op: shard.OpGE, Value: "b"}, []string{"Banana"}},
		{shard.Cond{Column: 1, Op: shard.OpGE, Value: "2024-03-01"}, []string{"Banana"}},
		{shard.Cond{Column: 2, Op: shard.OpLT, Value: "00:00:00"}, []string{"apple"}},
		{shard.Cond{Column: 3, Op: shard.OpLT, Value: "0"}, []string{"Banana"}},
		{shard.Cond{Column: 4, Op: shard.OpGT, Value: "-1"}, []string{"apple", "Banana"}},
		{shard.Cond{Column: 4, Op: shard.OpGT, Value: "3.5"}, []string{"apple"}},
		{shard.Cond{Column: 4, Op: shard.OpEQ, Value: "18446744073709551615"}, []string{"apple"}},
		{shard.Cond{Column: 5, Op: shard.OpNE, Value: "0"}, []string{"apple"}},
		{shard.Cond{Column: 5, Op: shard.OpLE, Value: "-1.5"}, []string{"apple"}},
	} {
		for _, bin := range []bool{false, true} {
			var rs [][]byte
			for _, r := range rows {
				if bin {
					rs = append(rs, binRow(t, cols, r...))
				} else {
					rs = append(rs, textRow(r...))
				}
			}
			spec := &shard.Merge{Columns: 6, Having: []shard.Cond{tc.cond}}
			got := mustRun(t, spec, cols, bin, sources(rs))
			var names []string
			for _, g := range got {
				names = append(names, g[0])
			}
			if fmt.Sprint(names) != fmt.Sprint(tc.want) {
				t.Errorf("%+v %s: got %q want %q", tc.cond, protoName(bin), names, tc.want)
			}
		}
	}
}
