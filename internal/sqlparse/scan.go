package sqlparse

// The cheap scan: one pass over a statement's text, no parser, no allocation, for the paths
// that have no Facts (a listener without governance or read/write splitting, a text the parser
// rejected). It answers the questions the data path asks of every COM_QUERY with the same
// meaning as the parser's Facts fields, erring only on the safe side:
//
//	Scan.Locks     ⊇ Facts.Locks                  (LOCK TABLES, GET_LOCK)
//	Scan.UserVars  ⊇ Facts.UserVars               (@x read or assigned)
//	Scan.ReadOnly  ⊆ Facts.ReadOnly && !Facts.LockingRead
//
// "⊇": whenever the parser says yes, so does the scan (it may also say yes for a word inside a
// string or comment); "⊆": the scan says read-only only when the parser does. A text scan cannot
// do better than that (GET_LOCK inside a string literal is no lock); for ordinary statements
// they agree exactly (TestScanAgreesWithParser, FuzzScan). The scan also carries substring
// prefilters the data path uses before its own checks: KILL, CONNECTION_ID(), SESSION_TRACK and
// what UntrackedState needs.

// Scan is the result of ScanText: a set of bits, cheap to keep in a per-command value.
type Scan uint32

const (
	scanned Scan = 1 << iota // ScanText ran
	// Substring prefilters (anywhere, any case).
	scKill           // "KILL"
	scConnID         // "CONNECTION_ID()"
	scSessionTrack   // "SESSION_TRACK"
	scMayBeUntracked // "@@", "CALL", "EXECUTE" or "TRANSACTION": without it UntrackedState is false
	// Facts.
	scGetLock  // "GET_LOCK"
	scLockWord // "LOCK" (LOCK TABLES in a later statement)
	scUserVar  // '@' not part of "@@", outside quotes and comments
	// Not read-only: a locking read, INTO, a function with side effects or reading the previous
	// statement's results, a stored function (db.f()), EXPLAIN ANALYZE, several statements, or
	// a text the scan could not follow (an unterminated quote).
	scNotReadOnly
	scMulti // a ';' followed by more than white space
)

// scanClass: bytes where a needle may start (the first letter of one, either case, or '@'),
// and bytes the quote/comment state machine looks at.
const (
	clNeedle uint8 = 1 << iota
	clState
)

var scanClass = func() (t [256]uint8) {
	for _, c := range "KCGFLISETBNPMRWA" { // first letters of the needles of ScanText
		t[c] |= clNeedle
		t[c+'a'-'A'] |= clNeedle
	}
	for _, c := range "'\"`\\@/#-;(" {
		t[c] |= clState
	}
	return t
}()

// The little-endian words of the needles' first four bytes, lower-cased as ScanText lower-cases
// them (| 0x20 per byte): constants, so that the switch of needleAt is a jump table or a
// binary search, not a chain of loads.
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
	wSlee = ('s'<<0 | 'l'<<8 | 'e'<<16 | 'e'<<24) | 0x20202020
	wBenc = ('b'<<0 | 'e'<<8 | 'n'<<16 | 'c'<<24) | 0x20202020
	wNext = ('n'<<0 | 'e'<<8 | 'x'<<16 | 't'<<24) | 0x20202020
	wSetv = ('s'<<0 | 'e'<<8 | 't'<<16 | 'v'<<24) | 0x20202020
	wLast = ('l'<<0 | 'a'<<8 | 's'<<16 | 't'<<24) | 0x20202020
	wPrev = ('p'<<0 | 'r'<<8 | 'e'<<16 | 'v'<<24) | 0x20202020
	wMast = ('m'<<0 | 'a'<<8 | 's'<<16 | 't'<<24) | 0x20202020
	wSour = ('s'<<0 | 'o'<<8 | 'u'<<16 | 'r'<<24) | 0x20202020
	wWait = ('w'<<0 | 'a'<<8 | 'i'<<16 | 't'<<24) | 0x20202020
	wRele = ('r'<<0 | 'e'<<8 | 'l'<<16 | 'e'<<24) | 0x20202020
	wIsUs = ('i'<<0 | 's'<<8 | '_'<<16 | 'u'<<24) | 0x20202020
	wIsFr = ('i'<<0 | 's'<<8 | '_'<<16 | 'f'<<24) | 0x20202020
	wRowC = ('r'<<0 | 'o'<<8 | 'w'<<16 | '_'<<24) | 0x20202020
	wFoun = ('f'<<0 | 'o'<<8 | 'u'<<16 | 'n'<<24) | 0x20202020
	wWarn = ('w'<<0 | 'a'<<8 | 'r'<<16 | 'n'<<24) | 0x20202020
	wErro = ('e'<<0 | 'r'<<8 | 'r'<<16 | 'o'<<24) | 0x20202020
	wProf = ('p'<<0 | 'r'<<8 | 'o'<<16 | 'f'<<24) | 0x20202020
	wIden = ('i'<<0 | 'd'<<8 | 'e'<<16 | 'n'<<24) | 0x20202020
	wAnal = ('a'<<0 | 'n'<<8 | 'a'<<16 | 'l'<<24) | 0x20202020
)

