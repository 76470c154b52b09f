package proxy

import (
	"bytes"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// The security claim's differential test: the same random statements on a
// plaintext table read directly on MariaDB (the reference) and on an
// encrypted table through the proxy. Every answer must equal the
// reference's, or be the documented ERR 1235; and the encrypted table's
// stored bytes, read directly, must never contain a plaintext value.
// PISA_TEST_SEED reproduces a run.

const (
	secRefDB = "pisa_sec_ref"
	secEncDB = "pisa_sec_enc"
	// Equality on an encrypted column compares assisted (HMAC) values:
	// binary equality. The reference uses binary collations so that '='
	// means the same on both sides (docs/security-claim.md).
	secRefSchema = `(id BIGINT PRIMARY KEY, k INT NULL, email VARCHAR(64) COLLATE utf8mb4_bin NULL,
		phone VARCHAR(32) COLLATE utf8mb4_bin NULL, note VARCHAR(20) NULL)`
	secEncSchema = `(id BIGINT PRIMARY KEY, k INT NULL, email_cipher VARBINARY(200) NULL,
		email_assisted BINARY(32) NULL, phone_cipher VARBINARY(200) NULL, note VARCHAR(20) NULL,
		KEY (email_assisted))`
)

var secEmails = []string{"alice@example.com", "bob@example.org", "Carol@Example.com", "carol@example.com",
	"dave+x@host.io", "élodie@exemple.fr", "'quote'@x", `back\slash@x`, "emoji😀@x", ""}

var secPhones = []string{"+33 6 12 34 56 78", "555-0100", "555-0199", "0000"}

func secClaim() *proxyconfig.SecurityClaim {
	return &proxyconfig.SecurityClaim{
		Keys: []proxyconfig.EncryptionKey{
			{ID: "k1", Value: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"},
			{ID: "k2", Value: "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"},
			{ID: "hmac", Value: "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"},
		},
		ActiveKey:   "k1",
		AssistedKey: "hmac",
		Tables: []proxyconfig.EncryptedTable{{Name: "t_sec", Columns: []proxyconfig.EncryptedColumn{
			{Name: "email", CipherColumn: "email_cipher", AssistedColumn: "email_assisted"},
			{Name: "phone", CipherColumn: "phone_cipher"},
		}}},
	}
}

type secGen struct{ r *rand.Rand }

func (g *secGen) id() int { return 1 + g.r.IntN(40) }

func sqlQuote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", "''") + "'"
}

func (g *secGen) email() string {
	if g.r.IntN(8) == 0 {
		return "NULL"
	}
	return sqlQuote(secEmails[g.r.IntN(len(secEmails))])
}

func (g *secGen) phone() string {
	if g.r.IntN(5) == 0 {
		return "NULL"
	}
	return sqlQuote(secPhones[g.r.IntN(len(secPhones))])
}

func (g *secGen) cond() string {
	switch g.r.IntN(9) {
	case 0, 1:
		return "email = " + g.email()
	case 2:
		n := 1 + g.r.IntN(3)
		vs := make([]string, n)
		for i := range vs {
			vs[i] = g.email()
		}
		return "email IN (" + strings.Join(vs, ", ") + ")"
	case 3:
		return []string{"email IS NULL", "phone IS NOT NULL", "email IS NOT NULL"}[g.r.IntN(3)]
	case 4:
		return "email <> " + g.email()
	case 5:
		return "id = " + strconv.Itoa(g.id())
	case 6:
		return fmt.Sprintf("k > %d", g.r.IntN(5))
	case 7:
		return "email <=> " + g.email() + " AND id < " + strconv.Itoa(g.id())
	}
	return "(email = " + g.email() + " OR id = " + strconv.Itoa(g.id()) + ")"
}

func (g *secGen) insert() string {
	rows := make([]string, 1+g.r.IntN(3))
	for i := range rows {
		rows[i] = fmt.Sprintf("(%d, %d, %s, %s, 'n%d')", g.id(), g.r.IntN(6), g.email(), g.phone(), g.r.IntN(9))
	}
	return "INSERT IGNORE INTO t_sec (id, k, email, phone, note) VALUES " + strings.Join(rows, ", ")
}

func (g *secGen) dml() string {
	switch g.r.IntN(4) {
	case 0:
		return g.insert()
	case 1:
		return "UPDATE t_sec SET email = " + g.email() + " WHERE " + g.cond()
	case 2:
		return "UPDATE t_sec SET phone = " + g.phone() + ", k = k + 1 WHERE " + g.cond()
	}
	return "DELETE FROM t_sec WHERE " + g.cond()
}

// query returns a SELECT; refused is true for those the proxy must
// refuse with 1235.
func (g *secGen) query() (q string, refused bool) {
	switch g.r.IntN(10) {
	case 0:
		return "SELECT * FROM t_sec WHERE " + g.cond() + " ORDER BY id", false
	case 1:
		return "SELECT a.id, b.id, a.email FROM t_sec a JOIN t_sec b ON a.email = b.email WHERE a.id < b.id ORDER BY a.id, b.id", false
	case 2:
		return "SELECT COUNT(*) FROM t_sec WHERE " + g.cond(), false
	case 3:
		return []string{"SELECT id FROM t_sec ORDER BY email, id", "SELECT id FROM t_sec WHERE email LIKE 'a%'",
			"SELECT MAX(phone) FROM t_sec", "SELECT id FROM t_sec WHERE email > 'b'", "SELECT UPPER(email) FROM t_sec",
			"SELECT email, COUNT(*) FROM t_sec GROUP BY email"}[g.r.IntN(6)], true
	}
	return "SELECT id, email, phone AS p, note FROM t_sec WHERE " + g.cond() + " ORDER BY id", false
}

// paramizeEmail turns the first email literal after "email = " into a
// parameter (prepared statements, binary protocol).
func paramizeEmail(q string) (string, []any) {
	i := strings.Index(q, "email = '")
	if i < 0 {
		return q, nil
	}
	j := i + len("email = ")
	// the literal ends at the first quote not doubled
	k := j + 1
	var b strings.Builder
	for k < len(q) {
		c := q[k]
		if c == '\\' && k+1 < len(q) {
			b.WriteByte(q[k+1])
			k += 2
			continue
		}
		if c == '\'' {
			if k+1 < len(q) && q[k+1] == '\'' {
				b.WriteByte('\'')
				k += 2
				continue
			}
			break
		}
		b.WriteByte(c)
		k++
	}
	return q[:j] + "?" + q[k+1:], []any{b.String()}
}

func TestSecurityClaimDifferential(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PISA_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	statements := 500
	if testing.Short() {
		statements = 100
	}
	t.Logf("seed %d (PISA_TEST_SEED reproduces it)", seed)
	addr := testutil.MariaDBAddr(t)
	root := testutil.Open(t, testutil.MariaDBDSN(t))
	for _, db := range []string{secRefDB, secEncDB} {
		if _, err := root.Exec("CREATE DATABASE IF NOT EXISTS " + db); err != nil {
			t.Fatal(err)
		}
	}
	ref := testutil.Open(t, "root:@tcp("+addr+")/"+secRefDB)
	raw := testutil.Open(t, "root:@tcp("+addr+")/"+secEncDB)
	for _, s := range []struct {
		db     *sql.DB
		schema string
	}{{ref, secRefSchema}, {raw, secEncSchema}} {
		if _, err := s.db.Exec("DROP TABLE IF EXISTS t_sec"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.db.Exec("CREATE TABLE t_sec " + s.schema); err != nil {
			t.Fatal(err)
		}
	}
	cfg := baseConfig(addr)
	cfg.Proxy.Config[0].DB = secEncDB
	cfg.Proxy.Config[0].SecurityClaim = secClaim()
	tp := startProxy(t, cfg)
	enc := openDB(t, strings.Replace(tp.dsn(""), "/test", "/"+secEncDB, 1))
	g := &secGen{r: rand.New(rand.NewPCG(seed, 17))}
	for i := 0; i < 25; i++ {
		q := g.insert()
		for _, db := range []*sql.DB{ref, enc} {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("seed %d: %s: %v", seed, q, err)
			}
		}
	}
	// The stored bytes, read directly: no plaintext anywhere, after the
	// first inserts and at the end.
	stored := checkStored(t, raw)
	if stored == 0 {
		t.Fatal("no encrypted value stored by the first inserts")
	}
	refused, ran, prepared := 0, 0, 0
	for i := 0; i < statements; i++ {
		if g.r.IntN(4) == 0 {
			q := g.dml()
			var args []any
			if g.r.IntN(3) == 0 {
				q, args = paramizeEmail(q)
			}
			rr, rerr := ref.Exec(q, args...)
			er, eerr := enc.Exec(q, args...)
			if (rerr == nil) != (eerr == nil) {
				t.Fatalf("seed %d: %s %q: reference %v, encrypted %v", seed, q, args, rerr, eerr)
			}
			if rerr == nil {
				rn, _ := rr.RowsAffected()
				en, _ := er.RowsAffected()
				if rn != en {
					t.Fatalf("seed %d: %s %q: reference affected %d rows, encrypted %d", seed, q, args, rn, en)
				}
			}
			ran++
			continue
		}
		q, mustRefuse := g.query()
		var args []any
		if g.r.IntN(2) == 0 {
			q, args = paramizeEmail(q)
			if args != nil {
				prepared++
			}
		}
		want, rerr := diffRows(ref, q, args...)
		got, eerr := diffRows(enc, q, args...)
		if mustRefuse {
			if mysqlErrCode(eerr) != 1235 {
				t.Fatalf("seed %d: %s: got %v (%d rows), want ERR 1235", seed, q, eerr, len(got))
			}
			refused++
			continue
		}
		if rerr != nil || eerr != nil {
			t.Fatalf("seed %d: %s %q: reference %v, encrypted %v", seed, q, args, rerr, eerr)
		}
		ran++
		if !slices.Equal(want, got) {
			t.Fatalf("seed %d: %s %q:\nreference (%d rows): %q\nencrypted (%d rows): %q", seed, q, args, len(want), want, len(got), got)
		}
	}
	want, _ := diffRows(ref, "SELECT * FROM t_sec ORDER BY id")
	got, err := diffRows(enc, "SELECT * FROM t_sec ORDER BY id")
	if err != nil || !slices.Equal(want, got) {
		t.Fatalf("seed %d: final table differs (%v):\nreference %q\nencrypted %q", seed, err, want, got)
	}
	stored += checkStored(t, raw)
	t.Logf("%d statements answered like the reference (%d prepared), %d refused with 1235 as expected, %d encrypted values checked",
		ran, prepared, refused, stored)
}

// checkStored reads the encrypted table directly and fails if a stored
// cipher or assisted value contains a plaintext of the workload. It
// returns how many encrypted values it read.
func checkStored(t *testing.T, raw *sql.DB) int {
	t.Helper()
	rows, err := raw.Query("SELECT id, email_cipher, email_assisted, phone_cipher FROM t_sec")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	stored := 0
	for rows.Next() {
		var id int64
		var ec, ea, pc []byte
		if err := rows.Scan(&id, &ec, &ea, &pc); err != nil {
			t.Fatal(err)
		}
		for _, v := range [][]byte{ec, ea, pc} {
			if v != nil {
				stored++
			}
			for _, p := range append(slices.Clone(secEmails), secPhones...) {
				if len(p) >= 4 && bytes.Contains(v, []byte(p)) {
					t.Fatalf("row %d: stored bytes contain the plaintext %q", id, p)
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return stored
}
