package backend

import "testing"

// After COM_RESET_CONNECTION MariaDB keeps the current database but sets
// character_set_database and collation_database to the server's: a
// connection reset at a database with another character set must have that
// database's again, or the next session on it reads the server's (the leak
// TestSessionStateNeverLeaks caught once).
func TestResetKeepsDatabaseCharset(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 1})
	c := mustGet(t, p, Variant{})
	mustExec(t, c, "CREATE DATABASE IF NOT EXISTS pisa_latin1 CHARACTER SET latin1 COLLATE latin1_swedish_ci")
	mustExec(t, c, "USE pisa_latin1")
	const want = "pisa_latin1 latin1 latin1_swedish_ci"
	q := "SELECT CONCAT(DATABASE(), ' ', @@character_set_database, ' ', @@collation_database)"
	if got := mustRow(t, c, q); got[0] != want {
		t.Fatalf("before reset: %q, want %q", got, want)
	}
	if err := c.reset(); err != nil {
		t.Fatal(err)
	}
	if got := mustRow(t, c, q); got[0] != want {
		t.Fatalf("after reset: %q, want %q", got, want)
	}
	if c.DB() != "pisa_latin1" {
		t.Fatalf("DB() after reset: %q", c.DB())
	}
}
