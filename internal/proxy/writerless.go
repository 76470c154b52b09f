package proxy

import (
	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// errCodeReadOnly is ER_OPTION_PREVENTS_STATEMENT, what MariaDB answers to a
// write on a server running with read_only.
const errCodeReadOnly = 1290

// refuseWithoutWriter returns the error for a statement that needs the
// writer on a read/write splitting listener configured without one (see
// route.RWRouter.NoWriter), or nil. It holds whether or not the session is
// pinned (to a reader), so no write ever reaches a replica.
func refuseWithoutWriter(rt *runtime, f *sqlparse.Facts) error {
	if rt.rw == nil || !rt.rw.NoWriter() || !needsWriter(f) {
		return nil
	}
	return mysql.NewError(errCodeReadOnly, "HY000",
		"pisa-proxy listener %q has no node with role \"readwrite\", so it cannot execute this statement "+
			"(writes, transactions and locking reads need the writer; add a [[mysql.node]] with role = \"readwrite\")", rt.name)
}

// needsWriter reports whether a statement can only run on a writer: it
// writes data or schema, administers the server, opens a transaction
// (BEGIN, SET autocommit=0) or takes locks for writing, or it could not be
// parsed (so it might do any of that). Reads, SET, USE and the session
// state they create are fine on a reader; COMMIT and ROLLBACK are no-ops
// there (no transaction can be open).
func needsWriter(f *sqlparse.Facts) bool {
	if f == nil {
		return false
	}
	if f.ParseErr != nil || f.AutocommitOff || f.LockingRead {
		return true
	}
	switch f.Kind {
	case sqlparse.KindBegin, sqlparse.KindSavepoint, sqlparse.KindLockTables:
		return true
	}
	switch f.Class {
	case sqlparse.ClassWrite, sqlparse.ClassDDL, sqlparse.ClassAdmin:
		return true
	}
	return false
}
