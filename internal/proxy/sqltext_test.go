package proxy

import (
	"strings"
	"testing"
)

func TestReplaceConnectionID(t *testing.T) {
	cases := map[string]string{
		"SELECT CONNECTION_ID()":                     "SELECT 7 AS `CONNECTION_ID()`",
		"select connection_id(), @@version":          "select 7 AS `connection_id()`, @@version",
		"SELECT 1, CONNECTION_ID() FROM dual":        "SELECT 1, 7 AS `CONNECTION_ID()` FROM dual",
		"SELECT CONNECTION_ID() AS id":               "SELECT 7 AS id",
		"SELECT * FROM t WHERE id = CONNECTION_ID()": "SELECT * FROM t WHERE id = 7",
		"SELECT CONNECTION_ID() + 1":                 "SELECT 7 + 1",
		"KILL QUERY CONNECTION_ID()":                 "KILL QUERY 7",
		"SELECT DISTINCT CONNECTION_ID();":           "SELECT DISTINCT 7 AS `CONNECTION_ID()`;",
	}
	for in, want := range cases {
		got := string(replaceConnectionID(append([]byte{3}, in...), 7)[1:])
		if got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
}

func TestSQLTextChecks(t *testing.T) {
	for _, tc := range []struct {
		q                         string
		kill, lock, uservar, read bool
	}{
		{q: "SELECT 1", read: true},
		{q: "  /* c */ select * from t", read: true},
		{q: "SELECT * FROM t FOR UPDATE"},
		{q: "SELECT @a := 1", uservar: true, read: true},
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
		if isKill(q) != tc.kill || hasLock(q) != tc.lock || hasUserVarAssign(q) != tc.uservar || isReadOnly(q) != tc.read {
			t.Errorf("%q: kill=%v lock=%v uservar=%v read=%v", tc.q, isKill(q), hasLock(q), hasUserVarAssign(q), isReadOnly(q))
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
