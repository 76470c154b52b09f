package shard

import (
	"strconv"
	"strings"

	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/format"
	"github.com/pingcap/tidb/pkg/parser/mysql"
	driver "github.com/pingcap/tidb/pkg/parser/test_driver"

	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// Rewriting. The statement's AST is restored into SQL text with the TiDB
// restorer (format package): identifiers backquoted, keywords upper case,
// strings single-quoted and escaped for the session's backslash mode, no
// comments (executable comments are restored as the SQL they hold). The
// logical table is replaced by two marker identifiers before restoring, so
// one restore gives a template that expands to every shard's SQL by
// replacing the markers with the physical schema and table.
//
// Assumption: the text is read as in the server's default SQL mode, or in
// ANSI_QUOTES or NO_BACKSLASH_ESCAPES mode when only those parse it (see
// sqlparse.WithASTMode); the output is meant for a server session in the
// mode the text parsed in (strings restored without backslash escapes
// after NO_BACKSLASH_ESCAPES). Double-quoted text that parses as a string
// is restored as a single-quoted string.

const (
	markerSchema = "pisa_shard_schema_marker"
	markerTable  = "pisa_shard_table_marker"
)

// restorer restores ASTs of one statement text.
type restorer struct {
	flags  format.RestoreFlags
	suffix string // makes the markers unique in this text
	params []int  // parameter positions, in the order restored
}

func newRestorer(sql string, mode mysql.SQLMode) *restorer {
	r := &restorer{flags: format.RestoreStringSingleQuotes | format.RestoreKeyWordUppercase |
		format.RestoreNameBackQuotes | format.RestoreStringWithoutCharset}
	if !mode.HasNoBackslashEscapesMode() {
		r.flags |= format.RestoreStringEscapeBackslash
	}
	lower := strings.ToLower(sql)
	for i := 0; strings.Contains(lower, markerSchema+r.suffix) || strings.Contains(lower, markerTable+r.suffix); i++ {
		r.suffix = "_" + strconv.Itoa(i)
	}
	return r
}

func (r *restorer) schemaMarker() ast.CIStr { return ast.NewCIStr(markerSchema + r.suffix) }
func (r *restorer) tableMarker() ast.CIStr  { return ast.NewCIStr(markerTable + r.suffix) }

// template is restored SQL with holes for the physical schema and table.
type template struct {
	parts  []string // len(holes)+1
	holes  []bool   // true: table, false: schema
	params []int    // parameter positions in restore order
}

func (t *template) expand(schema, table string) string {
	n := 0
	for _, p := range t.parts {
		n += len(p)
	}
	n += len(t.holes) * (len(table) + 4)
	var b strings.Builder
	b.Grow(n)
	for i, p := range t.parts {
		b.WriteString(p)
		if i < len(t.holes) {
			if t.holes[i] {
				writeName(&b, table)
			} else {
				writeName(&b, schema)
			}
		}
	}
	return b.String()
}

func writeName(b *strings.Builder, name string) {
	b.WriteByte('`')
	b.WriteString(strings.ReplaceAll(name, "`", "``"))
	b.WriteByte('`')
}

// quoteName backquotes an identifier.
func quoteName(name string) string {
	var b strings.Builder
	writeName(&b, name)
	return b.String()
}

// restore restores n into a template.
func (r *restorer) restore(n ast.Node) (*template, error) {
	var b strings.Builder
	r.params = r.params[:0]
	if err := n.Restore(format.NewRestoreCtx(r.flags, &b)); err != nil {
		return nil, err
	}
	text := b.String()
	sm, tm := "`"+markerSchema+r.suffix+"`", "`"+markerTable+r.suffix+"`"
	t := &template{}
	for {
		i, j := strings.Index(text, sm), strings.Index(text, tm)
		if i < 0 && j < 0 {
			break
		}
		table := i < 0 || (j >= 0 && j < i)
		at, m := i, sm
		if table {
			at, m = j, tm
		}
		t.parts = append(t.parts, text[:at])
		t.holes = append(t.holes, table)
		text = text[at+len(m):]
	}
	t.parts = append(t.parts, text)
	if len(r.params) > 0 {
		t.params = append([]int(nil), r.params...)
	}
	return t, nil
}

// paramMarker restores as `?` and records its position.
type paramMarker struct {
	*driver.ParamMarkerExpr
	r *restorer
}

func (n *paramMarker) Restore(ctx *format.RestoreCtx) error {
	n.r.params = append(n.r.params, n.Order)
	ctx.WritePlain("?")
	return nil
}

func (n *paramMarker) Accept(v ast.Visitor) (ast.Node, bool) {
	nn, skip := v.Enter(n)
	if skip {
		return v.Leave(nn)
	}
	return v.Leave(n)
}

// wrapper replaces string literals with an introducer and parameter markers
// by the restoring wrappers above. Run it once, after all analysis.
type wrapper struct{ r *restorer }

func (w wrapper) Enter(n ast.Node) (ast.Node, bool) { return n, false }

func (w wrapper) Leave(n ast.Node) (ast.Node, bool) {
	if x, ok := n.(*driver.ParamMarkerExpr); ok {
		return &paramMarker{x, w.r}, true
	}
	return sqlparse.RestoreFix(n), true
}

// renamer points the sharded table and the column qualifiers naming it at
// the markers.
type renamer struct {
	r       *restorer
	tables  map[*ast.TableName]bool // the sharded table's nodes
	logical string
	alias   bool // the table has an alias: qualifiers name the alias
}

func (v *renamer) Enter(n ast.Node) (ast.Node, bool) {
	switch x := n.(type) {
	case *ast.TableName:
		if v.tables[x] {
			x.Schema = v.r.schemaMarker()
			x.Name = v.r.tableMarker()
		}
	case *ast.ColumnName:
		if !v.alias && x.Table.O != "" && strings.EqualFold(x.Table.O, v.logical) {
			if x.Schema.O != "" {
				x.Schema = v.r.schemaMarker()
			}
			x.Table = v.r.tableMarker()
		}
	case *ast.SelectField:
		if w := x.WildCard; w != nil && !v.alias && w.Table.O != "" && strings.EqualFold(w.Table.O, v.logical) {
			if w.Schema.O != "" {
				w.Schema = v.r.schemaMarker()
			}
			w.Table = v.r.tableMarker()
		}
	}
	return n, false
}

func (v *renamer) Leave(n ast.Node) (ast.Node, bool) { return n, true }

// restoreRow restores one VALUES row as "(a,b,...)".
func (r *restorer) restoreRow(row []ast.ExprNode) (*template, error) {
	var b strings.Builder
	r.params = r.params[:0]
	ctx := format.NewRestoreCtx(r.flags, &b)
	b.WriteByte('(')
	for i, e := range row {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := e.Restore(ctx); err != nil {
			return nil, err
		}
	}
	b.WriteByte(')')
	t := &template{parts: []string{b.String()}}
	if len(r.params) > 0 {
		t.params = append([]int(nil), r.params...)
	}
	return t, nil
}
