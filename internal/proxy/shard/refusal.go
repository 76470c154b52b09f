package shard

import (
	"errors"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// Reason says why the sharding layer refused a statement: the reason label
// of pisa_proxy_sharding_refusals_total (docs/sharding.md#metrics lists
// them). The set is closed: every refusal names one of these constants.
type Reason uint8

const (
	// ReasonOther: a 1235 that carries no reason (none should).
	ReasonOther Reason = iota
	// ReasonTransaction: a statement the session's transaction (or pinned
	// connection) cannot take: several shards or another node inside a
	// transaction, BEGIN forms XA cannot honour, a write to a broadcast
	// table on several nodes without distributed transactions.
	ReasonTransaction
	// ReasonJoin: the statement names another table besides the sharded
	// (or broadcast) one, or the sharded table twice, and the join cannot
	// run on each shard (cross-shard JOIN, bound tables joined without
	// their key equality, multi-table DELETE, broadcast tables on
	// different nodes).
	ReasonJoin
	// ReasonSubquery: a subquery or derived table on a sharded table.
	ReasonSubquery
	// ReasonUnion: UNION on a sharded table.
	ReasonUnion
	// ReasonCTE: WITH on a sharded table.
	ReasonCTE
	// ReasonWindow: window functions on a sharded table.
	ReasonWindow
	// ReasonMultiStatement: several statements in one query text.
	ReasonMultiStatement
	// ReasonStatement: a kind of statement not run on sharded or broadcast
	// tables (CREATE TABLE ... SELECT/LIKE, RENAME, views, INSERT ...
	// SELECT, SELECT ... INTO, LOCK TABLES, LOAD DATA, SHOW other than
	// CREATE TABLE/COLUMNS/INDEX, LAST_INSERT_ID() after a generated key
	// other than SELECT LAST_INSERT_ID()...).
	ReasonStatement
	// ReasonExplain: EXPLAIN ANALYZE or an unknown format, EXPLAIN of a
	// statement on several shards or of a statement kind it does not
	// plan.
	ReasonExplain
	// ReasonShardingKey: a sharding key that cannot be changed or routed
	// by (UPDATE or ON DUPLICATE KEY UPDATE of it; an INSERT row's key
	// NULL, not an integer, not a literal or parameter).
	ReasonShardingKey
	// ReasonInsert: an INSERT that does not give the sharding column (no
	// column list, the column left out where no key is generated).
	ReasonInsert
	// ReasonLockingRead: FOR UPDATE / LOCK IN SHARE MODE on several
	// shards.
	ReasonLockingRead
	// ReasonAggregate: an aggregate the merge cannot compute exactly
	// (inside an expression, other than COUNT/SUM/MIN/MAX/AVG, DISTINCT of
	// a column other than the key, SELECT * with aggregates, a result
	// column of a type it cannot add up).
	ReasonAggregate
	// ReasonGroupBy: GROUP BY a position or an aggregate, WITH ROLLUP.
	ReasonGroupBy
	// ReasonHaving: HAVING other than ANDed `aggregate op literal`.
	ReasonHaving
	// ReasonDistinct: SELECT DISTINCT * or DISTINCT with ORDER BY / GROUP
	// BY columns it does not select.
	ReasonDistinct
	// ReasonOrderBy: ORDER BY a parameter position, an ambiguous name, an
	// expression of aggregates.
	ReasonOrderBy
	// ReasonLimit: LIMIT with a parameter offset, SQL_CALC_FOUND_ROWS,
	// UPDATE/DELETE with ORDER BY or LIMIT, on several shards.
	ReasonLimit
	// ReasonCollation: the merge would compare a column the proxy cannot
	// compare as the server does (unknown or mismatched collation, a
	// joined table's text column, ENUM/SET).
	ReasonCollation
	// ReasonPreparedStatement: SQL PREPARE of a statement on a sharded
	// table, PREPARE ... FROM @variable, COM_STMT_SEND_LONG_DATA, cursors,
	// COM_STMT_BULK_EXECUTE.
	ReasonPreparedStatement
	// ReasonUnparsed: a statement naming a sharded table that the
	// planner's parser cannot parse.
	ReasonUnparsed
	// ReasonInternal: what should not happen (a planner panic, a rewrite
	// that fails, shards' results that do not match the plan): worth a
	// bug report.
	ReasonInternal

	numReasons
)

var reasonNames = [numReasons]string{
	ReasonOther:             "other",
	ReasonTransaction:       "transaction",
	ReasonJoin:              "join",
	ReasonSubquery:          "subquery",
	ReasonUnion:             "union",
	ReasonCTE:               "cte",
	ReasonWindow:            "window",
	ReasonMultiStatement:    "multi_statement",
	ReasonStatement:         "statement",
	ReasonExplain:           "explain",
	ReasonShardingKey:       "sharding_key",
	ReasonInsert:            "insert",
	ReasonLockingRead:       "locking_read",
	ReasonAggregate:         "aggregate",
	ReasonGroupBy:           "group_by",
	ReasonHaving:            "having",
	ReasonDistinct:          "distinct",
	ReasonOrderBy:           "order_by",
	ReasonLimit:             "limit",
	ReasonCollation:         "collation",
	ReasonPreparedStatement: "prepared_statement",
	ReasonUnparsed:          "unparsed",
	ReasonInternal:          "internal",
}

// String returns the metric label.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "other"
}

// Reasons returns every reason, ReasonOther first.
func Reasons() []Reason {
	out := make([]Reason, numReasons)
	for i := range out {
		out[i] = Reason(i)
	}
	return out
}

// Refusal is a refusal of the sharding layer: the ERR 1235 the client gets
// (Err, which errors.As finds) and why (for the metric; never sent).
type Refusal struct {
	Reason Reason
	Err    *mysql.Error
}

func (r *Refusal) Error() string { return r.Err.Error() }
func (r *Refusal) Unwrap() error { return r.Err }

// Refuse returns ERR 1235 (SQLSTATE 42000) with the message format and
// args make (as mysql.NewError does: format is the message itself when
// there are no args), refused for reason r.
func Refuse(r Reason, format string, args ...any) error {
	return &Refusal{Reason: r, Err: mysql.NewError(ErrCodeNotSupported, "42000", format, args...)}
}

// ReasonOf returns the reason err carries, ReasonOther when it carries
// none.
func ReasonOf(err error) Reason {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return ReasonOther
}
