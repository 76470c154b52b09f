package shard

import (
	"math/bits"
	"strings"

	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/opcode"
	driver "github.com/pingcap/tidb/pkg/parser/test_driver"
)

// This file finds the shards a WHERE clause can touch. The clause is
// compiled once (at Prepare) into a small condition tree over the sharding
// columns whose operands are literals or `?` parameters; Bind evaluates it.
// Every step over-approximates: the result is a superset of the shards
// holding a matching row, never fewer.
//
//	col = v, v = col, col <=> v   the shard(s) of v
//	col IN (v, ...)               union of the values' shards
//	col BETWEEN a AND b, col < b, col <= b, col > a, col >= a
//	                              integer ranges, ANDed bounds combined, are
//	                              enumerated when they hold at most
//	                              MaxRangeValues integers (bounds must be
//	                              numbers within ±2^53: a string bound
//	                              compares as a string); otherwise all
//	x AND y                       intersection (an empty one means no row
//	                              matches anywhere: one shard answers)
//	x OR y                        union
//	anything else                 all shards (NOT, IS NULL, <>, LIKE,
//	                              functions, columns of other expressions)

// MaxRangeValues bounds the integers a range is enumerated over.
const MaxRangeValues = 1024

// maxExactFloat is 2^53: numbers beyond compare inexactly as doubles.
const maxExactFloat = 1 << 53

// operand is a literal key or a `?` parameter.
type operand struct {
	param int // parameter position, -1 for a literal
	k     key
}

func (o operand) eval(args []any) key {
	if o.param < 0 {
		return o.k
	}
	if o.param >= len(args) {
		return key{}
	}
	return argKey(args[o.param])
}

type condKind uint8

const (
	condAll condKind = iota
	condEq
	condIn
	condRange
	condAnd
	condOr
)

// cond is a compiled WHERE condition.
type cond struct {
	kind condKind
	role keyRole
	vals []operand // condEq (one), condIn
	// condRange: the lower bounds (all must hold) and upper bounds.
	lo, hi []bound
	kids   []*cond
}

type bound struct {
	v    operand
	incl bool
}

var condAllShards = &cond{kind: condAll}

// compileCond compiles a WHERE expression for rule r; nil expr is all.
func compileCond(e ast.ExprNode, r *rule) *cond {
	if e == nil {
		return condAllShards
	}
	switch x := e.(type) {
	case *ast.ParenthesesExpr:
		return compileCond(x.Expr, r)
	case *ast.BinaryOperationExpr:
		switch x.Op {
		case opcode.LogicAnd:
			return andCond(r, flatten(x, opcode.LogicAnd, nil), true)
		case opcode.LogicOr:
			return andCond(r, flatten(x, opcode.LogicOr, nil), false)
		case opcode.EQ, opcode.NullEQ, opcode.LT, opcode.LE, opcode.GT, opcode.GE:
			if c := compileCmp(x, r); c != nil {
				return c
			}
		}
	case *ast.PatternInExpr:
		if x.Not || x.Sel != nil {
			return condAllShards
		}
		role := columnRole(x.Expr, r)
		if role == 0 {
			return condAllShards
		}
		c := &cond{kind: condIn, role: role}
		for _, v := range x.List {
			o, ok := literalOperand(v)
			if !ok {
				return condAllShards
			}
			c.vals = append(c.vals, o)
		}
		return c
	case *ast.BetweenExpr:
		if x.Not {
			return condAllShards
		}
		role := columnRole(x.Expr, r)
		lo, ok1 := literalOperand(x.Left)
		hi, ok2 := literalOperand(x.Right)
		if role == 0 || !ok1 || !ok2 {
			return condAllShards
		}
		return &cond{kind: condRange, role: role, lo: []bound{{lo, true}}, hi: []bound{{hi, true}}}
	}
	return condAllShards
}

