// Package sqlparse classifies SQL statements for routing and governance:
// statement kind, tables, read-only or not, locking reads, side effects, and
// a normalized fingerprint with its digest. It wraps the TiDB parser and
// caches results by SQL text.
package sqlparse

// Kind is the statement kind of the first statement of a query.
type Kind uint8

const (
	KindOther Kind = iota
	KindSelect
	KindInsert
	KindUpdate
	KindDelete
	KindReplace
	KindLoadData
	KindCall
	KindBegin    // BEGIN, START TRANSACTION
	KindCommit   // COMMIT
	KindRollback // ROLLBACK (also ROLLBACK TO SAVEPOINT)
	KindSavepoint
	KindSet // SET (variables, NAMES, TRANSACTION)
	KindUse
	KindShow
	KindExplain
	KindDDL     // CREATE, ALTER, DROP, TRUNCATE, RENAME
	KindAdmin   // GRANT, REVOKE, FLUSH, KILL, user management, ANALYZE...
	KindPrepare // SQL-level PREPARE
	KindExecute // SQL-level EXECUTE
	KindDeallocate
	KindLockTables
	KindUnlockTables
	KindDo
)

var kindNames = [...]string{
	KindOther:        "other",
	KindSelect:       "select",
	KindInsert:       "insert",
	KindUpdate:       "update",
	KindDelete:       "delete",
	KindReplace:      "replace",
	KindLoadData:     "load_data",
	KindCall:         "call",
	KindBegin:        "begin",
	KindCommit:       "commit",
	KindRollback:     "rollback",
	KindSavepoint:    "savepoint",
	KindSet:          "set",
	KindUse:          "use",
	KindShow:         "show",
	KindExplain:      "explain",
	KindDDL:          "ddl",
	KindAdmin:        "admin",
	KindPrepare:      "prepare",
	KindExecute:      "execute",
	KindDeallocate:   "deallocate",
	KindLockTables:   "lock_tables",
	KindUnlockTables: "unlock_tables",
	KindDo:           "do",
}

// String returns a lower-case name usable as a metric label.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Class is the coarse class used by access control.
type Class uint8

const (
	ClassRead Class = iota
	ClassWrite
	ClassDDL
	ClassAdmin
	ClassTransaction // BEGIN/COMMIT/ROLLBACK/SAVEPOINT, SET, USE: session control
)

var classNames = [...]string{
	ClassRead:        "read",
	ClassWrite:       "write",
	ClassDDL:         "ddl",
	ClassAdmin:       "admin",
	ClassTransaction: "transaction",
}

// String returns a lower-case name usable as a metric label.
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "unknown"
}

// classRank orders classes by how much privilege they need; the class of a
// multi-statement text is the highest ranked one among its statements.
func classRank(c Class) int {
	switch c {
	case ClassRead:
		return 0
	case ClassTransaction:
		return 1
	case ClassWrite:
		return 2
	case ClassDDL:
		return 3
	default: // ClassAdmin and anything unknown
		return 4
	}
}

// Table is a table a statement refers to. Schema is empty when the
// statement did not qualify it (the session's schema applies).
type Table struct {
	Schema string
	Name   string
}

// Facts is what the proxy knows about one query text. Facts values are
// shared through the cache: treat them as read-only.
type Facts struct {
	Kind  Kind
	Class Class
	// ReadOnly: safe on a replica (SELECT/SHOW/EXPLAIN/DO without locking
	// reads, INTO, side-effect functions or user-variable assignments).
	ReadOnly bool
	// LockingRead: SELECT ... FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE.
	LockingRead bool
	// SideEffects: calls a function with effects beyond the result
	// (GET_LOCK, RELEASE_LOCK, RELEASE_ALL_LOCKS, IS_USED_LOCK..., SLEEP,
	// LAST_INSERT_ID(expr), NEXTVAL, SETVAL, LASTVAL, MASTER_POS_WAIT,
	// MASTER_GTID_WAIT, BENCHMARK...).
	SideEffects bool
	// Tables referenced (deduplicated, in order of appearance).
	Tables []Table
	// AutocommitOff: SET autocommit = 0/OFF; AutocommitOn: = 1/ON.
	AutocommitOff, AutocommitOn bool
	// UserVars: reads or assigns user variables (@x).
	UserVars bool
	// TempTable: CREATE/DROP TEMPORARY TABLE.
	TempTable bool
	// Locks: LOCK TABLES or GET_LOCK().
	Locks bool
	// Multi: the text holds more than one statement.
	Multi bool
	// PrevResult: reads what the previous statement left on its connection
	// (LAST_INSERT_ID(), ROW_COUNT(), FOUND_ROWS(), @@warning_count,
	// @@error_count, @@identity, @@last_insert_id, SHOW WARNINGS/ERRORS,
	// SHOW PROFILE[S]). It must run on the backend connection that ran the
	// previous statement; ReadOnly is false.
	PrevResult bool
	// ParseErr is the parser's error; the other fields then come from a
	// conservative fallback (Kind from the first keyword, ReadOnly false).
	ParseErr error
	// Fingerprint is the normalized statement (literals replaced by ?,
	// whitespace and case normalized); Digest is its hex SHA-256 digest.
	Fingerprint string
	Digest      string
}
