package shard

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/format"
	"github.com/pingcap/tidb/pkg/parser/opcode"
	driver "github.com/pingcap/tidb/pkg/parser/test_driver"
)

// SELECT on one sharded table.
//
// One shard: the statement with the table renamed, relayed as it is.
//
// Several shards: the shards run a rewritten statement and Merge says how
// their results combine. Two shapes:
//
//   - rows (no aggregate, no GROUP BY; or GROUP BY whose columns include
//     every sharding column, so each group lives on one shard): the shards
//     run the statement (GROUP BY, HAVING, aggregates included) with the
//     client's ORDER BY, and the merger k-way merges by it. Without ORDER BY
//     a grouped statement is ordered by its GROUP BY (MariaDB's implicit
//     order). LIMIT o, n becomes LIMIT o+n on the shards, Merge.Offset o
//     and Merge.Limit n. DISTINCT adds every visible column to the order so
//     that duplicates from different shards meet.
//   - aggregate (aggregates without GROUP BY, or GROUP BY not on the
//     sharding column): the shards group by the GROUP BY columns and sort
//     by them (with the client's directions when its ORDER BY is a prefix
//     of the GROUP BY, else ascending and Merge.Resort holds the client's
//     order); COUNT, SUM, MIN, MAX merge; AVG(x) stays for its metadata and
//     SUM(x), COUNT(x) are appended; HAVING becomes Merge.Having (ANDed
//     `aggregate op literal` only) and LIMIT is applied by the merger only.
//     COUNT/SUM/AVG(DISTINCT x) need x to be the sharding column.
//
// ORDER BY / GROUP BY expressions that are not visible columns are
// appended as derived columns after the visible ones, aliased
// pisa_derived_N (a suffix is added if the text already holds that name).
// SELECT * is supported for the rows shape: Merge.Columns is -1 and column
// indexes are negative (counted from the end) where the wildcard makes
// them unknown; see Merge.
//
// Refused across shards (1235): FOR UPDATE / LOCK IN SHARE MODE,
// SQL_CALC_FOUND_ROWS, SELECT ... INTO, LIMIT ?, ? (LIMIT ? alone is
// supported: the shards get LIMIT ? and Bind sets Merge.Limit), WITH
// ROLLUP, aggregates inside expressions (SUM(a)+1), aggregates other than
// COUNT/SUM/MIN/MAX/AVG, DISTINCT with GROUP BY columns it does not select
// in the aggregate shape,
// SELECT * in the aggregate shape, HAVING that is not a conjunction of
// `aggregate op literal`. On one shard all of these run.

func (pc *prepCtx) prepareSelect(st *ast.SelectStmt, root ast.StmtNode) *Prepared {
	r := pc.rule
	pc.tableAlias(st.From)
	p := pc.newPrepared()
	p.cond = compileCond(st.Where, r)

	sa := &selAnalysis{pc: pc, st: st}
	edits, merge, err := sa.analyze()
	if err != nil {
		p.multiErr = err
	}
	keepNames(st)

	pc.rename(root)
	t, rerr := pc.templ(root)
	if rerr != nil {
		return pc.restoreErr(rerr)
	}
	pc.singles(p, t)
	if err == nil {
		sa.derivedPrefix = "pisa_derived_" + pc.res.suffix
		if strings.Contains(strings.ToLower(pc.sql), "pisa_derived_") {
			sa.derivedPrefix = "pisa_derived_x" + strconv.Itoa(len(pc.sql)) + "_"
		}
		edits(sa)
		t2, rerr := pc.templ(root)
		if rerr != nil {
			return pc.restoreErr(rerr)
		}
		p.merge = merge
		p.limitParam = sa.limitParam
		p.multiT = t2
	}
	return pc.finish(p)
}

// colRef is a result column: a visible field, a derived column, or an
// absolute position (ORDER BY 2).
type colRef struct {
	field, derived, pos int // exactly one >= 0
}

func fieldRef(i int) colRef   { return colRef{field: i, derived: -1, pos: -1} }
func derivedRef(i int) colRef { return colRef{field: -1, derived: i, pos: -1} }
func posRef(i int) colRef     { return colRef{field: -1, derived: -1, pos: i} }