// flatten lists the operands of a chain of one logical operator.
func flatten(e ast.ExprNode, op opcode.Op, out []ast.ExprNode) []ast.ExprNode {
	for {
		p, ok := e.(*ast.ParenthesesExpr)
		if !ok {
			break
		}
		e = p.Expr
	}
	if b, ok := e.(*ast.BinaryOperationExpr); ok && b.Op == op {
		out = flatten(b.L, op, out)
		return flatten(b.R, op, out)
	}
	return append(out, e)
}

// andCond builds an AND (and=true) or OR of the operands. Under AND, the
// range comparisons of one column merge into one range.
func andCond(r *rule, es []ast.ExprNode, and bool) *cond {
	c := &cond{kind: condOr}
	if and {
		c.kind = condAnd
	}
	var ranges []*cond
	for _, e := range es {
		k := compileCond(e, r)
		if !and {
			if k.kind == condAll {
				return condAllShards // x OR everything = everything
			}
			c.kids = append(c.kids, k)
			continue
		}
		if k.kind == condAll {
			continue // x AND everything = x
		}
		if k.kind == condRange {
			merged := false
			for _, rg := range ranges {
				if rg.role == k.role {
					rg.lo = append(rg.lo, k.lo...)
					rg.hi = append(rg.hi, k.hi...)
					merged = true
					break
				}
			}
			if merged {
				continue
			}
			k = &cond{kind: condRange, role: k.role, lo: k.lo, hi: k.hi}
			ranges = append(ranges, k)
		}
		c.kids = append(c.kids, k)
	}
	switch len(c.kids) {
	case 0:
		return condAllShards
	case 1:
		return c.kids[0]
	}
	return c
}

func compileCmp(x *ast.BinaryOperationExpr, r *rule) *cond {
	op := x.Op
	role := columnRole(x.L, r)
	val := x.R
	if role == 0 {
		role = columnRole(x.R, r)
		val = x.L
		switch op { // v < col is col > v
		case opcode.LT:
			op = opcode.GT
		case opcode.LE:
			op = opcode.GE
		case opcode.GT:
			op = opcode.LT
		case opcode.GE:
			op = opcode.LE
		}
	}
	if role == 0 {
		return nil
	}
	o, ok := literalOperand(val)
	if !ok {
		return nil
	}
	switch op {
	case opcode.EQ, opcode.NullEQ:
		return &cond{kind: condEq, role: role, vals: []operand{o}}
	case opcode.LT, opcode.LE:
		return &cond{kind: condRange, role: role, hi: []bound{{o, op == opcode.LE}}}
	default:
		return &cond{kind: condRange, role: role, lo: []bound{{o, op == opcode.GE}}}
	}
}

// columnRole is the sharding role of e when it is a column of the table
// (qualified or not: statements on a sharded table have one table).
func columnRole(e ast.ExprNode, r *rule) keyRole {
	for {
		p, ok := e.(*ast.ParenthesesExpr)
		if !ok {
			break
		}
		e = p.Expr
	}
	c, ok := e.(*ast.ColumnNameExpr)
	if !ok || c.Name == nil {
		return 0
	}
	if r.join != nil && !r.join.mine(c.Name) {
		return 0 // a broadcast table's column
	}
	return r.role(c.Name.Name.O)
}

// literalOperand reads a literal or a parameter marker.
func literalOperand(e ast.ExprNode) (operand, bool) {
	neg := false
	for {
		switch x := e.(type) {
		case *ast.ParenthesesExpr:
			e = x.Expr
			continue
		case *ast.UnaryOperationExpr:
			switch x.Op {
			case opcode.Minus:
				neg = !neg
				e = x.V
				continue
			case opcode.Plus:
				e = x.V
				continue
			}
			return operand{}, false
		}
		break
	}
	switch x := e.(type) {
	case *driver.ParamMarkerExpr:
		if neg {
			return operand{}, false
		}
		return operand{param: x.Order}, true
	case *driver.ValueExpr:
		k, ok := datumKey(&x.Datum, neg)
		return operand{param: -1, k: k}, ok
	}
	return operand{}, false
}

