package shard

import (
	"strings"

	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/opcode"
)

// Binding tables (binding_tables of a rule): tables sharded like the
// rule's (same strategy, algorithms, counts and datanodes, checked at
// load), so that the rows of both with equal sharding keys are on the same
// shard. A SELECT joining them with an equality of their sharding columns
// (t_order.order_id = t_order_item.order_id, in ON or in the WHERE's
// top-level AND) runs on each shard, every table renamed to its physical
// table of that shard, and the rows merge as for one table. Without that
// equality a row could join rows of another shard: refused.

// bindRef is a bound table of a join: its markers are replaced by its
// physical table on each shard (buildTarget).
type bindRef struct {
	marker string
	rule   *rule
}

// bindJoin accepts a SELECT joining the sharded table of pc.rule with
// tables bound to it (and broadcast tables), each joined on the sharding
// columns.
func (pc *prepCtx) bindJoin(st ast.StmtNode, sc *scan, matched []*ast.TableName, rules []*rule) bool {
	sel, isSelect := st.(*ast.SelectStmt)
	r := pc.rule
	if !isSelect || r.bound == nil || sel.From == nil || sel.From.TableRefs == nil {
		return false
	}
	seen := map[*rule]bool{r: true}
	for i := 1; i < len(matched); i++ {
		if !r.bound[rules[i].table] || seen[rules[i]] {
			return false // not bound, or a table named twice
		}
		seen[rules[i]] = true
	}
	// Other tables must be broadcast tables beside every shard.
	var others []*ast.TableName
	for _, tn := range sc.tables {
		isMatched := false
		for _, m := range matched {
			isMatched = isMatched || m == tn
		}
		if !isMatched {
			others = append(others, tn)
		}
	}
	if len(others) > 0 {
		probe := &scan{tables: append([]*ast.TableName{matched[0]}, others...)}
		if !pc.joinBroadcast(st, probe, matched[0]) {
			return false
		}
	} else {
		rc := *r
		rc.join = &joinQual{table: matched[0], pc: pc}
		pc.rule = &rc
	}
	pc.alias = findAlias(sel.From.TableRefs, matched[0])
	// The sharding columns must be equal.
	var eqs []ast.ExprNode
	collectOn(sel.From.TableRefs, &eqs)
	if sel.Where != nil {
		eqs = append(eqs, flatten(sel.Where, opcode.LogicAnd, nil)...)
	}
	for i := 1; i < len(matched); i++ {
		b := matched[i]
		alias := findAlias(sel.From.TableRefs, b)
		covered := keyRole(0)
		for _, e := range eqs {
			bin, ok := unparen(e).(*ast.BinaryOperationExpr)
			if !ok || bin.Op != opcode.EQ {
				continue
			}
			l, ok1 := unparen(bin.L).(*ast.ColumnNameExpr)
			rr, ok2 := unparen(bin.R).(*ast.ColumnNameExpr)
			if !ok1 || !ok2 {
				continue
			}
			for _, pair := range [2][2]*ast.ColumnName{{l.Name, rr.Name}, {rr.Name, l.Name}} {
				ca, cb := pair[0], pair[1]
				if ca.Table.O == "" || cb.Table.O == "" {
					continue // unqualified: which table is not known here
				}
				if !pc.rule.join.mine(ca) || !qualifies(cb, b, alias, pc.db) {
					continue
				}
				covered |= r.role(ca.Name.O) & rules[i].role(cb.Name.O)
			}
		}
		if covered != r.fullRole() {
			pc.bindErr = Refuse(ReasonJoin, "a JOIN of sharded tables %s and %s must equate their sharding columns (%s)", r.table, rules[i].table,
				strings.Join(r.columns(), ", "))
			return true
		}
	}
	// Rename the bound tables per shard.
	rc := *pc.rule
	for i := 1; i < len(matched); i++ {
		marker := "pisa_bind_" + strings.ToLower(rules[i].table) + "_marker" + pc.res0suffix()
		rc.binds = append(rc.binds, bindRef{marker: marker, rule: rules[i]})
		pc.bindRefs = append(pc.bindRefs, matched[i])
		pc.bindMarkers = append(pc.bindMarkers, marker)
		pc.bindAliases = append(pc.bindAliases, findAlias(sel.From.TableRefs, matched[i]))
	}
	pc.rule = &rc
	return true
}

// res0suffix makes the bind markers unique in the text.
func (pc *prepCtx) res0suffix() string {
	lower := strings.ToLower(pc.sql)
	s := ""
	for i := 0; strings.Contains(lower, "pisa_bind_") && strings.Contains(lower, "_marker"+s); i++ {
		s = "_" + string(rune('a'+i%26))
		if i > 26 {
			break
		}
	}
	return s
}

// qualifies reports whether column c is qualified with table tn (its alias
// when it has one).
func qualifies(c *ast.ColumnName, tn *ast.TableName, alias, db string) bool {
	if alias != "" {
		return c.Schema.O == "" && strings.EqualFold(c.Table.O, alias)
	}
	return c.Table.O == tn.Name.O && (c.Schema.O == "" || c.Schema.O == tn.Schema.O || (tn.Schema.O == "" && c.Schema.O == db))
}

// collectOn appends the AND-ed terms of every ON condition of a join tree.
func collectOn(n ast.ResultSetNode, out *[]ast.ExprNode) {
	j, ok := n.(*ast.Join)
	if !ok {
		return
	}
	collectOn(j.Left, out)
	if j.Right != nil {
		collectOn(j.Right, out)
	}
	if j.On != nil {
		// Also an outer join's: a row without its partner on its shard has
		// none on any shard.
		*out = append(*out, flatten(j.On.Expr, opcode.LogicAnd, nil)...)
	}
}

// bindRenamer puts the bound tables' markers in the text.
type bindRenamer struct {
	r      *restorer
	tables map[*ast.TableName]string // table -> marker
	names  map[string]string         // unaliased table's name -> marker
}

func (v *bindRenamer) Enter(n ast.Node) (ast.Node, bool) {
	switch x := n.(type) {
	case *ast.TableName:
		if m, ok := v.tables[x]; ok {
			x.Schema = v.r.schemaMarker()
			x.Name = ast.NewCIStr(m)
		}
	case *ast.ColumnName:
		// Columns qualified with a bound table's own name (no alias).
		if m, ok := v.names[x.Table.O]; ok && x.Table.O != "" {
			if x.Schema.O != "" {
				x.Schema = v.r.schemaMarker()
			}
			x.Table = ast.NewCIStr(m)
		}
	}
	return n, false
}

func (v *bindRenamer) Leave(n ast.Node) (ast.Node, bool) { return n, true }

// expandBinds replaces the bound tables' markers of a shard's SQL.
func expandBinds(r *rule, s int, sql string) string {
	for _, b := range r.binds {
		_, _, table := b.rule.physical(s)
		sql = strings.ReplaceAll(sql, "`"+b.marker+"`", quoteName(table))
	}
	return sql
}

// sameShape reports rules that put equal keys on the same shard.
func sameShape(a, b *rule) bool {
	if a.strategy != b.strategy || a.dbAlg != b.dbAlg || a.tableAlg != b.tableAlg || a.dbCount != b.dbCount ||
		a.tblCount != b.tblCount || len(a.nodes) != len(b.nodes) || (a.dbCol == "") != (b.dbCol == "") || (a.tableCol == "") != (b.tableCol == "") {
		return false
	}
	for i := range a.nodes {
		if a.nodes[i] != b.nodes[i] {
			return false
		}
	}
	return true
}
