package proxy

import (
	"testing"

	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

func TestTxControl(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want sqlparse.Kind
	}{
		{"BEGIN", sqlparse.KindBegin},
		{" begin work ;", sqlparse.KindBegin},
		{"/* c */ BEGIN", sqlparse.KindBegin},
		{"START TRANSACTION READ ONLY", sqlparse.KindBegin},
		{"start transaction with consistent snapshot", sqlparse.KindBegin},
		{"COMMIT", sqlparse.KindCommit},
		{"commit work", sqlparse.KindCommit},
		{"ROLLBACK", sqlparse.KindRollback},
		{"COMMIT AND CHAIN", sqlparse.KindOther},
		{"ROLLBACK TO SAVEPOINT s", sqlparse.KindOther},
		{"BEGIN NOT ATOMIC SELECT 1; END", sqlparse.KindOther},
		{"BEGIN; INSERT INTO t VALUES (1)", sqlparse.KindOther},
		{"START TRANSACTION; SELECT 1", sqlparse.KindOther},
		{"SELECT 'BEGIN'", sqlparse.KindOther},
		{"", sqlparse.KindOther},
		{"START SLAVE", sqlparse.KindOther},
	} {
		if got := txControl([]byte(tc.sql)); got != tc.want {
			t.Errorf("txControl(%q) = %v, want %v", tc.sql, got, tc.want)
		}
	}
}
