package shard

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// TestRoutingProperty: for random keys, the INSERT target equals the
// point SELECT target (text and prepared, integer and string parameters),
// and IN lists and ranges containing the key include it.
func TestRoutingProperty(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, s := range strategies() {
		rt := mustRouter(t, s)
		db := sessionDB(s)
		dbCol, tCol := ruleCols(s)
		col := tCol
		if col == "" {
			col = dbCol
		}
		two := dbCol != "" && tCol != "" && !strings.EqualFold(dbCol, tCol)
		sel, _ := rt.Prepare("SELECT * FROM t_order WHERE "+keyWhere(dbCol, tCol, two, "?", "?"), db)
		for i := 0; i < 300; i++ {
			v := randKey(rnd)
			w := randKey(rnd)
			vs, ws := fmt.Sprint(v), fmt.Sprint(w)
			cols, vals := col, vs
			if two {
				cols, vals = dbCol+", "+tCol, vs+", "+vs
			}
			ins := mustPlan(t, rt, fmt.Sprintf("INSERT INTO t_order (%s, x) VALUES (%s, 1)", cols, vals), db)
			if len(ins.Targets) != 1 {
				t.Fatalf("insert %s: %+v", vs, ins)
			}
			want := ins.Targets[0].Shard
			pt := mustPlan(t, rt, "SELECT * FROM t_order WHERE "+keyWhere(dbCol, tCol, two, vs, vs), db)
			if got := shardsOf(pt); !slices.Equal(got, []int{want}) {
				t.Fatalf("%s: insert shard %d, select %v", vs, want, got)
			}
			args := []any{v, v}[:sel.Params]
			sargs := []any{vs, vs}[:sel.Params]
			for _, a := range [][]any{args, sargs} {
				bp, err := sel.Bind(a)
				if err != nil || !slices.Equal(shardsOf(bp), []int{want}) {
					t.Fatalf("%s: bind %#v: %v %v, want %d", vs, a, err, shardsOf(bp), want)
				}
			}
			// IN and ranges include the key's shard.
			in := mustPlan(t, rt, fmt.Sprintf("SELECT * FROM t_order WHERE %s IN (%s, %s)", col, ws, vs), db)
			if !slices.Contains(shardsOf(in), want) && !two {
				t.Fatalf("IN (%s, %s): %v misses %d", ws, vs, shardsOf(in), want)
			}
			if iv, ok := v.(int64); ok && iv > -1e15 && iv < 1e15 {
				lo, hi := iv-int64(rnd.IntN(5)), iv+int64(rnd.IntN(5))
				for _, where := range []string{
					fmt.Sprintf("%s BETWEEN %d AND %d", col, lo, hi),
					fmt.Sprintf("%s > %d AND %s <= %d", col, lo-1, col, hi),
					fmt.Sprintf("%d <= %s AND %s < %d", lo, col, col, hi+1),
				} {
					rg := mustPlan(t, rt, "SELECT * FROM t_order WHERE "+where, db)
					if !slices.Contains(shardsOf(rg), want) {
						t.Fatalf("%s: %v misses %d", where, shardsOf(rg), want)
					}
				}
			}
		}
	}
}

func keyWhere(dbCol, tCol string, two bool, a, b string) string {
	switch {
	case two:
		return fmt.Sprintf("%s = %s AND %s = %s", dbCol, a, tCol, b)
	case tCol != "":
		return tCol + " = " + b
	}
	return dbCol + " = " + a
}

func randKey(rnd *rand.Rand) any {
	switch rnd.IntN(4) {
	case 0:
		return int64(rnd.IntN(100))
	case 1:
		return -int64(rnd.IntN(1000)) - 1
	case 2:
		return rnd.Int64()
	}
	return rnd.Uint64() | 1<<63
}

// exprGen builds a random WHERE over id and v from fuzz bytes, in text
// and prepared form, and can evaluate it for a row.
type exprGen struct {
	data []byte
	args []any
}

func (g *exprGen) byte() int {
	if len(g.data) == 0 {
		return 0
	}
	b := g.data[0]
	g.data = g.data[1:]
	return int(b)
}

func (g *exprGen) num() int64 { return int64(g.byte()%41) - 20 }

// node is an evaluable expression.
type node struct {
	op       string
	a, b     int64
	col      string
	kids     []*node
	text     string
	prepared string
}

