package backend

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

func testEndpoint(t *testing.T) Endpoint {
	t.Helper()
	return Endpoint{Name: "ds001", Addr: testutil.MariaDBAddr(t), User: "root", DB: "test", Role: "readwrite", Weight: 1}
}

// newTestPool returns a pool on the shared test server, closed when the test ends.
func newTestPool(t *testing.T, opts PoolOptions) *Pool {
	t.Helper()
	p := NewPool("test", testEndpoint(t), opts, quietLogger)
	t.Cleanup(p.Close)
	return p
}

func mustGet(t *testing.T, p *Pool, v Variant) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := p.Get(ctx, v)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return c
}

func mustExec(t *testing.T, c *Conn, sql string) mysql.OK {
	t.Helper()
	ok, err := c.Exec(sql)
	if err != nil {
		t.Fatalf("Exec(%q): %v", sql, err)
	}
	return ok
}

func mustRow(t *testing.T, c *Conn, sql string) []string {
	t.Helper()
	row, err := c.queryRow(sql)
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return row
}

func TestExecResults(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 2})
	c := mustGet(t, p, Variant{})
	defer p.Put(c)

	ok := mustExec(t, c, "SELECT 1, 'a' UNION ALL SELECT 2, 'b'")
	if ok.Status&mysql.StatusMoreResultsExists != 0 {
		t.Errorf("status %#x", ok.Status)
	}
	mustExec(t, c, "CREATE TEMPORARY TABLE bt (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
	ok = mustExec(t, c, "INSERT INTO bt (v) VALUES (1), (2), (3)")
	if ok.AffectedRows != 3 || ok.LastInsertID != 1 {
		t.Errorf("insert OK = %+v", ok)
	}
	// Multi-results: result set, OK, result set.
	ok = mustExec(t, c, "SELECT * FROM bt; UPDATE bt SET v = v + 1; SELECT 42")
	if ok.Status&mysql.StatusMoreResultsExists != 0 {
		t.Errorf("multi-result final status %#x", ok.Status)
	}
	// An error in the middle ends the response; the connection stays usable.
	_, err := c.Exec("SELECT 1; SELECT * FROM no_such_table_xyz; SELECT 3")
	var me *mysql.Error
	if !errors.As(err, &me) || me.Code != 1146 {
		t.Fatalf("want ERR 1146, got %v", err)
	}
	if c.Broken() {
		t.Fatal("ERR marked the connection broken")
	}
	if row := mustRow(t, c, "SELECT COUNT(*) FROM bt"); row[0] != "3" {
		t.Fatalf("count = %v", row)
	}
	// LOAD DATA LOCAL is declined, the connection stays in step.
	if _, err := c.Exec("LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE bt"); err == nil {
		t.Log("LOAD DATA LOCAL with an empty file succeeded")
	}
	if row := mustRow(t, c, "SELECT 7"); row[0] != "7" {
		t.Fatalf("after LOAD DATA: %v", row)
	}
	c.MarkDirty() // temporary table
}

func TestSyncVars(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 2})
	c := mustGet(t, p, Variant{})
	defer p.Put(c)

	want := NewSessionState("test")
	want.SetVar("sql_mode", "ANSI_QUOTES,STRICT_ALL_TABLES")
	want.SetVar("time_zone", "+01:00")
	want.SetVar("autocommit", "OFF")
	want.SetVar("character_set_results", "")
	if err := c.Sync(want); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	row := mustRow(t, c, "SELECT @@SESSION.sql_mode, @@time_zone, @@autocommit, @@character_set_results IS NULL")
	if row[0] != "ANSI_QUOTES,STRICT_ALL_TABLES" || row[1] != "+01:00" || row[2] != "0" || row[3] != "1" {
		t.Fatalf("after Sync: %q", row)
	}

	// Fewer vars: the others go back to DEFAULT.
	want2 := NewSessionState("test")
	want2.SetVar("time_zone", "-05:00")
	if err := c.Sync(want2); err != nil {
		t.Fatalf("Sync 2: %v", err)
	}
	def := mustRow(t, c, "SELECT @@GLOBAL.sql_mode, @@GLOBAL.autocommit, @@GLOBAL.character_set_results")
	row = mustRow(t, c, "SELECT @@SESSION.sql_mode, @@time_zone, @@autocommit, @@character_set_results")
	if row[0] != def[0] || row[1] != "-05:00" || row[2] != def[1] || row[3] != def[2] {
		t.Fatalf("after Sync 2: %q (global defaults %q)", row, def)
	}

	// Values that need quoting survive the round trip, with and without
	// NO_BACKSLASH_ESCAPES (default_master_connection takes any string).
	for _, mode := range []string{"", "NO_BACKSLASH_ESCAPES"} {
		w := NewSessionState("test")
		w.SetVar("sql_mode", mode)
		if err := c.Sync(w); err != nil {
			t.Fatalf("Sync sql_mode=%q: %v", mode, err)
		}
		w.SetVar("default_master_connection", `a'b\c`)
		if err := c.Sync(w); err != nil {
			t.Fatalf("Sync quoted value (sql_mode=%q): %v", mode, err)
		}
		if row := mustRow(t, c, "SELECT @@default_master_connection"); row[0] != `a'b\c` {
			t.Fatalf("quoted value (sql_mode=%q): %q", mode, row[0])
		}
	}
}

