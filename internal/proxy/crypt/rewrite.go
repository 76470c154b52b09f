package crypt

import (
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/format"
	pmysql "github.com/pingcap/tidb/pkg/parser/mysql"
	"github.com/pingcap/tidb/pkg/parser/opcode"
	driver "github.com/pingcap/tidb/pkg/parser/test_driver"
)

// ParamOp says how a backend parameter is made from a client parameter.
type ParamOp uint8

// Parameter operations.
const (
	ParamCopy    ParamOp = iota // the client's value as is
	ParamEncrypt                // ciphertext of the client's value
	ParamAssist                 // assisted (HMAC) value of the client's value
)

// Param is one parameter of the rewritten statement.
type Param struct {
	From int // the client's parameter (0-based)
	Op   ParamOp
	Col  *Column // for ParamEncrypt (its AAD)
}

// Rewritten is the outcome of rewriting one statement text.
type Rewritten struct {
	// SQL is the text to send to the backend; the input when !Changed.
	SQL     string
	Changed bool
	// Touched: the statement names an encrypted or masked table, so its
	// result columns go through a Transformer.
	Touched bool
	// Params map the rewritten text's parameters (in order) to the
	// client's; ClientParams is how many the client's text has. Params is
	// nil when the parameters are unchanged.
	Params       []Param
	ClientParams int
}

// Refusal is the error for a statement that cannot be answered on
// ciphertext (ERR 1235).
func Refusal(format string, args ...any) *mysql.Error {
	return mysql.NewError(1235, "42000", "%s", "pisa-proxy security claim: "+fmt.Sprintf(format, args...))
}

// Rewrite rewrites sql (a COM_QUERY or COM_STMT_PREPARE text) for the
// schema: values written to encrypted columns are encrypted (and their
// assisted and plain columns written too), equality lookups go to the
// assisted column, result columns name the cipher column under the
// logical name. A *mysql.Error (1235) refuses the statement; other errors
// are parse errors: the text is forwarded unchanged and the server
// reports its own syntax error (it names no encrypted column it could
// leak, and an unparsable text cannot be answered by the proxy anyway).
//
// Only statements whose text mentions an encrypted or masked table are
// parsed.
func (s *Schema) Rewrite(p *sqlparse.Parser, sql string) (Rewritten, error) {
	return s.RewriteFor(p, sql, nil)
}

// RewriteFor is Rewrite for a session whose user's masking rules are
// masks: a statement that would return a masked column other than as a
// plain column of the outermost SELECT (an expression over it, a
// subquery, a copy into a table or file) is refused, so that masking
// cannot be bypassed.
func (s *Schema) RewriteFor(p *sqlparse.Parser, sql string, masks []*Mask) (Rewritten, error) {
	out := Rewritten{SQL: sql}
	if s == nil || !s.Mentions(sql) {
		return out, nil
	}
	var rerr error
	perr := p.WithASTMode(sql, func(stmts []ast.StmtNode, mode pmysql.SQLMode) {
		rw := &rewriter{s: s, mode: mode}
		for _, st := range stmts {
			if _, ok := st.(*ast.PrepareStmt); ok {
				// The statement text is a string the proxy never sees run.
				out.Touched = true
				rerr = Refusal("PREPARE ... FROM a text naming an encrypted or masked table (use the binary protocol's prepared statements)")
				return
			}
			rw.collectTables(st)
		}
		if !rw.touched {
			return
		}
		out.Touched = true
		out.ClientParams = rw.markers
		if len(stmts) > 1 {
			rerr = Refusal("a multi-statement text naming an encrypted or masked table (send its statements one by one)")
			return
		}
		st := stmts[0]
		if len(masks) > 0 {
			if err := rw.checkMasks(st, masks); err != nil {
				rerr = err
				return
			}
		}
		if len(rw.encTables) == 0 {
			return // masked only: nothing to rewrite
		}
		if err := rw.rewrite(st); err != nil {
			rerr = err
			return
		}
		out.ClientParams = rw.markers
		if !rw.changed {
			return
		}
		text, err := rw.restore(st)
		if err != nil {
			rerr = Refusal("the statement could not be rewritten: %v", err)
			return
		}
		out.SQL, out.Changed = text, true
		if rw.paramsChanged {
			out.Params = rw.params
		}
	})
	if rerr != nil {
		return out, rerr
	}
	if perr != nil {
		if out.Touched {
			// Parsed in no mode: it cannot be checked, so it is refused
			// rather than sent with plaintext.
			return out, Refusal("a statement naming an encrypted table that the proxy cannot parse: %v", perr)
		}
		// The prefilter matched a name in a text that does not parse:
		// refuse if it may name an encrypted table, or a table masked
		// for this user (conservative: it cannot be checked).
		if s.Encrypted() {
			return Rewritten{SQL: sql, Touched: true}, Refusal("a statement naming an encrypted table that the proxy cannot parse: %v", perr)
		}
		for _, m := range masks {
			if indexFold(sql, m.table) >= 0 {
				return Rewritten{SQL: sql, Touched: true}, Refusal("a statement naming table %s (masking %q) that the proxy cannot parse: %v", m.table, m.Name, perr)
			}
		}
	}
	return out, nil
}

