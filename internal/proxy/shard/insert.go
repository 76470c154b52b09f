package shard

import (
	"fmt"
	"strings"

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
// computes each row's shard: all rows on one shard run the whole
// statement; otherwise Bind builds each shard's INSERT from precomputed
// pieces (the text then depends on which rows go where: the executor
// prepares each distinct text on its shard).

func (pc *prepCtx) prepareInsert(st *ast.InsertStmt) *Prepared {
	r := pc.rule
	if st.Select != nil {
		return fail(ReasonStatement, "INSERT ... SELECT on sharded table %s is not supported", r.table)
	}
	if len(st.Columns) == 0 {
		return fail(ReasonInsert, "INSERT into sharded table %s must list its columns, including the sharding column", r.table)
	}
	for _, a := range st.OnDuplicate {
		if a.Column != nil && r.role(a.Column.Name.O) != 0 {
			return fail(ReasonShardingKey, "changing the sharding key of %s is not supported", r.table)
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
			if r.gen != nil && strings.EqualFold(col, r.genCol) {
				// FillKeys adds generated keys to a text INSERT.
				return fail(ReasonInsert, "INSERT into sharded table %s without its key column %s: keys are generated only for INSERT … VALUES with a column list; give %s",
					r.table, col, col)
			}
			return fail(ReasonInsert, "INSERT into sharded table %s must set its sharding column %s", r.table, col)
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
				return fail(ReasonShardingKey, "the sharding value of row %d of an INSERT into %s must be a literal or a parameter", i+1, r.table)
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
		if len(rows) > 1 {
			if p.split, err = pc.insertSplit(st); err != nil {
				return pc.restoreErr(err)
			}
		}
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
			return Refuse(ReasonShardingKey, "NULL sharding key %s in row %d of an INSERT into %s is not supported", col, i+1, r.table)
		case keyInvalid:
			return Refuse(ReasonShardingKey, "sharding key %s in row %d of an INSERT into %s must be an integer", col, i+1, r.table)
		}
	}
	return Refuse(ReasonShardingKey, "sharding key of row %d of an INSERT into %s is not usable", i+1, r.table)
}

// insertSplit holds a multi-row INSERT in pieces, to build per-shard
// statements at Bind: head + rows joined by "," + tail.
type insertSplit struct {
	head, tail *template
	rows       []*template
}

// insertSplit restores st around its rows (st is renamed and wrapped).
func (pc *prepCtx) insertSplit(st *ast.InsertStmt) (*insertSplit, error) {
	sp := &insertSplit{}
	marker := "pisa_rows_marker" + pc.res.suffix
	cp := *st
	cp.Setlist = false
	cp.Lists = [][]ast.ExprNode{{&ast.ColumnNameExpr{Name: &ast.ColumnName{Name: ast.NewCIStr(marker)}}}}
	t, err := pc.templ(&cp)
	if err != nil {
		return nil, err
	}
	// The marker row is restored as (`marker`), in the last part or any.
	m := "(`" + marker + "`)"
	for i, part := range t.parts {
		j := strings.Index(part, m)
		if j < 0 {
			continue
		}
		sp.head = &template{parts: append(append([]string(nil), t.parts[:i]...), part[:j]), holes: t.holes[:i]}
		sp.tail = &template{parts: append([]string{part[j+len(m):]}, t.parts[i+1:]...), holes: t.holes[i:]}
		// Parameters: the head (table, columns) has none; the tail's are
		// the template's.
		sp.tail.params = t.params
		break
	}
	if sp.head == nil {
		return nil, fmt.Errorf("INSERT rows not found in the restored statement")
	}
	for _, row := range st.Lists {
		rt, err := pc.res.restoreRow(row)
		if err != nil {
			return nil, err
		}
		sp.rows = append(sp.rows, rt)
	}
	return sp, nil
}

// build is the INSERT of rows idx on shard s.
func (sp *insertSplit) build(r *rule, params int, idx []int, s int) Target {
	node, schema, table := r.physical(s)
	var b strings.Builder
	var ps []int
	b.WriteString(sp.head.expand(schema, table))
	for k, i := range idx {
		if k > 0 {
			b.WriteByte(',')
		}
		b.WriteString(sp.rows[i].parts[0])
		ps = append(ps, sp.rows[i].params...)
	}
	b.WriteString(sp.tail.expand(schema, table))
	ps = append(ps, sp.tail.params...)
	t := &template{params: ps}
	if ps == nil {
		t.params = nil
	}
	return Target{Node: node, Shard: s, Schema: schema, Table: table, SQL: b.String(), Params: targetParams(t, params)}
}
