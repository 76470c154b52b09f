package shard

import (
	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/pingcap/tidb/pkg/parser/ast"
)

// INSERT and REPLACE (VALUES or SET forms). The column list is required
// and must name the sharding column(s) (Pisanix: "fields is empty"); each
// row's sharding value must be a literal or a `?` parameter with a key
// value (see Algorithm: NULL, non-integral numbers and non-integer strings
// are refused, since no shard could be chosen that every later SELECT
// agrees with). Rows are grouped by shard into one INSERT per shard (in
// shard order, each with the rows in their original order); the executor
// sums affected rows. INSERT ... SELECT is refused, as is ON DUPLICATE KEY
// UPDATE of a sharding column.
//
// Prepared statements: when every row's sharding value is a literal the
// split is fixed at Prepare and Target.Params says which parameters each
// target uses. When a parameter is some row's sharding value, Bind
// computes each row's shard; all rows must go to one shard (one row always
// does), else Bind refuses with 1235: splitting would need a new statement
// text per execution.

func (pc *prepCtx) prepareInsert(st *ast.InsertStmt) *Prepared {
	r := pc.rule
	if st.Select != nil {
		return fail("INSERT ... SELECT on sharded table %s is not supported", r.table)
	}
	if len(st.Columns) == 0 {
		return fail("INSERT into sharded table %s must list its columns, including the sharding column", r.table)
	}
	for _, a := range st.OnDuplicate {
		if a.Column != nil && r.role(a.Column.Name.O) != 0 {
			return fail("changing the sharding key of %s is not supported", r.table)
		}
	}
	dbIdx, tblIdx := -1, -1
	for i, c := range st.Columns {
		role := r.role(c.Name.O)
		if role&roleDB != 0 && dbIdx < 0 {
			dbIdx = i
		}
		if role&roleTable != 0 && tblIdx < 0 {
			tblIdx = i
		}
	}
	for _, col := range r.columns() {
		role := r.role(col)
		if (role&roleDB != 0 && dbIdx < 0) || (role&roleTable != 0 && tblIdx < 0) {
			return fail("INSERT into sharded table %s must set its sharding column %s", r.table, col)
		}
	}
	rows := make([][2]operand, len(st.Lists))
	hasParamKey := false
	for i, list := range st.Lists {
		if len(list) != len(st.Columns) {
			return &Prepared{err: mysql.NewError(1136, "21S01", "Column count doesn't match value count at row %d", i+1)}
		}
		for part, idx := range [2]int{dbIdx, tblIdx} {
			if idx < 0 {
				rows[i][part] = operand{param: -1, k: intKey(0)}
				continue
			}
			o, ok := literalOperand(list[idx])
			if !ok {
				return fail("the sharding value of row %d of an INSERT into %s must be a literal or a parameter", i+1, r.table)
			}
			if o.param >= 0 {
				hasParamKey = true
			}
			rows[i][part] = o
		}
	}
	p := pc.newPrepared()
	pc.rename(st)
	if hasParamKey {
		t, err := pc.templ(st)
		if err != nil {
			return pc.restoreErr(err)
		}
		pc.singles(p, t)
		p.rows = rows
		return p
	}
	// Literal keys: the split is known now. The sample is the whole
	// statement on shard 0 (its metadata has every parameter).
	whole, err := pc.templ(st)
	if err != nil {
		return pc.restoreErr(err)
	}
	tg := pc.target(whole, 0)
	p.sample = &tg
	n := r.shards()
	byShard := make([][]int, n) // row indexes per shard
	groups := 0
	for i, row := range rows {
		s := rowShard(r, row, nil)
		if s < 0 {
			p.err = insertKeyError(r, i, row, nil)
			return p
		}
		if byShard[s] == nil {
			groups++
		}
		byShard[s] = append(byShard[s], i)
	}
	plan := &Plan{Kind: RouteMulti, Tables: p.tables}
	if groups == 1 {
		plan.Kind = RouteSingle
	} else if groups == n {
		plan.Kind = RouteAll
	}
	for s, idx := range byShard {
		if idx == nil {
			continue
		}
		cp := *st
		if groups > 1 {
			cp.Lists = make([][]ast.ExprNode, len(idx))
			for j, i := range idx {
				cp.Lists[j] = st.Lists[i]
			}
		}
		t, err := pc.templ(&cp)
		if err != nil {
			return pc.restoreErr(err)
		}
		plan.Targets = append(plan.Targets, pc.target(t, s))
	}
	p.fixed = plan
	return p
}

// rowShard is the shard of an INSERT row, -1 when a key is not usable.
func rowShard(r *rule, row [2]operand, args []any) int {
	dbi, ti := 0, 0
	if r.dbCol != "" {
		k := row[0].eval(args)
		if k.kind != keyInt {
			return -1
		}
		dbi = r.dbAlg.Index(k.bits, r.dbCount)
	}
	if r.tableCol != "" {
		k := row[1].eval(args)
		if k.kind != keyInt {
			return -1
		}
		ti = r.tableAlg.Index(k.bits, r.tblCount)
	}
	return dbi*r.tblCount + ti
}

func insertKeyError(r *rule, i int, row [2]operand, args []any) error {
	for part, col := range [2]string{r.dbCol, r.tableCol} {
		if col == "" {
			continue
		}
		switch row[part].eval(args).kind {
		case keyNull:
			return refuse("NULL sharding key %s in row %d of an INSERT into %s is not supported", col, i+1, r.table)
		case keyInvalid:
			return refuse("sharding key %s in row %d of an INSERT into %s must be an integer", col, i+1, r.table)
		}
	}
	return refuse("sharding key of row %d of an INSERT into %s is not usable", i+1, r.table)
}
