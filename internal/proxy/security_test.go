package proxy

import (
	"bufio"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/database-mesh/pisanix-go/internal/metrics"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// TestSecurityClaimMaskingAndAudit: a masking rule applies to its user
// only, on a plain and on an encrypted column, in text and binary
// protocol; the stored data is unchanged; the audit log names the rule.
func TestSecurityClaimMaskingAndAudit(t *testing.T) {
	addr := testutil.MariaDBAddr(t)
	root := testutil.Open(t, testutil.MariaDBDSN(t))
	if _, err := root.Exec("CREATE DATABASE IF NOT EXISTS " + secEncDB); err != nil {
		t.Fatal(err)
	}
	raw := testutil.Open(t, "root:@tcp("+addr+")/"+secEncDB)
	for _, q := range []string{
		"DROP TABLE IF EXISTS t_mask", "DROP TABLE IF EXISTS t_mask_only",
		"CREATE TABLE t_mask (id INT PRIMARY KEY, name VARCHAR(32), age INT, email_cipher VARBINARY(200), email_assisted BINARY(32))",
		"CREATE TABLE t_mask_only (id INT PRIMARY KEY, secret VARCHAR(32))",
		"INSERT INTO t_mask_only VALUES (1, 'topsecret')",
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	cfg := baseConfig(addr)
	l := &cfg.Proxy.Config[0]
	l.DB = secEncDB
	l.Users = append(l.Users, proxyconfig.ListenerUser{User: "support", Password: "supportpw"})
	l.Audit = &proxyconfig.Audit{Output: auditPath, LogSQL: true}
	claim := secClaim()
	claim.Tables = []proxyconfig.EncryptedTable{{Name: "t_mask", Columns: []proxyconfig.EncryptedColumn{
		{Name: "email", CipherColumn: "email_cipher", AssistedColumn: "email_assisted"}}}}
	claim.Masking = []proxyconfig.MaskingRule{
		{Name: "name-keep", Users: []string{"support"}, Table: "t_mask", Column: "name", Mode: "keep", KeepFirst: 1, KeepLast: 1},
		{Name: "email-hash", Users: []string{"support"}, Table: "t_mask", Column: "email", Mode: "fixed", Fixed: "<hidden>"},
		{Name: "age-null", Users: []string{"support"}, Table: "t_mask", Column: "age", Mode: "null"},
		{Name: "secret-fixed", Users: []string{"support"}, Table: "t_mask_only", Column: "secret", Mode: "fixed", Fixed: "xxx"},
	}
	l.SecurityClaim = claim
	tp := startProxy(t, cfg)
	app := openDB(t, strings.Replace(tp.dsn(""), "/test", "/"+secEncDB, 1))
	if _, err := app.Exec("INSERT INTO t_mask (id, name, age, email) VALUES (1, 'Ada Lovelace', 36, 'ada@example.com')"); err != nil {
		t.Fatal(err)
	}
	support := openDB(t, strings.Replace(strings.Replace(tp.dsn(""), "/test", "/"+secEncDB, 1), "proxy:proxypass", "support:supportpw", 1))
	for _, c := range []struct {
		db   string
		args []any
		want string
	}{
		{"app", nil, "Ada Lovelace|36|ada@example.com"},
		{"support", nil, "A**********e|NULL|<hidden>"},
		{"app", []any{1}, "Ada Lovelace|36|ada@example.com"},
		{"support", []any{1}, "A**********e|NULL|<hidden>"},
	} {
		db := app
		if c.db == "support" {
			db = support
		}
		q := "SELECT name, age, email FROM t_mask WHERE id = 1"
		if c.args != nil {
			q = "SELECT name, age, email FROM t_mask WHERE id = ?"
		}
		rows, err := diffRows(db, q, c.args...)
		if err != nil {
			t.Fatalf("%s %v: %v", c.db, c.args, err)
		}
		if len(rows) != 2 || rows[1] != c.want {
			t.Errorf("%s %v: got %q, want %q", c.db, c.args, rows[1:], c.want)
		}
	}
	// Expressions over a masked column are refused for the masked user
	// (they would return it unmasked), allowed for others.
	if _, err := support.Exec("SELECT CONCAT(name, '') FROM t_mask"); mysqlErrCode(err) != 1235 || !strings.Contains(err.Error(), "name-keep") {
		t.Fatalf("expression over a masked column as support: %v, want 1235 naming the rule", err)
	}
	if got := queryString(t, app, "SELECT CONCAT(name, '!') FROM t_mask"); got != "Ada Lovelace!" {
		t.Fatalf("expression as app: %q", got)
	}
	// A masked-only table with a prepared parameter: the client is told
	// its parameter count.
	if got := queryString(t, support, "SELECT secret FROM t_mask_only WHERE id = ?", 1); got != "xxx" {
		t.Fatalf("prepared with a parameter as support: %q", got)
	}
	if got := queryString(t, app, "SELECT secret FROM t_mask_only WHERE id = ?", 1); got != "topsecret" {
		t.Fatalf("prepared with a parameter as app: %q", got)
	}
	// The stored data is unchanged: the plain columns as written.
	var name string
	if err := raw.QueryRow("SELECT name FROM t_mask WHERE id = 1").Scan(&name); err != nil || name != "Ada Lovelace" {
		t.Fatalf("stored name %q %v", name, err)
	}
	// Lookups by the encrypted column still work for the masked user.
	var id int
	if err := support.QueryRow("SELECT id FROM t_mask WHERE email = 'ada@example.com'").Scan(&id); err != nil || id != 1 {
		t.Fatalf("lookup by email as support: %d %v", id, err)
	}
	tp.p.Close(t.Context())
	f, err := os.Open(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, `"user":"support"`) && strings.Contains(line, `"masking":["name-keep","age-null","email-hash"]`) {
			found = true
		}
		if strings.Contains(line, `"user":"proxy"`) && strings.Contains(line, `"masking"`) {
			t.Errorf("masking recorded for the unmasked user: %s", line)
		}
	}
	if !found {
		t.Error("no audit record of support's statement naming its masking rules")
	}
}

// TestSecurityClaimWithReadWriteSplitting: with read/write splitting,
// encrypted writes go to the primary and lookups by the encrypted column
// run on the replica, which decrypts like the primary (the rewritten
// statement is routed like the original). The replica's stored bytes are
// ciphertext too.
func TestSecurityClaimWithReadWriteSplitting(t *testing.T) {
	r := testutil.StartReplication(t, 1)
	cfg := rwConfig(r)
	cfg.Proxy.Config[0].SecurityClaim = secClaim()
	tp := startProxy(t, cfg)
	db := openDB(t, tp.dsn(""))
	for _, q := range []string{"DROP TABLE IF EXISTS t_sec", "CREATE TABLE t_sec " + secEncSchema} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec("INSERT INTO t_sec (id, k, email, phone) VALUES (1, 1, 'ada@example.com', '555-0100'), (2, 2, ?, NULL)", "bob@example.org"); err != nil {
		t.Fatal(err)
	}
	r.WaitSynced()
	replicaID := r.ServerID(r.Replicas[0])
	var sid, id int
	var email, phone sql.NullString
	for _, args := range [][]any{nil, {"ada@example.com"}} {
		q := "SELECT @@server_id, id, email, phone FROM t_sec WHERE email = 'ada@example.com'"
		if args != nil {
			q = "SELECT @@server_id, id, email, phone FROM t_sec WHERE email = ?"
		}
		if err := db.QueryRow(q, args...).Scan(&sid, &id, &email, &phone); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		// Prepared statements run on the writer (docs/rwsplit.md); text
		// reads on the replica.
		if (args == nil && sid != replicaID) || id != 1 || email.String != "ada@example.com" || phone.String != "555-0100" {
			t.Fatalf("%s %v: server %d (replica %d), row %d %q %q", q, args, sid, replicaID, id, email.String, phone.String)
		}
	}
	var ct []byte
	rep := testutil.Open(t, r.Replicas[0].DSN("test"))
	if err := rep.QueryRow("SELECT email_cipher FROM t_sec WHERE id = 1").Scan(&ct); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ct), "ada") {
		t.Fatal("the replica stores the plaintext")
	}
	// A refusal is a refusal on either side.
	if _, err := db.Exec("SELECT id FROM t_sec ORDER BY email"); mysqlErrCode(err) != 1235 {
		t.Fatalf("ORDER BY email: %v, want 1235", err)
	}
}