// rewriter holds the state of one statement's rewrite.
type rewriter struct {
	s    *Schema
	mode pmysql.SQLMode

	// aliases maps lower-case table names and aliases to encrypted tables
	// (nil: a table that is not encrypted).
	aliases   map[string]*Table
	encTables []*Table
	touched   bool
	ntables   int

	changed       bool
	markers       int
	markerNodes   []*driver.ParamMarkerExpr
	params        []Param
	paramsChanged bool
	restoring     bool

	scopes    []*scope
	root      ast.Node
	topFields map[*ast.SelectField]bool
	// fieldAliases are select-list aliases of encrypted columns: ORDER BY
	// or GROUP BY naming one would sort ciphertext.
	fieldAliases map[string]*Column
	skip         map[ast.Node]bool
	stack        []ast.Node
	err          error
}

type tableCollector struct{ rw *rewriter }

func (c tableCollector) Enter(n ast.Node) (ast.Node, bool) {
	rw := c.rw
	switch x := n.(type) {
	case *ast.TableSource:
		if tn, ok := x.Source.(*ast.TableName); ok {
			rw.addTable(tn, x.AsName.L)
		}
	case *ast.TableName:
		rw.addTable(x, "")
	case *driver.ParamMarkerExpr:
		rw.markers++
		rw.markerNodes = append(rw.markerNodes, x)
	}
	return n, false
}

func (c tableCollector) Leave(n ast.Node) (ast.Node, bool) { return n, true }

func (rw *rewriter) addTable(tn *ast.TableName, alias string) {
	if rw.aliases == nil {
		rw.aliases = map[string]*Table{}
	}
	name := tn.Name.L
	t := rw.s.tables[name]
	if t == nil && !rw.touched {
		for _, m := range rw.s.masks {
			if m.table == name {
				rw.touched = true
			}
		}
	}
	if _, seen := rw.aliases[name]; !seen {
		rw.ntables++
	}
	rw.aliases[name] = t
	if alias != "" {
		rw.aliases[alias] = t
	}
	if t != nil {
		rw.touched = true
		if !containsTable(rw.encTables, t) {
			rw.encTables = append(rw.encTables, t)
		}
	}
}

func containsTable(ts []*Table, t *Table) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// collectTables finds the tables the statement names and numbers its
// parameter markers in text order (the parser leaves Order unset).
func (rw *rewriter) collectTables(st ast.StmtNode) {
	st.Accept(tableCollector{rw})
	sort.Slice(rw.markerNodes, func(i, j int) bool { return rw.markerNodes[i].Offset < rw.markerNodes[j].Offset })
	for i, m := range rw.markerNodes {
		m.Order = i
	}
}

// scope is the tables one SELECT, UPDATE, DELETE or INSERT reads from:
// names and aliases, nil for a table that is not encrypted or a derived
// table.
type scope struct {
	owner  ast.Node
	tables map[string]*Table
	names  map[string]string // alias or name -> lower-case table name ("" derived)
}

// newScope collects the table sources of a FROM clause, without entering
// derived tables (they have their own scope).
func newScope(owner ast.Node, refs ast.ResultSetNode, s *Schema) *scope {
	sc := &scope{owner: owner, tables: map[string]*Table{}, names: map[string]string{}}
	var add func(n ast.ResultSetNode)
	add = func(n ast.ResultSetNode) {
		switch x := n.(type) {
		case *ast.Join:
			if x.Left != nil {
				add(x.Left)
			}
			if x.Right != nil {
				add(x.Right)
			}
		case *ast.TableSource:
			if tn, ok := x.Source.(*ast.TableName); ok {
				t := s.tables[tn.Name.L]
				sc.tables[tn.Name.L] = t
				sc.names[tn.Name.L] = tn.Name.L
				if x.AsName.L != "" {
					sc.tables[x.AsName.L] = t
					sc.names[x.AsName.L] = tn.Name.L
				}
			} else if x.AsName.L != "" {
				sc.tables[x.AsName.L] = nil
				sc.names[x.AsName.L] = ""
			}
		case *ast.TableName:
			sc.tables[x.Name.L] = s.tables[x.Name.L]
			sc.names[x.Name.L] = x.Name.L
		}
	}
	if refs != nil {
		add(refs)
	}
	return sc
}

