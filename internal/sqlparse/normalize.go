package sqlparse

import "strings"

// The literal-normalised cache level.
//
// Text-protocol statements carry their values inline (sysbench's
// "SELECT c FROM sbtest1 WHERE id=5014"), so the exact-text cache misses on
// almost every one. normalizeLiterals maps such a text to a key in which
// each number and single-quoted string literal is one typed marker byte and
// every other byte is kept as is, and texts with equal keys share one Facts.
//
// Why the key keeps everything but literals (and is not TiDB's digest, which
// lower-cases identifiers): table names are case-sensitive on Linux MariaDB,
// so the Facts.Tables of one text handed to another that differs in case
// could get past table access control.
//
// The safety argument. Let T and T' have the same key. Outside the replaced
// spans they are byte for byte the same; each replaced span is, in both, one
// literal token of the same type (integer of at most 18 digits, decimal,
// or string), because normalizeLiterals only accepts a text when it is sure
// it splits it into tokens exactly as the TiDB lexer does in every SQL mode
// the parser tries (sqlModes), and bails out (ok false, the exact-text cache
// then applies) whenever it is not. So the parser sees the same token stream
// but for literal values. What remains is that nothing the proxy derives may
// depend on a literal's value:
//
//   - the grammar: a few rules check a literal's value and fail the parse
//     (CAST(x AS FLOAT(54)), LIKE ... ESCAPE 'ab', COLLATE 'bogus',
//     CHARACTER SET / USING 'bogus', INTO OUTFILE ... ENCLOSED BY 'ab',
//     integers beyond int64). A literal is replaced only right after a token
//     that starts an expression (an operator, '(' or ',', or a wExpr
//     keyword) and never inside a type's arguments (FLOAT(...)), where the
//     grammar only makes a value node of it; other literals stay in the key
//     verbatim. Integers are 18 digits at most, so always an int64 intLit;
//   - the fingerprint: the TiDB digester replaces every literal by "?" except
//     integers after ORDER BY / GROUP BY (ORDER BY 1 is a column position),
//     which it keeps. Integers are kept verbatim from any BY until the list
//     that follows it provably ended (the chain of normState);
//   - the MariaDB rewrite (mariadbRewrite: RETURNING, ROWS EXAMINED, INTO
//     @x after FROM...): it runs only when the parse failed, which the
//     above makes the same for T and T', and its edits depend on words and
//     token kinds, not on literal values;
//   - classify: Kind, Class, tables, functions, variables and locking come
//     from the statement's structure, except SET autocommit = value, which
//     is why only SELECT, INSERT, UPDATE, DELETE and REPLACE texts are shared
//     (shareable).
//
// Bail-outs, each because some mode or lexer rule could read the text
// differently from the plain reading assumed here:
//
//   - '"': a string, or an identifier under ANSI_QUOTES;
//   - '\': an escape, or a plain byte under NO_BACKSLASH_ESCAPES; with no
//     backslash, a string ends at the first quote not doubled, in every mode;
//   - '?': a parameter marker; it also keeps '?' free to be a marker byte;
//   - comments ("--", "#", "/*"): hints, executable comments, and the
//     fingerprint keeps hints; ";": several statements;
//   - control bytes other than tab, newline and CR (the lexer skips \v and
//     \f as spaces), DEL, and any non-ASCII byte (identifiers may hold them,
//     strings are transcoded);
//   - a quote right after an identifier byte, '@' or '.': charset
//     introducers (_utf8'x', N'x'), hex and bit literals (X'41', B'01'),
//     quoted variable names (@'x', @@global.'x');
//   - a number followed by an identifier byte, '.' or a quote: 1abc is an
//     identifier, 1e5 a float, 0x1F hex, 1.5.2 nonsense; a '.' right before
//     a digit (.5, t.1);
//   - after identifier '.', anything but a letter, '$', '`' or '*': the lexer
//     then reads the next digits as an identifier (t. 1, t._utf8 1);
//   - an unterminated string or quoted identifier, '@' not followed by a
//     variable name.
//
// Digits inside a word (sbtest1, t2, $1, _3) and in variable names (@a1)
// are part of the identifier and stay. Quoted identifiers are copied as they
// are (a doubled backtick inside is an escaped backtick).

