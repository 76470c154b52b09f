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