// scopeOf returns the scope a statement node opens, or nil.
func (rw *rewriter) scopeOf(n ast.Node) *scope {
	switch x := n.(type) {
	case *ast.SelectStmt:
		var refs ast.ResultSetNode
		if x.From != nil && x.From.TableRefs != nil {
			refs = x.From.TableRefs
		}
		return newScope(n, refs, rw.s)
	case *ast.UpdateStmt:
		var refs ast.ResultSetNode
		if x.TableRefs != nil && x.TableRefs.TableRefs != nil {
			refs = x.TableRefs.TableRefs
		}
		return newScope(n, refs, rw.s)
	case *ast.DeleteStmt:
		var refs ast.ResultSetNode
		if x.TableRefs != nil && x.TableRefs.TableRefs != nil {
			refs = x.TableRefs.TableRefs
		}
		return newScope(n, refs, rw.s)
	case *ast.InsertStmt:
		var refs ast.ResultSetNode
		if x.Table != nil && x.Table.TableRefs != nil {
			refs = x.Table.TableRefs
		}
		return newScope(n, refs, rw.s)
	}
	return nil
}

// column resolves a column reference to an encrypted column, or nil, as
// the server resolves names: a qualifier names the innermost table or
// alias of that name; an unqualified name belongs to the innermost scope
// that has tables. In that scope it is the encrypted column of one of
// its encrypted tables, if one has it; otherwise it is taken to be a
// column of another of its tables (not rewritten: the server resolves it,
// or reports it unknown).
func (rw *rewriter) column(cn *ast.ColumnName) *Column {
	if cn.Table.L != "" {
		for i := len(rw.scopes) - 1; i >= 0; i-- {
			if t, ok := rw.scopes[i].tables[cn.Table.L]; ok {
				if t == nil {
					return nil
				}
				return t.columns[cn.Name.L]
			}
		}
		t := rw.aliases[cn.Table.L]
		if t == nil {
			return nil
		}
		return t.columns[cn.Name.L]
	}
	for i := len(rw.scopes) - 1; i >= 0; i-- {
		sc := rw.scopes[i]
		if len(sc.tables) == 0 {
			continue
		}
		for _, t := range sc.tables {
			if t != nil {
				if c := t.columns[cn.Name.L]; c != nil {
					return c
				}
			}
		}
		return nil
	}
	if len(rw.scopes) > 0 {
		return nil
	}
	for _, t := range rw.encTables {
		if c := t.columns[cn.Name.L]; c != nil {
			return c
		}
	}
	return nil
}

func (rw *rewriter) encColumn(e ast.ExprNode) *Column {
	if ce, ok := e.(*ast.ColumnNameExpr); ok {
		return rw.column(ce.Name)
	}
	return nil
}

func (rw *rewriter) rewrite(st ast.StmtNode) error {
	rw.skip = map[ast.Node]bool{}
	rw.fieldAliases = map[string]*Column{}
	rw.root = st
	if sc := rw.scopeOf(st); sc != nil {
		rw.scopes = append(rw.scopes[:0], sc)
	}
	switch x := st.(type) {
	case *ast.SelectStmt:
		if x.SelectIntoOpt != nil {
			// The values would go to a variable or file as ciphertext.
			return Refusal("SELECT ... INTO from encrypted table %s", rw.encTables[0].Name)
		}
		if x.Distinct && x.Fields != nil && len(rw.encTables) > 0 {
			// Equal plaintexts are different ciphertexts (random nonces):
			// the server, or a sharded merge, would keep duplicates.
			for _, f := range x.Fields.Fields {
				if f.WildCard != nil {
					return Refusal("SELECT DISTINCT * over encrypted table %s (name the columns)", rw.encTables[0].Name)
				}
				if c := rw.encColumn(f.Expr); c != nil {
					return Refusal("SELECT DISTINCT on encrypted column %s", c.QualifiedName())
				}
			}
		}
		rw.topFields = map[*ast.SelectField]bool{}
		if x.Fields != nil {
			for _, f := range x.Fields.Fields {
				rw.topFields[f] = true
				keepName(f)
				if f.Expr != nil && f.AsName.L != "" {
					if c := rw.encColumn(f.Expr); c != nil {
						rw.fieldAliases[f.AsName.L] = c
					}
				}
				if f.Expr != nil && f.AsName.L == "" {
					if c := rw.encColumn(f.Expr); c != nil {
						rw.fieldAliases[strings.ToLower(c.Name)] = c
					}
				}
			}
		}
		if x.OrderBy != nil {
			if err := rw.checkPositions(x.Fields, x.OrderBy.Items, "ORDER BY"); err != nil {
				return err
			}
		}
		if x.GroupBy != nil {
			if err := rw.checkPositions(x.Fields, x.GroupBy.Items, "GROUP BY"); err != nil {
				return err
			}
		}
	case *ast.InsertStmt:
		if err := rw.rewriteInsert(x); err != nil {
			return err
		}
	case *ast.UpdateStmt:
		list, err := rw.rewriteAssignments(x.List)
		if err != nil {
			return err
		}
		x.List = list
	case *ast.DeleteStmt, *ast.SetOprStmt:
	case *ast.LoadDataStmt:
		return Refusal("LOAD DATA into encrypted table %s", rw.encTables[0].Name)
	case ast.DDLNode, *ast.ShowStmt, *ast.ExplainStmt, *ast.AnalyzeTableStmt:
		// DDL and SHOW name physical columns: they pass.
		return nil
	default:
		return Refusal("this kind of statement on encrypted table %s", rw.encTables[0].Name)
	}
	st.Accept(rw)
	return rw.err
}

