package crypt

import (
	"bytes"
	"context"
	"testing"

	_ "github.com/go-sql-driver/mysql"

	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// TestRotateAndMigrate on MariaDB: values written under k1 are re-encrypted
// under the active k2 (and still read back), and a plain column is
// encrypted into the cipher and assisted columns.
func TestRotateAndMigrate(t *testing.T) {
	root := testutil.Open(t, testutil.MariaDBDSN(t))
	if _, err := root.Exec("CREATE DATABASE IF NOT EXISTS pisa_crypt_rotate"); err != nil {
		t.Fatal(err)
	}
	// A database of its own: the test's schema names the table users.
	db := testutil.Open(t, "root:@tcp("+testutil.MariaDBAddr(t)+")/pisa_crypt_rotate")
	for _, q := range []string{
		"DROP TABLE IF EXISTS users",
		"CREATE TABLE users (id INT PRIMARY KEY, email_c VARBINARY(200), email_a BINARY(32), email_p VARCHAR(64), phone_c VARBINARY(200))",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS users") })
	old := testSchema(t) // active k1
	c := old.Table("users").Column("email")
	for i := 1; i <= 7; i++ {
		p := []byte("user" + string(rune('0'+i)))
		if _, err := db.Exec("INSERT INTO users VALUES (?, ?, ?, NULL, NULL)", i, old.Keys.Encrypt(nil, p, c.aad), old.Keys.Assist(nil, p)); err != nil {
			t.Fatal(err)
		}
	}
	// Rows 8, 9: plaintext only (a table being migrated).
	db.Exec("INSERT INTO users VALUES (8, NULL, NULL, 'eight@x', NULL), (9, NULL, NULL, 'nine@x', NULL)")
	cl := testClaim()
	cl.ActiveKey = "k2"
	s, err := Compile(cl)
	if err != nil {
		t.Fatal(err)
	}
	var batches int
	pr, err := s.Rotate(context.Background(), db, RotateOptions{Table: "users", KeyColumn: "id", Columns: []string{"email"}, Batch: 3,
		Progress: func(RotateProgress) { batches++ }})
	if err != nil {
		t.Fatal(err)
	}
	if pr.Scanned != 7 || pr.Updated != 7 || batches != 3 {
		t.Fatalf("rotate: %+v in %d batches, want 7 scanned and updated in 3", pr, batches)
	}
	rows, err := db.Query("SELECT id, email_c FROM users WHERE email_c IS NOT NULL ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int
		var ct []byte
		if err := rows.Scan(&id, &ct); err != nil {
			t.Fatal(err)
		}
		if k, _ := KeyID(ct); k != "k2" {
			t.Fatalf("row %d under key %q after rotation", id, k)
		}
		if pt, err := s.Keys.Decrypt(nil, ct, c.aad); err != nil || string(pt) != "user"+string(rune('0'+id)) {
			t.Fatalf("row %d decrypts to %q, %v", id, pt, err)
		}
	}
	rows.Close()
	// A second run has nothing to do.
	if pr, err := s.Rotate(context.Background(), db, RotateOptions{Table: "users", KeyColumn: "id", Columns: []string{"email"}}); err != nil || pr.Updated != 0 {
		t.Fatalf("second rotation: %+v %v", pr, err)
	}
	// Migration from the plain column.
	pr, err = s.Rotate(context.Background(), db, RotateOptions{Table: "users", KeyColumn: "id", Columns: []string{"email"}, FromPlain: true})
	if err != nil || pr.Updated != 2 {
		t.Fatalf("migrate: %+v %v", pr, err)
	}
	var ct, as []byte
	if err := db.QueryRow("SELECT email_c, email_a FROM users WHERE id = 9").Scan(&ct, &as); err != nil {
		t.Fatal(err)
	}
	if pt, err := s.Keys.Decrypt(nil, ct, c.aad); err != nil || string(pt) != "nine@x" || !bytes.Equal(as, s.Keys.Assist(nil, []byte("nine@x"))) {
		t.Fatalf("migrated row: %q %v", pt, err)
	}
	// A column without a plain column cannot be migrated.
	if _, err := s.Rotate(context.Background(), db, RotateOptions{Table: "users", KeyColumn: "id", Columns: []string{"phone"}, FromPlain: true}); err == nil {
		t.Fatal("migrate of a column without plain_column accepted")
	}
}