func TestSyncFastPath(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 1})
	c := mustGet(t, p, Variant{})
	defer p.Put(c)
	want := NewSessionState("test")
	want.SetVar("time_zone", "+02:00")
	if err := c.Sync(want); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := c.Sync(want); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("fast path allocates %v times", allocs)
	}
	// A relayed OK that the session applies to both sides needs no round trip.
	ok := mustExec(t, c, "SET time_zone = '+03:00'")
	if want.ApplyOK(&ok) {
		t.Fatal("SET time_zone reported as unreplayable")
	}
	if c.vars["time_zone"] != "+03:00" || want.Vars["time_zone"] != "+03:00" {
		t.Fatalf("recorded %q / wanted %q", c.vars["time_zone"], want.Vars["time_zone"])
	}
	c.Close() // any round trip would now fail
	if err := c.Sync(want); err != nil {
		t.Fatalf("Sync after an observed change made a round trip: %v", err)
	}
	c.MarkBroken()
}

func TestSyncDBAndMultiStatements(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 1})
	c := mustGet(t, p, Variant{})
	defer p.Put(c)

	want := NewSessionState("mysql")
	if err := c.Sync(want); err != nil {
		t.Fatal(err)
	}
	if row := mustRow(t, c, "SELECT DATABASE()"); row[0] != "mysql" || c.DB() != "mysql" {
		t.Fatalf("DATABASE() = %q, DB() = %q", row[0], c.DB())
	}
	want.SetDB("test")
	want.SetMultiStatements(false)
	if err := c.Sync(want); err != nil {
		t.Fatal(err)
	}
	if row := mustRow(t, c, "SELECT DATABASE()"); row[0] != "test" {
		t.Fatalf("DATABASE() = %q", row[0])
	}
	_, err := c.Exec("SELECT 1; SELECT 2")
	var me *mysql.Error
	if !errors.As(err, &me) || me.Code != 1064 {
		t.Fatalf("multi-statement with MultiStatements off: %v", err)
	}
	want.SetMultiStatements(true)
	if err := c.Sync(want); err != nil {
		t.Fatal(err)
	}
	mustExec(t, c, "SELECT 1; SELECT 2")

	// Unknown database: the error is returned, the conn stays usable and
	// keeps its database.
	bad := NewSessionState("no_such_db_xyz")
	err = c.Sync(bad)
	if !errors.As(err, &me) || me.Code != 1049 {
		t.Fatalf("Sync to unknown db: %v", err)
	}
	if c.Broken() || c.DB() != "test" {
		t.Fatalf("after failed COM_INIT_DB: broken %v, db %q", c.Broken(), c.DB())
	}
	if err := c.Sync(want); err != nil {
		t.Fatal(err)
	}
}

func TestSyncError(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 1})
	c := mustGet(t, p, Variant{})
	defer p.Put(c)

	bad := NewSessionState("test")
	bad.SetVar("time_zone", "+04:00")
	bad.SetVar("sql_mode", "NO_SUCH_MODE")
	err := c.Sync(bad)
	var me *mysql.Error
	if !errors.As(err, &me) || me.Code != 1231 {
		t.Fatalf("Sync with a bad value: %v", err)
	}
	if c.Broken() {
		t.Fatal("server error broke the connection")
	}
	// A failing SET is retried in full next time, not skipped by the fast path.
	if err := c.Sync(bad); err == nil {
		t.Fatal("second Sync with a bad value succeeded")
	}
	good := NewSessionState("test")
	good.SetVar("sql_mode", "ANSI_QUOTES")
	if err := c.Sync(good); err != nil {
		t.Fatal(err)
	}
	def := mustRow(t, c, "SELECT @@GLOBAL.time_zone")
	row := mustRow(t, c, "SELECT @@SESSION.sql_mode, @@SESSION.time_zone")
	if row[0] != "ANSI_QUOTES" || row[1] != def[0] {
		t.Fatalf("after recovery: %q (default time_zone %q)", row, def[0])
	}
}

