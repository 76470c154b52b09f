package sqlparse

import "strings"

// UntrackedState reports a query text that may change session state without
// the server's session tracker saying so, so that the proxy can neither
// replay the change on another connection nor see it to undo it:
//
//   - an assignment to a system variable written @@name: MariaDB reports
//     SET name, SET SESSION name and SET @@session.name, but not SET @@name
//     (checked against MariaDB 10.11);
//   - SET TRANSACTION without a scope: it applies to the next transaction
//     only, and is not reported;
//   - CALL and EXECUTE: the procedure or the prepared text may run either.
//
// The caller keeps such a session on its connection and has the connection
// reset before anyone else gets it. SET STATEMENT … FOR changes nothing
// beyond its statement. It is a cheap scan (no parser): texts without "@@",
// TRANSACTION, CALL or EXECUTE are rejected without being tokenized.
func UntrackedState(sql string) bool {
	if !mayBeUntracked(sql) {
		return false
	}
	toks := lex(sql)
	for _, t := range segments(sql, toks) {
		switch {
		case t.is(0, "CALL"), t.is(0, "EXECUTE"):
			return true
		case t.is(0, "SET"):
			if t.is(1, "TRANSACTION") {
				return true
			}
			if t.is(1, "STATEMENT") {
				continue
			}
			for i, tk := range t.toks {
				if tk.kind != tSysVar || tk.depth != 0 || strings.IndexByte(t.text(i), '.') >= 0 {
					continue
				}
				// An assignment target (not a value read on the right).
				if t.punct(i+1, '=') || (t.punct(i+1, ':') && t.punct(i+2, '=')) {
					return true
				}
			}
		default:
			// Compound statements (BEGIN NOT ATOMIC … END, IF …) hold SETs
			// anywhere: any SET of @@name or SET TRANSACTION inside counts.
			for i, tk := range t.toks {
				if tk.kind == tWord && t.is(i, "SET") && (t.is(i+1, "TRANSACTION") ||
					(i+1 < len(t.toks) && t.toks[i+1].kind == tSysVar && !strings.Contains(t.text(i+1), "."))) {
					return true
				}
			}
		}
	}
	return false
}

// mayBeUntracked is UntrackedState's quick filter: one pass over the text
// looking for "@@" and the words TRANSACTION, CALL and EXECUTE.
func mayBeUntracked(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '@' {
			if i+1 < len(s) && s[i+1] == '@' {
				return true
			}
			continue
		}
		if !isWordByte(c) || (i > 0 && isWordByte(s[i-1])) {
			continue
		}
		j := i + 1
		for j < len(s) && isWordByte(s[j]) {
			j++
		}
		switch w := s[i:j]; len(w) {
		case 4:
			if strings.EqualFold(w, "CALL") {
				return true
			}
		case 7:
			if strings.EqualFold(w, "EXECUTE") {
				return true
			}
		case 11:
			if strings.EqualFold(w, "TRANSACTION") {
				return true
			}
		}
		i = j - 1
	}
	return false
}
