package shard

import (
	"strings"

	"github.com/pingcap/tidb/pkg/parser/ast"
)

// Broadcast tables (broadcast_tables of a rule): small reference tables
// with a full copy in the database of each of the rule's datanodes.
// A read goes to the first datanode's copy; a write (INSERT, UPDATE,
// DELETE, REPLACE) goes to every copy, and the executor runs it in one
// transaction (XA when the nodes are several), so every copy changes or
// none does; DDL reaches every copy (not transactional, as DDL never is).
// A statement naming a broadcast table and any other table (sharded or
// not) is refused (joins with sharded tables are not supported yet).

// bcast is a broadcast table.
type bcast struct {
	name  string
	nodes []datanode
	dbs   map[string]bool
}

// compileBroadcast records rule r's broadcast tables.
func (rt *Router) compileBroadcast(r *rule, names []string) {
	for _, name := range names {
		b := &bcast{name: name, dbs: map[string]bool{}}
		seen := map[string]bool{}
		for _, n := range r.nodes {
			if !seen[n.name] {
				seen[n.name] = true
				b.nodes = append(b.nodes, n)
				b.dbs[n.db] = true
			}
		}
		if rt.bcasts == nil {
			rt.bcasts = map[string]*bcast{}
		}
		rt.bcasts[name] = b
	}
}

// matchBroadcast returns the broadcast table a reference names, or nil.
func (pc *prepCtx) matchBroadcast(tn *ast.TableName) *bcast {
	b := pc.rt.bcasts[tn.Name.O]
	if b == nil || tn.IsAlias {
		return nil
	}
	schema := tn.Schema.O
	if schema == "" {
		schema = pc.db
	}
	if !b.dbs[schema] {
		return nil
	}
	return b
}

// prepareBroadcast plans a statement on broadcast tables only.
func (pc *prepCtx) prepareBroadcast(stmts []ast.StmtNode, sc *scan, refs []*ast.TableName, b *bcast) *Prepared {
	switch {
	case len(stmts) > 1:
		return fail(ReasonMultiStatement, "several statements in one query with broadcast table %s are not supported", b.name)
	case len(refs) < len(sc.tables):
		for _, tn := range sc.tables {
			if pc.matchBroadcast(tn) == nil {
				return fail(joinReason(stmts[0]), "a statement on broadcast table %s and table %s is not supported", b.name, tn.Name.O)
			}
		}
	}
	for _, tn := range refs {
		if other := pc.matchBroadcast(tn); other != b && !sameNodes(other, b) {
			return fail(ReasonJoin, "a statement on broadcast tables %s and %s, which are on different datanodes, is not supported", b.name, other.name)
		}
	}
	write, ddl := false, false
	switch st := stmts[0].(type) {
	case *ast.SelectStmt:
		if st.SelectIntoOpt != nil {
			return fail(ReasonStatement, "SELECT … INTO on broadcast table %s is not supported", b.name)
		}
	case *ast.SetOprStmt:
	case *ast.InsertStmt, *ast.UpdateStmt, *ast.DeleteStmt:
		write = true
	case *ast.CreateTableStmt:
		if st.Select != nil || st.ReferTable != nil {
			return fail(ReasonStatement, "CREATE TABLE … SELECT/LIKE on broadcast table %s is not supported", b.name)
		}
		ddl = true
	case *ast.AlterTableStmt:
		for _, spec := range st.Specs {
			if spec.Tp == ast.AlterTableRenameTable {
				return fail(ReasonStatement, "renaming broadcast table %s is not supported", b.name)
			}
		}
		ddl = true
	case *ast.DropTableStmt:
		if st.IsView {
			return fail(ReasonStatement, "DROP VIEW of broadcast table %s is not supported", b.name)
		}
		ddl = true
	case *ast.TruncateTableStmt, *ast.CreateIndexStmt, *ast.DropIndexStmt:
		ddl = true
	case *ast.ShowStmt, *ast.ExplainStmt:
	default:
		return fail(ReasonStatement, "%s on broadcast table %s is not supported", stmtName(stmts[0]), b.name)
	}
	pc.res = newRestorer(pc.sql, pc.mode)
	root := stmts[0]
	root.Accept(wrapper{pc.res})
	tables := map[*ast.TableName]bool{}
	for _, tn := range refs {
		tables[tn] = true
	}
	root.Accept(&bcastRenamer{r: pc.res, tables: tables, names: b})
	t, err := pc.res.restore(root)
	if err != nil {
		return fail(ReasonInternal, "statement on broadcast table %s cannot be rewritten: %v", b.name, err)
	}
	targets := make([]Target, len(b.nodes))
	for i, n := range b.nodes {
		targets[i] = Target{Node: n.name, Shard: i, Schema: n.db, Table: b.name, SQL: t.expand(n.db, b.name), Params: targetParams(t, sc.params)}
	}
	plan := &Plan{Kind: RouteSingle, Tables: []string{b.name}, Targets: targets[:1]}
	if write || ddl {
		plan.Targets = targets
		if len(targets) > 1 {
			plan.Kind = RouteAll
			plan.Broadcast = write
		}
	}
	return &Prepared{Params: sc.params, fixed: plan}
}

