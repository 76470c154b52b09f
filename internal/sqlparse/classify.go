package sqlparse

import (
	"strconv"
	"strings"

	"github.com/pingcap/tidb/pkg/parser/ast"
)

// classify fills f from parsed statements: Kind from the first, Class the
// highest ranked, everything else the union.
func classify(stmts []ast.StmtNode, f *Facts) {
	w := walker{f: f}
	allRO := true
	for i, st := range stmts {
		sc := classifyStmt(st, f)
		if i == 0 {
			f.Kind, f.Class = sc.kind, sc.class
		} else if classRank(sc.class) > classRank(f.Class) {
			f.Class = sc.class
		}
		allRO = allRO && sc.readOnly
		if sc.into {
			w.into = true
		}
		w.tablesOnly = sc.tablesOnly
		st.Accept(&w)
	}
	f.Multi = len(stmts) > 1
	if w.into && f.Class == ClassRead {
		f.Class = ClassWrite // SELECT ... INTO OUTFILE/DUMPFILE writes a file
	}
	f.ReadOnly = allRO && !w.into && !f.LockingRead && !f.SideEffects &&
		!f.UserVars && !f.PrevResult
	f.Tables = w.result()
}

type stmtClass struct {
	kind     Kind
	class    Class
	readOnly bool // before locking, INTO, functions and variables are seen
	into     bool
	// tablesOnly: walk the statement only for its tables (DDL bodies and
	// plain EXPLAIN do not run what they contain).
	tablesOnly bool
}

func classifyStmt(st ast.StmtNode, f *Facts) stmtClass {
	switch x := st.(type) {
	case *ast.SelectStmt:
		return stmtClass{kind: KindSelect, class: ClassRead, readOnly: true}
	case *ast.SetOprStmt:
		return stmtClass{kind: KindSelect, class: ClassRead, readOnly: true}
	case *ast.InsertStmt:
		if x.IsReplace {
			return stmtClass{kind: KindReplace, class: ClassWrite}
		}
		return stmtClass{kind: KindInsert, class: ClassWrite}
	case *ast.UpdateStmt:
		return stmtClass{kind: KindUpdate, class: ClassWrite}
	case *ast.DeleteStmt:
		return stmtClass{kind: KindDelete, class: ClassWrite}
	case *ast.NonTransactionalDMLStmt:
		sc := classifyStmt(x.DMLStmt, f)
		sc.readOnly = false
		return sc
	case *ast.LoadDataStmt, *ast.ImportIntoStmt:
		return stmtClass{kind: KindLoadData, class: ClassWrite}
	case *ast.CallStmt:
		return stmtClass{kind: KindCall, class: ClassWrite}
	case *ast.BeginStmt:
		return stmtClass{kind: KindBegin, class: ClassTransaction}
	case *ast.CommitStmt:
		return stmtClass{kind: KindCommit, class: ClassTransaction}
	case *ast.RollbackStmt:
		return stmtClass{kind: KindRollback, class: ClassTransaction}
	case *ast.SavepointStmt, *ast.ReleaseSavepointStmt:
		return stmtClass{kind: KindSavepoint, class: ClassTransaction}
	case *ast.SetStmt:
		return classifySet(x, f)
	case *ast.SetRoleStmt, *ast.SetSessionStatesStmt, *ast.SetResourceGroupStmt:
		return stmtClass{kind: KindSet, class: ClassTransaction}
	case *ast.UseStmt:
		return stmtClass{kind: KindUse, class: ClassTransaction}
	case *ast.ShowStmt:
		switch x.Tp {
		case ast.ShowWarnings, ast.ShowErrors, ast.ShowProfile, ast.ShowProfiles:
			f.PrevResult = true
		}
		return stmtClass{kind: KindShow, class: ClassRead, readOnly: true}
	case *ast.ExplainStmt:
		sc := stmtClass{kind: KindExplain, class: ClassRead, readOnly: true, tablesOnly: true}
		if x.Analyze && x.Stmt != nil {
			// EXPLAIN ANALYZE (MariaDB: ANALYZE stmt) runs the statement.
			in := classifyStmt(x.Stmt, f)
			sc.readOnly, sc.into, sc.tablesOnly = in.readOnly, in.into, in.tablesOnly
			if classRank(in.class) > classRank(sc.class) {
				sc.class = in.class
			}
		}
		return sc
	case *ast.ExplainForStmt:
		return stmtClass{kind: KindExplain, class: ClassRead}
	case *ast.DoStmt:
		return stmtClass{kind: KindDo, class: ClassRead, readOnly: true}
	case *ast.PrepareStmt:
		return stmtClass{kind: KindPrepare, class: ClassTransaction}
	case *ast.ExecuteStmt:
		return stmtClass{kind: KindExecute, class: ClassWrite}
	case *ast.DeallocateStmt:
		return stmtClass{kind: KindDeallocate, class: ClassTransaction}
	case *ast.LockTablesStmt:
		f.Locks = true
		return stmtClass{kind: KindLockTables, class: ClassTransaction}
	case *ast.UnlockTablesStmt:
		return stmtClass{kind: KindUnlockTables, class: ClassTransaction}
	case *ast.CreateTableStmt:
		if x.TemporaryKeyword != ast.TemporaryNone {
			f.TempTable = true
		}
		return stmtClass{kind: KindDDL, class: ClassDDL, tablesOnly: true}
	case *ast.DropTableStmt:
		if x.TemporaryKeyword != ast.TemporaryNone {
			f.TempTable = true
		}
		return stmtClass{kind: KindDDL, class: ClassDDL, tablesOnly: true}
	case *ast.AnalyzeTableStmt, *ast.OptimizeTableStmt, *ast.RepairTableStmt,
		*ast.GrantStmt, *ast.GrantRoleStmt, *ast.GrantProxyStmt, *ast.RevokeStmt,
		*ast.RevokeRoleStmt, *ast.FlushStmt, *ast.KillStmt, *ast.CreateUserStmt,
		*ast.AlterUserStmt, *ast.DropUserStmt, *ast.RenameUserStmt, *ast.SetPwdStmt,
		*ast.SetDefaultRoleStmt, *ast.ShutdownStmt, *ast.RestartStmt, *ast.BinlogStmt,
		*ast.AdminStmt, *ast.AlterInstanceStmt, *ast.SetConfigStmt, *ast.BRIEStmt:
		return stmtClass{kind: KindAdmin, class: ClassAdmin, tablesOnly: true}
	case *ast.ProcedureInfo, *ast.DropProcedureStmt:
		return stmtClass{kind: KindDDL, class: ClassDDL, tablesOnly: true}
	case ast.DDLNode:
		return stmtClass{kind: KindDDL, class: ClassDDL, tablesOnly: true}
	case *ast.HelpStmt:
		return stmtClass{kind: KindOther, class: ClassRead, readOnly: true}
	}
	// Anything else (TiDB-only statements...): needs the most privilege and
	// goes to the primary.
	return stmtClass{kind: KindOther, class: ClassAdmin, tablesOnly: true}
}