func TestSyncCharsets(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 2})
	c := mustGet(t, p, Variant{})
	defer p.Put(c)
	c2 := mustGet(t, p, Variant{})
	defer p.Put(c2)
	const q = "SELECT @@character_set_client, @@character_set_connection, @@character_set_results, @@collation_connection"
	same := func(step string) {
		t.Helper()
		a, b := mustRow(t, c, q), mustRow(t, c2, q)
		if len(a) != 4 || len(b) != 4 || a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || a[3] != b[3] {
			t.Fatalf("%s: original %q, replayed %q", step, a, b)
		}
	}
	// The session runs statements on c, records what the server reports and
	// replays it on c2.
	want := NewSessionState("test")
	for _, stmt := range []string{
		"SET character_set_connection = latin1, collation_connection = latin1_bin", // both reported: charset first
		"SET NAMES utf8mb4", // charset only: the recorded latin1_bin is stale
		"SET collation_connection = utf8mb4_unicode_ci",
		"SET character_set_connection = DEFAULT, character_set_results = NULL",
		"SET NAMES DEFAULT",
	} {
		ok := mustExec(t, c, stmt)
		want.ApplyOK(&ok)
		if err := c2.Sync(want); err != nil {
			t.Fatalf("%s: Sync: %v", stmt, err)
		}
		same(stmt)
	}
	// MariaDB does not report collation_connection for SET NAMES x COLLATE y
	// (only the character sets): the session has to record it itself.
	ok := mustExec(t, c, "SET NAMES latin1 COLLATE latin1_bin")
	want.ApplyOK(&ok)
	if _, ok := want.Vars["collation_connection"]; ok {
		t.Log("this server reports collation_connection after SET NAMES ... COLLATE")
	}
	want.SetVar("collation_connection", "latin1_bin")
	if err := c2.Sync(want); err != nil {
		t.Fatal(err)
	}
	same("SET NAMES latin1 COLLATE latin1_bin")
}

func TestObserveOKMarksDirty(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 1})
	c := mustGet(t, p, Variant{})
	mustExec(t, c, "SET sql_mode = ''")
	if c.Dirty() || c.vars["sql_mode"] != "" {
		t.Fatalf("replayable SET: dirty %v, vars %v", c.Dirty(), c.vars)
	}
	mustExec(t, c, "SET insert_id = 5")
	if !c.Dirty() {
		t.Fatal("SET insert_id did not mark the conn dirty")
	}
	p.Put(c)
	c = mustGet(t, p, Variant{})
	defer p.Put(c)
	if row := mustRow(t, c, "SELECT @@insert_id, @@sql_mode = @@GLOBAL.sql_mode"); row[0] != "0" || row[1] != "1" {
		t.Fatalf("after reset: %q", row)
	}
}

// ExecPipelined sends its statements together and reads each answer in turn (result sets
// included); an ERR in the middle is returned after the later statements ran; the connection
// stays in step.
func TestExecPipelined(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 1})
	c := mustGet(t, p, Variant{})
	defer p.Put(c)
	if err := c.ExecPipelined("CREATE TEMPORARY TABLE pt (v INT)", "INSERT INTO pt VALUES (1)", "SELECT * FROM pt", "SET @pipelined = 5"); err != nil {
		t.Fatal(err)
	}
	err := c.ExecPipelined("INSERT INTO pt VALUES (2)", "INSERT INTO no_such_table_xyz VALUES (1)", "INSERT INTO pt VALUES (3)")
	var me *mysql.Error
	if !errors.As(err, &me) || me.Code != 1146 || c.Broken() {
		t.Fatalf("want ERR 1146 on a usable connection, got %v", err)
	}
	if row := mustRow(t, c, "SELECT COUNT(*), SUM(v), @pipelined FROM pt"); row[0] != "3" || row[1] != "6" || row[2] != "5" {
		t.Fatalf("after the pipelines: %v", row)
	}
	c.MarkDirty()
}