const (
	// normPrefix starts every normalised key. An accepted text holds no NUL
	// byte, and Parser.parse never caches a text that starts with one under
	// its exact text, so the two key spaces of the shared cache are disjoint.
	normPrefix = 0x00

	// Marker bytes, one per literal type (an integer and a string are not
	// interchangeable: LIMIT 1 parses, LIMIT '1' and LIMIT 1.5 do not). None
	// of them can appear in an accepted text outside a replaced literal.
	markInt = '?'
	markDec = '#'
	markStr = '"'

	// maxNormDigits bounds the integer and the fraction digits of a replaced
	// number: every such integer is an int64 (an intLit token; a larger one
	// may become a uint64 or a decimal, which some rules reject), and every
	// decimal parses without loss. Longer numbers stay verbatim.
	maxNormDigits = 18
)

// Byte classes.
const (
	bOther  = iota // operators and punctuation
	bSpace         // space, tab, newline, CR
	bBad           // bail out wherever it appears
	bLetter        // a-z, A-Z, '_', '$': starts a word
	bDigit
)

var (
	byteClass [256]uint8
	// quoteStop: bytes at which a scan inside a string or quoted identifier
	// stops to look: quotes, bad bytes, and the first byte of a comment
	// start ("--", "/*"), refused even inside quotes.
	quoteStop [256]bool
)

func init() {
	for c := 0; c < 256; c++ {
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			byteClass[c] = bSpace
		case c < 0x20 || c >= 0x7f:
			byteClass[c] = bBad
		case c == '"' || c == '\\' || c == '?' || c == ';' || c == '#':
			byteClass[c] = bBad
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '$':
			byteClass[c] = bLetter
		case c >= '0' && c <= '9':
			byteClass[c] = bDigit
		}
		quoteStop[c] = byteClass[c] == bBad || c == '\'' || c == '`' || c == '-' || c == '/'
	}
	for _, k := range keywords {
		h := &kwTable[kwHash(k.word)]
		if h.word != "" {
			panic("sqlparse: keyword hash collision: " + h.word + " " + k.word)
		}
		*h = k
	}
}

// isIdentByte: a byte the lexer may take into an identifier (its isIdentChar
// but for non-ASCII bytes, which bail anyway).
func isIdentByte(c byte) bool {
	k := byteClass[c]
	return k == bLetter || k == bDigit
}

// Word kinds that matter to normalizeLiterals.
const (
	wPlain   = iota
	wExpr    // a literal right after it is an expression operand
	wType    // a type name: '(' after it opens type arguments
	wBy      // BY: a digester ORDER/GROUP BY list may follow
	wHint    // FORCE, USE, IGNORE: the digester drops them before INDEX
	wIndex   // INDEX: the digester drops it and its (...) after FORCE/USE/IGNORE
	wCharset // _xxx: maybe a charset introducer, which the digester may drop
)

type keyword struct {
	word string // upper case
	kind uint8
}

