package shard

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/pingcap/tidb/pkg/parser/ast"
	pmysql "github.com/pingcap/tidb/pkg/parser/mysql"
	driver "github.com/pingcap/tidb/pkg/parser/test_driver"
)

// The planner in brief (details at each statement kind):
//
//   - A statement naming no sharded table is RouteUnsharded (no targets).
//     SHOW TABLES is too, with Plan.Rename for the physical names.
//   - A statement naming a sharded table must name it once and no other
//     table, with no subquery, derived table, UNION, WITH or window
//     function: else 1235 ("cross-shard JOIN of t_order and t_user is not
//     supported", ...). Several statements in one text: 1235.
//   - SELECT, UPDATE, DELETE go to the shards their WHERE allows (keys.go);
//     INSERT/REPLACE rows to their shards (insert.go); DDL (CREATE/ALTER/
//     DROP/TRUNCATE TABLE, CREATE/DROP INDEX) to every shard; SHOW CREATE
//     TABLE, SHOW COLUMNS/INDEX, DESCRIBE to shard 0; EXPLAIN of a
//     statement that reaches one shard to that shard. RENAME, CREATE TABLE
//     ... LIKE/SELECT, LOCK TABLES, LOAD DATA, views and any other
//     statement naming a sharded table: 1235.
//   - Statements are parsed once per (db, text) and cached as Prepared;
//     Plan is Bind without parameters.

// ErrCodeNotSupported is the code of every refusal: ER_NOT_SUPPORTED_YET
// ("This version of MySQL doesn't yet support '%s'"), SQLSTATE 42000.
// Refusals are made by Refuse (refusal.go), which names their Reason.
const ErrCodeNotSupported = 1235

// Prepared is a statement planned once for any parameter values: Bind
// evaluates the sharding key and picks precomputed targets. It is
// immutable and safe for concurrent use.
type Prepared struct {
	// Params is the number of `?` markers in the statement (0 when the
	// text does not parse).
	Params int

	err   error // every Bind fails with it
	fixed *Plan // every Bind returns it

	rule   *rule
	tables []string
	cond   *cond // SELECT, UPDATE, DELETE: the key condition

	// Per-shard SQL is expanded from templates on first use and kept, so
	// that a statement on many shards costs memory only for the shards it
	// reaches. singleT is the statement on one shard; single[s] caches
	// its plan for shard s.
	singleT *template
	single  []atomic.Pointer[Plan]
	// multiT is the statement when several shards answer (derived columns,
	// LIMIT o+n...); multi[s] is shard s's target, built once. multiErr
	// refuses several shards (ORDER BY/LIMIT in UPDATE, COUNT(DISTINCT x),
	// ...).
	multiT     *template
	multiOnce  sync.Once
	multi      []Target
	merge      *Merge
	multiErr   error
	limitParam int // SELECT ... LIMIT ?: the parameter Merge.Limit takes, or -1

	// sample is the whole statement on shard 0 (Sample).
	sample *Target

	// INSERT with a parameter as some row's sharding value: the rows' keys
	// and, with several rows, the pieces of per-shard statements.
	rows  [][2]operand // [db key, table key] per row
	split *insertSplit

	// gen: an INSERT whose generated keys are parameters the executions
	// fill (prepareGen); set before the Prepared is shared.
	gen *GenKeys
}

// Prepare plans sql (a COM_STMT_PREPARE text) in session database db.
// Errors unwrap to *mysql.Error (1235 as a *Refusal, or 1136 for an
// INSERT row of the wrong length) for statements on sharded tables the
// planner can never run exactly; refusals that depend on the parameters (several shards) come
// from Bind. Prepared statements are cached by (db, text).
func (rt *Router) Prepare(sql, db string) (*Prepared, error) {
	var p *Prepared
	if rt.keyGens {
		p = rt.prepareGen(sql, db) // an INSERT leaving out a generated key
	}
	if p == nil {
		p = rt.cached(sql, db)
	}
	if p.err != nil {
		return nil, p.err
	}
	return p, nil
}