func upperByte(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 32
	}
	return c
}

// foldAt reports whether q holds the upper-case ASCII needle at i, in any case.
func foldAt(q []byte, i int, needle string) bool {
	if len(q)-i < len(needle) {
		return false
	}
	for j := 0; j < len(needle); j++ {
		if upperByte(q[i+j]) != needle[j] {
			return false
		}
	}
	return true
}

// ScanText scans q once.
func ScanText(q []byte) Scan {
	f := scanned
	var quote byte // the open quote, or 0
	skip := false  // the byte after a backslash in a quote, or the second '@' of "@@"
	semi := -1     // the last ';' outside quotes and comments
	for i := 0; i < len(q); i++ {
		c := q[i]
		k := scanClass[c]
		if k == 0 && !skip {
			continue
		}
		if c == '@' && i+1 < len(q) && q[i+1] == '@' {
			f |= scMayBeUntracked // anywhere, as mayBeUntracked
		}
		switch {
		case skip:
			skip = false
		case k&clState == 0:
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
				f |= scUserVar
			}
		case c == ';':
			semi = i
		case c == '(':
			if qualifiedCall(q, i) {
				f |= scNotReadOnly // db.f(): a stored function may do anything
			}
		case c == '#' || (c == '-' && i+1 < len(q) && q[i+1] == '-' && (i+2 == len(q) || q[i+2] <= ' ')):
			// A comment to the end of the line: its quotes open nothing. Needles are still
			// looked for below (over-approximating is safe).
			end := i
			for end < len(q) && q[end] != '\n' {
				end++
			}
			f |= scanNeedles(q[:end], i+1)
			i = end
			continue
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			if j := i + 2; j < len(q) && (q[j] == '!' || (q[j] == 'M' && j+1 < len(q) && q[j+1] == '!')) {
				continue // an executable comment holds code: scanned as such
			}
			end := indexComment(q, i+2)
			f |= scanNeedles(q[:end], i+2)
			i = end - 1
			continue
		}
		if k&clNeedle != 0 && (i == 0 || !isLetterByte(q[i-1])) {
			f |= needleAt(q, i)
		}
	}
	if quote != 0 {
		// Unterminated: with NO_BACKSLASH_ESCAPES the quote may have ended earlier; assume the
		// worst.
		f |= scUserVar | scNotReadOnly
	}
	if semi >= 0 {
		for _, c := range q[semi+1:] {
			if !isSpace(c) {
				f |= scMulti | scNotReadOnly
				break
			}
		}
	}
	return f
}

// indexComment returns the offset just after the "*/" closing a comment whose text starts at
// i, or len(q).
func indexComment(q []byte, i int) int {
	for ; i+1 < len(q); i++ {
		if q[i] == '*' && q[i+1] == '/' {
			return i + 2
		}
	}
	return len(q)
}

// scanNeedles looks for needles in q[i:] (a comment).
func scanNeedles(q []byte, i int) Scan {
	var f Scan
	for ; i < len(q); i++ {
		if c := q[i]; c == '@' && i+1 < len(q) && q[i+1] == '@' {
			f |= scMayBeUntracked
		} else if scanClass[c]&clNeedle != 0 && !isLetterByte(q[i-1]) {
			f |= needleAt(q, i)
		}
	}
	return f
}

// isLetterByte: a byte that continues a name before a needle. Needles are looked for only where
// a name starts (after anything else, digits included: "/*!50000KILL 1*/" is code).
func isLetterByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || (c|0x20 >= 'a' && c|0x20 <= 'z')
}