var keywords = []keyword{
	// Keywords after which the grammar reads an expression (or a LIMIT
	// count), where a literal is a value node and nothing checks its value.
	// Keywords that take a literal as a name or option (COLLATE, USING,
	// CHARSET, SET, ESCAPE, BY, OUTFILE, SEPARATOR, AS...) are not here, so
	// literals after them stay verbatim.
	{"SELECT", wExpr}, {"WHERE", wExpr}, {"HAVING", wExpr}, {"AND", wExpr},
	{"OR", wExpr}, {"XOR", wExpr}, {"NOT", wExpr}, {"CASE", wExpr},
	{"WHEN", wExpr}, {"THEN", wExpr}, {"ELSE", wExpr}, {"BETWEEN", wExpr},
	{"LIKE", wExpr}, {"REGEXP", wExpr}, {"RLIKE", wExpr}, {"LIMIT", wExpr},
	{"OFFSET", wExpr}, {"INTERVAL", wExpr}, {"DIV", wExpr}, {"MOD", wExpr},
	// Type names whose arguments are lengths or precisions (FLOAT(54) is an
	// error); more than strictly needed, and harmless: it only keeps
	// literals verbatim.
	{"FLOAT", wType}, {"FLOAT4", wType}, {"FLOAT8", wType}, {"DOUBLE", wType},
	{"REAL", wType}, {"DECIMAL", wType}, {"DEC", wType}, {"NUMERIC", wType},
	{"FIXED", wType}, {"CHAR", wType}, {"CHARACTER", wType}, {"NCHAR", wType},
	{"VARCHAR", wType}, {"NVARCHAR", wType}, {"BINARY", wType},
	{"VARBINARY", wType}, {"DATE", wType}, {"DATETIME", wType},
	{"TIME", wType}, {"TIMESTAMP", wType}, {"YEAR", wType}, {"INT", wType},
	{"INTEGER", wType}, {"BIGINT", wType}, {"SMALLINT", wType},
	{"TINYINT", wType}, {"MEDIUMINT", wType}, {"BIT", wType},
	{"VECTOR", wType}, {"TEXT", wType}, {"BLOB", wType}, {"SIGNED", wType},
	{"UNSIGNED", wType}, {"JSON", wType},
	{"BY", wBy},
	{"FORCE", wHint}, {"USE", wHint}, {"IGNORE", wHint},
	{"INDEX", wIndex},
}

// kwTable: keywords by kwHash, which has no collision among them (init
// panics otherwise).
var kwTable [256]keyword

// kwHash hashes a word case-insensitively (c|0x20 folds exactly the ASCII
// letters among identifier bytes) from its length and three bytes.
func kwHash(w string) uint {
	n := uint(len(w))
	return (n + uint(w[0]|0x20) + uint(w[n-1]|0x20)*15 + uint(w[n/2]|0x20)*37) & (uint(len(kwTable)) - 1)
}

// wordKind classifies a word (an unquoted identifier or keyword, or a quoted
// identifier's content).
func wordKind(w string) uint8 {
	if len(w) == 0 {
		return wPlain
	}
	if w[0] == '_' {
		return wCharset
	}
	k := &kwTable[kwHash(w)]
	if len(k.word) != len(w) {
		return wPlain
	}
	for i := 0; i < len(w); i++ {
		if w[i]|0x20 != k.word[i]|0x20 {
			return wPlain
		}
	}
	return k.kind
}

// normState is the context normalizeLiterals carries from token to token.
type normState struct {
	// allow: the previous token starts an expression (an operator, '(',
	// ',', or a wExpr keyword), so a literal here may be replaced.
	allow bool
	// prevType: the previous token is a type name; typeDepth > 0 inside its
	// parenthesised arguments, where nothing is replaced.
	prevType  bool
	typeDepth int

	// The ORDER/GROUP BY chain. The digester keeps an integer verbatim when
	// the tokens since "order by" / "group by" are [ "(" ] (X ",")* with
	// each X one token. chain is set at any BY and kept while that may
	// still hold: integers are then kept verbatim. It ends when two adjacent
	// tokens, neither a comma, are words, numbers, strings or quoted
	// identifiers (lastWord: the previous token was one), since the digester
	// keeps those in its token list as they are, except: words starting
	// with '_' (a charset introducer may be dropped with its literal list),
	// and FORCE/USE/IGNORE INDEX (...), which it drops; after INDEX the
	// chain can no longer end (frozen) until the next BY.
	chain, frozen, lastWord bool
}

// word notes a word or quoted identifier of kind k.
func (s *normState) word(k uint8) {
	switch k {
	case wBy:
		s.chain, s.frozen, s.lastWord = true, false, false
	case wIndex:
		if s.chain {
			s.frozen = true
		}
		s.lastWord = false
	case wHint, wCharset:
		s.lastWord = false
	default:
		s.literal()
	}
}

