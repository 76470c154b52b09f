package proxy

import (
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

func TestConnectionIDCalls(t *testing.T) {
	for in, want := range map[string]int{
		"SELECT CONNECTION_ID()":                  1,
		"select connection_id(), CONNECTION_ID()": 2,
		"SELECT 'CONNECTION_ID()'":                0,
		"SELECT `CONNECTION_ID()`":                0,
		"SELECT /* CONNECTION_ID() */ 1":          0,
		"SELECT 1 -- CONNECTION_ID()\n":           0,
		"SELECT my_connection_id()":               0,
		"SELECT test.CONNECTION_ID()":             0,
		"SELECT 'a\\' , CONNECTION_ID()":          0, // one string to the end
		"SELECT 'a\\\\', CONNECTION_ID()":         1,
		"SELECT CONNECTION_ID ()":                 0,
		"SELECT IF(0, CONNECTION_ID(), 1)":        1,
	} {
		if got := len(connectionIDCalls([]byte(in), false)); got != want {
			t.Errorf("connectionIDCalls(%q) = %d, want %d", in, got, want)
		}
	}
	// With NO_BACKSLASH_ESCAPES a backslash ends nothing.
	if got := len(connectionIDCalls([]byte(`SELECT 'a\', CONNECTION_ID()`), true)); got != 1 {
		t.Errorf("NO_BACKSLASH_ESCAPES: %d calls", got)
	}
	for in, want := range map[string]string{
		"CONNECTION_ID() /* c */ ": "CONNECTION_ID()", "a + 'x' -- c\n": "a + 'x'", "f(x)": "f(x)",
	} {
		if got := in[:trimTrailingComments([]byte(in))]; got != want {
			t.Errorf("trimTrailingComments(%q) = %q", in, got)
		}
	}
}

func TestSQLTextChecks(t *testing.T) {
	// Locks, user variables and read-only-ness of a text are sqlparse.ScanText's
	// (TestScanAgreesWithParser there); KILL is the proxy's.
	for _, tc := range []struct {
		q                         string
		kill, lock, uservar, read bool
	}{
		{q: "SELECT 1", read: true},
		{q: "  /* c */ select * from t", read: true},
		{q: "SELECT * FROM t FOR UPDATE"},
		{q: "SELECT @a := 1", uservar: true},
		{q: "SELECT @@version", read: true},
		{q: "SELECT '@x'", read: true},
		{q: "SET @x = 1", uservar: true},
		{q: "LOCK TABLES t WRITE", lock: true},
		{q: "SELECT GET_LOCK('a', 1)", lock: true},
		{q: "kill 12", kill: true},
		{q: "KILLER()"},
		{q: "UPDATE t SET a = 1"},
		{q: "SHOW TABLES", read: true},
	} {
		q := []byte(tc.q)
		sc := sqlparse.ScanText(q)
		if isKill(q) != tc.kill || sc.Locks(q) != tc.lock || sc.UserVars() != tc.uservar || sc.ReadOnly(q) != tc.read {
			t.Errorf("%q: kill=%v lock=%v uservar=%v read=%v", tc.q, isKill(q), sc.Locks(q), sc.UserVars(), sc.ReadOnly(q))
		}
	}
	for in, want := range map[string]struct {
		id    uint64
		query bool
		byQID bool
		hard  bool
		res   int
	}{
		"KILL 5": {5, false, false, true, killOK}, "kill query 9": {9, true, false, true, killOK},
		"KILL CONNECTION 3": {3, false, false, true, killOK}, "KILL USER bob": {0, false, false, true, killUnsupported},
		"KILL 5 6": {5, false, false, true, killUnsupported}, "KILL HARD 5": {5, false, false, true, killOK},
		"KILL SOFT QUERY 8": {8, true, false, false, killOK}, "KILL QUERY ID 12": {12, true, true, true, killOK},
		"kill soft query id 12 ": {12, true, true, false, killOK}, "KILL ID 4": {0, false, false, true, killIDColumn},
		"KILL CONNECTION ID 4": {0, false, false, true, killIDColumn}, "KILL CONNECTION_ID()": {77, false, false, true, killOK},
		"KILL QUERY connection_id( ) /* me */": {77, true, false, true, killOK}, "KILL 1+1": {1, false, false, true, killUnsupported},
		"KILL @x": {0, false, false, true, killUnsupported}, "KILL CONNECTION_ID": {0, false, false, true, killUnsupported},
	} {
		k, res := parseKillStmt([]byte(in), 77)
		if k.id != want.id || k.query != want.query || k.byQueryID != want.byQID || k.hard != want.hard || res != want.res {
			t.Errorf("parseKillStmt(%q) = %+v %d, want %+v", in, k, res, want)
		}
	}
	if c := setNamesCollation([]byte("SET NAMES utf8mb4 COLLATE 'utf8mb4_bin'")); c != "utf8mb4_bin" {
		t.Errorf("collation %q", c)
	}
	if c := setNamesCollation([]byte("SET NAMES utf8mb4")); c != "" {
		t.Errorf("collation %q", c)
	}
}

func TestSplitStatements(t *testing.T) {
	for q, want := range map[string]string{
		"SELECT 1; KILL 5":             "SELECT 1|KILL 5",
		"SELECT 1;\n  kill query 5;":   "SELECT 1|kill query 5",
		"SELECT 'a;KILL 5'":            "SELECT 'a;KILL 5'",
		"SELECT 1 /* ; KILL 5 */":      "SELECT 1 /* ; KILL 5 */",
		"SELECT 1 -- ; KILL 5\n; DO 2": "SELECT 1 -- ; KILL 5|DO 2",
		"KILL 5; -- nothing\n;  ;":     "KILL 5",
		"SELECT 1; /*!KILL 5*/":        "SELECT 1|/*!KILL 5*/",
		"SELECT \"x\\\";\"; KILL 1":    "SELECT \"x\\\";\"|KILL 1",
	} {
		var got []string
		for _, st := range splitStatements([]byte(q)) {
			got = append(got, strings.TrimSpace(string(st)))
		}
		if strings.Join(got, "|") != want {
			t.Errorf("splitStatements(%q) = %q, want %q", q, strings.Join(got, "|"), want)
		}
	}
}

// checkScanText fails t when a prefilter of sqlparse.ScanText(q) misses what the
// proxy's own check finds (KILL, CONNECTION_ID() calls).
func checkScanText(t *testing.T, q []byte) {
	t.Helper()
	sc := sqlparse.ScanText(q)
	if isKill(q) && !sc.MayKill() {
		t.Fatalf("%q: a KILL statement, but the scan did not flag KILL", q)
	}
	if len(connectionIDCalls(q, false)) > 0 && !sc.ConnectionID() {
		t.Fatalf("%q: CONNECTION_ID() calls, but the scan did not flag them", q)
	}
}

func TestScanText(t *testing.T) {
	for _, q := range []string{
		"", "SELECT 1", "SELECT c FROM sbtest1 WHERE id=5012", "kill 5", "SELECT 'kill'", "KiLl QUERY 3",
		"SELECT connection_id()", "SELECT CONNECTION_ID ()", "SELECT get_lock('a', 1)", "LOCK TABLES t READ",
		"SELECT * FROM t FOR UPDATE", "select * from t for  update", "SELECT * FROM t LOCK IN SHARE MODE",
		"SELECT 1 INTO @x", "SELECT 1 INTO OUTFILE '/tmp/x'", "SET SESSION session_track_schema = 1",
		"SET @a := 1", "SELECT '@'", "SELECT \"@\"", "SELECT `@`", "SELECT 'a\\'@'", "SELECT '\\\\' , @x",
		"SELECT @@version", "SELECT @@@x", "SELECT @", "SELECT '@@x'", "SET `\\`=1, @@sql_mode=''",
		"SET @@sql_mode = ''", "set @@session.sql_mode=''", "CALL p()", "call p", "EXECUTE s", "SET TRANSACTION READ ONLY",
		"set transaction isolation level read committed", "SHOW TABLES", "DESC t", "EXPLAIN SELECT 1",
		"/* c */ SELECT 1", "(SELECT 1)", "BEGIN NOT ATOMIC SET @@x = 1; END", "SELECT 'unterminated",
		"SELECT recall, executed, transactions FROM t", "SELECT 1; KILL 2", "k", "K", "@", "@@",
	} {
		checkScanText(t, []byte(q))
	}
}

// pureSelect: true only for one SELECT whose parentheses follow keywords or read-only
// aggregates; anything that could call a function (a stored one may write) is false.
func TestPureSelect(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT c FROM sbtest1 WHERE id=5":                                true,
		"  /* c */ select SUM(k) from sbtest1 where id between 1 and 100": true,
		"SELECT DISTINCT c FROM t WHERE id IN (1, 2) ORDER BY c;":         true,
		"SELECT COUNT(*) FROM t WHERE (a = 1 OR b = 2) AND NOT (c = 3)":   true,
		"SELECT a FROM (SELECT a FROM t) AS x":                            true,
		"SELECT my_func(a) FROM t":                                        false,
		"SELECT my_func (a) FROM t":                                       false,
		"SELECT UPPER(c) FROM t":                                          false,
		"SELECT `f`(a) FROM t":                                            false,
		"SELECT db.f(a) FROM t":                                           false,
		"SELECT a FROM t; DELETE FROM t":                                  false,
		"SELECT @x := a FROM t":                                           false,
		"SELECT a FROM t WHERE b IN (SELECT g(b) FROM u)":                 false,
		"UPDATE t SET a = 1":                                              false,
		"WITH x AS (SELECT 1) SELECT * FROM x":                            false,
		"SELECT /*! f(1) */ a FROM t":                                     false,
		"":                                                                false,
	} {
		if got := pureSelect([]byte(q)); got != want {
			t.Errorf("pureSelect(%q) = %v, want %v", q, got, want)
		}
	}
}