// derivedCol is one appended column: its expression is read from the AST
// when the edits apply (after the restore wrappers replaced leaves).
type derivedCol struct {
	expr func() ast.ExprNode
}

type selAnalysis struct {
	pc *prepCtx
	st *ast.SelectStmt

	fields    []*ast.SelectField
	wild      int // number of wildcard fields
	firstWild int // index of the first wildcard, or -1
	lastWild  int
	derived   []derivedCol
	byKey     map[string]colRef // derived columns by normalized expression
	merge     *Merge
	aggs      []aggRef

	derivedPrefix string
	limitParam    int // the parameter of LIMIT ?, or -1
}

// aggRef is an aggregate column before indexes are final.
type aggRef struct {
	col      colRef
	kind     AggKind
	sum, cnt colRef
}

// index resolves a column reference (see Merge for negative indexes).
func (a *selAnalysis) index(c colRef) int {
	m, d := len(a.fields), len(a.derived)
	switch {
	case c.pos >= 0:
		return c.pos
	case c.derived >= 0:
		if a.wild > 0 {
			return -(d - c.derived)
		}
		return m + c.derived
	case a.wild > 0 && c.field > a.lastWild:
		return -(d + m - c.field)
	}
	return c.field
}

// knownPosition says whether a visible field's index can be expressed.
func (a *selAnalysis) knownPosition(i int) bool {
	return a.wild == 0 || i < a.firstWild || i > a.lastWild
}

// normalize is an expression's text without qualifiers, for matching.
func normalize(e ast.ExprNode) string {
	if e == nil {
		return "\x00nil"
	}
	var b strings.Builder
	flags := format.RestoreStringSingleQuotes | format.RestoreKeyWordUppercase | format.RestoreNameBackQuotes |
		format.RestoreWithoutSchemaName | format.RestoreWithoutTableName | format.RestoreStringEscapeBackslash
	if err := e.Restore(format.NewRestoreCtx(flags, &b)); err != nil {
		return fmt.Sprintf("\x00%p", e) // matches nothing else
	}
	return strings.ToLower(b.String())
}