func (g *exprGen) gen(depth int) *node {
	c := g.byte() % 9
	if depth > 3 && c >= 5 && c <= 7 {
		c = 0
	}
	lit := func(v int64) (string, string) {
		g.args = append(g.args, v)
		return fmt.Sprint(v), "?"
	}
	switch c {
	case 0, 8:
		n := &node{op: "=", col: "id", a: g.num()}
		if c == 8 {
			n.col = "v"
		}
		t, p := lit(n.a)
		n.text, n.prepared = n.col+" = "+t, n.col+" = "+p
		return n
	case 1:
		n := &node{op: "in", col: "id", a: g.num(), b: g.num()}
		t1, p1 := lit(n.a)
		t2, p2 := lit(n.b)
		n.text, n.prepared = "id IN ("+t1+", "+t2+")", "id IN ("+p1+", "+p2+")"
		return n
	case 2:
		n := &node{op: "between", col: "id", a: g.num(), b: g.num()}
		t1, p1 := lit(n.a)
		t2, p2 := lit(n.b)
		n.text, n.prepared = "id BETWEEN "+t1+" AND "+t2, "id BETWEEN "+p1+" AND "+p2
		return n
	case 3, 4:
		n := &node{op: "<", col: "id", a: g.num()}
		if c == 4 {
			n.op = ">="
		}
		t, p := lit(n.a)
		n.text, n.prepared = "id "+n.op+" "+t, "id "+n.op+" "+p
		return n
	case 5, 6:
		l, r := g.gen(depth+1), g.gen(depth+1)
		n := &node{op: "and", kids: []*node{l, r}}
		if c == 6 {
			n.op = "or"
		}
		kw := " " + strings.ToUpper(n.op) + " "
		n.text, n.prepared = "("+l.text+kw+r.text+")", "("+l.prepared+kw+r.prepared+")"
		return n
	default:
		k := g.gen(depth + 1)
		return &node{op: "not", kids: []*node{k}, text: "NOT (" + k.text + ")", prepared: "NOT (" + k.prepared + ")"}
	}
}

func (n *node) eval(id, v int64) bool {
	x := id
	if n.col == "v" {
		x = v
	}
	switch n.op {
	case "=":
		return x == n.a
	case "in":
		return x == n.a || x == n.b
	case "between":
		return x >= n.a && x <= n.b
	case "<":
		return x < n.a
	case ">=":
		return x >= n.a
	case "and":
		return n.kids[0].eval(id, v) && n.kids[1].eval(id, v)
	case "or":
		return n.kids[0].eval(id, v) || n.kids[1].eval(id, v)
	case "not":
		return !n.kids[0].eval(id, v)
	}
	return false
}

// FuzzPlan: no panic on any text; errors are MySQL errors; for a random
// WHERE, every row it matches lives on a target shard (text and prepared
// forms), and `id = K AND ...` never reaches a shard other than K's.
func FuzzPlan(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM t_order WHERE id = 1", "INSERT INTO t_order (id) VALUES (1), (2)",
		"SELECT v, COUNT(*) FROM t_order GROUP BY v HAVING COUNT(*) > 1 ORDER BY 2 DESC LIMIT 1, 2",
		"UPDATE t_order SET v = 1 WHERE id IN (1, 2)", "SELECT * FROM t_order o JOIN t ON o.id = t.id",
		"SELECT DISTINCT v FROM t_order ORDER BY v", "SELECT AVG(v), id FROM t_order GROUP BY id",
		"DELETE FROM t_order WHERE id BETWEEN 1 AND 9", "create table t_order (id int)", "show tables",
	} {
		f.Add(s, []byte{5, 0, 3, 6, 1, 9, 2, 2, 30, 7, 0, 4})
	}
	rt := mustRouter(f, tableRule("t_order", "mod", "id", 4))
	r := rt.rules[0]
	f.Fuzz(func(t *testing.T, sql string, seed []byte) {
		p, err := rt.Plan(sql, "db0")
		if err != nil {
			var me *mysql.Error
			if !errors.As(err, &me) || strings.Contains(me.Message, "internal error") {
				t.Fatalf("%q: %v", sql, err)
			}
		} else {
			last := -1
			for _, tg := range p.Targets {
				if tg.Shard <= last || tg.Shard >= r.shards() || tg.SQL == "" {
					t.Fatalf("%q: bad targets %+v", sql, p.Targets)
				}
				last = tg.Shard
			}
			if p.Merge != nil {
				_ = p.Merge.Resolve(20)
			}
		}

		g := &exprGen{data: seed}
		e := g.gen(0)
		text, _ := rt.Plan("SELECT * FROM t_order WHERE "+e.text, "db0")
		prep, _ := rt.Prepare("SELECT * FROM t_order WHERE "+e.prepared, "db0")
		bound, err := prep.Bind(g.args)
		if text == nil || err != nil {
			t.Fatalf("%s: %v", e.text, err)
		}
		for id := int64(-25); id <= 25; id++ {
			s := r.keyShards(roleTable, intKey(id)).one
			for v := int64(-2); v <= 2; v++ {
				if !e.eval(id, v) {
					continue
				}
				if !slices.Contains(shardsOf(text), s) || !slices.Contains(shardsOf(bound), s) {
					t.Fatalf("%s: row id=%d v=%d on shard %d, targets %v / %v", e.text, id, v, s, shardsOf(text), shardsOf(bound))
				}
			}
		}
		k := int64(len(seed)%17) - 8
		ks := r.keyShards(roleTable, intKey(k)).one
		pk, err := rt.Plan(fmt.Sprintf("SELECT * FROM t_order WHERE id = %d AND %s", k, e.text), "db0")
		if err != nil || len(pk.Targets) != 1 || (pk.Targets[0].Shard != ks && pk.Targets[0].Shard != 0) {
			t.Fatalf("id = %d AND %s: %v %v (key shard %d)", k, e.text, err, shardsOf(pk), ks)
		}
	})
}
