package merge

import (
	"fmt"
	"io"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
)

// sliceSource serves prebuilt rows without allocating.
type sliceSource struct {
	rows [][]byte
	i    int
}

func (s *sliceSource) Next() ([]byte, error) {
	if s.i >= len(s.rows) {
		return nil, io.EOF
	}
	s.i++
	return s.rows[s.i-1], nil
}

// benchMerge merges nsrc sources of nrows rows per op and reports the
// cost per merged row.
func benchMerge(b *testing.B, spec *shard.Merge, cols []Column, bin bool, shards [][][]byte) {
	srcs := make([]*sliceSource, len(shards))
	ifs := make([]Source, len(shards))
	for i := range shards {
		srcs[i] = &sliceSource{rows: shards[i]}
		ifs[i] = srcs[i]
	}
	b.ReportAllocs()
	b.ResetTimer()
	rows := 0
	for b.Loop() {
		for _, s := range srcs {
			s.i = 0
		}
		m, err := New(spec, cols, bin, ifs)
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := m.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			rows++
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rows), "ns/row")
}

func benchShards(b testing.TB, cols []Column, bin bool, nsrc, nrows int, gen func(shard, i int) []any) [][][]byte {
	shards := make([][][]byte, nsrc)
	for s := range shards {
		for i := 0; i < nrows; i++ {
			vals := gen(s, i)
			if bin {
				shards[s] = append(shards[s], binRow(b, cols, vals...))
			} else {
				shards[s] = append(shards[s], textRow(vals...))
			}
		}
	}
	return shards
}

func protoName(bin bool) string {
	if bin {
		return "binary"
	}
	return "text"
}

// BenchmarkOrderByInt: SELECT id, name, amount ... ORDER BY id over 4
// shards × 100k rows.
func BenchmarkOrderByInt(b *testing.B) {
	for _, bin := range []bool{false, true} {
		b.Run(protoName(bin), func(b *testing.B) {
			cols := []Column{intCol(b, "id"), strCol(b, "name", 45), decCol(b, "amount", 2)}
			shards := benchShards(b, cols, bin, 4, 100000, func(s, i int) []any {
				return v(i*4+s, fmt.Sprintf("customer-%d", i), fmt.Sprintf("%d.%02d", i%1000, i%100))
			})
			benchMerge(b, &shard.Merge{Columns: 3, OrderBy: []shard.SortKey{{Column: 0}}}, cols, bin, shards)
		})
	}
}

// BenchmarkOrderByStringLimit: ORDER BY name (utf8mb4_general_ci, 45, or
// utf8mb4_unicode_ci, 224) with a
// derived sort column stripped and LIMIT 100000 OFFSET 1000.
func BenchmarkOrderByStringLimit(b *testing.B) {
	for _, bin := range []bool{false, true} {
		for _, coll := range []uint16{45, 224} {
			b.Run(fmt.Sprintf("%s/%d", protoName(bin), coll), func(b *testing.B) {
				cols := []Column{intCol(b, "id"), strCol(b, "name", coll), col(b, "created", TypeDateTime, 0, 63, 0)}
				shards := benchShards(b, cols, bin, 4, 100000, func(s, i int) []any {
					return v(i, fmt.Sprintf("Name %08d %c", i, 'a'+s), fmt.Sprintf("2024-01-%02d 10:00:00", 1+i%28))
				})
				spec := &shard.Merge{Columns: 2, OrderBy: []shard.SortKey{{Column: 1}, {Column: 2, Desc: true}},
					HasLimit: true, Offset: 1000, Limit: 100000}
				benchMerge(b, spec, cols, bin, shards)
			})
		}
	}
}

// BenchmarkGroupBy: GROUP BY k with COUNT, SUM(decimal), MAX, AVG; 4
// shards × 100k pre-aggregated groups (each group on every shard).
func BenchmarkGroupBy(b *testing.B) {
	for _, bin := range []bool{false, true} {
		b.Run(protoName(bin), func(b *testing.B) {
			cols := []Column{intCol(b, "k"), intCol(b, "count(*)"), decCol(b, "sum(x)", 2), decCol(b, "max(x)", 2),
				decCol(b, "avg(x)", 6), decCol(b, "sum(x)", 2), intCol(b, "count(x)")}
			shards := benchShards(b, cols, bin, 4, 100000, func(s, i int) []any {
				return v(i, 3, "12.34", "9.99", "4.113333", "12.34", 3)
			})
			spec := &shard.Merge{Columns: 5, OrderBy: []shard.SortKey{{Column: 0}}, GroupBy: []int{0},
				Aggregates: []shard.Aggregate{{Column: 1, Kind: shard.AggCount}, {Column: 2, Kind: shard.AggSum},
					{Column: 3, Kind: shard.AggMax}, {Column: 4, Kind: shard.AggAvg, SumColumn: 5, CountColumn: 6}}}
			benchMerge(b, spec, cols, bin, shards)
		})
	}
}

// TestZeroAllocsPerRow: ORDER BY and LIMIT merges allocate nothing per row
// once running, for every key type and both protocols.
func TestZeroAllocsPerRow(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	keyCols := []struct {
		c   Column
		gen func(i int) any
	}{
		{intCol(t, "i"), func(i int) any { return i }},
		{col(t, "u", TypeLong, FlagUnsigned, 63, 0), func(i int) any { return i }},
		{col(t, "f", TypeDouble, 0, 63, 31), func(i int) any { return fmt.Sprintf("%g", float64(i)*1.25e-3) }},
		{decCol(t, "d", 3), func(i int) any { return fmt.Sprintf("%d.%03d", i/1000, i%1000) }},
		{col(t, "dt", TypeDateTime, 0, 63, 6), func(i int) any {
			return fmt.Sprintf("2024-01-%02d 10:%02d:%02d.%06d", 1+i/3600%28, i/60%60, i%60, i)
		}},
		{col(t, "tm", TypeTime, 0, 63, 0), func(i int) any { return fmt.Sprintf("%d:%02d:%02d", i/3600, i/60%60, i%60) }},
		{strCol(t, "s", 45), func(i int) any { return fmt.Sprintf("Ünïcode %08d", i) }},
		{strCol(t, "s", 8), func(i int) any { return fmt.Sprintf("latin %08d", i) }},
		{strCol(t, "s", 224), func(i int) any { return fmt.Sprintf("ünï %08d ß", i) }},
		{col(t, "b", TypeBlob, FlagBinary, 63, 0), func(i int) any { return fmt.Sprintf("blob %08d", i) }},
	}
	for _, kc := range keyCols {
		for _, bin := range []bool{false, true} {
			cols := []Column{strCol(t, "name", 45), kc.c}
			shards := benchShards(t, cols, bin, 4, 5000, func(s, i int) []any { return v("row", kc.gen(i*4+s)) })
			srcs := make([]Source, len(shards))
			for i := range shards {
				srcs[i] = &sliceSource{rows: shards[i]}
			}
			spec := &shard.Merge{Columns: 1, OrderBy: []shard.SortKey{{Column: 1, Desc: true}}, HasLimit: true, Offset: 10, Limit: 19000}
			m, err := New(spec, cols, bin, srcs)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 100; i++ {
				m.Next()
			}
			allocs := testing.AllocsPerRun(10000, func() {
				if _, err := m.Next(); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%s/%s: %v allocations per row", kc.c.Name, protoName(bin), allocs)
			}
		}
	}
}
