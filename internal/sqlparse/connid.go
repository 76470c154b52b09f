package sqlparse

import (
	"strings"

	"github.com/pingcap/tidb/pkg/parser/ast"
)

// ConnectionIDSites tells the proxy where a text's CONNECTION_ID() calls may
// be replaced by a constant without changing the statement: ok is false
// unless every statement is a SELECT (UNION…), INSERT, REPLACE, UPDATE,
// DELETE, SET or DO that reads no performance_schema, information_schema or
// sys table (their thread ids are the backend's) and db (the session's
// schema) is none of those. calls is the number of CONNECTION_ID() calls
// the parser saw; unaliased are the [start, end) byte spans in sql of the
// select-list items without an alias (their column name is their text: the
// proxy keeps it with an alias on those that hold a call). A span may end
// with comments.
func (p *Parser) ConnectionIDSites(sql, db string) (calls int, unaliased [][2]int, ok bool) {
	if isSystemSchema(db) {
		return 0, nil, false
	}
	err := p.WithAST(sql, func(stmts []ast.StmtNode) {
		v := &connIDVisitor{src: sql, ok: true}
		for _, st := range stmts {
			switch st.(type) {
			case *ast.SelectStmt, *ast.SetOprStmt, *ast.InsertStmt, *ast.UpdateStmt,
				*ast.DeleteStmt, *ast.SetStmt, *ast.DoStmt:
			default:
				v.ok = false
			}
			st.Accept(v)
		}
		calls, unaliased, ok = v.calls, v.fields, v.ok
	})
	if err != nil {
		return 0, nil, false
	}
	return calls, unaliased, ok
}

func isSystemSchema(s string) bool {
	switch strings.ToLower(s) {
	case "performance_schema", "information_schema", "sys":
		return true
	}
	return false
}

type connIDVisitor struct {
	src    string
	calls  int
	fields [][2]int
	ok     bool
}

func (v *connIDVisitor) Enter(n ast.Node) (ast.Node, bool) {
	switch n := n.(type) {
	case *ast.FuncCallExpr:
		if n.FnName.L == "connection_id" {
			v.calls++
		}
	case *ast.TableName:
		if isSystemSchema(n.Schema.L) {
			v.ok = false
		}
	case *ast.SelectField:
		if n.Expr == nil || n.AsName.L != "" {
			break
		}
		text := n.Text()
		if n.Offset < 0 || n.Offset > len(v.src) {
			v.ok = false
			break
		}
		i := strings.Index(v.src[n.Offset:], text)
		if text == "" || i < 0 {
			v.ok = false
			break
		}
		start := n.Offset + i
		v.fields = append(v.fields, [2]int{start, start + len(text)})
	}
	return n, false
}

func (v *connIDVisitor) Leave(n ast.Node) (ast.Node, bool) { return n, true }