// datumKey converts a literal's value (negated when neg) into a key; ok is
// false for values that are not literals we understand at all.
func datumKey(d *driver.Datum, neg bool) (key, bool) {
	switch d.Kind() {
	case driver.KindNull:
		if neg {
			return key{}, true
		}
		return key{kind: keyNull}, true
	case driver.KindInt64:
		v := d.GetInt64()
		if neg {
			if v == -v && v != 0 { // MinInt64
				return key{}, true
			}
			v = -v
		}
		return intKey(v), true
	case driver.KindUint64:
		u := d.GetUint64()
		if !neg {
			return uintKey(u), true
		}
		if u > 1<<63 {
			return key{}, true
		}
		return intKey(int64(-u)), true
	case driver.KindFloat32, driver.KindFloat64:
		f := d.GetFloat64()
		if neg {
			f = -f
		}
		return floatKey(f), true
	case driver.KindMysqlDecimal:
		s := d.GetMysqlDecimal().String()
		if neg {
			if strings.HasPrefix(s, "-") {
				s = s[1:]
			} else {
				s = "-" + s
			}
		}
		return decimalKey(s), true
	case driver.KindString, driver.KindBytes:
		if neg {
			return key{}, true
		}
		k := stringKey(d.GetString())
		k.str = true
		return k, true
	}
	return key{}, true
}

// shardSet is a set of shard indexes: all of them, one, or a bitmap.
type shardSet struct {
	n    int // number of shards
	all  bool
	one  int // >= 0: exactly this shard (when !all and bits == nil)
	bits []uint64
}

func allShards(n int) shardSet { return shardSet{n: n, all: true, one: -1} }
func oneShard(n, s int) shardSet {
	return shardSet{n: n, one: s}
}
func noShards(n int) shardSet { return shardSet{n: n, one: -1, bits: make([]uint64, (n+63)/64)} }

func (s shardSet) toBits() []uint64 {
	b := make([]uint64, (s.n+63)/64)
	switch {
	case s.all:
		for i := 0; i < s.n; i++ {
			b[i/64] |= 1 << (i % 64)
		}
	case s.bits != nil:
		copy(b, s.bits)
	case s.one >= 0:
		b[s.one/64] |= 1 << (s.one % 64)
	}
	return b
}

func (s shardSet) count() int {
	switch {
	case s.all:
		return s.n
	case s.bits != nil:
		c := 0
		for _, w := range s.bits {
			c += bits.OnesCount64(w)
		}
		return c
	case s.one >= 0:
		return 1
	}
	return 0
}

func (s shardSet) has(i int) bool {
	switch {
	case s.all:
		return true
	case s.bits != nil:
		return s.bits[i/64]&(1<<(i%64)) != 0
	}
	return s.one == i
}

// list returns the members in increasing order.
func (s shardSet) list() []int {
	out := make([]int, 0, s.count())
	for i := 0; i < s.n; i++ {
		if s.has(i) {
			out = append(out, i)
		}
	}
	return out
}

func union(a, b shardSet) shardSet {
	if a.all || b.all {
		return allShards(a.n)
	}
	if a.bits == nil && b.bits == nil && a.one == b.one {
		return a
	}
	x, y := a.toBits(), b.toBits()
	full := true
	for i := range x {
		x[i] |= y[i]
	}
	for i := 0; i < a.n && full; i++ {
		full = x[i/64]&(1<<(i%64)) != 0
	}
	if full {
		return allShards(a.n)
	}
	return shardSet{n: a.n, one: -1, bits: x}
}

func intersect(a, b shardSet) shardSet {
	if a.all {
		return b
	}
	if b.all {
		return a
	}
	if a.bits == nil && a.one >= 0 {
		if b.has(a.one) {
			return a
		}
		return noShards(a.n)
	}
	if b.bits == nil && b.one >= 0 {
		if a.has(b.one) {
			return b
		}
		return noShards(a.n)
	}
	x, y := a.toBits(), b.toBits()
	for i := range x {
		x[i] &= y[i]
	}
	return shardSet{n: a.n, one: -1, bits: x}
}

