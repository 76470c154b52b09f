package crypt

import (
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// The proxy's own cost of the security claim, without network or server:
// rewriting a text point select and an insert (parse, rewrite, HMAC or
// AES-GCM, restore), rebuilding a prepared execute's parameters, and
// decrypting one result row.
func BenchmarkRewrite(b *testing.B) {
	s := testSchema(b)
	p := newTestParser()
	for _, c := range []struct{ name, sql string }{
		{"point_select", "SELECT id, email FROM users WHERE email = 'user42@example.com'"},
		{"insert", "INSERT INTO users (id, email, c) VALUES (42, 'user42@example.com', 'x')"},
		{"plain_table", "SELECT id, email FROM other WHERE email = 'user42@example.com'"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := s.Rewrite(p, c.sql); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkExecuteParams(b *testing.B) {
	s := testSchema(b)
	r, err := s.Rewrite(newTestParser(), "SELECT id, email FROM users WHERE email = ?")
	if err != nil {
		b.Fatal(err)
	}
	st := NewStmt(&r)
	pk := []byte{0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, typeVarString, 0}
	pk = mysql.AppendLenEncString(pk, "user42@example.com")
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := s.Execute(buf[:0], st, pk); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecryptRow(b *testing.B) {
	s := testSchema(b)
	tr := s.NewTransformer("app")
	if _, err := tr.Columns([][]byte{colDefBytes("users", "id", "id", typeLong, 0, 63),
		colDefBytes("users", "email", "email_c", 0xfc, flagBinary|flagBlob, 63)}); err != nil {
		b.Fatal(err)
	}
	row := textRow([]byte("42"), s.Keys.Encrypt(nil, []byte("user42@example.com"), s.Table("users").Column("email").aad))
	out := make([]byte, 0, 256)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := tr.Row(out[:0], row, false); err != nil {
			b.Fatal(err)
		}
	}
}
