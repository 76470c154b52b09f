package backend

import (
	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// SessionState is what a client session wants its backend session to look
// like. The session owns it (not safe for concurrent use); Gen increases on
// every change, which lets Conn.Sync skip work when nothing changed.
type SessionState struct {
	DB string
	// Vars are session system variables as the server reported them
	// (name → value), beyond server defaults.
	Vars map[string]string
	// MultiStatements is MYSQL_OPTION_MULTI_STATEMENTS (COM_SET_OPTION).
	MultiStatements bool
	Gen             uint64
}

// NewSessionState returns the default state for database db.
func NewSessionState(db string) *SessionState {
	return &SessionState{DB: db, Vars: map[string]string{}, MultiStatements: true}
}

// ignoredVar reports variables that are read-only, one-shot or belong to the
// proxy's own tracking setup: they are never recorded nor replayed.
func ignoredVar(name string) bool {
	switch name {
	case "last_gtid", "in_transaction", "warning_count", "error_count", "identity",
		"last_insert_id", "insert_id", "session_track_system_variables",
		"session_track_schema", "session_track_state_change",
		"session_track_transaction_info":
		return true
	}
	return false
}

// SetVar records a session variable (ignoring non-replayable ones).
func (s *SessionState) SetVar(name, value string) {
	if ignoredVar(name) {
		return
	}
	if s.Vars == nil {
		s.Vars = map[string]string{}
	}
	if old, ok := s.Vars[name]; ok && old == value {
		return
	}
	s.Vars[name] = value
	s.Gen++
}

// SetDB records the current database.
func (s *SessionState) SetDB(db string) {
	if s.DB == db {
		return
	}
	s.DB = db
	s.Gen++
}

// SetMultiStatements records MYSQL_OPTION_MULTI_STATEMENTS_ON/OFF.
func (s *SessionState) SetMultiStatements(on bool) {
	if s.MultiStatements == on {
		return
	}
	s.MultiStatements = on
	s.Gen++
}

// Reset goes back to the defaults (after COM_RESET_CONNECTION or
// COM_CHANGE_USER).
func (s *SessionState) Reset(db string) {
	s.DB = db
	clear(s.Vars)
	if s.Vars == nil {
		s.Vars = map[string]string{}
	}
	s.MultiStatements = true
	s.Gen++
}

// clientOnlyVar reports variables that are ignored for replay but whose
// change by a client leaves session state behind (a one-shot insert id, a
// different LAST_INSERT_ID(), trackers switched off): the connection must be
// pinned, then reset before reuse.
func clientOnlyVar(name string) bool {
	switch name {
	case "identity", "last_insert_id", "insert_id", "session_track_system_variables",
		"session_track_schema", "session_track_state_change", "session_track_transaction_info":
		return true
	}
	return false
}

// ApplyOK applies the session-state block of an OK packet relayed to the
// client (schema and system variable changes). It returns true when the
// server reported a state change (SESSION_TRACK_STATE_CHANGE) that cannot be
// replayed on another connection: one without any schema or system variable
// entry (a user variable, a temporary table, a prepared statement…), or one
// that changed a variable that is never replayed but leaves state behind
// (insert_id, last_insert_id, identity, session_track_*). The caller then
// pins the backend connection. Server-maintained variables (last_gtid,
// in_transaction…) are not recorded but count as ordinary entries.
func (s *SessionState) ApplyOK(ok *mysql.OK) (stateChanged bool) {
	if ok == nil || ok.Status&mysql.StatusSessionStateChange == 0 || len(ok.SessionState) == 0 {
		return false
	}
	changed, entries, clientOnly := false, false, false
	var seen uint8
	_ = mysql.ParseSessionState(ok.SessionState, func(ch mysql.SessionChange) {
		switch ch.Type {
		case mysql.SessionTrackSystemVariables:
			entries = true
			clientOnly = clientOnly || clientOnlyVar(ch.Name)
			seen |= charsetBit(ch.Name)
			s.SetVar(ch.Name, ch.Value)
		case mysql.SessionTrackSchema:
			entries = true
			s.SetDB(ch.Name)
		case mysql.SessionTrackStateChange:
			changed = true
		}
	})
	if seen != 0 && dropImpliedCollations(s.Vars, seen) {
		s.Gen++
	}
	return changed && (!entries || clientOnly)
}

// charsetPairs are the variables where setting the character set resets the
// collation to the character set's default.
var charsetPairs = [...][2]string{
	{"character_set_connection", "collation_connection"},
	{"character_set_database", "collation_database"},
	{"character_set_server", "collation_server"},
}

// charsetBit returns the bit of a character set (bit 2i) or collation (bit
// 2i+1) variable of charsetPairs[i], 0 for any other name.
func charsetBit(name string) uint8 {
	for i, p := range charsetPairs {
		switch name {
		case p[0]:
			return 1 << (2 * i)
		case p[1]:
			return 1 << (2*i + 1)
		}
	}
	return 0
}

// dropImpliedCollations handles a session-state block that reported a
// character set without its collation (SET NAMES, SET character_set_x): the
// server reports final values, so the collation is now the character set's
// default and a recorded collation is stale. It reports whether it deleted
// anything.
func dropImpliedCollations(vars map[string]string, seen uint8) bool {
	deleted := false
	for i, p := range charsetPairs {
		if seen&(1<<(2*i)) != 0 && seen&(1<<(2*i+1)) == 0 {
			if _, ok := vars[p[1]]; ok {
				delete(vars, p[1])
				deleted = true
			}
		}
	}
	return deleted
}