// needleAt returns the bits of a needle starting at q[i], if any.
func needleAt(q []byte, i int) Scan {
	if len(q)-i < 4 {
		return 0
	}
	// The first four bytes, lower-cased (a non-letter may pass for another here: foldAt
	// decides).
	w := (uint32(q[i]) | uint32(q[i+1])<<8 | uint32(q[i+2])<<16 | uint32(q[i+3])<<24) | 0x20202020
	if w&0x00ffffff == wFor&0x00ffffff && !isWordByte(q[i+3]) && foldAt(q, i, "FOR") {
		// FOR UPDATE, FOR SHARE (with any white space or comments between).
		j := skipBlank(q, i+3)
		if foldAt(q, j, "UPDATE") || foldAt(q, j, "SHARE") {
			return scNotReadOnly
		}
		return 0
	}
	switch w {
	case wKill:
		if foldAt(q, i, "KILL") {
			return scKill
		}
	case wConn:
		if foldAt(q, i, "CONNECTION_ID()") {
			return scConnID
		}
	case wCall:
		if foldAt(q, i, "CALL") {
			return scMayBeUntracked
		}
	case wGet:
		if foldAt(q, i, "GET_LOCK") {
			return scGetLock | scNotReadOnly
		}
	case wLock:
		// LOCK TABLES, LOCK IN SHARE MODE.
		if foldAt(q, i, "LOCK") {
			return scLockWord | scNotReadOnly
		}
	case wInto:
		if foldAt(q, i, "INTO") {
			return scNotReadOnly
		}
	case wSess:
		if foldAt(q, i, "SESSION_TRACK") {
			return scSessionTrack
		}
	case wExec:
		if foldAt(q, i, "EXECUTE") {
			return scMayBeUntracked
		}
	case wTran:
		if foldAt(q, i, "TRANSACTION") {
			return scMayBeUntracked
		}
	case wSlee:
		if foldAt(q, i, "SLEEP") {
			return scNotReadOnly
		}
	case wBenc:
		if foldAt(q, i, "BENCHMARK") {
			return scNotReadOnly
		}
	case wSetv:
		if foldAt(q, i, "SETVAL") {
			return scNotReadOnly
		}
	case wMast:
		if foldAt(q, i, "MASTER_") { // MASTER_POS_WAIT, MASTER_GTID_WAIT
			return scNotReadOnly
		}
	case wSour:
		if foldAt(q, i, "SOURCE_POS_WAIT") {
			return scNotReadOnly
		}
	case wWait:
		if foldAt(q, i, "WAIT_") { // WAIT_FOR_EXECUTED_GTID_SET, WAIT_UNTIL_SQL_THREAD_AFTER_GTIDS
			return scNotReadOnly
		}
	case wRowC:
		if foldAt(q, i, "ROW_COUNT") {
			return scNotReadOnly
		}
	case wFoun:
		if foldAt(q, i, "FOUND_ROWS") {
			return scNotReadOnly
		}
	case wWarn:
		if foldAt(q, i, "WARNING") { // SHOW WARNINGS, @@warning_count
			return scNotReadOnly
		}
	case wErro:
		if foldAt(q, i, "ERROR") { // SHOW ERRORS, @@error_count
			return scNotReadOnly
		}
	case wProf:
		if foldAt(q, i, "PROFILE") { // SHOW PROFILE(S)
			return scNotReadOnly
		}
	case wIden:
		if foldAt(q, i, "IDENTITY") { // @@identity
			return scNotReadOnly
		}
	case wLast:
		if foldAt(q, i, "LAST_INSERT_ID") || foldAt(q, i, "LASTVAL") {
			return scNotReadOnly
		}
	case wNext:
		if foldAt(q, i, "NEXTVAL") || (foldAt(q, i, "NEXT") && foldAt(q, skipBlank(q, i+4), "VALUE")) {
			return scNotReadOnly
		}
	case wPrev:
		if foldAt(q, i, "PREVIOUS") && foldAt(q, skipBlank(q, i+8), "VALUE") {
			return scNotReadOnly
		}
	case wRele:
		if foldAt(q, i, "RELEASE_") { // RELEASE_LOCK, RELEASE_ALL_LOCKS
			return scNotReadOnly
		}
	case wIsUs:
		if foldAt(q, i, "IS_USED_LOCK") {
			return scNotReadOnly
		}
	case wIsFr:
		if foldAt(q, i, "IS_FREE_LOCK") {
			return scNotReadOnly
		}
	case wAnal:
		// EXPLAIN ANALYZE (MariaDB: ANALYZE stmt) runs the statement.
		if foldAt(q, i, "ANALYZE") {
			return scNotReadOnly
		}
	}
	return 0
}

// skipBlank skips white space and comments from i.
func skipBlank(q []byte, i int) int {
	for i < len(q) {
		switch {
		case isSpace(q[i]):
			i++
		case q[i] == '/' && i+1 < len(q) && q[i+1] == '*':
			i = indexComment(q, i+2)
		default:
			return i
		}
	}
	return i
}

