package crypt

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

const (
	testKey1 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	testKey2 = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"
	testHMAC = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
)

func testClaim() *proxyconfig.SecurityClaim {
	return &proxyconfig.SecurityClaim{
		Keys: []proxyconfig.EncryptionKey{
			{ID: "k1", Value: testKey1}, {ID: "k2", Value: testKey2}, {ID: "h", Value: testHMAC},
		},
		ActiveKey:   "k1",
		AssistedKey: "h",
		Tables: []proxyconfig.EncryptedTable{{
			Name: "users",
			Columns: []proxyconfig.EncryptedColumn{
				{Name: "email", CipherColumn: "email_c", AssistedColumn: "email_a", PlainColumn: "email_p"},
				{Name: "phone", CipherColumn: "phone_c"},
			},
		}, {
			Name:    "orders",
			Columns: []proxyconfig.EncryptedColumn{{Name: "email", CipherColumn: "oe_c", AssistedColumn: "oe_a"}},
		}},
		Masking: []proxyconfig.MaskingRule{{Name: "m1", Users: []string{"ro"}, Table: "people", Column: "name", Mode: "keep", KeepFirst: 1}},
	}
}

func testSchema(t testing.TB) *Schema {
	t.Helper()
	s, err := Compile(testClaim())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var hexRE = regexp.MustCompile(`X'[0-9a-f]+'`)

func TestRewrite(t *testing.T) {
	s := testSchema(t)
	p := sqlparse.New(sqlparse.Options{})
	cases := []struct {
		in, want string
		touched  bool
		params   string
	}{
		{in: "SELECT 1", want: "SELECT 1"},
		{in: "SELECT * FROM other WHERE email = 'x'", want: "SELECT * FROM other WHERE email = 'x'"},
		{in: "SELECT id, email FROM users WHERE email = 'a@b'", want: "SELECT `id`,`email_c` AS `email` FROM `users` WHERE `email_a`=X'..'", touched: true},
		{in: "select u.email e from users u where u.email in ('a', ?, NULL) and id > 3", want: "SELECT `u`.`email_c` AS `e` FROM `users` AS `u` WHERE `u`.`email_a` IN (X'..',?,NULL) AND `id`>3", touched: true, params: "0:assist"},
		{in: "SELECT * FROM users", want: "SELECT * FROM users", touched: true},
		{in: "SELECT * FROM people", want: "SELECT * FROM people", touched: true},
		{in: "INSERT INTO users (id, email, phone) VALUES (1, 'a@b', ?), (2, NULL, '555')", want: "INSERT INTO `users` (`id`,`email_c`,`phone_c`,`email_a`,`email_p`) VALUES (1,X'..',?,X'..','a@b'),(2,NULL,X'..',NULL,NULL)", touched: true, params: "0:encrypt"},
		{in: "INSERT INTO users (id, email) VALUES (?, ?)", want: "INSERT INTO `users` (`id`,`email_c`,`email_a`,`email_p`) VALUES (?,?,?,?)", touched: true, params: "0:copy 1:encrypt 1:assist 1:copy"},
		{in: "UPDATE users SET email = ?, n = n + 1 WHERE email = ? AND phone IS NULL", want: "UPDATE `users` SET `email_c`=IF(`email_a`<=>?, `email_c`, ?), `n`=`n`+1, `email_a`=?, `email_p`=? WHERE `email_a`=? AND `phone_c` IS NULL", touched: true, params: "0:assist 0:encrypt 0:assist 0:copy 1:assist"},
		{in: "UPDATE users u SET u.phone = '1', u.email = 'x'", want: "UPDATE `users` AS `u` SET `u`.`phone_c`=X'..', `u`.`email_c`=IF(`u`.`email_a`<=>X'..', `u`.`email_c`, X'..'), `u`.`email_a`=X'..', `u`.`email_p`='x'", touched: true},
		{in: "INSERT INTO users SET id = 1, email = 'a'", want: "INSERT INTO `users` SET `id`=1,`email_c`=X'..',`email_a`=X'..',`email_p`='a'", touched: true},
		{in: "INSERT INTO users (id, email) VALUES (1, 'a') ON DUPLICATE KEY UPDATE phone = ?", want: "INSERT INTO `users` (`id`,`email_c`,`email_a`,`email_p`) VALUES (1,X'..',X'..','a') ON DUPLICATE KEY UPDATE `phone_c`=?", touched: true, params: "0:encrypt"},
		{in: "REPLACE INTO users (id, phone) VALUES (?, ?)", want: "REPLACE INTO `users` (`id`,`phone_c`) VALUES (?,?)", touched: true, params: "0:copy 1:encrypt"},
		{in: "SELECT COUNT(*), id + 1 FROM users WHERE email = 'a'", want: "SELECT COUNT(1) AS `COUNT(*)`,`id`+1 AS `id + 1` FROM `users` WHERE `email_a`=X'..'", touched: true},
		// Name resolution by scope: an unqualified email in a subquery on
		// another table is that table's; a qualified one names the outer
		// table; a subquery on users resolves to users.
		{in: "SELECT id FROM users WHERE id IN (SELECT user_id FROM logins WHERE email = 'x')", want: "SELECT id FROM users WHERE id IN (SELECT user_id FROM logins WHERE email = 'x')", touched: true},
		{in: "SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM logins l WHERE l.user_id = u.id AND u.email = 'x')", want: "SELECT `id` FROM `users` AS `u` WHERE EXISTS (SELECT 1 FROM `logins` AS `l` WHERE `l`.`user_id`=`u`.`id` AND `u`.`email_a`=X'..')", touched: true},
		{in: "SELECT id FROM logins WHERE user_id IN (SELECT id FROM users WHERE email = 'x') AND email = 'y'", want: "SELECT `id` FROM `logins` WHERE `user_id` IN (SELECT `id` FROM `users` WHERE `email_a`=X'..') AND `email`='y'", touched: true},
		{in: "DELETE FROM users WHERE email <> 'x'", want: "DELETE FROM `users` WHERE `email_a`!=X'..'", touched: true},
		{in: "SELECT o.id FROM orders o JOIN users u ON o.email = u.email", want: "SELECT `o`.`id` FROM `orders` AS `o` JOIN `users` AS `u` ON `o`.`oe_a`=`u`.`email_a`", touched: true},
		{in: "SELECT id FROM users WHERE name = _latin1'é' AND email = -5", want: "SELECT `id` FROM `users` WHERE `name`=_latin1 'é' AND `email_a`=X'..'", touched: true},
	}
	for _, c := range cases {
		r, err := s.Rewrite(p, c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		got := hexRE.ReplaceAllString(r.SQL, "X'..'")
		if got != c.want || r.Touched != c.touched {
			t.Errorf("%s:\n got  %s (touched %v)\n want %s (touched %v)", c.in, got, r.Touched, c.want, c.touched)
		}
		var ps []string
		for _, pp := range r.Params {
			ps = append(ps, map[ParamOp]string{ParamCopy: "copy", ParamEncrypt: "encrypt", ParamAssist: "assist"}[pp.Op])
			ps[len(ps)-1] = string(rune('0'+pp.From)) + ":" + ps[len(ps)-1]
		}
		if strings.Join(ps, " ") != c.params {
			t.Errorf("%s: params %q, want %q", c.in, strings.Join(ps, " "), c.params)
		}
	}
}

func TestRewriteRefusals(t *testing.T) {
	s := testSchema(t)
	p := sqlparse.New(sqlparse.Options{})
	cases := map[string]string{
		"SELECT id FROM users ORDER BY email":                       "ORDER BY on encrypted column users.email",
		"SELECT DISTINCT email FROM users":                          "SELECT DISTINCT on encrypted column users.email",
		"SELECT DISTINCT * FROM users":                              "SELECT DISTINCT * over encrypted table users",
		"SELECT id FROM users GROUP BY phone":                       "GROUP BY on encrypted column users.phone",
		"SELECT email FROM users ORDER BY 1":                        "ORDER BY on encrypted column users.email",
		"SELECT email AS e FROM users ORDER BY e":                   "ORDER BY on encrypted column users.email",
		"SELECT id FROM users WHERE email > 'a'":                    "a range comparison (gt) on encrypted column users.email",
		"SELECT id FROM users WHERE email LIKE 'a%'":                "LIKE on encrypted column users.email",
		"SELECT id FROM users WHERE email BETWEEN 'a' AND 'b'":      "BETWEEN on encrypted column users.email",
		"SELECT UPPER(email) FROM users":                            "function UPPER() on encrypted column users.email",
		"SELECT COUNT(DISTINCT email) FROM users":                   "aggregate COUNT() on encrypted column users.email",
		"SELECT id FROM users WHERE phone = '1'":                    "eq on encrypted column users.phone, which has no assisted_column",
		"SELECT id FROM users WHERE email = CONCAT('a','b')":        "eq on encrypted column users.email with an expression",
		"INSERT INTO users VALUES (1, 'a')":                         "INSERT into encrypted table users without a column list",
		"INSERT INTO users (id, email) SELECT id, name FROM people": "INSERT ... SELECT into encrypted table users",
		"INSERT INTO users (id, email) VALUES (1, LOWER('A'))":      "a value for encrypted column users.email that is not a literal",
		"UPDATE users SET email = CONCAT(email, 'x')":               "assigning an expression to encrypted column users.email",
		"SELECT id FROM users WHERE email IN (SELECT e FROM x)":     "IN (subquery) on encrypted column users.email",
		"SELECT x.e FROM (SELECT email AS e FROM users) x":          "encrypted column users.email in the select list of a subquery",
		"SELECT email FROM users UNION SELECT 'a'":                  "in the select list of a subquery or UNION",
		"SELECT 1; SELECT email FROM users":                         "multi-statement text",
		"LOAD DATA INFILE 'x' INTO TABLE users":                     "LOAD DATA into encrypted table users",
		"SELECT id FROM users WHERE":                                "cannot parse",
		"PREPARE s FROM 'SELECT email FROM users'":                  "PREPARE ... FROM a text",
		"SELECT email FROM users INTO OUTFILE '/tmp/x'":             "SELECT ... INTO from encrypted table users",
		"SELECT email FROM users WHERE id = 1 INTO @e":              "encrypted table",
	}
	for in, want := range cases {
		_, err := s.Rewrite(p, in)
		var me *mysql.Error
		if !errors.As(err, &me) || me.Code != 1235 || !strings.Contains(me.Message, want) {
			t.Errorf("%s: got %v, want 1235 containing %q", in, err, want)
		}
	}
}

func TestMaskBypassRefused(t *testing.T) {
	cl := testClaim()
	cl.Masking = append(cl.Masking, proxyconfig.MaskingRule{Name: "m-email", Users: []string{"ro"}, Table: "users", Column: "email", Mode: "hash"})
	s, err := Compile(cl)
	if err != nil {
		t.Fatal(err)
	}
	p := newTestParser()
	ro := s.Masks("ro")
	allowed := []string{
		"SELECT name, id FROM people WHERE name = 'x' ORDER BY name",
		"SELECT p.name FROM people p JOIN users u ON u.id = p.id",
		"SELECT * FROM people",
		"SELECT email FROM users WHERE email = 'a'",
		"SELECT id FROM people WHERE name LIKE 'A%'",
		"UPDATE people SET name = 'x' WHERE id = 1",
	}
	for _, q := range allowed {
		if _, err := s.RewriteFor(p, q, ro); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	refused := map[string]string{
		"SELECT UPPER(name) FROM people":                              `masked column people.name in an expression`,
		"SELECT CONCAT(p.name, '') AS n FROM people p":                `masked column people.name`,
		"SELECT x.n FROM (SELECT name AS n FROM people) x":            `masked column people.name`,
		"SELECT * FROM (SELECT * FROM people) x":                      `* over table people with masked column people.name`,
		"SELECT name FROM people UNION SELECT 'a'":                    `masked column people.name`,
		"INSERT INTO copy (n) SELECT name FROM people":                `masked column people.name`,
		"UPDATE people SET nickname = name":                           `masked column people.name`,
		"SELECT LEFT(email, 3) FROM users":                            `masked column users.email`,
		"CREATE TABLE leak AS SELECT name FROM people":                `masked column people.name`,
		"SELECT id FROM people WHERE id IN (SELECT name FROM people)": `masked column people.name`,
		"SELECT name FROM people WHERE id = 1 INTO @v":                `cannot parse`,
	}
	for q, want := range refused {
		_, err := s.RewriteFor(p, q, ro)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want a refusal containing %q", q, err, want)
		}
		// Another user has no masking: allowed (unless encryption refuses it).
		if _, err := s.RewriteFor(p, q, s.Masks("app")); err != nil && strings.Contains(err.Error(), "masked") {
			t.Errorf("%s for an unmasked user: %v", q, err)
		}
	}
}

// A listener with masking and no encrypted table: what cannot be parsed
// and checked is refused for a masked user only.
func TestMaskOnlyUnparsable(t *testing.T) {
	s, err := Compile(&proxyconfig.SecurityClaim{Masking: []proxyconfig.MaskingRule{
		{Name: "m1", Users: []string{"ro"}, Table: "people", Column: "name", Mode: "null"}}})
	if err != nil {
		t.Fatal(err)
	}
	p := newTestParser()
	q := "SELECT name FROM people WHERE id = 1 INTO @v"
	if _, err := s.RewriteFor(p, q, s.Masks("ro")); err == nil || !strings.Contains(err.Error(), `masking "m1"`) {
		t.Fatalf("masked user: %v", err)
	}
	if _, err := s.RewriteFor(p, q, s.Masks("app")); err != nil {
		t.Fatalf("unmasked user: %v", err)
	}
}