func sameNodes(a, b *bcast) bool {
	if a == nil || b == nil || len(a.nodes) != len(b.nodes) {
		return false
	}
	for i := range a.nodes {
		if a.nodes[i] != b.nodes[i] {
			return false
		}
	}
	return true
}

// bcastRenamer qualifies the broadcast tables (and columns qualified with
// their schema) with each copy's database.
type bcastRenamer struct {
	r      *restorer
	tables map[*ast.TableName]bool
	names  *bcast
}

func (v *bcastRenamer) Enter(n ast.Node) (ast.Node, bool) {
	switch x := n.(type) {
	case *ast.TableName:
		if v.tables[x] {
			x.Schema = v.r.schemaMarker()
		}
	case *ast.ColumnName:
		if x.Schema.O != "" && v.names.dbs[x.Schema.O] {
			x.Schema = v.r.schemaMarker()
		}
	case *ast.SelectField:
		if w := x.WildCard; w != nil && w.Schema.O != "" && v.names.dbs[w.Schema.O] {
			w.Schema = v.r.schemaMarker()
		}
	}
	return n, false
}

func (v *bcastRenamer) Leave(n ast.Node) (ast.Node, bool) { return n, true }

// BroadcastTables returns the broadcast tables of database db.
func (rt *Router) BroadcastTables(db string) []string {
	var out []string
	for name, b := range rt.bcasts {
		if b.dbs[db] {
			out = append(out, name)
		}
	}
	return out
}

// joinBroadcast accepts a SELECT that joins the sharded table tn with
// broadcast tables only, each with a copy beside every shard of the rule:
// it then runs on each shard, the broadcast tables read from that shard's
// database. Key conditions count only the sharded table's columns
// (unqualified, or qualified with its name or alias).
func (pc *prepCtx) joinBroadcast(st ast.StmtNode, sc *scan, tn *ast.TableName) bool {
	if _, isSelect := st.(*ast.SelectStmt); !isSelect || pc.rt.bcasts == nil {
		return false
	}
	r := pc.rule
	var refs []*ast.TableName
	var first *bcast
	for _, x := range sc.tables {
		if x == tn {
			continue
		}
		b := pc.matchBroadcast(x)
		if b == nil || (first != nil && b != first && !sameNodes(b, first)) {
			return false
		}
		if first == nil {
			first = b
		}
		refs = append(refs, x)
	}
	if first == nil {
		return false
	}
	// Every shard's database has a copy.
	for s := 0; s < r.shards(); s++ {
		node, schema, _ := r.physical(s)
		covered := false
		for _, n := range first.nodes {
			covered = covered || (n.name == node && n.db == schema)
		}
		if !covered {
			return false
		}
	}
	pc.bcastRefs, pc.bcastOf = refs, first
	// A copy of the rule whose key conditions see only the sharded table's
	// columns.
	rc := *r
	rc.join = &joinQual{table: tn, pc: pc}
	pc.rule = &rc
	return true
}

// joinQual decides which columns of a join are the sharded table's.
type joinQual struct {
	table *ast.TableName
	pc    *prepCtx
}

// mine reports whether column c is the sharded table's: unqualified (the
// server refuses an ambiguous name), or qualified with its alias, or its
// name when it has none.
func (q *joinQual) mine(c *ast.ColumnName) bool {
	if c.Table.O == "" {
		return true
	}
	if q.pc.alias != "" {
		return c.Schema.O == "" && strings.EqualFold(c.Table.O, q.pc.alias)
	}
	return c.Table.O == q.table.Name.O && (c.Schema.O == "" || c.Schema.O == q.table.Schema.O || (q.table.Schema.O == "" && c.Schema.O == q.pc.db))
}

// findAlias returns the alias of table tn in a join tree.
func findAlias(n ast.ResultSetNode, tn *ast.TableName) string {
	switch x := n.(type) {
	case *ast.Join:
		if a := findAlias(x.Left, tn); a != "" {
			return a
		}
		if x.Right != nil {
			return findAlias(x.Right, tn)
		}
	case *ast.TableSource:
		if x.Source == tn {
			return x.AsName.O
		}
	}
	return ""
}
