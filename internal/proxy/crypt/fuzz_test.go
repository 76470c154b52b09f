package crypt

import (
	"errors"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/pingcap/tidb/pkg/parser/ast"
)

// FuzzRewrite: the rewriter never panics, refuses only with 1235, and
// what it writes parses again, with as many parameter markers as its
// parameter map says.
func FuzzRewrite(f *testing.F) {
	for _, s := range []string{
		"SELECT id, email FROM users WHERE email = 'SECRETVALUE'",
		"INSERT INTO users (id, email, phone) VALUES (1, 'SECRETVALUE', ?), (2, NULL, 'SECRETVALUE')",
		"UPDATE users SET email = 'SECRETVALUE' WHERE email IN (?, 'SECRETVALUE')",
		"DELETE FROM users WHERE email <=> ? AND phone IS NOT NULL",
		"SELECT o.id FROM orders o JOIN users u ON o.email = u.email WHERE u.email = 'SECRETVALUE'",
		"SELECT * FROM users WHERE id IN (SELECT id FROM orders WHERE email = ?) ORDER BY id",
		"INSERT INTO users SET id = 1, email = 'SECRETVALUE' ON DUPLICATE KEY UPDATE email = 'SECRETVALUE'",
		"SELECT email FROM users u WHERE u.email = _utf8mb4'SECRETVALUE' LIMIT 1",
	} {
		f.Add(s)
	}
	s := testSchema(f)
	p := newTestParser()
	f.Fuzz(func(t *testing.T, sql string) {
		r, err := s.Rewrite(p, sql)
		if err != nil {
			var me *mysql.Error
			if !errors.As(err, &me) || me.Code != 1235 {
				t.Fatalf("%q: error %v is not a 1235", sql, err)
			}
			return
		}
		if !r.Changed {
			return
		}
		markers := 0
		perr := p.WithAST(r.SQL, func(stmts []ast.StmtNode) {
			for _, st := range stmts {
				st.Accept(countMarkers{&markers})
			}
		})
		if perr != nil {
			t.Fatalf("%q rewritten to %q, which does not parse: %v", sql, r.SQL, perr)
		}
		if r.Params != nil && len(r.Params) != markers {
			t.Fatalf("%q rewritten to %q: %d markers, %d parameters mapped", sql, r.SQL, markers, len(r.Params))
		}
		for _, pr := range r.Params {
			if pr.From < 0 || pr.From >= r.ClientParams {
				t.Fatalf("%q: parameter from %d of %d", sql, pr.From, r.ClientParams)
			}
		}
	})
}

type countMarkers struct{ n *int }

func (c countMarkers) Enter(n ast.Node) (ast.Node, bool) {
	if _, ok := n.(ast.ParamMarkerExpr); ok {
		*c.n++
	}
	return n, false
}
func (c countMarkers) Leave(n ast.Node) (ast.Node, bool) { return n, true }
