package proxy

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// CONNECTION_ID() in a statement is replaced by the proxy's connection id
// (the one in the handshake, which KILL takes), as
// CAST(0000000042 AS UNSIGNED): the same type, length, flags and unsigned
// arithmetic as the function (a ten-digit literal, zero-padded), so the
// result and its metadata are the server's. A select-list item without an
// alias that holds a call gets its own text as alias, so its column name
// stays the same. The rewrite happens only where it is exact: the text
// parses, every call is a real call (not in a string, a comment or a
// quoted name, not a stored function db.connection_id()), the statements
// are SELECT, INSERT, REPLACE, UPDATE, DELETE, SET or DO, and they read no
// performance_schema, information_schema or sys table (whose thread ids
// are the backend's). Anywhere else the backend's CONNECTION_ID() runs.
// Prepared statements are rewritten the same way (their parameters are
// values, never text).

const connIDCall = "CONNECTION_ID()"

// connectionIDCalls returns the offsets of CONNECTION_ID() calls in q:
// outside quotes and comments (executable comments are code), not part of
// a longer name or qualified. noBackslash: the session has
// NO_BACKSLASH_ESCAPES.
func connectionIDCalls(q []byte, noBackslash bool) []int {
	var out []int
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		if quote != 0 {
			if c == '\\' && quote != '`' && !noBackslash {
				i++
			} else if c == quote {
				quote = 0
			}
			continue
		}
		switch {
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '#' || (c == '-' && i+2 < len(q) && q[i+1] == '-' && (isSpace(q[i+2]))):
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(q) && q[i+1] == '*' && !(i+2 < len(q) && (q[i+2] == '!' || q[i+2] == 'M')):
			end := indexFold(q[i+2:], "*/")
			if end < 0 {
				return out
			}
			i += 2 + end + 1
		case upper(c) == 'C' && len(q)-i >= len(connIDCall) && indexFold(q[i:i+len(connIDCall)], connIDCall) == 0:
			if i > 0 && (isIdentByte(q[i-1]) || q[i-1] == '.' || q[i-1] == '@') {
				continue
			}
			out = append(out, i)
			i += len(connIDCall) - 1
		case isIdentByte(c):
			for i+1 < len(q) && isIdentByte(q[i+1]) {
				i++
			}
		}
	}
	return out
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || ('0' <= c && c <= '9') || ('A' <= upper(c) && upper(c) <= 'Z')
}

// trimTrailingComments returns the length of b without trailing space and
// comments.
func trimTrailingComments(b []byte) int {
	end := 0
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case isSpace(c):
			i++
		case c == '#' || (c == '-' && i+2 < len(b) && b[i+1] == '-' && isSpace(b[i+2])):
			for i < len(b) && b[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(b) && b[i+1] == '*' && !(i+2 < len(b) && (b[i+2] == '!' || b[i+2] == 'M')):
			k := indexFold(b[i+2:], "*/")
			if k < 0 {
				return end
			}
			i += 2 + k + 2
		case c == '\'' || c == '"' || c == '`':
			i++
			for i < len(b) && b[i] != c {
				if b[i] == '\\' && c != '`' {
					i++
				}
				i++
			}
			i++
			end = min(i, len(b))
		default:
			i++
			end = i
		}
	}
	return end
}

// rewriteConnectionID returns p (a COM_QUERY or COM_STMT_PREPARE packet)
// with the session's CONNECTION_ID() calls replaced, or p itself when the
// rewrite would not be exact.
func (s *session) rewriteConnectionID(p []byte) []byte {
	q := p[1:]
	calls := connectionIDCalls(q, s.status&mysql.StatusNoBackslashEscapes != 0)
	if len(calls) == 0 || indexFold(q, "/*!") >= 0 || indexFold(q, "/*M!") >= 0 {
		return p
	}
	n, fields, ok := s.l.proxy.parser.ConnectionIDSites(unsafe.String(&q[0], len(q)), s.state.DB)
	if !ok || n != len(calls) {
		return p
	}
	type edit struct {
		pos   int
		drop  int    // bytes replaced at pos
		text  []byte // inserted
		order int    // at one pos: replacements first, then aliases of inner items first
	}
	lit := []byte(fmt.Sprintf("CAST(%010d AS UNSIGNED)", s.id))
	var edits []edit
	for _, c := range calls {
		edits = append(edits, edit{pos: c, drop: len(connIDCall), text: lit})
	}
	for _, f := range fields {
		start, end := f[0], f[1]
		if start < 0 || end > len(q) || start >= end {
			return p
		}
		end = start + trimTrailingComments(q[start:end])
		holds := false
		for _, c := range calls {
			if start <= c && c+len(connIDCall) <= end {
				holds = true
				break
			}
		}
		if !holds {
			continue
		}
		alias := []byte(" AS `")
		for _, ch := range q[start:end] {
			if ch == '`' {
				alias = append(alias, '`')
			}
			alias = append(alias, ch)
		}
		alias = append(alias, '`')
		edits = append(edits, edit{pos: end, text: alias, order: 1 + (end - start)})
	}
	slices.SortStableFunc(edits, func(a, b edit) int {
		if a.pos != b.pos {
			return a.pos - b.pos
		}
		return a.order - b.order
	})
	out := make([]byte, 0, len(p)+len(edits)*32)
	out = append(out, p[0])
	at := 0
	for _, e := range edits {
		if e.pos < at {
			return p // overlapping: not a shape we understand
		}
		out = append(out, q[at:e.pos]...)
		out = append(out, e.text...)
		at = e.pos + e.drop
	}
	return append(out, q[at:]...)
}
