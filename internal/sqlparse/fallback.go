package sqlparse

import (
	"sort"
	"strings"
)

// This file handles text the TiDB grammar rejects: a small lexer that knows
// MySQL comments, quoting and variables; rewrites of a few MariaDB-only
// constructs after which the text parses; and, failing that, a conservative
// classification from the leading keyword (never ReadOnly).

type tokKind uint8

const (
	tWord    tokKind = iota // keyword or bare identifier
	tNumber                 // starts with a digit
	tIdent                  // `quoted identifier`
	tString                 // 'string' or "string"
	tUserVar                // @name, @'name'
	tSysVar                 // @@name, @@session.name
	tPunct                  // any other single byte
)

type token struct {
	kind       tokKind
	start, end int // byte range in the text
	depth      int // parenthesis depth (of the token itself for '(' and ')')
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 ||
		(c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// lex splits sql into tokens, dropping whitespace and comments (the text of
// /*! ... */ and /*M! ... */ executable comments is kept, as the server
// runs it).
func lex(sql string) []token {
	var toks []token
	depth := 0
	inBang := false
	n := len(sql)
	for i := 0; i < n; {
		c := sql[i]
		switch {
		case isSpace(c):
			i++
		case c == '#':
			i = lineEnd(sql, i)
		case c == '-' && i+1 < n && sql[i+1] == '-' && (i+2 == n || sql[i+2] <= ' '):
			i = lineEnd(sql, i)
		case c == '/' && i+1 < n && sql[i+1] == '*':
			switch {
			case i+2 < n && sql[i+2] == '!':
				i = skipDigits(sql, i+3)
				inBang = true
			case i+3 < n && sql[i+2] == 'M' && sql[i+3] == '!':
				i = skipDigits(sql, i+4)
				inBang = true
			default:
				if end := strings.Index(sql[i+2:], "*/"); end >= 0 {
					i += 2 + end + 2
				} else {
					i = n
				}
			}
		case c == '*' && inBang && i+1 < n && sql[i+1] == '/':
			inBang = false
			i += 2
		case c == '\'' || c == '"':
			j := skipQuoted(sql, i, c)
			toks = append(toks, token{kind: tString, start: i, end: j, depth: depth})
			i = j
		case c == '`':
			j := skipQuoted(sql, i, c)
			toks = append(toks, token{kind: tIdent, start: i, end: j, depth: depth})
			i = j
		case c == '@':
			kind, j := tUserVar, i+1
			if j < n && sql[j] == '@' {
				kind = tSysVar
				j++
			}
			if kind == tUserVar && j < n && (sql[j] == '\'' || sql[j] == '"' || sql[j] == '`') {
				j = skipQuoted(sql, j, sql[j])
			} else {
				for j < n && (isWordByte(sql[j]) || sql[j] == '.') {
					j++
				}
			}
			toks = append(toks, token{kind: kind, start: i, end: j, depth: depth})
			i = j
		case isWordByte(c):
			j := i + 1
			for j < n && isWordByte(sql[j]) {
				j++
			}
			kind := tWord
			if c >= '0' && c <= '9' {
				kind = tNumber
			}
			toks = append(toks, token{kind: kind, start: i, end: j, depth: depth})
			i = j
		default:
			if c == ')' && depth > 0 {
				depth--
			}
			toks = append(toks, token{kind: tPunct, start: i, end: i + 1, depth: depth})
			if c == '(' {
				depth++
			}
			i++
		}
	}
	return toks
}

func lineEnd(s string, i int) int {
	if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(s)
}

func skipDigits(s string, i int) int {
	for k := 0; k < 6 && i < len(s) && s[i] >= '0' && s[i] <= '9'; k++ {
		i++
	}
	return i
}

// skipQuoted returns the index after the quoted text starting at s[i]==q.
func skipQuoted(s string, i int, q byte) int {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if q != '`' {
				j++
			}
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

// tokens is a token list with its text, for keyword tests.
type tokens struct {
	sql  string
	toks []token
}

func (t tokens) is(i int, word string) bool {
	if i < 0 || i >= len(t.toks) || t.toks[i].kind != tWord {
		return false
	}
	tk := t.toks[i]
	return strings.EqualFold(t.sql[tk.start:tk.end], word)
}

func (t tokens) punct(i int, c byte) bool {
	return i >= 0 && i < len(t.toks) && t.toks[i].kind == tPunct && t.sql[t.toks[i].start] == c
}

func (t tokens) text(i int) string { return t.sql[t.toks[i].start:t.toks[i].end] }

func (t tokens) lower(i int) string {
	if i < 0 || i >= len(t.toks) || t.toks[i].kind != tWord {
		return ""
	}
	return strings.ToLower(t.text(i))
}

// segments splits tokens into statements at ';' (empty statements dropped).
func segments(sql string, toks []token) []tokens {
	var segs []tokens
	start := 0
	for i := 0; i <= len(toks); i++ {
		if i == len(toks) || (toks[i].kind == tPunct && sql[toks[i].start] == ';') {
			if i > start {
				segs = append(segs, tokens{sql: sql, toks: toks[start:i]})
			}
			start = i + 1
		}
	}
	return segs
}

// leadingKind classifies a statement by its leading keywords.
func leadingKind(t tokens) (Kind, Class) {
	i := 0
	for t.punct(i, '(') {
		i++
	}
	switch t.lower(i) {
	case "select", "table", "values":
		return KindSelect, ClassRead
	case "with":
		// The statement keyword after the CTE list, at the WITH's depth.
		d := t.toks[i].depth
		for j := i + 1; j < len(t.toks); j++ {
			if t.toks[j].depth != d {
				continue
			}
			switch t.lower(j) {
			case "select", "table", "values", "insert", "update", "delete", "replace":
				return leadingKind(tokens{sql: t.sql, toks: t.toks[j:]})
			}
		}
		return KindOther, ClassAdmin
	case "insert":
		return KindInsert, ClassWrite
	case "update":
		return KindUpdate, ClassWrite
	case "delete":
		return KindDelete, ClassWrite
	case "replace":
		return KindReplace, ClassWrite
	case "load":
		if t.is(i+1, "data") || t.is(i+1, "xml") {
			return KindLoadData, ClassWrite
		}
		return KindAdmin, ClassAdmin
	case "call":
		return KindCall, ClassWrite
	case "begin":
		if t.is(i+1, "not") { // MariaDB compound statement BEGIN NOT ATOMIC
			return KindOther, ClassWrite
		}
		return KindBegin, ClassTransaction
	case "start":
		if t.is(i+1, "transaction") {
			return KindBegin, ClassTransaction
		}
		return KindAdmin, ClassAdmin
	case "commit":
		return KindCommit, ClassTransaction
	case "rollback":
		return KindRollback, ClassTransaction
	case "savepoint", "release":
		return KindSavepoint, ClassTransaction
	case "set":
		if t.is(i+1, "statement") {
			if j := t.depthZeroWord(i+2, "for"); j > 0 {
				return leadingKind(tokens{sql: t.sql, toks: t.toks[j+1:]})
			}
		}
		if t.is(i+1, "global") || t.is(i+1, "password") ||
			(i+1 < len(t.toks) && t.toks[i+1].kind == tSysVar &&
				strings.HasPrefix(strings.ToLower(t.text(i+1)), "@@global.")) {
			return KindSet, ClassAdmin
		}
		return KindSet, ClassTransaction
	case "use":
		return KindUse, ClassTransaction
	case "show":
		return KindShow, ClassRead
	case "explain", "describe", "desc":
		return KindExplain, ClassRead
	case "analyze":
		switch t.lower(i + 1) {
		case "table", "tables", "local", "no_write_to_binlog":
			return KindAdmin, ClassAdmin
		}
		// MariaDB ANALYZE stmt runs the statement.
		_, c := leadingKind(tokens{sql: t.sql, toks: t.toks[i+1:]})
		if classRank(c) < classRank(ClassRead) {
			c = ClassRead
		}
		return KindExplain, c
	case "create", "alter", "drop", "rename":
		switch t.lower(i + 1) {
		case "user", "role", "server":
			return KindAdmin, ClassAdmin
		case "prepare":
			return KindDeallocate, ClassTransaction
		}
		return KindDDL, ClassDDL
	case "truncate":
		return KindDDL, ClassDDL
	case "grant", "revoke", "flush", "kill", "check", "checksum", "repair", "optimize",
		"reset", "purge", "change", "stop", "shutdown", "install", "uninstall",
		"binlog", "cache", "backup":
		return KindAdmin, ClassAdmin
	case "prepare":
		return KindPrepare, ClassTransaction
	case "execute":
		return KindExecute, ClassWrite
	case "deallocate":
		return KindDeallocate, ClassTransaction
	case "lock":
		return KindLockTables, ClassTransaction
	case "unlock":
		return KindUnlockTables, ClassTransaction
	case "do":
		return KindDo, ClassRead
	case "xa":
		return KindOther, ClassTransaction
	case "handler", "help":
		return KindOther, ClassRead
	}
	return KindOther, ClassAdmin
}

// depthZeroWord returns the index of the first word w at or after i at the
// depth of token i, or -1.
func (t tokens) depthZeroWord(i int, w string) int {
	if i >= len(t.toks) {
		return -1
	}
	d := t.toks[i].depth
	for j := i; j < len(t.toks); j++ {
		if t.toks[j].depth == d && t.is(j, w) {
			return j
		}
	}
	return -1
}

// fallback classifies text the parser rejected. ReadOnly stays false: such
// text always goes to the primary. Tables are not guessed.
func fallback(sql string, toks []token, f *Facts) {
	segs := segments(sql, toks)
	f.Kind, f.Class = KindOther, ClassAdmin
	for i, seg := range segs {
		k, c := leadingKind(seg)
		if i == 0 {
			f.Kind, f.Class = k, c
		} else if classRank(c) > classRank(f.Class) {
			f.Class = c
		}
		scanFlags(seg, f)
	}
	f.Multi = len(segs) > 1
	f.ReadOnly = false
}

// scanFlags sets the flags a token scan can see in one statement.
func scanFlags(t tokens, f *Facts) {
	isSet := t.is(0, "set")
	for i, tk := range t.toks {
		switch tk.kind {
		case tUserVar:
			f.UserVars = true
		case tSysVar:
			name := strings.ToLower(t.text(i)[2:])
			scope := ""
			if dot := strings.IndexByte(name, '.'); dot >= 0 {
				scope, name = name[:dot], name[dot+1:]
			}
			if prevResultVars[name] {
				f.PrevResult = true
			}
			if isSet && name == "autocommit" && scope != "global" {
				setAutocommit(t, i, f)
			}
		case tWord:
			w := t.lower(i)
			switch {
			case t.punct(i+1, '('):
				switch {
				case w == "last_insert_id" && !t.punct(i+2, ')'):
					f.SideEffects = true
				case prevResultFuncs[w]:
					f.PrevResult = true
				case sideEffectFuncs[w]:
					f.SideEffects = true
					if w == "get_lock" {
						f.Locks = true
					}
				}
			case w == "for" && (t.is(i+1, "update") || t.is(i+1, "share")):
				f.LockingRead = true
			case w == "lock" && t.is(i+1, "in") && t.is(i+2, "share"):
				f.LockingRead = true
			case w == "lock" && i == 0 && (t.is(1, "table") || t.is(1, "tables")):
				f.Locks = true
			case w == "into" && (t.is(i+1, "outfile") || t.is(i+1, "dumpfile")):
				if f.Class == ClassRead {
					f.Class = ClassWrite
				}
			case (w == "create" || w == "drop") && t.is(i+1, "temporary"):
				f.TempTable = true
			case w == "autocommit" && isSet && !t.is(i-1, "global"):
				setAutocommit(t, i, f)
			case w == "warnings" || w == "errors" || w == "profile" || w == "profiles":
				if t.is(0, "show") {
					f.PrevResult = true
				}
			}
		}
	}
}

// setAutocommit reads "= value" after the autocommit token at i.
func setAutocommit(t tokens, i int, f *Facts) {
	j := i + 1
	if t.punct(j, ':') {
		j++
	}
	if !t.punct(j, '=') || j+1 >= len(t.toks) {
		return
	}
	v := t.text(j + 1)
	if k := t.toks[j+1].kind; k == tString || k == tIdent {
		v = strings.Trim(v, "'\"`")
	}
	if on, ok := boolWord(v); ok {
		if on {
			f.AutocommitOn = true
		} else {
			f.AutocommitOff = true
		}
	}
}

// rewrite records what a MariaDB rewrite removed that the facts must keep.
type rewrite struct {
	userVars bool // SELECT ... INTO @var was removed
}

func (rw rewrite) apply(f *Facts) {
	if rw.userVars {
		f.UserVars = true
		f.ReadOnly = false
	}
}

type edit struct {
	start, end int
	repl       string
}

// mariadbRewrite rewrites MariaDB syntax the TiDB grammar lacks into text it
// accepts with the same classification:
//   - SET STATEMENT var=value[, ...] FOR stmt  -> stmt
//   - INSERT/REPLACE/DELETE ... RETURNING ...  -> without RETURNING
//   - ... LIMIT n ROWS EXAMINED m              -> without ROWS EXAMINED m
//   - SELECT ... INTO @a, @b ...               -> without INTO (UserVars kept)
//   - PREVIOUS VALUE FOR s                     -> LASTVAL(s)
//   - KILL [QUERY|CONNECTION] ... ID n         -> KILL QUERY n
//   - COMMIT WORK, ROLLBACK WORK               -> without WORK
//
// ok is false when nothing applies.
func mariadbRewrite(sql string, toks []token) (string, rewrite, bool) {
	var edits []edit
	var rw rewrite
	for _, t := range segments(sql, toks) {
		first := 0
		for t.punct(first, '(') {
			first++
		}
		last := t.toks[len(t.toks)-1].end
		if t.is(first, "set") && t.is(first+1, "statement") {
			if j := t.depthZeroWord(first+2, "for"); j > 0 {
				edits = append(edits, edit{start: t.toks[first].start, end: t.toks[j].end})
			}
		}
		switch t.lower(first) {
		case "insert", "replace", "delete":
			if j := t.depthZeroWord(first, "returning"); j > 0 {
				edits = append(edits, edit{start: t.toks[j].start, end: last})
			}
		case "commit", "rollback":
			if t.is(first+1, "work") {
				edits = append(edits, edit{start: t.toks[first+1].start, end: t.toks[first+1].end})
			}
		case "kill":
			for j := first + 1; j < len(t.toks) && j <= first+3; j++ {
				if t.is(j, "id") {
					edits = append(edits, edit{start: t.toks[j].start, end: t.toks[j].end})
				}
			}
		}
		for i := range t.toks {
			switch {
			case t.is(i, "rows") && t.is(i+1, "examined") && i+2 < len(t.toks) && t.toks[i+2].kind == tNumber:
				start := t.toks[i].start
				if t.is(i-1, "limit") {
					start = t.toks[i-1].start
				}
				edits = append(edits, edit{start: start, end: t.toks[i+2].end})
			case t.is(i, "into") && i+1 < len(t.toks) && t.toks[i+1].kind == tUserVar:
				j := i + 1
				for j+2 < len(t.toks) && t.punct(j+1, ',') && t.toks[j+2].kind == tUserVar {
					j += 2
				}
				edits = append(edits, edit{start: t.toks[i].start, end: t.toks[j].end})
				rw.userVars = true
			case t.is(i, "previous") && t.is(i+1, "value") && t.is(i+2, "for") && i+3 < len(t.toks):
				name := t.text(i + 3)
				end := t.toks[i+3].end
				if t.punct(i+4, '.') && i+5 < len(t.toks) {
					name += "." + t.text(i+5)
					end = t.toks[i+5].end
				}
				edits = append(edits, edit{start: t.toks[i].start, end: end, repl: "LASTVAL(" + name + ")"})
			}
		}
	}
	if len(edits) == 0 {
		return "", rw, false
	}
	sort.Slice(edits, func(a, b int) bool { return edits[a].start < edits[b].start })
	var b strings.Builder
	pos := 0
	for _, e := range edits {
		if e.start < pos { // overlapping edits: give up
			return "", rw, false
		}
		b.WriteString(sql[pos:e.start])
		b.WriteString(" ")
		b.WriteString(e.repl)
		b.WriteString(" ")
		pos = e.end
	}
	b.WriteString(sql[pos:])
	return b.String(), rw, true
}
