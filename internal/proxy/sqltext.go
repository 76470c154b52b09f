package proxy

import (
	"strings"
)

// Cheap, allocation-free text checks on SQL that the data path needs beyond
// the statement's facts: KILL statements and SET NAMES … COLLATE. Locks, user
// variables and read-only-ness without the parser come from
// sqlparse.ScanText, which answers them as the parser's Facts do.

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

// pureSelect reports a text that certainly only reads, for an XA
// transaction's commit (a transaction of such statements needs no two-phase
// commit): one SELECT (nothing after a semicolon) in which every "(" follows
// nothing, punctuation or a word of pureWords: no function call, which could
// be a stored function that writes. The caller checks that it is read-only
// (no INTO, locking read or user-variable assignment). A false answer only
// costs a two-phase commit.
func pureSelect(q []byte) bool {
	i := skipSpaceAndComments(q)
	if !hasKeyword(q[i:], "SELECT") {
		return false
	}
	for j := i; j < len(q); j++ {
		switch q[j] {
		case ';':
			for _, c := range q[j+1:] {
				if !isSpace(c) && c != ';' {
					return false
				}
			}
			return true
		case '`', '"', '@':
			return false // a quoted name (a function?), or a variable
		case '(':
			k := j
			for k > i && isSpace(q[k-1]) {
				k--
			}
			w := k
			for w > i && isWordChar(q[w-1]) {
				w--
			}
			if w < k && !pureWords[strings.ToUpper(string(q[w:k]))] {
				return false
			}
		}
	}
	return true
}

// pureWords may precede "(" in a pureSelect: keywords, and the aggregates
// that only read.
var pureWords = map[string]bool{
	"SELECT": true, "FROM": true, "WHERE": true, "AND": true, "OR": true, "NOT": true, "IN": true,
	"ON": true, "HAVING": true, "BY": true, "AS": true, "JOIN": true, "DISTINCT": true,
	"COUNT": true, "SUM": true, "MIN": true, "MAX": true, "AVG": true,
}

func isWordChar(c byte) bool {
	return c == '_' || c == '$' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80
}