// literal notes a word-like token the digester keeps in place (a number, a
// string, a plain word).
func (s *normState) literal() {
	if s.chain && !s.frozen && s.lastWord {
		s.chain = false
	}
	s.lastWord = true
}

// normalizeLiterals returns the literal-normalised key of sql, appended to
// buf[:0] (it is at most len(sql)+1 bytes long), or ok false when sql is
// not one it is certain to tokenize as the parser does (see above).
func normalizeLiterals(sql string, buf []byte) (key []byte, ok bool) {
	out := append(buf[:0], normPrefix)
	n := len(sql)
	var st normState
	copied := 0 // sql[:copied] is in out (verbatim bytes are copied in runs)

	for i := 0; i < n; {
		c := sql[i]
		switch byteClass[c] {
		case bSpace:
			i++
			continue

		case bBad:
			return nil, false

		case bLetter:
			j := i + 1
			for j < n && isIdentByte(sql[j]) {
				j++
			}
			if j < n && sql[j] == '\'' {
				return nil, false // introducer, N'', X'', B''
			}
			k := wordKind(sql[i:j])
			st.word(k)
			st.allow, st.prevType = k == wExpr, k == wType
			i = j
			continue

		case bDigit:
			j := i
			for j < n && byteClass[sql[j]] == bDigit {
				j++
			}
			intDigits, fracDigits := j-i, 0
			dec := false
			if j+1 < n && sql[j] == '.' && byteClass[sql[j+1]] == bDigit {
				k := j + 1
				for k < n && byteClass[sql[k]] == bDigit {
					k++
				}
				fracDigits, dec, j = k-j-1, true, k
			}
			if j < n && (isIdentByte(sql[j]) || sql[j] == '.' || sql[j] == '\'') {
				return nil, false // 1abc, 1e5, 0x1F, 1.5.2, 1.e3, 1'x'
			}
			st.literal()
			if st.allow && st.typeDepth == 0 && intDigits <= maxNormDigits &&
				fracDigits <= maxNormDigits && (dec || !st.chain) {
				out = append(out, sql[copied:i]...)
				if dec {
					out = append(out, markDec)
				} else {
					out = append(out, markInt)
				}
				copied = j
			}
			st.allow, st.prevType = false, false
			i = j
			continue
		}

		switch c {
		case '\'':
			if i > 0 && sql[i-1] == '.' {
				return nil, false // t.'x'
			}
			j := i + 1
			for {
				for j < n && !quoteStop[sql[j]] {
					j++
				}
				if j >= n {
					return nil, false // unterminated
				}
				if d := sql[j]; d == '\'' {
					if j+1 < n && sql[j+1] == '\'' {
						j += 2 // '' is an escaped quote in every mode
						continue
					}
					break
				} else if d == '`' || (d == '-' || d == '/') && !isCommentStart(sql, j) {
					j++
					continue
				}
				return nil, false // a bad byte or a comment start
			}
			j++ // past the closing quote
			st.literal()
			if st.allow && st.typeDepth == 0 {
				out = append(out, sql[copied:i]...)
				out = append(out, markStr)
				copied = j
			}
			st.allow, st.prevType = false, false
			i = j

		case '`':
			j, ok := skipQuotedIdent(sql, i)
			if !ok {
				return nil, false
			}
			st.word(wordKind(sql[i+1 : j-1]))
			st.allow, st.prevType = false, false
			i = j

		case '@':
			// A user (@name) or system (@@[global.|session.|local.]name)
			// variable: the lexer takes every following letter, digit, '_',
			// '$' and '.' into the name, or a quoted name. It is kept as is.
			j := i + 1
			if j < n && sql[j] == '@' {
				j++
			}
			k := j
			for k < n && (isIdentByte(sql[k]) || sql[k] == '.') {
				k++
			}
			if k < n && sql[k] == '`' {
				e, ok := skipQuotedIdent(sql, k)
				if !ok {
					return nil, false
				}
				if wordKind(sql[k+1:e-1]) == wBy {
					st.chain, st.frozen = true, false
				}
				k = e
			} else if k == j || (k < n && sql[k] == '\'') {
				return nil, false // @'x', @@global.'x', a lone @
			}
			if wordKind(sql[j:k]) == wBy { // the digester sees @by as "by"
				st.chain, st.frozen = true, false
			}
			st.lastWord, st.allow, st.prevType = false, false, false
			i = k

		case '.':
			if i+1 < n && byteClass[sql[i+1]] == bDigit {
				return nil, false // .5, t.1
			}
			if i > 0 && (isIdentByte(sql[i-1]) || sql[i-1] == '`') {
				// identifier '.': the lexer reads digits as an identifier
				// until it meets the next identifier or '*'.
				if i+1 >= n {
					return nil, false
				}
				d := sql[i+1]
				if !(d >= 'a' && d <= 'z' || d >= 'A' && d <= 'Z' || d == '$' || d == '`' || d == '*') {
					return nil, false
				}
			}
			st.lastWord, st.allow, st.prevType = false, false, false
			i++

		default:
			if isCommentStart(sql, i) {
				return nil, false
			}
			switch c {
			case '(':
				if st.prevType || st.typeDepth > 0 {
					st.typeDepth++
				}
			case ')':
				if st.typeDepth > 0 {
					st.typeDepth--
				}
			}
			switch c {
			case '=', '<', '>', '!', '+', '-', '*', '/', '%', '&', '|', '^', '~', '(', ',':
				st.allow = true
			default:
				st.allow = false
			}
			st.lastWord, st.prevType = false, false
			i++
		}
	}
	return append(out, sql[copied:]...), true
}

