package proxy

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// TestShardRefusalsNameReason checks the sources of the sharding layer:
// every ERR 1235 is made by shard.Refuse (or fail, notSupported, which
// call it), whose first parameter, a shard.Reason, the compiler requires;
// none is made with mysql.NewError, and none names ReasonOther (the label
// of a 1235 without a reason).
func TestShardRefusalsNameReason(t *testing.T) {
	var files []string
	for _, pat := range []string{"sharded*.go", "shard/*.go", "shard/merge/*.go"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	fset := token.NewFileSet()
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(x ast.Node) bool {
			call, ok := x.(*ast.CallExpr)
			if !ok {
				if cl, ok := x.(*ast.CompositeLit); ok && isSel(cl.Type, "mysql", "Error") {
					t.Errorf("%s: a mysql.Error literal: make a refusal with shard.Refuse", fset.Position(cl.Pos()))
				}
				return true
			}
			name := funcName(call.Fun)
			switch {
			case name == "NewError" && len(call.Args) > 0 && f != filepath.Join("shard", "refusal.go"):
				if id := funcName(call.Args[0]); id == "ErrCodeNotSupported" {
					t.Errorf("%s: ERR 1235 made with mysql.NewError: use shard.Refuse with a reason", fset.Position(call.Pos()))
				}
				if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Value == "1235" {
					t.Errorf("%s: ERR 1235 made with mysql.NewError: use shard.Refuse with a reason", fset.Position(call.Pos()))
				}
			case name == "Refuse" || name == "fail" || name == "notSupported":
				if len(call.Args) == 0 {
					return true // the declaration's own forwarding
				}
				n++
				if funcName(call.Args[0]) == "ReasonOther" {
					t.Errorf("%s: a refusal for ReasonOther: name its reason", fset.Position(call.Pos()))
				}
			}
			return true
		})
	}
	if n < 90 {
		t.Errorf("%d refusals found in %d files: the scan is broken", n, len(files))
	}
}

// funcName is the name an expression ends with (x, pkg.x).
func funcName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return x.Sel.Name
	}
	return ""
}

func isSel(e ast.Expr, pkg, name string) bool {
	s, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := s.X.(*ast.Ident)
	return ok && id.Name == pkg && s.Sel.Name == name
}

// TestShardingRefusalReasons checks pisa_proxy_sharding_refusals_total:
// each refusal counts once, under the reason its error carries, through
// the text and the binary protocol, from the planner, the executor and
// the merge.
func TestShardingRefusalReasons(t *testing.T) {
	m1, m2 := testutil.StartMariaDB(t), testutil.StartMariaDB(t)
	tp, reg, _ := startProxyMetrics(t, shardedConfig(t, m1, m2))
	db := openDB(t, tp.dsn(""))
	if _, err := db.Exec("CREATE TABLE t_order (id BIGINT PRIMARY KEY, uid BIGINT, note VARCHAR(20)) DEFAULT CHARSET utf8mb4"); err != nil {
		t.Fatal(err)
	}
	refusals := func(reason string) float64 {
		return metricValue(t, reg, "pisa_proxy_sharding_refusals_total", map[string]string{"domain": "shard", "reason": reason})
	}
	want := map[string]float64{}
	expect := func(what string, err error, reason string) {
		t.Helper()
		want[reason]++
		if mysqlErrCode(err) != 1235 {
			t.Errorf("%s: want ERR 1235, got %v", what, err)
		}
		if got := refusals(reason); got != want[reason] {
			t.Errorf("%s: refusals{reason=%q} = %v, want %v", what, reason, got, want[reason])
		}
	}
	for _, c := range []struct{ q, reason string }{
		{"SELECT * FROM t_order o JOIN t_order p ON o.uid = p.id", "join"},
		{"SELECT * FROM t_order o JOIN t_user u ON o.uid = u.uid", "join"},
		{"SELECT * FROM t_order WHERE id IN (SELECT uid FROM t_user)", "subquery"},
		{"UPDATE t_order SET id = 11 WHERE id = 1", "sharding_key"},
		{"SELECT id FROM t_order UNION SELECT id FROM t_order", "union"},
		{"INSERT INTO t_order (id, note) SELECT id, note FROM t_user", "statement"},
		{"SELECT * FROM t_order FOR UPDATE", "locking_read"},
		{"SELECT id FROM t_order; SELECT 1", "multi_statement"},
		{"SELECT DISTINCT COUNT(*) FROM t_order GROUP BY note", "distinct"},
		{"SELEC id FROM t_order", "unparsed"},
		{"START TRANSACTION WITH CONSISTENT SNAPSHOT", "transaction"},
	} {
		_, err := db.Exec(c.q)
		expect(c.q, err, c.reason)
	}
	// The merge: a column whose character set is not the result's.
	latin := openDB(t, tp.dsn("charset=latin1"))
	_, err := latin.Exec("SELECT id FROM t_order ORDER BY note")
	expect("ORDER BY a utf8mb4 column through latin1", err, "collation")
	// The binary protocol: refused by Prepare, and by one execution.
	_, err = db.Prepare("SELECT note FROM t_order WHERE id = ? UNION SELECT note FROM t_order")
	expect("PREPARE of a UNION", err, "union")
	lim, err := db.Prepare("SELECT note FROM t_order LIMIT ?, ?")
	if err != nil {
		t.Fatal(err)
	}
	defer lim.Close()
	_, err = lim.Query(0, 1)
	expect("EXECUTE with LIMIT ?, ?", err, "limit")
	st, err := db.Prepare("INSERT INTO t_order (id, note) VALUES (?, 'x')")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = st.Exec(nil)
	expect("EXECUTE with a NULL key", err, "sharding_key")
	// A transaction: several shards once a branch is pinned outside it
	// (the session variable pins its connection).
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.ExecContext(ctx, "SET @pin = 1"); err != nil {
		t.Fatal(err)
	}
	_, err = c.ExecContext(ctx, "UPDATE t_order SET note = 'y'")
	expect("several shards on a pinned session", err, "transaction")
	if got := refusals("other"); got != 0 {
		t.Errorf("refusals without a reason: %v", got)
	}
}