// qualifiedCall reports a '(' at i that calls a schema-qualified function: a name (bare or
// `quoted`) preceded by '.', with only white space before the '('.
func qualifiedCall(q []byte, i int) bool {
	j := i - 1
	for j >= 0 && isSpace(q[j]) {
		j--
	}
	if j < 0 {
		return false
	}
	switch {
	case q[j] == '`':
		j--
		for j >= 0 && q[j] != '`' {
			j--
		}
		j--
	case isWordByte(q[j]):
		for j >= 0 && isWordByte(q[j]) {
			j--
		}
	default:
		return false
	}
	for j >= 0 && isSpace(q[j]) {
		j--
	}
	return j >= 0 && q[j] == '.'
}

// firstWord is the offset of q's first token, after white space, comments and '(' (an
// executable comment's content is code).
func firstWord(q []byte) int {
	i := 0
	for i < len(q) {
		switch {
		case isSpace(q[i]) || q[i] == '(':
			i++
		case i+1 < len(q) && q[i] == '/' && q[i+1] == '*':
			if j := i + 2; j < len(q) && (q[j] == '!' || (q[j] == 'M' && j+1 < len(q) && q[j+1] == '!')) {
				if q[j] == 'M' {
					j++
				}
				i = skipDigitsBytes(q, j+1)
				continue
			}
			i = indexComment(q, i+2)
		case q[i] == '#' || (i+1 < len(q) && q[i] == '-' && q[i+1] == '-' && (i+2 == len(q) || q[i+2] <= ' ')):
			for i < len(q) && q[i] != '\n' {
				i++
			}
		default:
			return i
		}
	}
	return i
}

func skipDigitsBytes(q []byte, i int) int {
	for i < len(q) && '0' <= q[i] && q[i] <= '9' {
		i++
	}
	return i
}

// StartsWith reports whether q's first token (after white space, comments and '(') is the
// upper-case keyword kw, followed by a byte that cannot continue a word.
func StartsWith(q []byte, kw string) bool { return keywordAt(q, firstWord(q), kw) }

// keywordAt reports the upper-case keyword kw at q[i], followed by a byte that cannot continue a
// word.
func keywordAt(q []byte, i int, kw string) bool {
	return foldAt(q, i, kw) && (i+len(kw) == len(q) || !isWordByte(q[i+len(kw)]))
}

// Locks is Facts.Locks: LOCK TABLES or GET_LOCK() (GET_LOCK anywhere; LOCK TABLES as the first
// statement, or the word LOCK anywhere in a text of several statements).
func (s Scan) Locks(q []byte) bool {
	return s&scGetLock != 0 || (s&scLockWord != 0 && (s&scMulti != 0 || StartsWith(q, "LOCK")))
}

// UserVars is Facts.UserVars: an '@' that is not part of "@@", outside quotes and comments.
func (s Scan) UserVars() bool { return s&scUserVar != 0 }

// ReadOnly is Facts.ReadOnly && !Facts.LockingRead: one SELECT, SHOW, DESC, DESCRIBE, EXPLAIN,
// TABLE, DO or HELP without locking reads, INTO, user variables, side-effect functions or
// previous-result reads. WITH … SELECT and SET STATEMENT … FOR SELECT are not taken as
// read-only (the scan does not follow the statement to its end).
func (s Scan) ReadOnly(q []byte) bool {
	if s&(scNotReadOnly|scUserVar) != 0 {
		return false
	}
	i := firstWord(q)
	if i >= len(q) {
		return false
	}
	switch upperByte(q[i]) {
	case 'S':
		return keywordAt(q, i, "SELECT") || keywordAt(q, i, "SHOW")
	case 'D':
		return keywordAt(q, i, "DESC") || keywordAt(q, i, "DESCRIBE") || keywordAt(q, i, "DO")
	case 'E':
		return keywordAt(q, i, "EXPLAIN")
	case 'T':
		return keywordAt(q, i, "TABLE")
	case 'H':
		return keywordAt(q, i, "HELP")
	}
	return false
}

// MayKill: "KILL" appears (the data path then looks for a KILL statement).
func (s Scan) MayKill() bool { return s&scKill != 0 }

// ConnectionID: "CONNECTION_ID()" appears.
func (s Scan) ConnectionID() bool { return s&scConnID != 0 }

// SessionTrack: "SESSION_TRACK" appears: the statement may change the client's session
// trackers, after which the server no longer reports every change (the proxy pins the session
// and resets the connection before reuse).
func (s Scan) SessionTrack() bool { return s&scSessionTrack != 0 }

// MayBeUntracked is false when UntrackedState(q) is certainly false ("@@", CALL, EXECUTE and
// TRANSACTION do not appear).
func (s Scan) MayBeUntracked() bool { return s&scMayBeUntracked != 0 }

// Scanned reports a Scan that ScanText returned (the zero Scan is "not scanned yet").
func (s Scan) Scanned() bool { return s&scanned != 0 }
