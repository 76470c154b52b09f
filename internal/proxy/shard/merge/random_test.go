package merge

import (
	"fmt"
	"math/rand"
	"sort"
	"strconv"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
)

// TestRandomSplit sorts random rows, splits them into shards keeping each
// shard's order, merges, and checks the result is the sorted list (equal
// keys may come in any shard order, so keys and the multiset of ids are
// compared), with and without LIMIT, and grouped.
func TestRandomSplit(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	cols := []Column{intCol(t, "id"), col(t, "k", TypeLong, 0, 63, 0), strCol(t, "s", 45), decCol(t, "d", 2)}
	ci := make([]colInfo, len(cols))
	for i, c := range cols {
		ci[i] = newColInfo(c)
	}
	words := []string{"a", "A", "á", "b", "B ", "ß", "ss", "s", "z", "Z", "", "😀", "ǅ", "Ǆ"}
	type row struct {
		id   int
		k    *int64
		s    string
		d    string
		text []byte
	}
	for iter := 0; iter < 200; iter++ {
		n := rng.Intn(300)
		nshards := 1 + rng.Intn(6)
		desc := rng.Intn(2) == 0
		bin := rng.Intn(2) == 0
		rows := make([]row, n)
		for i := range rows {
			r := row{id: i, s: words[rng.Intn(len(words))], d: fmt.Sprintf("%d.%02d", rng.Intn(21)-10, rng.Intn(100))}
			if rng.Intn(8) != 0 {
				k := int64(rng.Intn(20) - 10)
				r.k = &k
			}
			var kv any
			if r.k != nil {
				kv = *r.k
			}
			if bin {
				r.text = binRow(t, cols, r.id, kv, r.s, r.d)
			} else {
				r.text = textRow(r.id, kv, r.s, r.d)
			}
			rows[i] = r
		}
		cmpRow := func(a, b *row) int {
			switch {
			case a.k == nil && b.k != nil:
				return -1
			case a.k != nil && b.k == nil:
				return 1
			case a.k != nil && *a.k != *b.k:
				return cmp3(*a.k < *b.k, *a.k > *b.k)
			}
			return collGen4.compare([]byte(a.s), []byte(b.s))
		}
		sort.SliceStable(rows, func(i, j int) bool {
			c := cmpRow(&rows[i], &rows[j])
			if desc {
				c = -c
			}
			return c < 0
		})
		shards := make([][][]byte, nshards)
		for _, r := range rows {
			s := rng.Intn(nshards)
			shards[s] = append(shards[s], r.text)
		}
		order := []shard.SortKey{{Column: 1, Desc: desc}, {Column: 2, Desc: desc}}

		// ORDER BY k, s [LIMIT].
		spec := &shard.Merge{Columns: 4, OrderBy: order}
		if rng.Intn(2) == 0 {
			spec.HasLimit, spec.Offset, spec.Limit = true, uint64(rng.Intn(50)), uint64(rng.Intn(100))
		}
		got := mustRun(t, spec, cols, bin, sources(shards...))
		lo, hi := 0, len(rows)
		if spec.HasLimit {
			lo = min(int(spec.Offset), len(rows))
			hi = min(lo+int(spec.Limit), len(rows))
		}
		if len(got) != hi-lo {
			t.Fatalf("iter %d: %d rows, want %d", iter, len(got), hi-lo)
		}
		for i, g := range got {
			w := &rows[lo+i]
			wk := null
			if w.k != nil {
				wk = strconv.FormatInt(*w.k, 10)
			}
			if g[1] != wk || collGen4.compare([]byte(g[2]), []byte(w.s)) != 0 {
				t.Fatalf("iter %d row %d: got %q, want k=%s s=%q", iter, i, g, wk, w.s)
			}
		}
		if !spec.HasLimit {
			ids := map[string]bool{}
			for _, g := range got {
				ids[g[0]] = true
			}
			if len(ids) != len(rows) {
				t.Fatalf("iter %d: %d distinct ids of %d", iter, len(ids), len(rows))
			}
		}

		// GROUP BY k, s: COUNT(*) and SUM(d), checked against the sorted list.
		gcols := []Column{cols[0], cols[1], cols[2], decCol(t, "sum(d)", 2)}
		gspec := &shard.Merge{Columns: 4, OrderBy: order, GroupBy: []int{1, 2},
			Aggregates: []shard.Aggregate{{Column: 0, Kind: shard.AggCount}, {Column: 3, Kind: shard.AggSum}}}
		gshards := make([][][]byte, nshards)
		// Each shard pre-aggregates its rows per group, as MariaDB would.
		for s := range gshards {
			var cur *row
			cnt := 0
			var sum decAcc
			flush := func() {
				if cur == nil {
					return
				}
				var kv any
				if cur.k != nil {
					kv = *cur.k
				}
				total := string(sum.appendText(nil))
				if bin {
					gshards[s] = append(gshards[s], binRow(t, gcols, cnt, kv, cur.s, total))
				} else {
					gshards[s] = append(gshards[s], textRow(cnt, kv, cur.s, total))
				}
			}
			for i := range rows {
				r := &rows[i]
				if rng.Intn(nshards) != s && !(nshards == 1) {
					continue
				}
				if cur == nil || cmpRow(cur, r) != 0 {
					flush()
					cur, cnt = r, 0
					sum.reset(2)
				}
				cnt++
				sum.addDecimal([]byte(r.d))
			}
			flush()
		}
		ggot := mustRun(t, gspec, gcols, bin, sources(gshards...))
		// Expected: every shard's groups, stably sorted, equal keys combined.
		type grp struct {
			k, s  string
			count int
			sum   decAcc
		}
		var all []*grp
		for _, sh := range gshards {
			for _, rb := range sh {
				vals := decodeOut(t, rb, gcols, bin)
				c, _ := strconv.Atoi(vals[0])
				g := &grp{k: vals[1], s: vals[2], count: c}
				g.sum.reset(2)
				g.sum.addDecimal([]byte(vals[3]))
				all = append(all, g)
			}
		}
		cmpGrp := func(a, b *grp) int {
			ak, bk := a.k == null, b.k == null
			switch {
			case ak && !bk:
				return -1
			case !ak && bk:
				return 1
			case !ak:
				x, _ := strconv.Atoi(a.k)
				y, _ := strconv.Atoi(b.k)
				if x != y {
					return cmp3(x < y, x > y)
				}
			}
			return collGen4.compare([]byte(a.s), []byte(b.s))
		}
		sort.SliceStable(all, func(i, j int) bool {
			c := cmpGrp(all[i], all[j])
			if desc {
				c = -c
			}
			return c < 0
		})
		var want []*grp
		for _, g := range all {
			if n := len(want); n > 0 && cmpGrp(want[n-1], g) == 0 {
				want[n-1].count += g.count
				want[n-1].sum.addDecimal(g.sum.appendText(nil))
				continue
			}
			want = append(want, g)
		}
		if len(ggot) != len(want) {
			t.Fatalf("iter %d: %d groups, want %d", iter, len(ggot), len(want))
		}
		for i, g := range ggot {
			w := want[i]
			if g[1] != w.k || collGen4.compare([]byte(g[2]), []byte(w.s)) != 0 ||
				g[0] != strconv.Itoa(w.count) || g[3] != string(w.sum.appendText(nil)) {
				t.Fatalf("iter %d group %d: got %q, want %s %q count %d sum %s", iter, i, g, w.k, w.s, w.count, w.sum.appendText(nil))
			}
		}
	}
}