// keyShards is the set of shards rows with sharding value k in a column of
// the given role can live on.
func (r *rule) keyShards(role keyRole, k key) shardSet {
	n := r.shards()
	if k.kind != keyInt {
		return allShards(n)
	}
	dbi, ti := -1, -1
	if role&roleDB != 0 {
		dbi = r.dbAlg.Index(k.bits, r.dbCount)
	} else if r.dbCount == 1 {
		dbi = 0
	}
	if role&roleTable != 0 {
		ti = r.tableAlg.Index(k.bits, r.tblCount)
	} else if r.tblCount == 1 {
		ti = 0
	}
	switch {
	case dbi >= 0 && ti >= 0:
		return oneShard(n, dbi*r.tblCount+ti)
	case dbi >= 0:
		s := noShards(n)
		for t := 0; t < r.tblCount; t++ {
			i := dbi*r.tblCount + t
			s.bits[i/64] |= 1 << (i % 64)
		}
		return s
	default:
		s := noShards(n)
		for d := 0; d < r.dbCount; d++ {
			i := d*r.tblCount + ti
			s.bits[i/64] |= 1 << (i % 64)
		}
		return s
	}
}

// eval returns the shards condition c can match rows on.
func (c *cond) eval(r *rule, args []any) shardSet {
	n := r.shards()
	switch c.kind {
	case condEq:
		return r.keyShards(c.role, c.vals[0].eval(args))
	case condIn:
		var s shardSet
		for i, v := range c.vals {
			k := r.keyShards(c.role, v.eval(args))
			if i == 0 {
				s = k
			} else {
				s = union(s, k)
			}
			if s.all {
				break
			}
		}
		return s
	case condRange:
		return c.evalRange(r, args)
	case condAnd:
		s := allShards(n)
		for _, k := range c.kids {
			s = intersect(s, k.eval(r, args))
		}
		return s
	case condOr:
		var s shardSet
		for i, k := range c.kids {
			if i == 0 {
				s = k.eval(r, args)
			} else {
				s = union(s, k.eval(r, args))
			}
			if s.all {
				break
			}
		}
		return s
	}
	return allShards(n)
}

// evalRange enumerates a bounded integer range.
func (c *cond) evalRange(r *rule, args []any) shardSet {
	n := r.shards()
	lo, hi := int64(-maxExactFloat), int64(maxExactFloat)
	haveLo, haveHi := false, false
	for _, b := range c.lo {
		v, ok := rangeBound(b.v.eval(args))
		if !ok {
			continue // an unusable bound: the range is only wider
		}
		if !b.incl {
			v++
		}
		if !haveLo || v > lo {
			lo = v
		}
		haveLo = true
	}
	for _, b := range c.hi {
		v, ok := rangeBound(b.v.eval(args))
		if !ok {
			continue
		}
		if !b.incl {
			v--
		}
		if !haveHi || v < hi {
			hi = v
		}
		haveHi = true
	}
	if !haveLo || !haveHi {
		return allShards(n)
	}
	if lo > hi {
		return noShards(n)
	}
	if hi-lo >= MaxRangeValues {
		return allShards(n)
	}
	s := noShards(n)
	for v := lo; v <= hi; v++ {
		s = union(s, r.keyShards(c.role, intKey(v)))
		if s.all {
			break
		}
	}
	return s
}

// rangeBound is a numeric key usable as an exact range bound.
func rangeBound(k key) (int64, bool) {
	if k.kind != keyInt || k.str {
		return 0, false
	}
	v, ok := k.int64()
	if !ok || v < -maxExactFloat || v > maxExactFloat {
		return 0, false
	}
	return v, true
}