// keepName gives an unaliased expression of the select list its text as
// alias: the server names such a column after the text as written, which
// restoring the statement would change (COUNT(*) is restored COUNT(1)).
func keepName(f *ast.SelectField) {
	if f.Expr == nil || f.AsName.L != "" {
		return
	}
	switch f.Expr.(type) {
	case *ast.ColumnNameExpr, *driver.ValueExpr, *driver.ParamMarkerExpr:
		return // named the same after restoring
	}
	if t := f.Text(); t != "" && len(t) <= 256 {
		f.AsName = ast.NewCIStr(t)
	}
}

// checkPositions refuses ORDER BY / GROUP BY positions that name an
// encrypted column, or any position when a wildcard selects from an
// encrypted table.
func (rw *rewriter) checkPositions(fields *ast.FieldList, items []*ast.ByItem, clause string) error {
	for _, it := range items {
		pe, ok := it.Expr.(*ast.PositionExpr)
		if !ok || fields == nil {
			continue
		}
		if pe.N < 1 || pe.N > len(fields.Fields) {
			continue // the server reports it
		}
		f := fields.Fields[pe.N-1]
		if f.WildCard != nil {
			return Refusal("%s by position with * over encrypted table %s (name the column)", clause, rw.encTables[0].Name)
		}
		if c := rw.encColumn(f.Expr); c != nil {
			return Refusal("%s on encrypted column %s", clause, c.QualifiedName())
		}
	}
	return nil
}

// value is a value written to or compared with an encrypted column.
type value struct {
	null  bool
	plain []byte
	param int // >= 0: a parameter marker's order
	node  ast.ExprNode
}

// valueOf reads a literal, NULL, a negative number or a parameter marker.
func valueOf(e ast.ExprNode) (value, bool) {
	switch x := e.(type) {
	case *driver.ParamMarkerExpr:
		return value{param: x.Order, node: e}, true
	case *driver.ValueExpr:
		v := value{param: -1, node: e}
		switch x.Kind() {
		case driver.KindNull:
			v.null = true
		case driver.KindString:
			v.plain = []byte(x.GetString())
		case driver.KindBytes, driver.KindBinaryLiteral, driver.KindMysqlBit:
			v.plain = append([]byte(nil), x.GetBytes()...)
		case driver.KindInt64:
			v.plain = strconv.AppendInt(nil, x.GetInt64(), 10)
		case driver.KindUint64:
			v.plain = strconv.AppendUint(nil, x.GetUint64(), 10)
		case driver.KindMysqlDecimal:
			v.plain = []byte(x.GetMysqlDecimal().String())
		default:
			return value{}, false
		}
		return v, true
	case *ast.UnaryOperationExpr:
		if x.Op != opcode.Minus {
			return value{}, false
		}
		in, ok := x.V.(*driver.ValueExpr)
		if !ok {
			return value{}, false
		}
		switch in.Kind() {
		case driver.KindInt64, driver.KindUint64, driver.KindMysqlDecimal:
			v, _ := valueOf(in)
			if len(v.plain) > 0 && v.plain[0] == '-' {
				v.plain = v.plain[1:]
			} else {
				v.plain = append([]byte{'-'}, v.plain...)
			}
			v.node = e
			return v, true
		}
	case *ast.ParenthesesExpr:
		return valueOf(x.Expr)
	}
	return value{}, false
}

// cipherNode is the node written for a value stored in col's cipher column.
func (rw *rewriter) cipherNode(v value, col *Column) ast.ExprNode {
	switch {
	case v.param >= 0:
		return rw.param(v.param, ParamEncrypt, col)
	case v.null:
		return v.node
	}
	rw.s.cEncrypt.add(1)
	return &bytesLit{b: rw.s.Keys.Encrypt(nil, v.plain, col.aad)}
}

func (rw *rewriter) assistNode(v value) ast.ExprNode {
	switch {
	case v.param >= 0:
		return rw.param(v.param, ParamAssist, nil)
	case v.null:
		return v.node
	}
	rw.s.cAssist.add(1)
	return &bytesLit{b: rw.s.Keys.Assist(nil, v.plain)}
}

func (rw *rewriter) plainNode(v value) ast.ExprNode {
	if v.param >= 0 {
		return rw.param(v.param, ParamCopy, nil)
	}
	return v.node
}

func (rw *rewriter) param(from int, op ParamOp, col *Column) ast.ExprNode {
	rw.paramsChanged = true
	return &paramRef{rw: rw, p: Param{From: from, Op: op, Col: col}}
}