// classifySet handles SET: autocommit, user variables, global variables.
func classifySet(x *ast.SetStmt, f *Facts) stmtClass {
	sc := stmtClass{kind: KindSet, class: ClassTransaction}
	for _, v := range x.Variables {
		if v == nil {
			continue
		}
		if v.Name == ast.SetNames || v.Name == ast.SetCharset {
			continue
		}
		if !v.IsSystem {
			f.UserVars = true
			continue
		}
		if v.IsGlobal || v.IsInstance {
			sc.class = ClassAdmin
			continue
		}
		if strings.EqualFold(v.Name, "autocommit") {
			if on, ok := boolValue(v.Value); ok {
				if on {
					f.AutocommitOn = true
				} else {
					f.AutocommitOff = true
				}
			}
		}
	}
	return sc
}

// boolValue evaluates the value of SET autocommit = value.
func boolValue(e ast.ExprNode) (on, ok bool) {
	switch v := e.(type) {
	case ast.ValueExpr:
		switch x := v.GetValue().(type) {
		case int64:
			return x != 0, true
		case uint64:
			return x != 0, true
		case float64:
			return x != 0, true
		case string:
			return boolWord(x)
		case []byte:
			return boolWord(string(x))
		case interface{ String() string }: // decimal
			if n, err := strconv.ParseFloat(x.String(), 64); err == nil {
				return n != 0, true
			}
		}
	case *ast.ColumnNameExpr:
		return boolWord(v.Name.Name.O)
	case *ast.DefaultExpr:
		return true, true // autocommit defaults to 1
	case *ast.ParenthesesExpr:
		return boolValue(v.Expr)
	case *ast.UnaryOperationExpr:
		return boolValue(v.V)
	}
	return false, false
}