func unparen(e ast.ExprNode) ast.ExprNode {
	for {
		p, ok := e.(*ast.ParenthesesExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// hasAgg reports an aggregate anywhere in e.
func hasAgg(e ast.Node) bool {
	if e == nil {
		return false
	}
	v := &aggFinder{}
	e.Accept(v)
	return v.found
}

type aggFinder struct{ found bool }

func (v *aggFinder) Enter(n ast.Node) (ast.Node, bool) {
	if _, ok := n.(*ast.AggregateFuncExpr); ok {
		v.found = true
		return n, true
	}
	return n, false
}
func (v *aggFinder) Leave(n ast.Node) (ast.Node, bool) { return n, true }

func aggKind(f string) (AggKind, bool) {
	switch strings.ToLower(f) {
	case "count":
		return AggCount, true
	case "sum":
		return AggSum, true
	case "min":
		return AggMin, true
	case "max":
		return AggMax, true
	case "avg":
		return AggAvg, true
	}
	return 0, false
}

// analyze decides the multi-shard rewrite. edits applies it to the AST
// (after renaming); merge is its Merge.
func (a *selAnalysis) analyze() (func(*selAnalysis), *Merge, error) {
	st, r := a.st, a.pc.rule
	if st.LockInfo != nil && st.LockInfo.LockType != ast.SelectLockNone {
		return nil, nil, Refuse(ReasonLockingRead, "locking SELECT (FOR UPDATE, LOCK IN SHARE MODE) on several shards of %s is not supported", r.table)
	}
	if st.SelectStmtOpts != nil && st.SelectStmtOpts.CalcFoundRows {
		return nil, nil, Refuse(ReasonLimit, "SQL_CALC_FOUND_ROWS on several shards of %s is not supported", r.table)
	}
	if st.SelectIntoOpt != nil {
		return nil, nil, Refuse(ReasonStatement, "SELECT ... INTO on several shards of %s is not supported", r.table)
	}
	if st.Fields == nil {
		return nil, nil, Refuse(ReasonStatement, "this SELECT on several shards of %s is not supported", r.table)
	}
	if st.GroupBy != nil && st.GroupBy.Rollup {
		return nil, nil, Refuse(ReasonGroupBy, "GROUP BY ... WITH ROLLUP on several shards of %s is not supported", r.table)
	}
	a.fields = st.Fields.Fields
	a.firstWild, a.lastWild = -1, -1
	for i, f := range a.fields {
		if f.WildCard != nil {
			a.wild++
			if a.firstWild < 0 {
				a.firstWild = i
			}
			a.lastWild = i
		}
	}
	a.merge = &Merge{Columns: len(a.fields)}
	if a.wild > 0 {
		a.merge.Columns = -1
	}

	// LIMIT.
	var offset, count uint64
	hasLimit := st.Limit != nil
	a.limitParam = -1
	if pm, ok := limitParam(st.Limit); ok {
		a.limitParam = pm // LIMIT ?: Bind sets Merge.Limit
	} else if hasLimit {
		var ok bool
		if count, ok = limitValue(st.Limit.Count); !ok {
			return nil, nil, Refuse(ReasonLimit, "LIMIT with parameters on several shards of %s is not supported", r.table)
		}
		if st.Limit.Offset != nil {
			if offset, ok = limitValue(st.Limit.Offset); !ok {
				return nil, nil, Refuse(ReasonLimit, "LIMIT with parameters on several shards of %s is not supported", r.table)
			}
		}
	}

	aggregated := false
	for _, f := range a.fields {
		if f.Expr != nil && hasAgg(f.Expr) {
			aggregated = true
		}
	}
	if st.Having != nil && hasAgg(st.Having.Expr) {
		aggregated = true
	}
	if st.OrderBy != nil && hasAgg(st.OrderBy) {
		aggregated = true
	}
	grouped := st.GroupBy != nil && len(st.GroupBy.Items) > 0
	disjoint := false
	if grouped {
		var roles keyRole
		for _, it := range st.GroupBy.Items {
			roles |= columnRole(it.Expr, r)
		}
		disjoint = roles == r.fullRole()
	}

	var err error
	var shardOrder []*ast.ByItem // the shards' ORDER BY (nil: none)
	var keepLimit bool
	if (!aggregated && !grouped) || disjoint {
		shardOrder, err = a.rowsShape(grouped)
		keepLimit = true
	} else {
		shardOrder, err = a.aggregateShape(grouped)
	}
	if err != nil {
		return nil, nil, err
	}
	if hasLimit {
		a.merge.Offset, a.merge.Limit, a.merge.HasLimit = offset, count, true
	}
	m := a.merge
	edits := func(a *selAnalysis) {
		for i, d := range a.derived {
			a.st.Fields.Fields = append(a.st.Fields.Fields, &ast.SelectField{
				Expr:   d.expr(),
				AsName: ast.NewCIStr(a.derivedPrefix + strconv.Itoa(i)),
			})
		}
		if len(shardOrder) > 0 {
			a.st.OrderBy = &ast.OrderByClause{Items: shardOrder}
		}
		if !keepLimit {
			a.st.Limit = nil
			a.st.Having = nil
		} else if hasLimit && a.limitParam < 0 {
			sum := offset + count
			if sum < offset {
				sum = math.MaxUint64
			}
			a.st.Limit = &ast.Limit{Count: ast.NewValueExpr(sum, "", "")}
		}
	}
	m.Derived = len(a.derived)
	for _, ag := range a.aggs {
		x := Aggregate{Column: a.index(ag.col), Kind: ag.kind}
		if ag.kind == AggAvg {
			x.SumColumn, x.CountColumn = a.index(ag.sum), a.index(ag.cnt)
		}
		m.Aggregates = append(m.Aggregates, x)
	}
	return edits, m, nil
}

// limitParam is the parameter position of `LIMIT ?` (no offset).
func limitParam(l *ast.Limit) (int, bool) {
	if l == nil || l.Offset != nil {
		return 0, false
	}
	pm, ok := l.Count.(*driver.ParamMarkerExpr)
	if !ok {
		return 0, false
	}
	return pm.Order, true
}

func limitValue(e ast.ExprNode) (uint64, bool) {
	v, ok := e.(*driver.ValueExpr)
	if !ok {
		return 0, false
	}
	switch v.Kind() {
	case driver.KindUint64:
		return v.GetUint64(), true
	case driver.KindInt64:
		if v.GetInt64() >= 0 {
			return uint64(v.GetInt64()), true
		}
	}
	return 0, false
}

// addDerived appends a derived column whose expression get returns; key
// is the expression's normalized text ("" for AVG's helpers).
func (a *selAnalysis) addDerived(key string, get func() ast.ExprNode) colRef {
	a.derived = append(a.derived, derivedCol{expr: get})
	c := derivedRef(len(a.derived) - 1)
	if key != "" {
		if a.byKey == nil {
			a.byKey = make(map[string]colRef)
		}
		a.byKey[key] = c
	}
	return c
}

// existingDerived returns a derived column computing key.
func (a *selAnalysis) existingDerived(key string) (colRef, bool) {
	c, ok := a.byKey[key]
	return c, ok
}

// orderRef resolves an ORDER BY item (item is read again at edit time).
func (a *selAnalysis) orderRef(it *ast.ByItem) (colRef, error) {
	e := unparen(it.Expr)
	if p, ok := e.(*ast.PositionExpr); ok {
		if p.P != nil || p.N < 1 {
			return colRef{}, Refuse(ReasonOrderBy, "ORDER BY with a parameter position on several shards of %s is not supported", a.pc.rule.table)
		}
		if a.wild == 0 && p.N > len(a.fields) {
			return colRef{}, mysql.NewError(1054, "42S22", "Unknown column '%d' in 'order clause'", p.N)
		}
		return posRef(p.N - 1), nil
	}
	if c, ok := e.(*ast.ColumnNameExpr); ok && c.Name.Table.O == "" {
		found := -1
		for i, f := range a.fields {
			if f.WildCard == nil && f.AsName.O != "" && strings.EqualFold(f.AsName.O, c.Name.Name.O) {
				if found >= 0 {
					return colRef{}, Refuse(ReasonOrderBy, "ambiguous ORDER BY %s on several shards of %s", c.Name.Name.O, a.pc.rule.table)
				}
				found = i
			}
		}
		if found >= 0 {
			return a.visibleOrDerived(found, it), nil
		}
	}
	key := normalize(e)
	for i, f := range a.fields {
		if f.WildCard == nil && normalize(unparen(f.Expr)) == key {
			return a.visibleOrDerived(i, it), nil
		}
	}
	if c, ok := a.existingDerived(key); ok {
		return c, nil
	}
	return a.addDerived(key, func() ast.ExprNode { return it.Expr }), nil
}

// visibleOrDerived references field i, or a derived copy of the item's
// expression when a wildcard hides the field's position.
func (a *selAnalysis) visibleOrDerived(i int, it *ast.ByItem) colRef {
	if a.knownPosition(i) {
		return fieldRef(i)
	}
	key := normalize(unparen(it.Expr))
	if c, ok := a.existingDerived(key); ok {
		return c
	}
	return a.addDerived(key, func() ast.ExprNode { return it.Expr })
}

// rowsShape: the shards compute whole rows; the merger merges by order.
func (a *selAnalysis) rowsShape(grouped bool) ([]*ast.ByItem, error) {
	st, m := a.st, a.merge
	var items []*ast.ByItem
	switch {
	case st.OrderBy != nil && !isOrderByNull(st.OrderBy):
		items = st.OrderBy.Items
	case st.OrderBy == nil && grouped:
		items = st.GroupBy.Items
	}
	var out []*ast.ByItem
	refs := make([]colRef, 0, len(items))
	for _, it := range items {
		ref, err := a.orderRef(it)
		if err != nil {
			return nil, err
		}
		refs = append(refs, ref)
		var e ast.ExprNode = &lazyExpr{get: it}
		if ref.derived >= 0 {
			// Sort by the derived column itself, so that the shard's order
			// is the order of the values the merger compares (ORDER BY
			// RAND() evaluates RAND() once).
			e = &aliasExpr{a: a, i: ref.derived}
		}
		out = append(out, &ast.ByItem{Expr: e, Desc: it.Desc, NullOrder: it.NullOrder})
	}
	// Indexes only now: with a wildcard, a derived column's index counts
	// from the end of the row, so it depends on how many there are.
	for i, ref := range refs {
		m.OrderBy = append(m.OrderBy, SortKey{Column: a.index(ref), Desc: items[i].Desc})
	}
	if st.Distinct {
		if a.wild > 0 {
			return nil, Refuse(ReasonDistinct, "SELECT DISTINCT * on several shards of %s is not supported", a.pc.rule.table)
		}
		if len(a.derived) > 0 {
			return nil, Refuse(ReasonDistinct, "SELECT DISTINCT ordered by a column it does not select, on several shards of %s, is not supported", a.pc.rule.table)
		}
		m.Distinct = true
		covered := make(map[int]bool)
		for _, k := range m.OrderBy {
			covered[k.Column] = true
		}
		for i := range a.fields {
			if !covered[i] {
				// A position (ORDER BY 3) is exact whatever the expression.
				m.OrderBy = append(m.OrderBy, SortKey{Column: i})
				out = append(out, &ast.ByItem{Expr: &ast.PositionExpr{N: i + 1}})
			}
		}
	}
	return out, nil
}

func isOrderByNull(o *ast.OrderByClause) bool {
	if len(o.Items) != 1 {
		return false
	}
	v, ok := o.Items[0].Expr.(*driver.ValueExpr)
	return ok && v.Kind() == driver.KindNull
}

// aggregateShape: the shards return partial groups the merger combines.
func (a *selAnalysis) aggregateShape(grouped bool) ([]*ast.ByItem, error) {
	st, m, r := a.st, a.merge, a.pc.rule
	if a.wild > 0 {
		return nil, Refuse(ReasonAggregate, "SELECT * with aggregates or GROUP BY on several shards of %s is not supported", r.table)
	}
	// Aggregates of the visible fields.
	for i, f := range a.fields {
		e := unparen(f.Expr)
		if ag, ok := e.(*ast.AggregateFuncExpr); ok {
			if err := a.addAgg(fieldRef(i), ag); err != nil {
				return nil, err
			}
			continue
		}
		if hasAgg(e) {
			return nil, Refuse(ReasonAggregate, "aggregate inside an expression on several shards of %s is not supported", r.table)
		}
	}
	// GROUP BY columns.
	var groupItems []*ast.ByItem
	if grouped {
		groupItems = st.GroupBy.Items
		for _, it := range groupItems {
			ref, err := a.groupRef(it)
			if err != nil {
				return nil, err
			}
			m.GroupBy = append(m.GroupBy, a.index(ref))
		}
		// DISTINCT is a no-op when every group column is visible (merged
		// groups are distinct rows); otherwise equal rows of different
		// groups are not adjacent.
		for _, g := range m.GroupBy {
			if st.Distinct && (g < 0 || g >= len(a.fields)) {
				return nil, Refuse(ReasonDistinct, "SELECT DISTINCT with GROUP BY on columns it does not select, on several shards of %s, is not supported", r.table)
			}
		}
	}
	// HAVING.
	if st.Having != nil {
		if err := a.having(st.Having.Expr); err != nil {
			return nil, err
		}
	}
	if !grouped {
		return nil, nil // one row: order is moot
	}
	// ORDER BY: a prefix of the GROUP BY keeps its directions, else Resort.
	var order []SortKey
	if st.OrderBy != nil && !isOrderByNull(st.OrderBy) {
		for _, it := range st.OrderBy.Items {
			ref, err := a.aggOrderRef(it)
			if err != nil {
				return nil, err
			}
			order = append(order, SortKey{Column: a.index(ref), Desc: it.Desc})
		}
	}
	prefix := len(order) <= len(m.GroupBy)
	for i := 0; prefix && i < len(order); i++ {
		prefix = order[i].Column == m.GroupBy[i]
	}
	out := make([]*ast.ByItem, len(groupItems))
	for i, it := range groupItems {
		desc := it.Desc
		if prefix && i < len(order) {
			desc = order[i].Desc
		} else if !prefix {
			desc = false
		}
		m.OrderBy = append(m.OrderBy, SortKey{Column: m.GroupBy[i], Desc: desc})
		out[i] = &ast.ByItem{Expr: &lazyExpr{get: it}, Desc: desc}
	}
	if !prefix {
		m.Resort = order
	}
	return out, nil
}

// addAgg registers aggregate ag at column c.
func (a *selAnalysis) addAgg(c colRef, ag *ast.AggregateFuncExpr) error {
	r := a.pc.rule
	kind, ok := aggKind(ag.F)
	if !ok {
		return Refuse(ReasonAggregate, "aggregate %s on several shards of %s is not supported", strings.ToUpper(ag.F), r.table)
	}
	if ag.Distinct && kind != AggMin && kind != AggMax {
		disjoint := false
		for _, arg := range ag.Args {
			if columnRole(arg, r) == r.fullRole() {
				disjoint = true
			}
		}
		if !disjoint {
			return Refuse(ReasonAggregate, "%s(DISTINCT ...) of a column other than the sharding key on several shards of %s is not supported", strings.ToUpper(ag.F), r.table)
		}
	}
	ref := aggRef{col: c, kind: kind}
	if kind == AggAvg {
		ref.sum = a.addDerived("", func() ast.ExprNode {
			return &ast.AggregateFuncExpr{F: "sum", Args: ag.Args, Distinct: ag.Distinct}
		})
		ref.cnt = a.addDerived("", func() ast.ExprNode {
			return &ast.AggregateFuncExpr{F: "count", Args: ag.Args, Distinct: ag.Distinct}
		})
	}
	a.aggs = append(a.aggs, ref)
	return nil
}

// groupRef resolves a GROUP BY item to a column holding its value.
func (a *selAnalysis) groupRef(it *ast.ByItem) (colRef, error) {
	e := unparen(it.Expr)
	if p, ok := e.(*ast.PositionExpr); ok {
		if p.P != nil || p.N < 1 || p.N > len(a.fields) {
			return colRef{}, Refuse(ReasonGroupBy, "GROUP BY position on several shards of %s is not supported", a.pc.rule.table)
		}
		return fieldRef(p.N - 1), nil
	}
	key := normalize(e)
	for i, f := range a.fields {
		if normalize(unparen(f.Expr)) == key {
			return fieldRef(i), nil
		}
	}
	if c, ok := e.(*ast.ColumnNameExpr); ok && c.Name.Table.O == "" {
		for i, f := range a.fields {
			if f.AsName.O != "" && strings.EqualFold(f.AsName.O, c.Name.Name.O) {
				if hasAgg(f.Expr) {
					return colRef{}, Refuse(ReasonGroupBy, "GROUP BY an aggregate on several shards of %s is not supported", a.pc.rule.table)
				}
				return fieldRef(i), nil
			}
		}
	}
	if c, ok := a.existingDerived(key); ok {
		return c, nil
	}
	return a.addDerived(key, func() ast.ExprNode { return it.Expr }), nil
}

// aggOrderRef resolves an ORDER BY item of the aggregate shape: a visible
// column, a group column, or an aggregate (appended when not visible).
func (a *selAnalysis) aggOrderRef(it *ast.ByItem) (colRef, error) {
	e := unparen(it.Expr)
	if ag, ok := e.(*ast.AggregateFuncExpr); ok {
		return a.aggColumn(ag)
	}
	if hasAgg(e) {
		return colRef{}, Refuse(ReasonOrderBy, "ORDER BY an expression of aggregates on several shards of %s is not supported", a.pc.rule.table)
	}
	return a.orderRef(it)
}

// aggColumn returns the column of aggregate ag: a visible field computing
// it, or a new derived aggregate.
func (a *selAnalysis) aggColumn(ag *ast.AggregateFuncExpr) (colRef, error) {
	key := normalize(ag)
	for i, f := range a.fields {
		if normalize(unparen(f.Expr)) == key {
			return fieldRef(i), nil
		}
	}
	if c, ok := a.existingDerived(key); ok {
		return c, nil
	}
	c := a.addDerived(key, func() ast.ExprNode { return ag })
	if err := a.addAgg(c, ag); err != nil {
		return colRef{}, err
	}
	return c, nil
}

// having translates a HAVING clause into Merge.Having.
func (a *selAnalysis) having(e ast.ExprNode) error {
	r := a.pc.rule
	bad := Refuse(ReasonHaving, "HAVING other than ANDed `aggregate op literal` conditions on several shards of %s is not supported", r.table)
	for _, c := range flatten(e, opcode.LogicAnd, nil) {
		b, ok := unparen(c).(*ast.BinaryOperationExpr)
		if !ok {
			return bad
		}
		op, ok := cmpOp(b.Op)
		if !ok {
			return bad
		}
		lhs, rhs := unparen(b.L), unparen(b.R)
		val, isLit := literalText(rhs)
		if !isLit {
			if val, isLit = literalText(lhs); !isLit {
				return bad
			}
			lhs = rhs
			op = flipOp(op)
		}
		var ref colRef
		switch x := lhs.(type) {
		case *ast.AggregateFuncExpr:
			var err error
			if ref, err = a.aggColumn(x); err != nil {
				return err
			}
		case *ast.ColumnNameExpr:
			found := -1
			for i, f := range a.fields {
				if x.Name.Table.O == "" && f.AsName.O != "" && strings.EqualFold(f.AsName.O, x.Name.Name.O) {
					found = i
					break
				}
			}
			key := normalize(x)
			for i, f := range a.fields {
				if found < 0 && f.Expr != nil && f.AsName.O == "" && normalize(unparen(f.Expr)) == key {
					found = i
				}
			}
			if found < 0 {
				return bad
			}
			ref = fieldRef(found)
		default:
			return bad
		}
		a.merge.Having = append(a.merge.Having, Cond{Column: a.index(ref), Op: op, Value: val})
	}
	return nil
}

func cmpOp(op opcode.Op) (CmpOp, bool) {
	switch op {
	case opcode.EQ:
		return OpEQ, true
	case opcode.NE:
		return OpNE, true
	case opcode.LT:
		return OpLT, true
	case opcode.LE:
		return OpLE, true
	case opcode.GT:
		return OpGT, true
	case opcode.GE:
		return OpGE, true
	}
	return 0, false
}

func flipOp(op CmpOp) CmpOp {
	switch op {
	case OpLT:
		return OpGT
	case OpLE:
		return OpGE
	case OpGT:
		return OpLT
	case OpGE:
		return OpLE
	}
	return op
}

// literalText is a literal's text-protocol form (numbers and strings).
func literalText(e ast.ExprNode) (string, bool) {
	neg := false
	if u, ok := e.(*ast.UnaryOperationExpr); ok && u.Op == opcode.Minus {
		neg, e = true, unparen(u.V)
	}
	v, ok := e.(*driver.ValueExpr)
	if !ok {
		return "", false
	}
	var s string
	switch v.Kind() {
	case driver.KindInt64:
		s = strconv.FormatInt(v.GetInt64(), 10)
	case driver.KindUint64:
		s = strconv.FormatUint(v.GetUint64(), 10)
	case driver.KindFloat64, driver.KindFloat32:
		s = strconv.FormatFloat(v.GetFloat64(), 'g', -1, 64)
	case driver.KindMysqlDecimal:
		s = v.GetMysqlDecimal().String()
	case driver.KindString, driver.KindBytes:
		if neg {
			return "", false
		}
		return v.GetString(), true
	default:
		return "", false
	}
	if neg {
		if strings.HasPrefix(s, "-") {
			s = s[1:]
		} else {
			s = "-" + s
		}
	}
	return s, true
}

// lazyExpr restores as the current expression of a ByItem: the restore
// wrappers may have replaced it after the analysis.
type lazyExpr struct {
	ast.ExprNode
	get *ast.ByItem
}

func (l *lazyExpr) Restore(ctx *format.RestoreCtx) error { return l.get.Expr.Restore(ctx) }

func (l *lazyExpr) Accept(v ast.Visitor) (ast.Node, bool) {
	nn, skip := v.Enter(l)
	if skip {
		return v.Leave(nn)
	}
	return v.Leave(l)
}

// aliasExpr restores as the alias of derived column i.
type aliasExpr struct {
	ast.ExprNode
	a *selAnalysis
	i int
}

func (e *aliasExpr) Restore(ctx *format.RestoreCtx) error {
	ctx.WriteName(e.a.derivedPrefix + strconv.Itoa(e.i))
	return nil
}

func (e *aliasExpr) Accept(v ast.Visitor) (ast.Node, bool) {
	nn, skip := v.Enter(e)
	if skip {
		return v.Leave(nn)
	}
	return v.Leave(e)
}
