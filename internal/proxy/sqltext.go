package proxy

import (
	"strings"
)

// Cheap, allocation-free text checks on SQL used by the data path before the
// full parser is involved. They err on the side of pinning (safe).

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 32
	}
	return c
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

// skipSpaceAndComments returns the offset of the first token.
func skipSpaceAndComments(q []byte) int {
	i := 0
	for i < len(q) {
		switch {
		case isSpace(q[i]):
			i++
		case q[i] == '(':
			i++
		case i+1 < len(q) && q[i] == '/' && q[i+1] == '*':
			// Executable comments (/*! ... */, /*!50001 ... */, MariaDB's
			// /*M! ... */) hold code: their content is the next token.
			if j := i + 2; j < len(q) && (q[j] == '!' || (q[j] == 'M' && j+1 < len(q) && q[j+1] == '!')) {
				if q[j] == 'M' {
					j++
				}
				j++
				for j < len(q) && '0' <= q[j] && q[j] <= '9' {
					j++
				}
				i = j
				continue
			}
			end := indexFold(q[i+2:], "*/")
			if end < 0 {
				return len(q)
			}
			i += 2 + end + 2
		case q[i] == '#' || (i+2 < len(q) && q[i] == '-' && q[i+1] == '-' && isSpace(q[i+2])):
			for i < len(q) && q[i] != '\n' {
				i++
			}
		default:
			return i
		}
	}
	return i
}

// hasPrefixFold reports whether q (after leading space and comments) starts
// with the keyword kw followed by a non-identifier byte.
func hasKeyword(q []byte, kw string) bool {
	i := skipSpaceAndComments(q)
	if len(q)-i < len(kw) {
		return false
	}
	for j := 0; j < len(kw); j++ {
		if upper(q[i+j]) != kw[j] {
			return false
		}
	}
	if i+len(kw) < len(q) {
		c := q[i+len(kw)]
		if c == '_' || ('0' <= c && c <= '9') || ('A' <= upper(c) && upper(c) <= 'Z') {
			return false
		}
	}
	return true
}

// indexFold finds an upper-case ASCII needle in s, case-insensitively.
func indexFold(s []byte, needle string) int {
	n := len(needle)
	if n == 0 {
		return 0
	}
	first := needle[0]
	for i := 0; i+n <= len(s); i++ {
		if upper(s[i]) != first {
			continue
		}
		j := 1
		for j < n && upper(s[i+j]) == needle[j] {
			j++
		}
		if j == n {
			return i
		}
	}
	return -1
}

func isKill(q []byte) bool { return hasKeyword(q, "KILL") }

// hasLock reports statements that take locks that live beyond the statement.
func hasLock(q []byte) bool {
	if hasKeyword(q, "LOCK") { // LOCK TABLES
		return true
	}
	return indexFold(q, "GET_LOCK") >= 0
}

// hasUserVarAssign reports a user variable that may be assigned ("@x :=",
// "SET @x", "INTO @x"). It over-approximates: any '@' not followed by '@'
// outside quotes.
func hasUserVarAssign(q []byte) bool {
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		if quote != 0 {
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
			continue
		}
		switch c {
		case '\'', '"', '`':
			quote = c
		case '@':
			if i+1 < len(q) && q[i+1] == '@' {
				i++
				// skip @@var
				continue
			}
			return true
		}
	}
	return false
}

// isReadOnly reports statements that are safe to run again elsewhere after a
// failure before any byte reached the client.
func isReadOnly(q []byte) bool {
	if hasKeyword(q, "SELECT") {
		return indexFold(q, "FOR UPDATE") < 0 && indexFold(q, "LOCK IN SHARE MODE") < 0 &&
			indexFold(q, "INTO") < 0 && indexFold(q, "GET_LOCK") < 0
	}
	return hasKeyword(q, "SHOW") || hasKeyword(q, "DESC") || hasKeyword(q, "DESCRIBE") || hasKeyword(q, "EXPLAIN")
}

// setNamesCollation returns y from "SET NAMES x COLLATE y", or "".
func setNamesCollation(q []byte) string {
	if !hasKeyword(q, "SET") {
		return ""
	}
	rest := q[skipSpaceAndComments(q)+3:]
	if !hasKeyword(rest, "NAMES") {
		return ""
	}
	i := indexFold(rest, "COLLATE")
	if i < 0 {
		return ""
	}
	rest = rest[i+len("COLLATE"):]
	j := skipSpaceAndComments(rest)
	k := j
	for k < len(rest) && (rest[k] == '_' || ('0' <= rest[k] && rest[k] <= '9') || ('A' <= upper(rest[k]) && upper(rest[k]) <= 'Z') || rest[k] == '\'' || rest[k] == '"' || rest[k] == '`') {
		k++
	}
	name := strings.Trim(string(rest[j:k]), "'\"`")
	return strings.ToLower(name)
}

// textFacts is what the COM_QUERY path reads from a statement's text, found
// by scanText in one pass instead of one scan per question (the text of a
// point select was scanned nine times). Each bit is exactly the answer of
// the check named beside it, which stay for the other paths; TestScanText
// and FuzzSQLText compare them.
type textFacts uint16

const (
	tfScanned         textFacts = 1 << iota // the text was scanned
	tfKill                                  // indexFold(q, "KILL") >= 0
	tfConnID                                // indexFold(q, connIDCall) >= 0
	tfGetLock                               // indexFold(q, "GET_LOCK") >= 0
	tfForUpdate                             // indexFold(q, "FOR UPDATE") >= 0
	tfLockInShareMode                       // indexFold(q, "LOCK IN SHARE MODE") >= 0
	tfInto                                  // indexFold(q, "INTO") >= 0
	tfSessionTrack                          // mayChangeTrackers(q)
	tfUserVar                               // hasUserVarAssign(q)
	// tfMayBeUntracked: "@@", CALL, EXECUTE or TRANSACTION appear (as any
	// substring); without it sqlparse.UntrackedState(q) is false.
	tfMayBeUntracked
)