func (rw *rewriter) rewriteInsert(x *ast.InsertStmt) error {
	var t *Table
	if x.Table != nil && x.Table.TableRefs != nil {
		if ts, ok := x.Table.TableRefs.Left.(*ast.TableSource); ok {
			if tn, ok := ts.Source.(*ast.TableName); ok {
				t = rw.s.tables[tn.Name.L]
			}
		}
	}
	if t == nil {
		if x.Select != nil {
			// INSERT INTO plain SELECT ... FROM encrypted: the walk checks
			// the select.
			return nil
		}
		return nil
	}
	verb := "INSERT"
	if x.IsReplace {
		verb = "REPLACE"
	}
	if x.Select != nil {
		return Refusal("%s ... SELECT into encrypted table %s", verb, t.Name)
	}
	if len(x.Columns) == 0 {
		return Refusal("%s into encrypted table %s without a column list", verb, t.Name)
	}
	type target struct {
		idx int
		col *Column
	}
	var targets []target
	for i, cn := range x.Columns {
		if c := t.columns[cn.Name.L]; c != nil && (cn.Table.L == "" || rw.aliases[cn.Table.L] == t) {
			targets = append(targets, target{i, c})
		}
	}
	if len(targets) == 0 {
		return rw.onDuplicate(x)
	}
	rw.changed = true
	for _, tg := range targets {
		x.Columns[tg.idx] = &ast.ColumnName{Name: ast.NewCIStr(tg.col.Cipher)}
	}
	for _, tg := range targets {
		if tg.col.Assisted != "" {
			x.Columns = append(x.Columns, &ast.ColumnName{Name: ast.NewCIStr(tg.col.Assisted)})
		}
		if tg.col.Plain != "" {
			x.Columns = append(x.Columns, &ast.ColumnName{Name: ast.NewCIStr(tg.col.Plain)})
		}
	}
	for r, row := range x.Lists {
		if len(row) <= targets[len(targets)-1].idx {
			return nil // column count mismatch: the server reports 1136
		}
		extra := make([]ast.ExprNode, 0, 2*len(targets))
		for _, tg := range targets {
			v, ok := valueOf(row[tg.idx])
			if !ok {
				return Refusal("a value for encrypted column %s that is not a literal, NULL or ? (row %d)", tg.col.QualifiedName(), r+1)
			}
			row[tg.idx] = rw.cipherNode(v, tg.col)
			if tg.col.Assisted != "" {
				extra = append(extra, rw.assistNode(v))
			}
			if tg.col.Plain != "" {
				extra = append(extra, rw.plainNode(v))
			}
		}
		x.Lists[r] = append(row, extra...)
	}
	return rw.onDuplicate(x)
}

func (rw *rewriter) onDuplicate(x *ast.InsertStmt) error {
	list, err := rw.rewriteAssignments(x.OnDuplicate)
	if err != nil {
		return err
	}
	x.OnDuplicate = list
	return nil
}

// rewriteAssignments rewrites SET col = value for encrypted columns
// (UPDATE, ON DUPLICATE KEY UPDATE).
func (rw *rewriter) rewriteAssignments(list []*ast.Assignment) ([]*ast.Assignment, error) {
	var extra []*ast.Assignment
	n := len(list)
	for i := 0; i < n; i++ {
		a := list[i]
		c := rw.column(a.Column)
		if c == nil {
			continue
		}
		v, ok := valueOf(a.Expr)
		if !ok {
			return nil, Refusal("assigning an expression to encrypted column %s (only a literal, NULL or ?)", c.QualifiedName())
		}
		rw.changed = true
		qual := a.Column.Table
		a.Column = &ast.ColumnName{Schema: a.Column.Schema, Table: qual, Name: ast.NewCIStr(c.Cipher)}
		a.Expr = rw.cipherNode(v, c)
		if c.Assisted != "" {
			// A row set to the value it has keeps its ciphertext, so that
			// it is not counted as changed (a new nonce would change it):
			// cipher = IF(assisted <=> HMAC(v), cipher, ENC(v)). MariaDB
			// reads the assisted column before the assignment after this.
			col := func(name string) ast.ExprNode {
				return &ast.ColumnNameExpr{Name: &ast.ColumnName{Schema: a.Column.Schema, Table: qual, Name: ast.NewCIStr(name)}}
			}
			a.Expr = &ast.FuncCallExpr{FnName: ast.NewCIStr("IF"), Args: []ast.ExprNode{
				&ast.BinaryOperationExpr{Op: opcode.NullEQ, L: col(c.Assisted), R: rw.assistNode(v)},
				col(c.Cipher), a.Expr}}
		}
		rw.skip[a] = true
		if c.Assisted != "" {
			na := &ast.Assignment{Column: &ast.ColumnName{Schema: a.Column.Schema, Table: qual, Name: ast.NewCIStr(c.Assisted)}, Expr: rw.assistNode(v)}
			rw.skip[na] = true
			extra = append(extra, na)
		}
		if c.Plain != "" {
			na := &ast.Assignment{Column: &ast.ColumnName{Schema: a.Column.Schema, Table: qual, Name: ast.NewCIStr(c.Plain)}, Expr: rw.plainNode(v)}
			rw.skip[na] = true
			extra = append(extra, na)
		}
	}
	// Appended after the originals: MariaDB applies assignments left to
	// right, and the new ones read no column.
	return append(list, extra...), nil
}

