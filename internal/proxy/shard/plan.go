// Package shard routes statements on sharded tables ([[proxy.config.sharding]],
// the DataShard CRD): it finds the sharding key in the TiDB parser's AST,
// picks the shards, rewrites the logical table into physical ones and says
// how the shards' results merge. It never guesses: a statement it cannot
// answer exactly is refused with ERR 1235 naming the reason.
//
// This file is the contract between the planner (this package), the
// streaming merger (package merge) and the executor (package proxy).
package shard

// RouteKind says how many shards a statement touches (metrics label).
type RouteKind uint8

const (
	// RouteUnsharded: the statement names no sharded table; the listener
	// routes it as usual (balancing, read/write splitting).
	RouteUnsharded RouteKind = iota
	// RouteSingle: exactly one shard.
	RouteSingle
	// RouteMulti: more than one shard, not all (the key pruned some).
	RouteMulti
	// RouteAll: every shard (no usable key, DDL, a scatter).
	RouteAll
)

func (k RouteKind) String() string {
	switch k {
	case RouteUnsharded:
		return "unsharded"
	case RouteSingle:
		return "single"
	case RouteMulti:
		return "multi"
	case RouteAll:
		return "all"
	}
	return "unknown"
}

// Plan is how one client statement runs on the shards.
type Plan struct {
	Kind RouteKind
	// Tables are the logical sharded tables the statement names.
	Tables []string
	// Targets are the physical statements, in shard order. Empty for
	// RouteUnsharded.
	Targets []Target
	// Merge says how the targets' result sets combine into the one the
	// client sees. Nil when there is one target (its response is relayed
	// as it is) or when the targets answer with OK packets (DML, DDL: the
	// executor sums affected rows and keeps the largest last insert id).
	Merge *Merge
	// Rename maps physical table names to logical ones, for results that
	// name tables:
	//   - SHOW [FULL] TABLES and SHOW TABLE STATUS are RouteUnsharded: the
	//     executor replaces a first-column value found here by the logical
	//     name and drops the repeats (TABLE STATUS rows are not summed);
	//   - SHOW CREATE TABLE, SHOW COLUMNS, SHOW INDEX and DESCRIBE run on
	//     shard 0's physical table (RouteSingle): the executor should show
	//     the logical name in the Table column and the CREATE TABLE text.
	// Nil otherwise. Shared: do not modify.
	//
	// Plans returned by the planner may be shared between sessions (they
	// are cached with the statement): never modify a Plan or its slices.
	Rename map[string]string
	// Broadcast: a write to every copy of a broadcast table (one target
	// per datanode): the executor runs the targets in one transaction and
	// reports the first copy's affected rows.
	Broadcast bool
}

// Target is one physical statement on one datanode.
type Target struct {
	// Node is the datanode: a [[mysql.node]] name, or a [[node_group.member]]
	// name when read/write splitting is configured too.
	Node string
	// Shard is the physical shard's index: database index × sharding_count
	// + table index (0 for a single-table shard of the database strategy).
	Shard int
	// Table is the physical table ("t_order_00001", or "t_order" for the
	// database strategy), Schema its database.
	Schema, Table string
	// SQL is the rewritten statement.
	SQL string
	// Params, for a prepared statement, lists which of the client's
	// parameters (0-based positions) the target's `?` markers take, in
	// order; nil means all of them in the client's order. A parameter may
	// appear twice (a GROUP BY expression copied into a derived column) or
	// not at all (rows of a split multi-row INSERT on other shards, the
	// LIMIT of an aggregate the merger applies).
	Params []int
}

// Merge describes how rows from several shards merge. Column indexes are
// 0-based positions in the shards' rows, which have the same columns in
// the same order on every shard.
type Merge struct {
	// Columns is how many leading columns the client sees; columns after
	// them are derived (ORDER BY / GROUP BY keys not selected, AVG's SUM
	// and COUNT) and never reach the client.
	//
	// Columns is -1 when the select list has a wildcard (SELECT *, t.*):
	// the planner does not know how many columns the shards return. The
	// client then sees all of them but the last Derived ones, and a
	// negative column index anywhere in Merge counts from the end of the
	// shards' row (-1 is the last column): resolve it as ncols+index once
	// the column count is known.
	Columns int `json:"columns"`
	// Derived is the number of derived columns at the end of each row.
	// Merge.Resolve(ncols) turns a spec with Columns -1 or negative
	// indexes into an absolute one once the column count is known.
	Derived int `json:"derived"`
	// OrderBy is the order the shards return their rows in (the rewrite
	// pushes it down) and the order of the merged stream.
	OrderBy []SortKey `json:"order_by,omitempty"`
	// GroupBy are the grouping columns. The shards return rows sorted by
	// them (OrderBy starts with them, in some direction); rows of one group
	// from all shards are adjacent after the k-way merge and combine into
	// one row using Aggregates. When the client's ORDER BY is not a prefix
	// of the grouping, Resort holds the final order.
	GroupBy []int `json:"group_by,omitempty"`
	// Aggregates are the aggregate columns (visible or derived). With no
	// GroupBy and some Aggregates, the whole result is one row.
	Aggregates []Aggregate `json:"aggregates,omitempty"`
	// Having filters merged groups (all conditions must hold).
	Having []Cond `json:"having,omitempty"`
	// Resort is applied after grouping when the client's ORDER BY cannot
	// be pushed down (e.g. ORDER BY COUNT(*)): the merger buffers the groups,
	// bounded by MemoryLimit.
	Resort []SortKey `json:"resort,omitempty"`
	// Distinct drops a row equal over the visible columns to the previous
	// one; the planner makes OrderBy cover every visible column so that
	// duplicates are adjacent.
	Distinct bool `json:"distinct,omitempty"`
	// Offset rows are skipped, then at most Limit rows sent (when HasLimit).
	// The shards were sent LIMIT Offset+Limit.
	Offset   uint64 `json:"offset,omitempty"`
	Limit    uint64 `json:"limit,omitempty"`
	HasLimit bool   `json:"has_limit,omitempty"`
	// MemoryLimit bounds what the merger may buffer (Resort); 0 = default.
	MemoryLimit int64 `json:"memory_limit,omitempty"`
}