func boolWord(s string) (on, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "on", "true", "1", "yes":
		return true, true
	case "off", "false", "0", "no":
		return false, true
	}
	return false, false
}

// Functions with effects beyond their result, or whose result depends on
// state that lives on one server connection.
var sideEffectFuncs = map[string]bool{
	"get_lock": true, "release_lock": true, "release_all_locks": true,
	"is_used_lock": true, "is_free_lock": true,
	"sleep": true, "benchmark": true,
	"nextval": true, "setval": true, "lastval": true,
	"master_pos_wait": true, "master_gtid_wait": true, "source_pos_wait": true,
	"wait_for_executed_gtid_set": true, "wait_until_sql_thread_after_gtids": true,
}

// Functions that read what the previous statement left on the connection
// (LAST_INSERT_ID with an argument sets it: a side effect instead).
var prevResultFuncs = map[string]bool{
	"last_insert_id": true, "row_count": true, "found_rows": true,
}

// System variables that read what the previous statement left.
var prevResultVars = map[string]bool{
	"warning_count": true, "error_count": true, "identity": true, "last_insert_id": true,
}

type walker struct {
	f          *Facts
	tables     []Table
	ctes       []string
	into       bool
	tablesOnly bool
}

func (w *walker) Enter(n ast.Node) (ast.Node, bool) {
	switch x := n.(type) {
	case *ast.InsertStmt:
		// The target first: the walk visits INSERT ... SELECT's source
		// before it.
		if x.Table != nil {
			x.Table.Accept(w)
		}
	case *ast.TableName:
		w.addTable(x.Schema.O, x.Name.O)
		return n, false
	case *ast.DeleteTableList:
		// Multi-table DELETE targets name tables (or aliases) of the FROM
		// clause, which is walked anyway.
		return n, true
	case *ast.OptimizeTableStmt: // its Accept skips its tables
		for _, t := range x.Tables {
			w.addTable(t.Schema.O, t.Name.O)
		}
	case *ast.DropSequenceStmt:
		for _, t := range x.Sequences {
			w.addTable(t.Schema.O, t.Name.O)
		}
	case *ast.CommonTableExpression:
		w.ctes = append(w.ctes, x.Name.L)
		return n, false
	}
	if w.tablesOnly {
		return n, false
	}
	switch x := n.(type) {
	case *ast.CallStmt:
		// The procedure is not a function call; its arguments count.
		if x.Procedure != nil {
			for _, a := range x.Procedure.Args {
				a.Accept(w)
			}
		}
		return n, true
	case *ast.SelectStmt:
		if x.LockInfo != nil && x.LockInfo.LockType != ast.SelectLockNone {
			w.f.LockingRead = true
		}
		if x.SelectIntoOpt != nil {
			w.into = true
		}
	case *ast.FuncCallExpr:
		w.function(x)
	case *ast.VariableExpr:
		if x.IsSystem {
			if prevResultVars[strings.ToLower(x.Name)] {
				w.f.PrevResult = true
			}
		} else {
			w.f.UserVars = true
		}
	}
	return n, false
}

func (w *walker) Leave(n ast.Node) (ast.Node, bool) { return n, true }

func (w *walker) function(x *ast.FuncCallExpr) {
	name := x.FnName.L
	switch {
	case x.Schema.L != "":
		// A stored function: it may do anything.
		w.f.SideEffects = true
	case name == "last_insert_id" && len(x.Args) > 0:
		w.f.SideEffects = true
	case prevResultFuncs[name]:
		w.f.PrevResult = true
	case sideEffectFuncs[name]:
		w.f.SideEffects = true
		if name == "get_lock" {
			w.f.Locks = true
		}
	}
}

func (w *walker) addTable(schema, name string) {
	if name == "" {
		return
	}
	for _, t := range w.tables {
		if t.Name == name && t.Schema == schema {
			return
		}
	}
	w.tables = append(w.tables, Table{Schema: schema, Name: name})
}

// result drops references to CTEs (unqualified names a WITH clause
// defined) and returns the tables, nil when there are none.
func (w *walker) result() []Table {
	out := w.tables[:0]
	for _, t := range w.tables {
		if t.Schema == "" && w.isCTE(t.Name) {
			continue
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil
	}
	return out[:len(out):len(out)]
}

func (w *walker) isCTE(name string) bool {
	for _, c := range w.ctes {
		if strings.EqualFold(c, name) {
			return true
		}
	}
	return false
}
