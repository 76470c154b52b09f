package proxy

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// TestSecurityClaimSharded: a security claim on a sharding listener. t_sec
// is sharded over two databases (uid mod 2) and two tables in each (id
// mod 2); email (with an assisted column) and phone are encrypted and name
// is masked for the user support. Inserts (a multi-row one split over the
// shards), updates and deletes by key and by encrypted value, and selects
// on one shard (relaySecureResultSet) and merged over all of them (scatter) answer
// as a plaintext reference table does; the stored bytes on every physical
// table are ciphertext; what the merge cannot do on ciphertext is refused
// (1235), as are prepared statements on the sharded encrypted table.
func TestSecurityClaimSharded(t *testing.T) {
	addr := testutil.MariaDBAddr(t)
	const ref = "h10_ref"
	shardDBs := []string{"h10_s0", "h10_s1"}
	root := testutil.Open(t, testutil.MariaDBDSN(t))
	for _, db := range append([]string{ref}, shardDBs...) {
		for _, q := range []string{"DROP DATABASE IF EXISTS " + db, "CREATE DATABASE " + db} {
			if _, err := root.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() {
		for _, db := range append([]string{ref}, shardDBs...) {
			root.Exec("DROP DATABASE IF EXISTS " + db) //nolint:errcheck // best effort
		}
	})
	refDB := testutil.Open(t, "root:@tcp("+addr+")/"+ref)
	if _, err := refDB.Exec(`CREATE TABLE t_sec (id INT PRIMARY KEY, uid INT NOT NULL, name VARCHAR(32),
		email VARCHAR(64) COLLATE utf8mb4_bin NULL, phone VARCHAR(32) COLLATE utf8mb4_bin NULL)`); err != nil {
		t.Fatal(err)
	}

	host, port, _ := net.SplitHostPort(addr)
	pn, _ := strconv.Atoi(port)
	cfg := &proxyconfig.Config{}
	cfg.MySQL.Nodes = []proxyconfig.Node{
		{Name: "ds0", Host: host, Port: pn, User: "root", DB: shardDBs[0]},
		{Name: "ds1", Host: host, Port: pn, User: "root", DB: shardDBs[1]},
	}
	claim := secClaim()
	claim.Tables = append(claim.Tables, proxyconfig.EncryptedTable{Name: "t_uns", Columns: []proxyconfig.EncryptedColumn{
		{Name: "email", CipherColumn: "email_cipher", AssistedColumn: "email_assisted"}}})
	claim.Masking = []proxyconfig.MaskingRule{
		{Name: "name-keep", Users: []string{"support"}, Table: "t_sec", Column: "name", Mode: "keep", KeepFirst: 1},
		{Name: "email-fixed", Users: []string{"support"}, Table: "t_sec", Column: "email", Mode: "fixed", Fixed: "<hidden>"},
	}
	cfg.Proxy.Config = []proxyconfig.Listener{{
		Name: "shardsec", ListenAddr: "127.0.0.1:0", User: "proxy", Password: "proxypass", DB: shardDBs[0],
		Users:             []proxyconfig.ListenerUser{{User: "support", Password: "supportpw"}},
		SimpleLoadBalance: &proxyconfig.SimpleLoadBalance{Nodes: []string{"ds0"}},
		Sharding: []proxyconfig.Sharding{{TableName: "t_sec", ActualDatanodes: []string{"ds0", "ds1"},
			DatabaseTableStrategy: &proxyconfig.DatabaseTableStrategy{DatabaseShardingAlgorithmName: "mod", DatabaseShardingColumn: "uid",
				TableShardingAlgorithmName: "mod", TableShardingColumn: "id", ShardingCount: 2}}},
		SecurityClaim: claim,
	}}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tp := startProxy(t, cfg)
	app := openDB(t, strings.Replace(tp.dsn(""), "/test", "/"+shardDBs[0], 1))
	support := openDB(t, strings.Replace(strings.Replace(tp.dsn(""), "/test", "/"+shardDBs[0], 1), "proxy:proxypass", "support:supportpw", 1))

	// DDL fans out to the physical tables.
	if _, err := app.Exec(`CREATE TABLE t_sec (id INT PRIMARY KEY, uid INT NOT NULL, name VARCHAR(32),
		email_cipher VARBINARY(200) NULL, email_assisted BINARY(32) NULL, phone_cipher VARBINARY(200) NULL, KEY (email_assisted))`); err != nil {
		t.Fatal(err)
	}
	both := func(q string, args ...any) {
		t.Helper()
		if _, err := app.Exec(q, args...); err != nil {
			t.Fatalf("proxy: %s: %v", q, err)
		}
		if _, err := refDB.Exec(q, args...); err != nil {
			t.Fatalf("reference: %s: %v", q, err)
		}
	}
	// One multi-row INSERT split over the four shards, then single rows.
	var vals []string
	for id := 1; id <= 16; id++ {
		vals = append(vals, fmt.Sprintf("(%d, %d, 'name%02d', 'user%d@example.com', '555-%04d')", id, id%3, id, id%5, id))
	}
	both("INSERT INTO t_sec (id, uid, name, email, phone) VALUES " + strings.Join(vals, ", "))
	both("INSERT INTO t_sec (id, uid, name, email, phone) VALUES (17, 1, 'solo', 'solo@example.com', NULL)")
	both("UPDATE t_sec SET email = 'moved@example.com', phone = '000' WHERE id = 5")   // every shard (no uid)
	both("UPDATE t_sec SET phone = '111' WHERE uid = 1 AND id = 4")                    // one shard
	both("UPDATE t_sec SET name = 'by-email' WHERE email = 'user2@example.com'")       // assisted lookup
	both("DELETE FROM t_sec WHERE email IN ('user3@example.com', 'solo@example.com')") // assisted IN
	both("DELETE FROM t_sec WHERE uid = 0 AND id = 6")                                 // one shard
	// Prepared (binary protocol): parameters encrypted at each execute.
	both("INSERT INTO t_sec (id, uid, name, email, phone) VALUES (?, ?, ?, ?, ?)", 20, 1, "prep", "prep@example.com", "555-0020")
	both("INSERT INTO t_sec (id, uid, name, email, phone) VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)",
		21, 0, "p21", "user1@example.com", nil, 22, 1, "p22", "p22@example.com", "555-0022") // split over two shards
	both("UPDATE t_sec SET email = ?, phone = ? WHERE id = ?", "upd@example.com", "222", 8) // every shard
	both("UPDATE t_sec SET name = ? WHERE email = ?", "by-prep", "user4@example.com")       // assisted parameter
	both("DELETE FROM t_sec WHERE email = ? AND uid = ?", "user0@example.com", 1)

	compare := func(q string, args ...any) {
		t.Helper()
		got, err := diffRows(app, q, args...)
		if err != nil {
			t.Fatalf("proxy: %s: %v", q, err)
		}
		want, err := diffRows(refDB, q, args...)
		if err != nil {
			t.Fatalf("reference: %s: %v", q, err)
		}
		if strings.Join(got[1:], "\n") != strings.Join(want[1:], "\n") {
			t.Errorf("%s:\n got %q\nwant %q", q, got[1:], want[1:])
		}
	}
	for _, c := range []struct {
		q    string
		args []any
	}{
		{"SELECT id, uid, name, email, phone FROM t_sec WHERE id > ? ORDER BY id", []any{0}}, // merged, binary rows
		{"SELECT id, email, phone FROM t_sec WHERE uid = ? AND id = ?", []any{1, 20}},        // one shard, binary
		{"SELECT id, name FROM t_sec WHERE email = ? ORDER BY id", []any{"user1@example.com"}},
		{"SELECT id, phone FROM t_sec WHERE email IN (?, ?) ORDER BY id DESC", []any{"upd@example.com", "p22@example.com"}},
		{"SELECT uid, COUNT(*) FROM t_sec WHERE email <> ? GROUP BY uid ORDER BY uid", []any{"prep@example.com"}},
	} {
		compare(c.q, c.args...)
	}
	for _, q := range []string{
		"SELECT id, uid, name, email, phone FROM t_sec ORDER BY id",                 // merged, sorted
		"SELECT id, email, phone FROM t_sec WHERE uid = 1 AND id = 4",               // one shard
		"SELECT id, email FROM t_sec WHERE email = 'user1@example.com' ORDER BY id", // merged lookup
		"SELECT id, phone FROM t_sec WHERE email IN ('user4@example.com', 'moved@example.com') ORDER BY id DESC",
		"SELECT email, id FROM t_sec ORDER BY uid, id LIMIT 3 OFFSET 2",      // merge with limit
		"SELECT uid, COUNT(*), MAX(id) FROM t_sec GROUP BY uid ORDER BY uid", // aggregates
		"SELECT COUNT(*) FROM t_sec WHERE email = 'user4@example.com'",
	} {
		compare(q)
	}
	// SELECT *: the cipher column is shown decrypted under its logical
	// name, the assisted column is not shown.
	got, err := diffRows(app, "SELECT * FROM t_sec WHERE uid = 1 AND id = 4")
	if err != nil || len(got) != 2 || !strings.HasPrefix(got[0], "columns: id INT, uid INT, name VARCHAR, email ") ||
		strings.Contains(got[0], "assisted") || got[1] != "4|1|by-prep|user4@example.com|111" {
		t.Errorf("SELECT * on one shard: %q %v", got, err)
	}
	got, err = diffRows(app, "SELECT * FROM t_sec ORDER BY id LIMIT 1")
	if err != nil || len(got) != 2 || strings.Contains(got[0], "assisted") || got[1] != "1|1|name01|user1@example.com|555-0001" {
		t.Errorf("SELECT * merged: %q %v", got, err)
	}
	// Masking applies to the merged rows and to one shard's rows.
	for _, q := range []string{"SELECT name, email FROM t_sec ORDER BY id LIMIT 2", "SELECT name, email FROM t_sec WHERE uid = 1 AND id = 1"} {
		rows, err := diffRows(support, q)
		if err != nil || len(rows) < 2 || rows[1] != "n*****|<hidden>" {
			t.Errorf("masked %s: %q %v", q, rows, err)
		}
	}
	// What cannot be answered on ciphertext is refused, naming the column.
	for _, q := range []string{
		"SELECT id FROM t_sec ORDER BY email",
		"SELECT email, COUNT(*) FROM t_sec GROUP BY email",
		"SELECT DISTINCT email FROM t_sec",
		"SELECT id FROM t_sec WHERE email LIKE 'user%'",
		"SELECT MAX(email) FROM t_sec",
	} {
		if _, err := app.Exec(q); mysqlErrCode(err) != 1235 || !strings.Contains(err.Error(), "email") {
			t.Errorf("%s: %v, want 1235 naming email", q, err)
		}
	}
	// Masking on prepared merged rows.
	if rows, err := diffRows(support, "SELECT name, email FROM t_sec WHERE id < ? ORDER BY id LIMIT 1", 100); err != nil || len(rows) != 2 || rows[1] != "n*****|<hidden>" {
		t.Errorf("masked prepared: %q %v", rows, err)
	}
	// What cannot be answered on ciphertext is refused when prepared too.
	if _, err := app.Query("SELECT id FROM t_sec WHERE id > ? ORDER BY email", 0); mysqlErrCode(err) != 1235 || !strings.Contains(err.Error(), "email") {
		t.Errorf("prepared ORDER BY email: %v, want 1235", err)
	}
	// The stored bytes: every physical table holds ciphertext, and all of
	// them together hold the reference's rows.
	total := 0
	tablesOf := map[string][]string{}
	for _, db := range shardDBs {
		raw := testutil.Open(t, "root:@tcp("+addr+")/"+db)
		rows, err := raw.Query("SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1", db)
		if err != nil {
			t.Fatal(err)
		}
		var tables []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			tables = append(tables, n)
		}
		rows.Close()
		tablesOf[db] = tables
		if len(tables) != 2 {
			t.Fatalf("%s has tables %v, want two physical tables", db, tables)
		}
		for _, tb := range tables {
			r, err := raw.Query("SELECT email_cipher, email_assisted, phone_cipher FROM " + tb)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for r.Next() {
				var e, a, p []byte
				if err := r.Scan(&e, &a, &p); err != nil {
					t.Fatal(err)
				}
				n++
				for _, v := range [][]byte{e, a, p} {
					if s := string(v); strings.Contains(s, "example.com") || strings.Contains(s, "555-") {
						t.Errorf("%s.%s stores plaintext: %q", db, tb, s)
					}
				}
				if len(e) == 0 || len(a) != 32 {
					t.Errorf("%s.%s: cipher %d bytes, assisted %d bytes", db, tb, len(e), len(a))
				}
			}
			r.Close()
			if n == 0 {
				t.Errorf("%s.%s holds no row: the workload did not reach every shard", db, tb)
			}
			total += n
		}
	}
	if want := queryString(t, refDB, "SELECT COUNT(*) FROM t_sec"); strconv.Itoa(total) != want {
		t.Errorf("shards hold %d rows, the reference %s", total, want)
	}
	// An encrypted table that is not sharded, on the same listener: text
	// and prepared statements (the usual path) on the default node.
	if _, err := app.Exec("CREATE TABLE t_uns (id INT PRIMARY KEY, email_cipher VARBINARY(200), email_assisted BINARY(32))"); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exec("INSERT INTO t_uns (id, email) VALUES (?, ?)", 1, "uns@example.com"); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, app, "SELECT email FROM t_uns WHERE email = ?", "uns@example.com"); got != "uns@example.com" {
		t.Errorf("prepared on the unsharded encrypted table: %q", got)
	}
	if got := queryString(t, app, "SELECT email FROM t_uns WHERE id = 1"); got != "uns@example.com" {
		t.Errorf("text on the unsharded encrypted table: %q", got)
	}
	var stored []byte
	if err := testutil.Open(t, "root:@tcp("+addr+")/"+shardDBs[0]).QueryRow("SELECT email_cipher FROM t_uns").Scan(&stored); err != nil ||
		strings.Contains(string(stored), "example.com") || len(stored) == 0 {
		t.Errorf("t_uns stores %q (%v)", stored, err)
	}
	// A stored value that does not decrypt ends a merged result with an
	// ERR (never a wrong row), and the session stays usable.
	raw := testutil.Open(t, "root:@tcp("+addr+")/"+shardDBs[0])
	for _, tb := range tablesOf[shardDBs[0]] { // id 2, uid 2: on the first database
		if _, err := raw.Exec("UPDATE " + tb + " SET email_cipher = 'not a ciphertext' WHERE id = 2"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := diffRows(app, "SELECT id, email FROM t_sec ORDER BY id"); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Errorf("merged result with a bad ciphertext: %v", err)
	}
	if got := queryString(t, app, "SELECT email FROM t_sec WHERE uid = 1 AND id = 1"); got != "user1@example.com" {
		t.Errorf("after the failed merge: %q", got)
	}
}
