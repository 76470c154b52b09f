package proxy

import "testing"

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
		id    uint32
		query bool
		ok    bool
	}{
		"KILL 5": {5, false, true}, "kill query 9;": {9, true, true}, "KILL CONNECTION 3": {3, false, true},
		"KILL USER bob": {0, false, false}, "KILL 5 6": {0, false, false}, "KILL HARD 5": {5, false, true}, "KILL SOFT QUERY 8": {8, true, true},
	} {
		id, q, ok := parseKill([]byte(in))
		if id != want.id || q != want.query || ok != want.ok {
			t.Errorf("parseKill(%q) = %d %v %v", in, id, q, ok)
		}
	}
	if c := setNamesCollation([]byte("SET NAMES utf8mb4 COLLATE 'utf8mb4_bin'")); c != "utf8mb4_bin" {
		t.Errorf("collation %q", c)
	}
	if c := setNamesCollation([]byte("SET NAMES utf8mb4")); c != "" {
		t.Errorf("collation %q", c)
	}
}

func TestKillInBatch(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT 1; KILL 5":               true,
		"SELECT 1;\n  kill query 5":      true,
		"SELECT 'a;KILL 5'":              false,
		"SELECT 1 /* ; KILL 5 */":        false,
		"SELECT 1; SELECT 'kill'":        false,
		"SELECT 1 -- ; KILL 5\n; SELECT": false,
		"KILL 5":                         false,
		"SELECT 1; /*!KILL 5*/":          true,
	} {
		if got := killInBatch([]byte(q)); got != want {
			t.Errorf("killInBatch(%q) = %v, want %v", q, got, want)
		}
	}
}