func (rt *Router) cached(sql, db string) *Prepared {
	if len(sql) > maxCachedSQL {
		return rt.prepare(sql, db) // bulk INSERTs and such: not worth keeping
	}
	if p := rt.cache.get(cacheKey{db: db, sql: sql}); p != nil {
		return p
	}
	p := rt.prepare(sql, db)
	rt.cache.put(cacheKey{db: strings.Clone(db), sql: strings.Clone(sql)}, p)
	return p
}

// Plan plans a COM_QUERY text in session database db (db may be empty:
// then only schema-qualified tables can match a rule). Statements naming
// no sharded table give RouteUnsharded. Errors unwrap to *mysql.Error
// (refusals are *Refusal). The returned Plan may be shared with other
// callers: do not modify it.
func (rt *Router) Plan(sql, db string) (*Plan, error) {
	return rt.cached(sql, db).Bind(nil)
}

// Bind returns the plan for one execution with args, the decoded
// COM_STMT_EXECUTE parameters (nil, int64, uint64, float64, []byte or
// string). It does not parse: it evaluates the sharding key only. The
// returned Plan may be shared: do not modify it.
func (p *Prepared) Bind(args []any) (*Plan, error) {
	if p.err != nil {
		return nil, p.err
	}
	if p.fixed != nil {
		return p.fixed, nil
	}
	r := p.rule
	var set shardSet
	switch {
	case p.cond != nil:
		set = p.cond.eval(r, args)
	case p.rows != nil:
		s, same := -1, true
		for i, row := range p.rows {
			k := rowShard(r, row, args)
			if k < 0 {
				return nil, insertKeyError(r, i, row, args)
			}
			same = same && (s < 0 || k == s)
			s = k
		}
		if same {
			return p.singlePlan(s), nil
		}
		return p.splitInsert(args), nil
	default:
		set = allShards(r.shards())
	}
	switch set.count() {
	case 0:
		// No shard can hold a matching row: any one answers (no rows).
		return p.singlePlan(0), nil
	case 1:
		if set.bits == nil {
			return p.singlePlan(set.one), nil
		}
		return p.singlePlan(set.list()[0]), nil
	}
	if p.multiErr != nil {
		return nil, p.multiErr
	}
	plan := &Plan{Kind: RouteMulti, Tables: p.tables, Merge: p.merge}
	if p.merge != nil && p.limitParam >= 0 {
		n, ok := limitArg(args, p.limitParam)
		if !ok {
			return nil, mysql.NewError(1210, "HY000", "Incorrect arguments to LIMIT")
		}
		m := *p.merge
		m.Limit, m.HasLimit = n, true
		plan.Merge = &m
	}
	multi := p.multiTargets()
	if set.all {
		plan.Kind = RouteAll
		plan.Targets = multi
		return plan, nil
	}
	plan.Targets = make([]Target, 0, set.count())
	for _, s := range set.list() {
		plan.Targets = append(plan.Targets, multi[s])
	}
	return plan, nil
}

// limitArg reads a LIMIT parameter.
func limitArg(args []any, i int) (uint64, bool) {
	if i >= len(args) {
		return 0, false
	}
	k := argKey(args[i])
	if k.kind != keyInt || k.neg {
		return 0, false
	}
	return k.bits, true
}

var unshardedPlan = &Plan{Kind: RouteUnsharded}

// maxCachedSQL: longer texts are planned on every call, never cached (the
// cache holds up to 4096 statements, their plans several times their size).
const maxCachedSQL = 8 << 10

// prepCtx is the state of one Prepare.
type prepCtx struct {
	rt   *Router
	db   string
	sql  string
	mode pmysql.SQLMode
	res  *restorer

	rule   *rule
	tn     *ast.TableName // the sharded table
	tables map[*ast.TableName]bool
	alias  string
	params int
	// bcastRefs are the broadcast tables a SELECT joins the sharded table
	// with (broadcast.go); nil otherwise.
	bcastRefs []*ast.TableName
	bcastOf   *bcast
	// bindRefs are the bound tables a SELECT joins (binding.go), renamed
	// to bindMarkers; bindErr refuses a join without the key equality.
	bindRefs    []*ast.TableName
	bindMarkers []string
	bindAliases []string
	bindErr     error
}