// Enter implements ast.Visitor: it checks every reference to an encrypted
// column, rewriting the allowed forms and refusing the others.
func (rw *rewriter) Enter(n ast.Node) (ast.Node, bool) {
	rw.stack = append(rw.stack, n)
	if rw.err != nil || rw.skip[n] {
		return n, true
	}
	if n != rw.root {
		if sc := rw.scopeOf(n); sc != nil {
			rw.scopes = append(rw.scopes, sc)
		}
	}
	switch x := n.(type) {
	case *ast.SelectField:
		if x.Expr == nil {
			return n, false
		}
		c := rw.encColumn(x.Expr)
		if c == nil {
			return n, false
		}
		if !rw.topFields[x] {
			rw.err = Refusal("encrypted column %s in the select list of a subquery or UNION (only the outermost SELECT can return it)", c.QualifiedName())
			return n, true
		}
		ce := x.Expr.(*ast.ColumnNameExpr)
		ce.Name = &ast.ColumnName{Schema: ce.Name.Schema, Table: ce.Name.Table, Name: ast.NewCIStr(c.Cipher)}
		if x.AsName.L == "" {
			x.AsName = ast.NewCIStr(c.Name)
		}
		rw.changed = true
		return n, true
	case *ast.BinaryOperationExpr:
		if x.Op != opcode.EQ && x.Op != opcode.NE && x.Op != opcode.NullEQ {
			return n, false
		}
		lc, rc := rw.encColumn(x.L), rw.encColumn(x.R)
		if lc == nil && rc == nil {
			return n, false
		}
		switch {
		case lc != nil && rc != nil:
			if lc.Assisted == "" || rc.Assisted == "" {
				rw.err = Refusal("comparing encrypted columns %s and %s without assisted columns", lc.QualifiedName(), rc.QualifiedName())
				return n, true
			}
			rw.toAssisted(x.L, lc)
			rw.toAssisted(x.R, rc)
		case lc != nil:
			if !rw.compare(&x.R, x.L, lc, x.Op.String()) {
				return n, true
			}
		default:
			if !rw.compare(&x.L, x.R, rc, x.Op.String()) {
				return n, true
			}
		}
		return n, true
	case *ast.PatternInExpr:
		c := rw.encColumn(x.Expr)
		if c == nil {
			return n, false
		}
		if x.Sel != nil {
			rw.err = Refusal("IN (subquery) on encrypted column %s", c.QualifiedName())
			return n, true
		}
		if c.Assisted == "" {
			rw.err = Refusal("IN on encrypted column %s, which has no assisted_column", c.QualifiedName())
			return n, true
		}
		for i, e := range x.List {
			v, ok := valueOf(e)
			if !ok {
				rw.err = Refusal("IN on encrypted column %s with a value that is not a literal, NULL or ?", c.QualifiedName())
				return n, true
			}
			x.List[i] = rw.assistNode(v)
		}
		rw.toAssisted(x.Expr, c)
		return n, true
	case *ast.IsNullExpr:
		c := rw.encColumn(x.Expr)
		if c == nil {
			return n, false
		}
		ce := x.Expr.(*ast.ColumnNameExpr)
		ce.Name = &ast.ColumnName{Schema: ce.Name.Schema, Table: ce.Name.Table, Name: ast.NewCIStr(c.Cipher)}
		rw.changed = true
		return n, true
	case *ast.ColumnNameExpr:
		c := rw.column(x.Name)
		if c == nil && x.Name.Table.L == "" {
			if fc, ok := rw.fieldAliases[x.Name.Name.L]; ok && rw.inByItem() {
				c = fc
			}
		}
		if c != nil {
			rw.err = Refusal("%s on encrypted column %s (its stored value is ciphertext)", rw.context(), c.QualifiedName())
			return n, true
		}
	}
	return n, false
}

// Leave implements ast.Visitor.
func (rw *rewriter) Leave(n ast.Node) (ast.Node, bool) {
	rw.stack = rw.stack[:len(rw.stack)-1]
	if k := len(rw.scopes); k > 0 && rw.scopes[k-1].owner == n && n != rw.root {
		rw.scopes = rw.scopes[:k-1]
	}
	return n, rw.err == nil
}

func (rw *rewriter) inByItem() bool {
	for i := len(rw.stack) - 1; i >= 0; i-- {
		if _, ok := rw.stack[i].(*ast.ByItem); ok {
			return true
		}
	}
	return false
}