// SortKey orders by one column.
type SortKey struct {
	Column int  `json:"column"`
	Desc   bool `json:"desc,omitempty"`
}

// AggKind is an aggregate function the merger can combine.
type AggKind uint8

const (
	AggCount AggKind = iota + 1 // sum of the shards' counts
	AggSum                      // sum (NULL when every shard says NULL)
	AggMin
	AggMax
	// AggAvg: Column is the AVG(x) column the shards computed (kept for
	// its metadata); the merged value is SUM(SumColumn)/SUM(CountColumn),
	// formatted with the column's decimals (NULL when the count is 0).
	AggAvg
)

// Aggregate merges one column.
type Aggregate struct {
	Column      int     `json:"column"`
	Kind        AggKind `json:"kind"`
	SumColumn   int     `json:"sum_column,omitempty"`   // AggAvg only
	CountColumn int     `json:"count_column,omitempty"` // AggAvg only
}

// CmpOp is a HAVING comparison.
type CmpOp uint8

const (
	OpEQ CmpOp = iota + 1
	OpNE
	OpLT
	OpLE
	OpGT
	OpGE
)

// Cond is one HAVING condition: merged column Column compared with a
// literal (Value is its text form, as in a text-protocol row; Null for
// IS NULL checks is not supported: the planner refuses those).
type Cond struct {
	Column int    `json:"column"`
	Op     CmpOp  `json:"op"`
	Value  string `json:"value"`
}

// Resolve returns the merge spec for shard rows of ncols columns: when
// Columns is -1 (a wildcard) or a column index is negative, a copy with
// Columns = ncols - Derived and every index made absolute; otherwise m
// itself. It returns nil if ncols is too small for the derived columns.
func (m *Merge) Resolve(ncols int) *Merge {
	if m == nil {
		return nil
	}
	neg := m.Columns < 0
	for _, k := range m.OrderBy {
		neg = neg || k.Column < 0
	}
	for _, k := range m.Resort {
		neg = neg || k.Column < 0
	}
	for _, g := range m.GroupBy {
		neg = neg || g < 0
	}
	for _, a := range m.Aggregates {
		neg = neg || a.Column < 0 || a.SumColumn < 0 || a.CountColumn < 0
	}
	for _, c := range m.Having {
		neg = neg || c.Column < 0
	}
	if !neg {
		return m
	}
	if ncols-m.Derived < 1 {
		return nil
	}
	abs := func(c int) int {
		if c < 0 {
			return ncols + c
		}
		return c
	}
	r := *m
	if r.Columns < 0 {
		r.Columns = ncols - m.Derived
	}
	r.OrderBy = append([]SortKey(nil), m.OrderBy...)
	for i := range r.OrderBy {
		r.OrderBy[i].Column = abs(r.OrderBy[i].Column)
	}
	r.Resort = append([]SortKey(nil), m.Resort...)
	for i := range r.Resort {
		r.Resort[i].Column = abs(r.Resort[i].Column)
	}
	r.GroupBy = append([]int(nil), m.GroupBy...)
	for i := range r.GroupBy {
		r.GroupBy[i] = abs(r.GroupBy[i])
	}
	r.Aggregates = append([]Aggregate(nil), m.Aggregates...)
	for i := range r.Aggregates {
		a := &r.Aggregates[i]
		a.Column = abs(a.Column)
		if a.Kind == AggAvg {
			a.SumColumn, a.CountColumn = abs(a.SumColumn), abs(a.CountColumn)
		}
	}
	r.Having = append([]Cond(nil), m.Having...)
	for i := range r.Having {
		r.Having[i].Column = abs(r.Having[i].Column)
	}
	return &r
}

func (k AggKind) String() string {
	switch k {
	case AggCount:
		return "count"
	case AggSum:
		return "sum"
	case AggMin:
		return "min"
	case AggMax:
		return "max"
	case AggAvg:
		return "avg"
	}
	return "unknown"
}

// MarshalText makes aggregates readable in JSON (the admin explain).
func (k AggKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

func (o CmpOp) String() string {
	switch o {
	case OpEQ:
		return "="
	case OpNE:
		return "<>"
	case OpLT:
		return "<"
	case OpLE:
		return "<="
	case OpGT:
		return ">"
	case OpGE:
		return ">="
	}
	return "?"
}

// MarshalText makes HAVING operators readable in JSON.
func (o CmpOp) MarshalText() ([]byte, error) { return []byte(o.String()), nil }