func (rt *Router) prepare(sql, db string) (p *Prepared) {
	p = &Prepared{}
	err := rt.parser.WithASTMode(sql, func(stmts []ast.StmtNode, mode pmysql.SQLMode) {
		pc := &prepCtx{rt: rt, db: db, sql: sql, mode: mode}
		defer func() {
			if r := recover(); r != nil {
				p = fail(ReasonInternal, "internal error planning a statement on a sharded table: %v", r)
			}
		}()
		p = pc.prepare(stmts)
	})
	if err != nil {
		if t := rt.mentioned(sql); t != "" {
			return &Prepared{err: Refuse(ReasonUnparsed, "statement on sharded table %s cannot be parsed: %v", t, err)}
		}
		return &Prepared{fixed: unshardedPlan}
	}
	return p
}

// mentioned returns a sharded table name the text mentions as a word.
func (rt *Router) mentioned(sql string) string {
	lower := strings.ToLower(sql)
	for _, r := range rt.rules {
		name := strings.ToLower(r.table)
		for i := 0; ; {
			j := strings.Index(lower[i:], name)
			if j < 0 {
				break
			}
			a, b := i+j, i+j+len(name)
			if (a == 0 || !isWord(lower[a-1])) && (b == len(lower) || !isWord(lower[b])) {
				return r.table
			}
			i = a + 1
		}
	}
	return ""
}

