package shard

import (
	"github.com/pingcap/tidb/pkg/parser/ast"
	driver "github.com/pingcap/tidb/pkg/parser/test_driver"
)

// keepNames gives every unaliased expression of a select list its text as
// written as an alias. The rewrite restores expressions in a normal form
// (COUNT(*) becomes COUNT(1), names get backquotes), while the server names
// an unaliased expression column by the text the client wrote: without the
// alias the client would see other column names than a direct connection
// gives. Plain columns (their name is the column's) and literals (named by
// their value) are left alone, and so are texts longer than an alias may
// be. Called after the analysis, which matches unaliased fields by
// expression.
func keepNames(st *ast.SelectStmt) {
	if st.Fields == nil {
		return
	}
	for _, f := range st.Fields.Fields {
		if f.WildCard != nil || f.Expr == nil || f.AsName.O != "" {
			continue
		}
		switch unparen(f.Expr).(type) {
		case *ast.ColumnNameExpr, *driver.ValueExpr, *driver.ParamMarkerExpr:
			continue
		}
		if t := f.Text(); t != "" && len(t) <= 64 {
			f.AsName = ast.NewCIStr(t)
		}
	}
}
