package backend

import (
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

func TestSessionStateSetVar(t *testing.T) {
	s := NewSessionState("test")
	if !s.MultiStatements || s.DB != "test" || len(s.Vars) != 0 {
		t.Fatalf("defaults: %+v", s)
	}
	g := s.Gen
	s.SetVar("sql_mode", "ANSI")
	if s.Gen != g+1 || s.Vars["sql_mode"] != "ANSI" {
		t.Fatalf("SetVar: %+v", s)
	}
	s.SetVar("sql_mode", "ANSI") // same value: no change
	if s.Gen != g+1 {
		t.Fatalf("same value bumped Gen: %d", s.Gen)
	}
	for _, name := range []string{"last_gtid", "in_transaction", "warning_count", "error_count", "identity",
		"last_insert_id", "insert_id", "session_track_system_variables", "session_track_schema",
		"session_track_state_change", "session_track_transaction_info"} {
		s.SetVar(name, "1")
		if _, ok := s.Vars[name]; ok {
			t.Errorf("%s recorded", name)
		}
	}
	if s.Gen != g+1 {
		t.Fatalf("ignored vars bumped Gen: %d", s.Gen)
	}
	s.SetDB("other")
	s.SetMultiStatements(false)
	if s.Gen != g+3 || s.DB != "other" || s.MultiStatements {
		t.Fatalf("SetDB/SetMultiStatements: %+v", s)
	}
	s.Reset("test")
	if s.Gen != g+4 || s.DB != "test" || !s.MultiStatements || len(s.Vars) != 0 {
		t.Fatalf("Reset: %+v", s)
	}
}

func stateBlock(entries ...mysql.SessionChange) []byte {
	var b []byte
	for _, e := range entries {
		var data []byte
		switch e.Type {
		case mysql.SessionTrackSystemVariables:
			data = mysql.AppendLenEncString(data, e.Name)
			data = mysql.AppendLenEncString(data, e.Value)
		case mysql.SessionTrackSchema:
			data = mysql.AppendLenEncString(data, e.Name)
		default:
			data = mysql.AppendLenEncString(data, e.Value)
		}
		b = append(b, e.Type)
		b = mysql.AppendLenEncString(b, string(data))
	}
	return b
}

func TestApplyOK(t *testing.T) {
	sysvar := func(n, v string) mysql.SessionChange {
		return mysql.SessionChange{Type: mysql.SessionTrackSystemVariables, Name: n, Value: v}
	}
	schema := mysql.SessionChange{Type: mysql.SessionTrackSchema, Name: "mysql"}
	changed := mysql.SessionChange{Type: mysql.SessionTrackStateChange, Value: "1"}
	tests := []struct {
		name    string
		entries []mysql.SessionChange
		pin     bool
		db      string
		vars    map[string]string
	}{
		{"user variable", []mysql.SessionChange{changed}, true, "test", map[string]string{}},
		{"sysvar", []mysql.SessionChange{sysvar("autocommit", "OFF"), changed}, false, "test", map[string]string{"autocommit": "OFF"}},
		{"schema", []mysql.SessionChange{schema, changed}, false, "mysql", map[string]string{}},
		{"one-shot sysvar", []mysql.SessionChange{sysvar("insert_id", "5"), changed}, true, "test", map[string]string{}},
		{"trackers off", []mysql.SessionChange{sysvar("session_track_schema", "OFF"), sysvar("autocommit", "OFF"), changed}, true, "test", map[string]string{"autocommit": "OFF"}},
		{"server-maintained sysvar", []mysql.SessionChange{sysvar("last_gtid", "0-1-5"), changed}, false, "test", map[string]string{}},
		{"charset resets collation", []mysql.SessionChange{sysvar("character_set_connection", "latin1"), changed}, false, "test", map[string]string{"character_set_connection": "latin1"}},
		{"charset", []mysql.SessionChange{sysvar("character_set_results", ""), changed}, false, "test", map[string]string{"character_set_results": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSessionState("test")
			ok := &mysql.OK{Status: mysql.StatusSessionStateChange, SessionState: stateBlock(tt.entries...)}
			if got := s.ApplyOK(ok); got != tt.pin {
				t.Errorf("ApplyOK = %v, want %v", got, tt.pin)
			}
			if s.DB != tt.db {
				t.Errorf("DB = %q, want %q", s.DB, tt.db)
			}
			if len(s.Vars) != len(tt.vars) {
				t.Errorf("Vars = %v, want %v", s.Vars, tt.vars)
			}
			for k, v := range tt.vars {
				if s.Vars[k] != v {
					t.Errorf("Vars = %v, want %v", s.Vars, tt.vars)
				}
			}
		})
	}
	s := NewSessionState("test")
	s.SetVar("collation_connection", "utf8mb4_bin")
	s.SetVar("character_set_connection", "utf8mb4")
	g := s.Gen
	s.ApplyOK(&mysql.OK{Status: mysql.StatusSessionStateChange, SessionState: stateBlock(sysvar("character_set_connection", "latin1"), changed)})
	if _, ok := s.Vars["collation_connection"]; ok || s.Gen == g {
		t.Errorf("stale collation kept: %v", s.Vars)
	}
	s.ApplyOK(&mysql.OK{Status: mysql.StatusSessionStateChange, SessionState: stateBlock(sysvar("collation_connection", "latin1_bin"), sysvar("character_set_connection", "latin1"), changed)})
	if s.Vars["collation_connection"] != "latin1_bin" {
		t.Errorf("collation reported with its charset dropped: %v", s.Vars)
	}
	if s.ApplyOK(&mysql.OK{}) || s.ApplyOK(nil) {
		t.Error("OK without state change reported a change")
	}
}

func TestAppendValue(t *testing.T) {
	tests := []struct {
		name, value string
		noBackslash bool
		want        string
	}{
		{"autocommit", "0", false, "0"},
		{"long_query_time", "1.500000", false, "1.500000"},
		{"max_join_size", "-1", false, "-1"},
		{"time_zone", "+01:00", false, "'+01:00'"},
		{"sql_mode", "", false, "''"},
		{"sql_mode", "ANSI_QUOTES,STRICT_ALL_TABLES", false, "'ANSI_QUOTES,STRICT_ALL_TABLES'"},
		{"character_set_results", "", false, "NULL"},
		{"character_set_results", "NULL", false, "NULL"},
		{"character_set_results", "utf8mb4", false, "'utf8mb4'"},
		{"x", `it's a \ test`, false, `'it''s a \\ test'`},
		{"x", `it's a \ test`, true, `'it''s a \ test'`},
		{"x", "1.", false, "'1.'"},
		{"x", "-", false, "'-'"},
		{"x", "1e5", false, "'1e5'"},
	}
	for _, tt := range tests {
		if got := string(appendValue(nil, tt.name, tt.value, tt.noBackslash)); got != tt.want {
			t.Errorf("appendValue(%q, %q, %v) = %s, want %s", tt.name, tt.value, tt.noBackslash, got, tt.want)
		}
	}
}