// TestSecurityClaimMetrics: encryptions, assisted values, decryptions and
// refusals are counted per domain; a stored value that does not decrypt
// is counted and answered with an error, never with the stored bytes.
func TestSecurityClaimMetrics(t *testing.T) {
	addr := testutil.MariaDBAddr(t)
	root := testutil.Open(t, testutil.MariaDBDSN(t))
	if _, err := root.Exec("CREATE DATABASE IF NOT EXISTS " + secEncDB); err != nil {
		t.Fatal(err)
	}
	raw := testutil.Open(t, "root:@tcp("+addr+")/"+secEncDB)
	for _, q := range []string{"DROP TABLE IF EXISTS t_sec_m", strings.Replace("CREATE TABLE t_sec "+secEncSchema, "t_sec", "t_sec_m", 1)} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	cfg := baseConfig(addr)
	cfg.Proxy.Config[0].DB = secEncDB
	claim := secClaim()
	claim.Tables[0].Name = "t_sec_m"
	cfg.Proxy.Config[0].SecurityClaim = claim
	cfg.ApplyDefaults()
	reg := prometheus.NewRegistry()
	p := New(testLogger(), metrics.NewProxy(nil))
	p.EnableSecurityMetrics(reg)
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	db := openDB(t, "proxy:proxypass@tcp("+p.Listener("test").Addr().String()+")/"+secEncDB)
	if _, err := db.Exec("INSERT INTO t_sec_m (id, email, phone) VALUES (1, 'a@x', '1'), (2, 'b@x', NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := diffRows(db, "SELECT email, phone FROM t_sec_m WHERE email IN ('a@x', 'b@x')"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("SELECT id FROM t_sec_m WHERE email LIKE 'a%'"); mysqlErrCode(err) != 1235 {
		t.Fatalf("LIKE: %v", err)
	}
	// Written around the proxy: not a ciphertext.
	if _, err := raw.Exec("UPDATE t_sec_m SET phone_cipher = 'plain' WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	rows, err := diffRows(db, "SELECT id, phone FROM t_sec_m ORDER BY id")
	if mysqlErrCode(err) != 1105 || !strings.Contains(err.Error(), "t_sec_m.phone") {
		t.Fatalf("undecryptable value: rows %q, error %v; want ERR 1105 naming t_sec_m.phone", rows, err)
	}
	// The session goes on.
	if got := queryString(t, db, "SELECT email FROM t_sec_m WHERE id = 1"); got != "a@x" {
		t.Fatalf("after the failure: %q", got)
	}
	want := map[string]float64{
		`operations_total{domain="test",op="encrypt"}`: 3, `operations_total{domain="test",op="assist"}`: 4,
		`operations_total{domain="test",op="decrypt"}`: 5, `refusals_total{domain="test"}`: 1,
		`decrypt_failures_total{domain="test"}`: 1,
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			got[strings.TrimPrefix(mf.GetName(), "pisa_proxy_security_claim_")+"{"+strings.Join(labels, ",")+"}"] = m.GetCounter().GetValue()
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	// The listener gone (renamed), its series go.
	cfg2 := cfg.Clone()
	cfg2.Proxy.Config[0].Name = "renamed"
	if err := p.Apply(cfg2); err != nil {
		t.Fatal(err)
	}
	mfs, _ = reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "domain" && l.GetValue() == "test" {
					t.Errorf("%s still has the removed listener's series", mf.GetName())
				}
			}
		}
	}
}

