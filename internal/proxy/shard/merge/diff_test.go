package merge

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
)

// readTSV reads mariadb -N -B output; NULL is nil.
func readTSV(t *testing.T, name string) [][]any {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]any
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		var row []any
		for _, f := range strings.Split(line, "\t") {
			if f == "NULL" {
				row = append(row, nil)
			} else {
				row = append(row, f)
			}
		}
		out = append(out, row)
	}
	return out
}

// TestDifferentialAggregates merges what four MariaDB shards answered to
// the pushed-down query and compares with what one MariaDB answered to
// the client's query over all the rows (gen_golden.sh).
func TestDifferentialAggregates(t *testing.T) {
	aggCols := func() []Column {
		return []Column{
			col(t, "count(*)", TypeLongLong, FlagNotNull|FlagBinary, 63, 0),
			decCol(t, "sum(x)", 3), decCol(t, "min(x)", 3), decCol(t, "max(x)", 3), decCol(t, "avg(x)", 7),
			decCol(t, "sum(i)", 0), decCol(t, "avg(i)", 4),
			col(t, "sum(f)", TypeDouble, 0, 63, 31), col(t, "avg(f)", TypeDouble, 0, 63, 31),
			strCol(t, "max(g)", 45),
			decCol(t, "sum(x)", 3), intCol(t, "count(x)"), decCol(t, "sum(i)", 0), intCol(t, "count(i)"),
			col(t, "sum(f)", TypeDouble, 0, 63, 31), intCol(t, "count(f)"),
		}
	}
	aggs := func(base int) []shard.Aggregate {
		return []shard.Aggregate{
			{Column: base + 0, Kind: shard.AggCount},
			{Column: base + 1, Kind: shard.AggSum}, {Column: base + 2, Kind: shard.AggMin}, {Column: base + 3, Kind: shard.AggMax},
			{Column: base + 4, Kind: shard.AggAvg, SumColumn: base + 10, CountColumn: base + 11},
			{Column: base + 5, Kind: shard.AggSum},
			{Column: base + 6, Kind: shard.AggAvg, SumColumn: base + 12, CountColumn: base + 13},
			{Column: base + 7, Kind: shard.AggSum},
			{Column: base + 8, Kind: shard.AggAvg, SumColumn: base + 14, CountColumn: base + 15},
			{Column: base + 9, Kind: shard.AggMax},
		}
	}
	for _, tc := range []struct {
		name    string
		grouped bool
	}{{"agg", true}, {"agg1", false}} {
		cols := aggCols()
		spec := &shard.Merge{Columns: 10, Aggregates: aggs(0)}
		if tc.grouped {
			cols = append([]Column{strCol(t, "g", 45)}, cols...)
			spec = &shard.Merge{Columns: 11, Aggregates: aggs(1), GroupBy: []int{0}, OrderBy: []shard.SortKey{{Column: 0}}}
		}
		want := readTSV(t, fmt.Sprintf("testdata/%s_all.tsv", tc.name))
		for _, bin := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/%s", tc.name, protoName(bin)), func(t *testing.T) {
				var srcs []Source
				for n := 0; n < 4; n++ {
					s := &rowsSource{}
					for _, r := range readTSV(t, fmt.Sprintf("testdata/%s_shard%d.tsv", tc.name, n)) {
						if bin {
							s.rows = append(s.rows, binRow(t, cols, r...))
						} else {
							s.rows = append(s.rows, textRow(r...))
						}
					}
					srcs = append(srcs, s)
				}
				got := mustRun(t, spec, cols, bin, srcs)
				if len(got) != len(want) {
					t.Fatalf("%d rows, MariaDB %d", len(got), len(want))
				}
				for i := range got {
					for j, w := range want[i] {
						ws := null
						if w != nil {
							ws = w.(string)
						}
						if bin {
							// Compare through the binary encoding of MariaDB's value.
							ws = decodeOut(t, binRow(t, cols[j:j+1], w), cols[j:j+1], true)[0]
						}
						g := got[i][j]
						if cols[j].Type == TypeVarString {
							if (g == null) != (ws == null) || collGen4.compare([]byte(g), []byte(ws)) != 0 {
								t.Errorf("row %d %s: got %q, MariaDB %q", i, cols[j].Name, g, ws)
							}
							continue
						}
						if g != ws {
							t.Errorf("row %d %s: got %q, MariaDB %q", i, cols[j].Name, g, ws)
						}
					}
				}
			})
		}
	}
}