// isCommentStart: "--" or "/*" at sql[i] ('#' is a bad byte anyway). "--"
// starts a comment only before a blank, but is refused in any case.
func isCommentStart(sql string, i int) bool {
	if i+1 >= len(sql) {
		return false
	}
	return (sql[i] == '-' && sql[i+1] == '-') || (sql[i] == '/' && sql[i+1] == '*')
}

// skipQuotedIdent returns the index past the backtick-quoted identifier that
// starts at sql[i], or ok false when it is unterminated or holds a bad byte
// or a comment start (refused wherever they appear).
func skipQuotedIdent(sql string, i int) (end int, ok bool) {
	n := len(sql)
	for j := i + 1; ; {
		for j < n && !quoteStop[sql[j]] {
			j++
		}
		if j >= n {
			return 0, false
		}
		switch d := sql[j]; {
		case d == '`':
			if j+1 < n && sql[j+1] == '`' {
				j += 2 // `` is an escaped backtick
				continue
			}
			return j + 1, true
		case d == '\'' || (d == '-' || d == '/') && !isCommentStart(sql, j):
			j++
		default:
			return 0, false
		}
	}
}

// shareable: facts that texts differing only in literal values may share
// (see the safety argument above): statements of a kind whose facts come
// from the structure alone, parsed without error, one statement.
func shareable(f *Facts) bool {
	if f.ParseErr != nil || f.Multi {
		return false
	}
	switch f.Kind {
	case KindSelect, KindInsert, KindUpdate, KindDelete, KindReplace:
		return true
	}
	return false
}

// detachText makes f, just made by analyze, keep no reference into the text
// it was parsed from (table names are substrings of it): an entry under a
// normalised key then holds its key and facts only, as its size counts, not
// also the text (sysbench's INSERT is four times its key).
func detachText(f *Facts) {
	n := 0
	for _, t := range f.Tables {
		n += len(t.Schema) + len(t.Name)
	}
	if n == 0 {
		return
	}
	var b strings.Builder
	b.Grow(n)
	for _, t := range f.Tables {
		b.WriteString(t.Schema)
		b.WriteString(t.Name)
	}
	all, off := b.String(), 0
	for i := range f.Tables {
		t := &f.Tables[i]
		t.Schema = all[off : off+len(t.Schema)]
		off += len(t.Schema)
		t.Name = all[off : off+len(t.Name)]
		off += len(t.Name)
	}
}