// context names what encloses the column reference being refused.
func (rw *rewriter) context() string {
	for i := len(rw.stack) - 2; i >= 0; i-- {
		switch x := rw.stack[i].(type) {
		case *ast.ByItem:
			for j := i - 1; j >= 0; j-- {
				switch rw.stack[j].(type) {
				case *ast.OrderByClause:
					return "ORDER BY"
				case *ast.GroupByClause:
					return "GROUP BY"
				}
			}
			return "ORDER BY / GROUP BY"
		case *ast.PatternLikeOrIlikeExpr:
			return "LIKE"
		case *ast.PatternRegexpExpr:
			return "REGEXP"
		case *ast.BetweenExpr:
			return "BETWEEN"
		case *ast.BinaryOperationExpr:
			switch x.Op {
			case opcode.LT, opcode.LE, opcode.GT, opcode.GE:
				return "a range comparison (" + x.Op.String() + ")"
			}
			return "operator " + x.Op.String()
		case *ast.FuncCallExpr:
			return "function " + strings.ToUpper(x.FnName.O) + "()"
		case *ast.AggregateFuncExpr:
			return "aggregate " + strings.ToUpper(x.F) + "()"
		case *ast.WindowFuncExpr:
			return "window function " + strings.ToUpper(x.Name) + "()"
		case *ast.HavingClause:
			return "HAVING"
		case *ast.Assignment:
			return "an assignment reading"
		case *ast.Join:
			return "a JOIN condition"
		case *ast.SelectField:
			return "an expression in the select list"
		case *ast.PatternInExpr:
			return "IN"
		}
	}
	return "this use"
}

// compare rewrites "col op value" into "assisted op HMAC(value)".
func (rw *rewriter) compare(other *ast.ExprNode, colExpr ast.ExprNode, c *Column, op string) bool {
	v, ok := valueOf(*other)
	if !ok {
		rw.err = Refusal("%s on encrypted column %s with an expression that is not a literal, NULL, ? or another encrypted column", op, c.QualifiedName())
		return false
	}
	if c.Assisted == "" {
		rw.err = Refusal("%s on encrypted column %s, which has no assisted_column", op, c.QualifiedName())
		return false
	}
	*other = rw.assistNode(v)
	rw.toAssisted(colExpr, c)
	return true
}

func (rw *rewriter) toAssisted(e ast.ExprNode, c *Column) {
	ce := e.(*ast.ColumnNameExpr)
	ce.Name = &ast.ColumnName{Schema: ce.Name.Schema, Table: ce.Name.Table, Name: ast.NewCIStr(c.Assisted)}
	rw.changed = true
}

// restore writes the rewritten statement as SQL text.
func (rw *rewriter) restore(st ast.StmtNode) (string, error) {
	flags := format.RestoreStringSingleQuotes | format.RestoreKeyWordUppercase |
		format.RestoreNameBackQuotes | format.RestoreStringWithoutCharset
	if !rw.mode.HasNoBackslashEscapesMode() {
		flags |= format.RestoreStringEscapeBackslash
	}
	st.Accept(literalWrapper{rw})
	var b strings.Builder
	rw.params = rw.params[:0]
	rw.restoring = true
	if err := st.Restore(format.NewRestoreCtx(flags, &b)); err != nil {
		return "", err
	}
	return b.String(), nil
}

// bytesLit restores as a hexadecimal string literal (X'...').
type bytesLit struct {
	driver.ValueExpr
	b []byte
}

func (n *bytesLit) Restore(ctx *format.RestoreCtx) error {
	ctx.WritePlain("X'")
	ctx.WritePlain(hex.EncodeToString(n.b))
	ctx.WritePlain("'")
	return nil
}

func (n *bytesLit) Accept(v ast.Visitor) (ast.Node, bool) {
	nn, skip := v.Enter(n)
	if skip {
		return v.Leave(nn)
	}
	return v.Leave(n)
}

// paramRef restores as ? and records its Param, in restore order.
type paramRef struct {
	driver.ValueExpr
	rw *rewriter
	p  Param
}

func (n *paramRef) Restore(ctx *format.RestoreCtx) error {
	n.rw.params = append(n.rw.params, n.p)
	ctx.WritePlain("?")
	return nil
}

func (n *paramRef) Accept(v ast.Visitor) (ast.Node, bool) {
	nn, skip := v.Enter(n)
	if skip {
		return v.Leave(nn)
	}
	return v.Leave(n)
}

// literalWrapper prepares the AST for restoring: parameter markers that
// were not rewritten become copies (recorded in order), introduced string
// literals keep their introducer, and the parser's internal function names
// are written as SQL.
type literalWrapper struct{ rw *rewriter }

func (w literalWrapper) Enter(n ast.Node) (ast.Node, bool) { return n, false }

