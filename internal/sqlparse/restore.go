package sqlparse

import (
	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/format"
	"github.com/pingcap/tidb/pkg/parser/mysql"
	driver "github.com/pingcap/tidb/pkg/parser/test_driver"
)

// RestoreFix readies one AST node for restoring into SQL that MariaDB reads
// as the client wrote it; call it from a visitor's Leave on every node of a
// tree about to be restored, once. It returns n itself or a node that
// restores in its place:
//   - a string literal written with a character set introducer
//     (_latin1'x') keeps the introducer (other literals are restored
//     without one, so that they keep the connection's character set);
//   - CHAR(n, ... [USING charset]), which the parser keeps as
//     char_func(n, ..., charset or NULL), is written as SQL;
//   - the parser's internal name for INSERT(str, pos, len) is renamed.
func RestoreFix(n ast.Node) ast.Node {
	switch x := n.(type) {
	case *driver.ValueExpr:
		if x.Kind() == driver.KindString && x.Type.GetFlag()&mysql.UnderScoreCharsetFlag != 0 && x.Type.GetCharset() != "" {
			return &introducedString{x}
		}
	case *ast.FuncCallExpr:
		switch x.FnName.L {
		case ast.CharFunc:
			return &charFunc{x}
		case ast.InsertFunc:
			x.FnName = ast.NewCIStr("INSERT")
		}
	}
	return n
}

type introducedString struct {
	*driver.ValueExpr
}

func (n *introducedString) Restore(ctx *format.RestoreCtx) error {
	ctx.WritePlain("_")
	ctx.WritePlain(n.Type.GetCharset())
	ctx.WritePlain(" ")
	ctx.WriteString(n.GetString())
	return nil
}

func (n *introducedString) Accept(v ast.Visitor) (ast.Node, bool) {
	nn, skip := v.Enter(n)
	if skip {
		return v.Leave(nn)
	}
	return v.Leave(n)
}

type charFunc struct {
	*ast.FuncCallExpr
}

func (n *charFunc) Restore(ctx *format.RestoreCtx) error {
	ctx.WriteKeyWord("CHAR")
	ctx.WritePlain("(")
	args := n.Args
	var cs ast.ExprNode
	if len(args) > 0 {
		cs, args = args[len(args)-1], args[:len(args)-1]
	}
	for i, a := range args {
		if i > 0 {
			ctx.WritePlain(", ")
		}
		if err := a.Restore(ctx); err != nil {
			return err
		}
	}
	if v, ok := cs.(*driver.ValueExpr); ok && v.Kind() != driver.KindNull {
		ctx.WriteKeyWord(" USING ")
		ctx.WritePlain(v.GetString())
	}
	ctx.WritePlain(")")
	return nil
}

func (n *charFunc) Accept(v ast.Visitor) (ast.Node, bool) {
	nn, skip := v.Enter(n)
	if skip {
		return v.Leave(nn)
	}
	return v.Leave(n)
}