// Byte classes of scanText: a needle may start here (an upper or lower
// case first letter), or the user variable scan looks at it.
const (
	scNeedle uint8 = 1 << iota
	scVar
)

var scanClass = func() (t [256]uint8) {
	for _, c := range "KCGFLISET" {
		t[c] |= scNeedle
		t[c+'a'-'A'] |= scNeedle
	}
	for _, c := range "'\"`\\@" {
		t[c] |= scVar
	}
	return t
}()

// The little-endian words of the needles' first four bytes, lower-cased as
// scanText lower-cases them.
const (
	wKill = ('k'<<0 | 'i'<<8 | 'l'<<16 | 'l'<<24) | 0x20202020
	wConn = ('c'<<0 | 'o'<<8 | 'n'<<16 | 'n'<<24) | 0x20202020
	wCall = ('c'<<0 | 'a'<<8 | 'l'<<16 | 'l'<<24) | 0x20202020
	wGet  = ('g'<<0 | 'e'<<8 | 't'<<16 | '_'<<24) | 0x20202020
	wFor  = ('f'<<0 | 'o'<<8 | 'r'<<16 | ' '<<24) | 0x20202020
	wLock = ('l'<<0 | 'o'<<8 | 'c'<<16 | 'k'<<24) | 0x20202020
	wInto = ('i'<<0 | 'n'<<8 | 't'<<16 | 'o'<<24) | 0x20202020
	wSess = ('s'<<0 | 'e'<<8 | 's'<<16 | 's'<<24) | 0x20202020
	wExec = ('e'<<0 | 'x'<<8 | 'e'<<16 | 'c'<<24) | 0x20202020
	wTran = ('t'<<0 | 'r'<<8 | 'a'<<16 | 'n'<<24) | 0x20202020
)

// hasFoldAt reports whether q holds the upper-case ASCII needle at i,
// case-insensitively.
func hasFoldAt(q []byte, i int, needle string) bool {
	if len(q)-i < len(needle) {
		return false
	}
	for j := 1; j < len(needle); j++ {
		if upper(q[i+j]) != needle[j] {
			return false
		}
	}
	return true
}

// scanText computes q's textFacts.
func scanText(q []byte) textFacts {
	f := tfScanned
	// hasUserVarAssign's state: the open quote, and skip (the byte after a
	// backslash in quotes, or the second '@' of "@@").
	var quote byte
	skip := false
	for i := 0; i < len(q); i++ {
		c := q[i]
		k := scanClass[c]
		if k == 0 && !skip {
			continue
		}
		if c == '@' && i+1 < len(q) && q[i+1] == '@' {
			f |= tfMayBeUntracked // anywhere, as mayBeUntracked
		}
		switch {
		case skip:
			skip = false
		case k&scVar == 0:
		case quote != 0:
			if c == '\\' {
				skip = true
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '@':
			if i+1 < len(q) && q[i+1] == '@' {
				skip = true
			} else {
				f |= tfUserVar
			}
		}
		if k&scNeedle == 0 || len(q)-i < 4 {
			continue
		}
		// The needle's first four bytes, lower-cased (a non-letter may
		// pass for another here: hasFoldAt decides).
		w := (uint32(q[i]) | uint32(q[i+1])<<8 | uint32(q[i+2])<<16 | uint32(q[i+3])<<24) | 0x20202020
		switch w {
		case wKill:
			if hasFoldAt(q, i, "KILL") {
				f |= tfKill
			}
		case wConn:
			if hasFoldAt(q, i, connIDCall) {
				f |= tfConnID
			}
		case wCall:
			if hasFoldAt(q, i, "CALL") {
				f |= tfMayBeUntracked
			}
		case wGet:
			if hasFoldAt(q, i, "GET_LOCK") {
				f |= tfGetLock
			}
		case wFor:
			if hasFoldAt(q, i, "FOR UPDATE") {
				f |= tfForUpdate
			}
		case wLock:
			if hasFoldAt(q, i, "LOCK IN SHARE MODE") {
				f |= tfLockInShareMode
			}
		case wInto:
			if hasFoldAt(q, i, "INTO") {
				f |= tfInto
			}
		case wSess:
			if hasFoldAt(q, i, "SESSION_TRACK") {
				f |= tfSessionTrack
			}
		case wExec:
			if hasFoldAt(q, i, "EXECUTE") {
				f |= tfMayBeUntracked
			}
		case wTran:
			if hasFoldAt(q, i, "TRANSACTION") {
				f |= tfMayBeUntracked
			}
		}
	}
	return f
}

// lock, userVar and readOnly are hasLock, hasUserVarAssign and isReadOnly
// of the scanned text q.
func (f textFacts) lock(q []byte) bool { return f&tfGetLock != 0 || hasKeyword(q, "LOCK") }

func (f textFacts) userVar() bool { return f&tfUserVar != 0 }

func (f textFacts) readOnly(q []byte) bool {
	if hasKeyword(q, "SELECT") {
		return f&(tfForUpdate|tfLockInShareMode|tfInto|tfGetLock) == 0
	}
	return hasKeyword(q, "SHOW") || hasKeyword(q, "DESC") || hasKeyword(q, "DESCRIBE") || hasKeyword(q, "EXPLAIN")
}