func (w literalWrapper) Leave(n ast.Node) (ast.Node, bool) {
	if x, ok := n.(*driver.ParamMarkerExpr); ok {
		return &paramRef{rw: w.rw, p: Param{From: x.Order, Op: ParamCopy}}, true
	}
	return sqlparse.RestoreFix(n), true
}

// maskChecker walks a statement for a session with masking rules and
// refuses the uses of a masked column that would return it unmasked.
type maskChecker struct {
	rw        *rewriter
	masks     []*Mask
	topFields map[*ast.SelectField]bool
	stack     []ast.Node
	err       error
}

func (rw *rewriter) checkMasks(st ast.StmtNode, masks []*Mask) error {
	switch st.(type) {
	case *ast.SelectStmt, *ast.SetOprStmt, *ast.InsertStmt, *ast.UpdateStmt, *ast.DeleteStmt,
		ast.DDLNode, *ast.ShowStmt, *ast.ExplainStmt, *ast.AnalyzeTableStmt:
	default:
		for name := range rw.aliases {
			for _, m := range masks {
				if m.table == name {
					return Refusal("this kind of statement on table %s, masked for this user (masking %q)", name, m.Name)
				}
			}
		}
	}
	rw.root = st
	rw.scopes = rw.scopes[:0]
	if sc := rw.scopeOf(st); sc != nil {
		rw.scopes = append(rw.scopes, sc)
	}
	top := map[*ast.SelectField]bool{}
	if sel, ok := st.(*ast.SelectStmt); ok {
		if sel.SelectIntoOpt != nil {
			top = nil // nothing is returned to the client
		} else if sel.Fields != nil {
			for _, f := range sel.Fields.Fields {
				top[f] = true
			}
		}
	}
	mc := &maskChecker{rw: rw, masks: masks, topFields: top}
	st.Accept(mc)
	rw.scopes = rw.scopes[:0]
	return mc.err
}

// maskFor returns the masking rule of the column cn names, or nil.
func (mc *maskChecker) maskFor(cn *ast.ColumnName) *Mask {
	rw := mc.rw
	match := func(table string) *Mask {
		for _, m := range mc.masks {
			if m.table == table && m.column == cn.Name.L {
				return m
			}
		}
		return nil
	}
	if cn.Table.L != "" {
		for i := len(rw.scopes) - 1; i >= 0; i-- {
			if name, ok := rw.scopes[i].names[cn.Table.L]; ok {
				return match(name)
			}
		}
		return match(cn.Table.L)
	}
	for i := len(rw.scopes) - 1; i >= 0; i-- {
		sc := rw.scopes[i]
		if len(sc.names) == 0 {
			continue
		}
		for _, name := range sc.names {
			if m := match(name); m != nil {
				return m // conservative: any table of the scope with a masked column of that name
			}
		}
		return nil
	}
	return nil
}

func (mc *maskChecker) Enter(n ast.Node) (ast.Node, bool) {
	mc.stack = append(mc.stack, n)
	if mc.err != nil {
		return n, true
	}
	rw := mc.rw
	if n != rw.root {
		if sc := rw.scopeOf(n); sc != nil {
			rw.scopes = append(rw.scopes, sc)
		}
	}
	switch x := n.(type) {
	case *ast.SelectField:
		if _, ok := x.Expr.(*ast.ColumnNameExpr); ok && mc.topFields[x] {
			return n, true // returned masked
		}
		if x.WildCard != nil && !mc.topFields[x] {
			// SELECT * in a subquery or a copy: the masked columns it
			// may return cannot be told apart.
			if k := len(rw.scopes); k > 0 {
				for _, name := range rw.scopes[k-1].names {
					for _, m := range mc.masks {
						if m.table == name {
							mc.err = Refusal("* over table %s with masked column %s.%s in a subquery, UNION or copy (masking %q)", name, m.table, m.column, m.Name)
							return n, true
						}
					}
				}
			}
		}
	case *ast.ColumnNameExpr:
		if m := mc.maskFor(x.Name); m != nil && mc.inSelectField() {
			mc.err = Refusal("masked column %s.%s in an expression, subquery, UNION or copy (masking %q applies to this user)", m.table, m.column, m.Name)
			return n, true
		}
	}
	return n, false
}

// inSelectField reports whether the node being entered is inside a select
// list or an assignment (what a statement returns or copies), not in a
// condition.
func (mc *maskChecker) inSelectField() bool {
	for i := len(mc.stack) - 2; i >= 0; i-- {
		switch mc.stack[i].(type) {
		case *ast.SelectField, *ast.Assignment:
			return true
		case *ast.SelectStmt, *ast.SetOprStmt:
			return false
		}
	}
	return false
}

func (mc *maskChecker) Leave(n ast.Node) (ast.Node, bool) {
	mc.stack = mc.stack[:len(mc.stack)-1]
	rw := mc.rw
	if k := len(rw.scopes); k > 0 && rw.scopes[k-1].owner == n && n != rw.root {
		rw.scopes = rw.scopes[:k-1]
	}
	return n, mc.err == nil
}