// TestSecurityClaimCharsets: under a latin1 and a utf8mb4 connection, a
// value is looked up by its encrypted column and comes back as the bytes
// the client sent, as a VARCHAR column.
func TestSecurityClaimCharsets(t *testing.T) {
	addr := testutil.MariaDBAddr(t)
	root := testutil.Open(t, testutil.MariaDBDSN(t))
	if _, err := root.Exec("CREATE DATABASE IF NOT EXISTS " + secEncDB); err != nil {
		t.Fatal(err)
	}
	raw := testutil.Open(t, "root:@tcp("+addr+")/"+secEncDB)
	for _, q := range []string{"DROP TABLE IF EXISTS t_sec_cs", strings.Replace("CREATE TABLE t_sec "+secEncSchema, "t_sec", "t_sec_cs", 1)} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	cfg := baseConfig(addr)
	cfg.Proxy.Config[0].DB = secEncDB
	claim := secClaim()
	claim.Tables[0].Name = "t_sec_cs"
	cfg.Proxy.Config[0].SecurityClaim = claim
	tp := startProxy(t, cfg)
	for _, cs := range []string{"latin1", "utf8mb4"} {
		db := openDB(t, strings.Replace(tp.dsn("charset="+cs), "/test", "/"+secEncDB, 1))
		db.SetMaxOpenConns(1)
		if _, err := db.Exec("DELETE FROM t_sec_cs"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("INSERT INTO t_sec_cs (id, email) VALUES (1, 'élodie@exemple.fr')"); err != nil {
			t.Fatal(err)
		}
		rows, err := db.Query("SELECT email FROM t_sec_cs WHERE email = 'élodie@exemple.fr'")
		if err != nil {
			t.Fatal(err)
		}
		types, _ := rows.ColumnTypes()
		var got string
		if !rows.Next() {
			t.Fatalf("%s: no row (lookup by the encrypted column)", cs)
		}
		if err := rows.Scan(&got); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if got != "élodie@exemple.fr" || types[0].DatabaseTypeName() != "VARCHAR" {
			t.Fatalf("%s: got %q (%s)", cs, got, types[0].DatabaseTypeName())
		}
	}
}

// TestSecurityClaimKeyErrorsRefuseConfig: a key file that cannot be read
// or holds no 32-byte key refuses the configuration (a reload keeps the
// running one), naming the key.
func TestSecurityClaimKeyErrorsRefuseConfig(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("abcd"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key  proxyconfig.EncryptionKey
		want string
	}{
		{proxyconfig.EncryptionKey{ID: "k1", File: filepath.Join(dir, "missing")}, `key "k1": open`},
		{proxyconfig.EncryptionKey{ID: "k1", File: short}, `key "k1" (file ` + short + `): not a 32-byte key`},
		{proxyconfig.EncryptionKey{ID: "k1", Env: "PISA_TEST_NO_SUCH_KEY"}, `environment variable PISA_TEST_NO_SUCH_KEY is not set`},
	} {
		cfg := baseConfig("127.0.0.1:1")
		claim := secClaim()
		claim.Keys[0] = c.key
		cfg.Proxy.Config[0].SecurityClaim = claim
		cfg.ApplyDefaults()
		p := New(testLogger(), metrics.NewProxy(nil))
		err := p.Apply(cfg)
		_ = p.Close(context.Background())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error containing %q", c.key, err, c.want)
		}
	}
}