func isWord(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// scan collects what the planner must know about a statement's shape.
type scan struct {
	tables    []*ast.TableName
	markers   []*driver.ParamMarkerExpr
	params    int
	subquery  bool
	join      bool
	union     bool
	window    bool
	with      bool
	derived   bool
	variables bool
}

func (s *scan) Enter(n ast.Node) (ast.Node, bool) {
	switch x := n.(type) {
	case *ast.TableName:
		s.tables = append(s.tables, x)
	case *ast.SubqueryExpr, *ast.ExistsSubqueryExpr:
		s.subquery = true
	case *ast.Join:
		if x.Right != nil {
			s.join = true
		}
	case *ast.TableSource:
		if _, ok := x.Source.(*ast.TableName); !ok {
			s.derived = true
		}
	case *ast.SetOprStmt, *ast.SetOprSelectList:
		s.union = true
	case *ast.WindowFuncExpr:
		s.window = true
	case *ast.WithClause:
		s.with = true
	case *driver.ParamMarkerExpr:
		s.markers = append(s.markers, x)
	case *ast.VariableExpr:
		s.variables = true
	}
	return n, false
}

func (s *scan) Leave(n ast.Node) (ast.Node, bool) { return n, true }

// otherTablesReason is the refusal reason of a statement that names other
// tables besides the sharded one, or the sharded one twice, or has a
// subquery, whichever of these its message names: WITH, UNION or a
// subquery when it has one, else joinReason.
func (s *scan) otherTablesReason(st ast.StmtNode) Reason {
	switch {
	case s.with:
		return ReasonCTE
	case s.union:
		return ReasonUnion
	case s.subquery || s.derived:
		return ReasonSubquery
	}
	return joinReason(st)
}

// joinReason is ReasonJoin for a query, UPDATE or DELETE naming several
// tables (EXPLAIN of one too); other statements naming several tables
// (INSERT ... SELECT, RENAME, CREATE TABLE ... LIKE, views, LOCK
// TABLES...) are ReasonStatement.
func joinReason(st ast.StmtNode) Reason {
	if ex, ok := st.(*ast.ExplainStmt); ok {
		st = ex.Stmt
	}
	switch st.(type) {
	case *ast.SelectStmt, *ast.SetOprStmt, *ast.UpdateStmt, *ast.DeleteStmt:
		return ReasonJoin
	}
	return ReasonStatement
}

// match returns the rule of a table reference, or nil. A reference is to
// the sharded table when its name equals the rule's table_name (exactly,
// as MySQL compares table names on Linux) and its database, the qualifier
// or else the session's, is the database of one of the rule's datanodes.
// Another database's table of that name is a different table.
func (pc *prepCtx) match(tn *ast.TableName, schema string) *rule {
	r := pc.rt.byName[tn.Name.O]
	if r == nil || tn.IsAlias {
		return nil
	}
	if schema == "" {
		schema = tn.Schema.O
	}
	if schema == "" {
		schema = pc.db
	}
	if !r.dbs[schema] {
		return nil
	}
	return r
}

func (pc *prepCtx) prepare(stmts []ast.StmtNode) *Prepared {
	var sc scan
	var matched []*ast.TableName
	var rules []*rule
	for _, st := range stmts {
		st.Accept(&sc)
	}
	// The parser leaves Order 0: number the markers by text position.
	sort.Slice(sc.markers, func(i, j int) bool { return sc.markers[i].Offset < sc.markers[j].Offset })
	for i, m := range sc.markers {
		m.Order = i
	}
	sc.params = len(sc.markers)
	for _, tn := range sc.tables {
		schema := ""
		if sh, ok := stmts[0].(*ast.ShowStmt); ok && sh.DBName != "" {
			schema = sh.DBName
		}
		if r := pc.match(tn, schema); r != nil {
			matched = append(matched, tn)
			rules = append(rules, r)
		}
	}
	if len(matched) == 0 && pc.rt.bcasts != nil {
		var refs []*ast.TableName
		var b *bcast
		for _, tn := range sc.tables {
			if x := pc.matchBroadcast(tn); x != nil {
				refs = append(refs, tn)
				if b == nil {
					b = x
				}
			}
		}
		if b != nil {
			return pc.prepareBroadcast(stmts, &sc, refs, b)
		}
	}
	if len(matched) == 0 {
		if ps, ok := stmts[0].(*ast.PrepareStmt); ok {
			if t := pc.rt.mentioned(ps.SQLText); t != "" {
				return fail(ReasonPreparedStatement, "SQL PREPARE of a statement on sharded table %s is not supported; use the binary protocol", t)
			}
			if ps.SQLVar != nil {
				return fail(ReasonPreparedStatement, "PREPARE ... FROM @variable is not supported on a listener with sharding rules: the statement could name a sharded table")
			}
		}
		if sh, ok := stmts[0].(*ast.ShowStmt); ok && len(stmts) == 1 && (sh.Tp == ast.ShowTables || sh.Tp == ast.ShowTableStatus) {
			return pc.showTables(sh)
		}
		return &Prepared{Params: sc.params, fixed: unshardedPlan}
	}
	r := rules[0]
	pc.rule, pc.tn, pc.params = r, matched[0], sc.params
	pc.tables = map[*ast.TableName]bool{matched[0]: true}
	// Joins that run on each shard: with binding tables (binding.go) or
	// broadcast tables (broadcast.go).
	joined := false
	if len(stmts) == 1 {
		switch {
		case len(matched) > 1 && matched[1].Name.O != r.table:
			joined = pc.bindJoin(stmts[0], &sc, matched, rules)
		case len(matched) == 1 && len(sc.tables) > 1:
			joined = pc.joinBroadcast(stmts[0], &sc, matched[0])
		}
		if pc.bindErr != nil {
			return &Prepared{err: pc.bindErr}
		}
	}
	switch {
	case len(stmts) > 1:
		return fail(ReasonMultiStatement, "several statements in one query with sharded table %s are not supported", r.table)
	case len(matched) > 1 && matched[1].Name.O != r.table && !joined:
		return fail(sc.otherTablesReason(stmts[0]), "a statement on sharded tables %s and %s is not supported", r.table, matched[1].Name.O)
	case len(matched) > 1 && !joined:
		return fail(sc.otherTablesReason(stmts[0]), "a statement naming sharded table %s twice (self-join, subquery) is not supported", r.table)
	case len(sc.tables) > 1 && !joined:
		other := sc.tables[0]
		if other == matched[0] {
			other = sc.tables[1]
		}
		if sc.join {
			return fail(ReasonJoin, "cross-shard JOIN of %s and %s is not supported", r.table, other.Name.O)
		}
		return fail(sc.otherTablesReason(stmts[0]), "a statement on sharded table %s and table %s is not supported", r.table, other.Name.O)
	case sc.subquery || sc.derived:
		return fail(sc.otherTablesReason(stmts[0]), "subqueries on sharded table %s are not supported", r.table)
	case sc.union:
		return fail(ReasonUnion, "UNION on sharded table %s is not supported", r.table)
	case sc.with:
		return fail(ReasonCTE, "WITH on sharded table %s is not supported", r.table)
	case sc.window:
		return fail(ReasonWindow, "window functions on sharded table %s are not supported", r.table)
	}
	pc.res = newRestorer(pc.sql, pc.mode)
	switch st := stmts[0].(type) {
	case *ast.SelectStmt:
		return pc.prepareSelect(st, st)
	case *ast.InsertStmt:
		return pc.prepareInsert(st)
	case *ast.UpdateStmt:
		return pc.prepareUpdate(st, st)
	case *ast.DeleteStmt:
		return pc.prepareDelete(st, st)
	case *ast.ExplainStmt:
		return pc.prepareExplain(st)
	case *ast.ShowStmt:
		return pc.prepareShow(st, st)
	case *ast.CreateTableStmt:
		if st.Select != nil {
			return fail(ReasonStatement, "CREATE TABLE ... SELECT on sharded table %s is not supported", r.table)
		}
		if st.ReferTable != nil {
			return fail(ReasonStatement, "CREATE TABLE ... LIKE on sharded table %s is not supported", r.table)
		}
		return pc.prepareDDL(st)
	case *ast.AlterTableStmt:
		for _, spec := range st.Specs {
			if spec.Tp == ast.AlterTableRenameTable {
				return fail(ReasonStatement, "renaming sharded table %s is not supported", r.table)
			}
		}
		return pc.prepareDDL(st)
	case *ast.DropTableStmt:
		if st.IsView {
			return fail(ReasonStatement, "DROP VIEW of sharded table %s is not supported", r.table)
		}
		return pc.prepareDDL(st)
	case *ast.TruncateTableStmt, *ast.CreateIndexStmt, *ast.DropIndexStmt:
		return pc.prepareDDL(st)
	case *ast.RenameTableStmt:
		return fail(ReasonStatement, "renaming sharded table %s is not supported", r.table)
	}
	return fail(ReasonStatement, "%s on sharded table %s is not supported", stmtName(stmts[0]), r.table)
}

func stmtName(st ast.StmtNode) string {
	s := fmt.Sprintf("%T", st)
	s = strings.TrimPrefix(s, "*ast.")
	s = strings.TrimSuffix(s, "Stmt")
	return "statement " + s
}

// fail is a Prepared every Bind of which is refused for reason r.
func fail(r Reason, format string, args ...any) *Prepared {
	return &Prepared{err: Refuse(r, format, args...)}
}

// templ restores root into a template.
//
// LOCK IN SHARE MODE is written as the TiDB restorer does not: it writes
// FOR SHARE, which MariaDB does not know.
func (pc *prepCtx) templ(root ast.Node) (*template, error) {
	if ex, ok := root.(*ast.ExplainStmt); ok {
		if _, show := ex.Stmt.(*ast.ShowStmt); !show {
			// The TiDB restorer writes EXPLAIN FORMAT = 'row'.
			t, err := pc.templ(ex.Stmt)
			if err == nil {
				prefix := "EXPLAIN "
				if strings.EqualFold(ex.Format, "json") {
					prefix = "EXPLAIN FORMAT=JSON "
				}
				t.parts[0] = prefix + t.parts[0]
			}
			return t, err
		}
	}
	st, _ := root.(*ast.SelectStmt)
	if st != nil && st.LockInfo != nil && st.LockInfo.LockType == ast.SelectLockForShare &&
		len(st.LockInfo.Tables) == 0 && st.SelectIntoOpt == nil {
		st.LockInfo.LockType = ast.SelectLockNone
		t, err := pc.res.restore(root)
		st.LockInfo.LockType = ast.SelectLockForShare
		if err == nil {
			last := &t.parts[len(t.parts)-1]
			*last = strings.TrimRight(*last, " ") + " LOCK IN SHARE MODE"
		}
		return t, err
	}
	return pc.res.restore(root)
}

// rename points the sharded table at the markers (once per AST).
func (pc *prepCtx) rename(root ast.Node) {
	root.Accept(wrapper{pc.res})
	root.Accept(&renamer{r: pc.res, tables: pc.tables, logical: pc.rule.table, alias: pc.alias != ""})
	if pc.bcastRefs != nil {
		tables := map[*ast.TableName]bool{}
		for _, tn := range pc.bcastRefs {
			tables[tn] = true
		}
		root.Accept(&bcastRenamer{r: pc.res, tables: tables, names: pc.bcastOf})
	}
	if pc.bindRefs != nil {
		v := &bindRenamer{r: pc.res, tables: map[*ast.TableName]string{}, names: map[string]string{}}
		for i, tn := range pc.bindRefs {
			v.tables[tn] = pc.bindMarkers[i]
			if pc.bindAliases[i] == "" {
				v.names[tn.Name.O] = pc.bindMarkers[i]
			}
		}
		root.Accept(v)
	}
}

// target expands template t for shard s.
func (pc *prepCtx) target(t *template, s int) Target {
	return buildTarget(pc.rule, pc.params, t, s)
}

func buildTarget(r *rule, params int, t *template, s int) Target {
	node, schema, table := r.physical(s)
	sql := t.expand(schema, table)
	if r.binds != nil {
		sql = expandBinds(r, s, sql)
	}
	return Target{Node: node, Shard: s, Schema: schema, Table: table, SQL: sql, Params: targetParams(t, params)}
}

// targetParams is nil when the target uses the parameters as the client
// sent them (all, in order).
func targetParams(t *template, params int) []int {
	if len(t.params) == params {
		same := true
		for i, p := range t.params {
			if p != i {
				same = false
				break
			}
		}
		if same {
			return nil
		}
	}
	if t.params == nil {
		return []int{}
	}
	return t.params
}

// singles makes t the one-shard template of p (and its sample).
func (pc *prepCtx) singles(p *Prepared, t *template) {
	p.singleT = t
	p.single = make([]atomic.Pointer[Plan], pc.rule.shards())
	tg := buildTarget(pc.rule, pc.params, t, 0)
	p.sample = &tg
}

// splitInsert builds one INSERT per shard for rows on several shards.
func (p *Prepared) splitInsert(args []any) *Plan {
	r := p.rule
	byShard := make(map[int][]int)
	for i, row := range p.rows {
		s := rowShard(r, row, args)
		byShard[s] = append(byShard[s], i)
	}
	plan := &Plan{Kind: RouteMulti, Tables: p.tables}
	if len(byShard) == r.shards() {
		plan.Kind = RouteAll
	}
	for s := 0; s < r.shards(); s++ {
		if idx := byShard[s]; idx != nil {
			plan.Targets = append(plan.Targets, p.split.build(r, p.Params, idx, s))
		}
	}
	return plan
}

// singlePlan is the plan on shard s alone.
func (p *Prepared) singlePlan(s int) *Plan {
	if pl := p.single[s].Load(); pl != nil {
		return pl
	}
	pl := &Plan{Kind: RouteSingle, Tables: p.tables, Targets: []Target{buildTarget(p.rule, p.Params, p.singleT, s)}}
	if p.single[s].CompareAndSwap(nil, pl) {
		return pl
	}
	return p.single[s].Load()
}

// multiTargets are the targets of every shard when several answer.
func (p *Prepared) multiTargets() []Target {
	p.multiOnce.Do(func() {
		t := p.multiT
		if t == nil {
			t = p.singleT
		}
		n := p.rule.shards()
		p.multi = make([]Target, n)
		for s := 0; s < n; s++ {
			p.multi[s] = buildTarget(p.rule, p.Params, t, s)
		}
	})
	return p.multi
}

func (pc *prepCtx) newPrepared() *Prepared {
	return &Prepared{Params: pc.params, rule: pc.rule, tables: []string{pc.rule.table}, limitParam: -1}
}

// allPlan is a plan on every shard from template t, with merge m.
func (pc *prepCtx) allPlan(t *template, m *Merge) *Plan {
	n := pc.rule.shards()
	plan := &Plan{Kind: RouteAll, Tables: []string{pc.rule.table}, Merge: m}
	if n == 1 {
		plan.Kind = RouteSingle
		plan.Merge = nil
	}
	for s := 0; s < n; s++ {
		plan.Targets = append(plan.Targets, pc.target(t, s))
	}
	return plan
}

func (pc *prepCtx) restoreErr(err error) *Prepared {
	return fail(ReasonInternal, "statement on sharded table %s cannot be rewritten: %v", pc.rule.table, err)
}

// tableAlias records the alias of the sharded table in a FROM clause.
func (pc *prepCtx) tableAlias(refs *ast.TableRefsClause) {
	if refs == nil || refs.TableRefs == nil {
		return
	}
	if ts, ok := refs.TableRefs.Left.(*ast.TableSource); ok {
		pc.alias = ts.AsName.O
		return
	}
	if pc.bcastRefs != nil || pc.bindRefs != nil {
		pc.alias = findAlias(refs.TableRefs, pc.tn)
	}
}

// prepareUpdate plans UPDATE (root may be an EXPLAIN around it).
func (pc *prepCtx) prepareUpdate(st *ast.UpdateStmt, root ast.StmtNode) *Prepared {
	r := pc.rule
	for _, a := range st.List {
		if a.Column != nil && r.role(a.Column.Name.O) != 0 {
			return fail(ReasonShardingKey, "changing the sharding key of %s is not supported", r.table)
		}
	}
	pc.tableAlias(st.TableRefs)
	c := compileCond(st.Where, r)
	var multiErr error
	if st.Order != nil || st.Limit != nil {
		multiErr = Refuse(ReasonLimit, "UPDATE with ORDER BY or LIMIT on several shards of %s is not supported", r.table)
	}
	return pc.keyed(root, c, multiErr)
}

// prepareDelete plans DELETE (root may be an EXPLAIN around it).
func (pc *prepCtx) prepareDelete(st *ast.DeleteStmt, root ast.StmtNode) *Prepared {
	r := pc.rule
	if st.IsMultiTable {
		return fail(ReasonJoin, "multi-table DELETE on sharded table %s is not supported", r.table)
	}
	pc.tableAlias(st.TableRefs)
	c := compileCond(st.Where, r)
	var multiErr error
	if st.Order != nil || st.Limit != nil {
		multiErr = Refuse(ReasonLimit, "DELETE with ORDER BY or LIMIT on several shards of %s is not supported", r.table)
	}
	return pc.keyed(root, c, multiErr)
}

// keyed plans a statement whose shards follow condition c, with the same
// SQL (renamed) on one shard or several; several answer with OK packets.
func (pc *prepCtx) keyed(root ast.StmtNode, c *cond, multiErr error) *Prepared {
	p := pc.newPrepared()
	p.cond, p.multiErr = c, multiErr
	pc.rename(root)
	t, err := pc.templ(root)
	if err != nil {
		return pc.restoreErr(err)
	}
	pc.singles(p, t)
	return pc.finish(p)
}

// finish fixes the plan when it does not depend on parameters.
func (pc *prepCtx) finish(p *Prepared) *Prepared {
	if pc.params == 0 && p.err == nil && p.fixed == nil {
		plan, err := p.Bind(nil)
		if err != nil {
			return &Prepared{Params: p.Params, err: err}
		}
		return &Prepared{Params: p.Params, fixed: plan, rule: p.rule, tables: p.tables, sample: p.sample}
	}
	return p
}

// prepareExplain plans EXPLAIN/DESCRIBE: DESCRIBE t is SHOW COLUMNS; an
// EXPLAIN of a statement runs on its shard when the key gives one.
func (pc *prepCtx) prepareExplain(st *ast.ExplainStmt) *Prepared {
	if st.Analyze || st.Explore || (st.Format != "" && !strings.EqualFold(st.Format, "row") && !strings.EqualFold(st.Format, "json")) {
		return fail(ReasonExplain, "this EXPLAIN on sharded table %s is not supported", pc.rule.table)
	}
	multi := Refuse(ReasonExplain, "EXPLAIN of a statement on several shards of %s is not supported", pc.rule.table)
	var p *Prepared
	switch x := st.Stmt.(type) {
	case *ast.ShowStmt:
		return pc.prepareShow(x, st)
	case *ast.SelectStmt:
		pc.tableAlias(x.From)
		p = pc.keyed(st, compileCond(x.Where, pc.rule), multi)
	case *ast.UpdateStmt:
		pc.tableAlias(x.TableRefs)
		p = pc.keyed(st, compileCond(x.Where, pc.rule), multi)
	case *ast.DeleteStmt:
		pc.tableAlias(x.TableRefs)
		p = pc.keyed(st, compileCond(x.Where, pc.rule), multi)
	default:
		return fail(ReasonExplain, "EXPLAIN of this statement on sharded table %s is not supported", pc.rule.table)
	}
	return p
}

// prepareShow plans SHOW CREATE TABLE, SHOW COLUMNS, SHOW INDEX and
// DESCRIBE of the logical table: they run on shard 0's physical table,
// and Plan.Rename lets the executor present the logical name.
func (pc *prepCtx) prepareShow(st *ast.ShowStmt, root ast.StmtNode) *Prepared {
	switch st.Tp {
	case ast.ShowCreateTable, ast.ShowColumns, ast.ShowIndex:
	default:
		return fail(ReasonStatement, "this SHOW statement on sharded table %s is not supported", pc.rule.table)
	}
	dbName := st.DBName
	st.DBName = ""
	if dbName != "" && pc.tn.Schema.O == "" {
		pc.tn.Schema = ast.NewCIStr(dbName)
	}
	pc.rename(root)
	t, err := pc.templ(root)
	if err != nil {
		return pc.restoreErr(err)
	}
	tg := pc.target(t, 0)
	return &Prepared{Params: pc.params, fixed: &Plan{
		Kind: RouteSingle, Tables: []string{pc.rule.table},
		Targets: []Target{tg},
		Rename:  map[string]string{tg.Table: pc.rule.table},
	}}
}

// showTables: SHOW [FULL] TABLES and SHOW TABLE STATUS route as usual;
// Rename maps the physical table names of the database (FROM db, else the
// session's) to their logical names.
func (pc *prepCtx) showTables(st *ast.ShowStmt) *Prepared {
	db := st.DBName
	if db == "" {
		db = pc.db
	}
	m := pc.rt.showRename[db]
	if len(m) == 0 {
		return &Prepared{fixed: unshardedPlan}
	}
	return &Prepared{fixed: &Plan{Kind: RouteUnsharded, Rename: m}}
}

// prepareDDL fans DDL on the logical table out to every physical table.
func (pc *prepCtx) prepareDDL(root ast.StmtNode) *Prepared {
	pc.rename(root)
	t, err := pc.templ(root)
	if err != nil {
		return pc.restoreErr(err)
	}
	return &Prepared{Params: pc.params, fixed: pc.allPlan(t, nil)}
}
