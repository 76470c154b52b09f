package sqlparse

import (
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

func TestNormalizeLiterals(t *testing.T) {
	accepted := []struct{ sql, key string }{
		// sysbench OLTP.
		{"SELECT c FROM sbtest1 WHERE id=5014", "SELECT c FROM sbtest1 WHERE id=?"},
		{"SELECT c FROM sbtest1 WHERE id BETWEEN 4990 AND 5089", "SELECT c FROM sbtest1 WHERE id BETWEEN ? AND ?"},
		{"SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 1 AND 100", "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN ? AND ?"},
		{"SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 1 AND 100 ORDER BY c", "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN ? AND ? ORDER BY c"},
		{"UPDATE sbtest1 SET k=k+1 WHERE id=4975", "UPDATE sbtest1 SET k=k+? WHERE id=?"},
		{"UPDATE sbtest1 SET c='1-2-3' WHERE id=4975", `UPDATE sbtest1 SET c=" WHERE id=?`},
		{"DELETE FROM sbtest1 WHERE id=7", "DELETE FROM sbtest1 WHERE id=?"},
		{"INSERT INTO sbtest1 (id, k, c, pad) VALUES (5014, 4993, '8386-2877', '6784-4800')",
			`INSERT INTO sbtest1 (id, k, c, pad) VALUES (?, ?, ", ")`},
		// Whitespace and case are kept.
		{"select c\n\tfrom T1\r\nwhere id = -1", "select c\n\tfrom T1\r\nwhere id = -?"},
		// Strings: '' is an escaped quote; empty strings.
		{"SELECT 'it''s', '', ''''", `SELECT ", ", "`},
		// Decimals have their own marker.
		{"SELECT 1.5, 0.25 FROM t WHERE a>10", "SELECT #, # FROM t WHERE a>?"},
		// Digits inside identifiers, variables and quoted identifiers stay.
		{"SELECT $1, _3, t2.c4 FROM db1.t2 WHERE x1=2", "SELECT $1, _3, t2.c4 FROM db1.t2 WHERE x1=?"},
		{"SELECT `a``b1`, `x'y` FROM `t 2` WHERE id=3", "SELECT `a``b1`, `x'y` FROM `t 2` WHERE id=?"},
		{"SELECT @a1, @@session.autocommit, @`x`, @a.1 FROM t WHERE a=@b", "SELECT @a1, @@session.autocommit, @`x`, @a.1 FROM t WHERE a=@b"},
		{"SELECT t.*, t.`1` FROM t WHERE x=1", "SELECT t.*, t.`1` FROM t WHERE x=?"},
		// IN lists, LIMIT, functions.
		{"SELECT a FROM t WHERE id IN (1, 2, 3) LIMIT 10 OFFSET 20", "SELECT a FROM t WHERE id IN (?, ?, ?) LIMIT ? OFFSET ?"},
		{"SELECT GET_LOCK('x', 10), LAST_INSERT_ID(5), SLEEP(1)", `SELECT GET_LOCK(", ?), LAST_INSERT_ID(?), SLEEP(?)`},
		// The digester keeps integers after ORDER/GROUP BY: so does the key,
		// until the list provably ended.
		{"SELECT a FROM t ORDER BY 1", "SELECT a FROM t ORDER BY 1"},
		{"SELECT a, b FROM t GROUP BY a, 2 LIMIT 10", "SELECT a, b FROM t GROUP BY a, 2 LIMIT ?"},
		{"SELECT a FROM t ORDER BY a DESC LIMIT 5, 10", "SELECT a FROM t ORDER BY a DESC LIMIT ?, ?"},
		{"SELECT a FROM t ORDER BY 1.5, 'x', 2", `SELECT a FROM t ORDER BY 1.5, ", 2`},
		// Literals that are names, options or type lengths stay.
		{"SELECT CAST(a AS FLOAT(10)) FROM t WHERE b=1", "SELECT CAST(a AS FLOAT(10)) FROM t WHERE b=?"},
		{"SELECT a FROM t WHERE b LIKE 'x%' ESCAPE '!'", `SELECT a FROM t WHERE b LIKE " ESCAPE '!'`},
		{"SELECT a COLLATE 'utf8mb4_bin', CONVERT(b USING 'latin1') FROM t", "SELECT a COLLATE 'utf8mb4_bin', CONVERT(b USING 'latin1') FROM t"},
		{"SELECT * FROM t FOR UPDATE WAIT 5", "SELECT * FROM t FOR UPDATE WAIT 5"},
		{"SELECT _utf8mb4 'x', DATE '2020-01-01'", "SELECT _utf8mb4 'x', DATE '2020-01-01'"},
		// Integers beyond 18 digits stay.
		{"SELECT 123456789012345678, 1234567890123456789", "SELECT ?, 1234567890123456789"},
		{"SET autocommit=0", "SET autocommit=?"},
	}
	for _, tc := range accepted {
		key, ok := normalizeLiterals(tc.sql, nil)
		if !ok {
			t.Errorf("%q: refused", tc.sql)
			continue
		}
		if want := "\x00" + tc.key; string(key) != want {
			t.Errorf("%q:\n key %q\nwant %q", tc.sql, key, want)
		}
	}

	refused := []string{
		`SELECT "x"`,                       // ANSI_QUOTES
		`SELECT 'a\'b'`,                    // NO_BACKSLASH_ESCAPES
		`SELECT a FROM t WHERE b = 'x\'`,   // idem
		"SELECT a FROM t WHERE id=?",       // parameter marker
		"SELECT '?'",                       // idem, anywhere
		"SELECT 1 -- c",                    // comments
		"SELECT 1--1",                      //
		"SELECT '--'",                      //
		"SELECT 1 # c",                     //
		"SELECT /*+ hint */ 1",             //
		"/*!40101 SELECT 1 */",             //
		"SELECT 1; SELECT 2",               // several statements
		"SELECT 1;",                        //
		"SELECT 'é'",                       // non-ASCII
		"SELECT `é`",                       //
		"SELECT 1\x00",                     // control bytes
		"SELECT\v1",                        //
		"SELECT\f1",                        //
		"SELECT 'abc",                      // unterminated
		"SELECT 'a''",                      //
		"SELECT `abc",                      //
		"SELECT _utf8'x'",                  // introducers, hex, bit
		"SELECT N'x'",                      //
		"SELECT X'41'",                     //
		"SELECT x'41'",                     //
		"SELECT B'01'",                     //
		"SELECT 0x1F",                      //
		"SELECT 0b01",                      //
		"SELECT 1abc FROM t",               // identifiers starting with digits
		"SELECT * FROM 1t",                 //
		"SELECT 1e5",                       // floats
		"SELECT 1.5e3",                     //
		"SELECT 1.",                        //
		"SELECT 1.e3",                      //
		"SELECT .5",                        //
		"SELECT 1.5.2",                     //
		"SELECT t.1 FROM t",                // identifier dot
		"SELECT t. 1 FROM t",               //
		"SELECT t._utf8 1 FROM t",          //
		"SELECT t.'x' FROM t",              //
		"SELECT 1'x'",                      //
		"SELECT @'x'",                      // quoted variable names
		"SELECT @@global.'x'",              //
		"SELECT @ ",                        //
		"SELECT @`x",                       //
		"SELECT a FROM t WHERE b = @a'x'",  //
		"SELECT `a\"b`",                    // bad bytes even quoted
		"SELECT 'a' FROM t WHERE b='a/*b'", //
	}
	for _, sql := range refused {
		if key, ok := normalizeLiterals(sql, nil); ok {
			t.Errorf("%q: accepted as %q", sql, key)
		}
	}
}

// Pairs that differ only in literal values but not in their facts (checked
// with a parse) must not share a key: each is a case normalizeLiterals keeps
// verbatim on purpose.
func TestNormalizeKeepsValueDependentLiterals(t *testing.T) {
	pairs := [][2]string{
		{"SELECT a FROM t ORDER BY 1", "SELECT a FROM t ORDER BY 2"},                                    // fingerprint keeps it
		{"SELECT a, b FROM t GROUP BY a, 1", "SELECT a, b FROM t GROUP BY a, 2"},                        // idem
		{"SELECT a FROM t ORDER BY a, -1", "SELECT a FROM t ORDER BY a, -2"},                            // idem
		{"SELECT CAST(a AS FLOAT(10)) FROM t", "SELECT CAST(a AS FLOAT(54)) FROM t"},                    // precision checked
		{"SELECT a FROM t WHERE b LIKE 'x' ESCAPE '!'", "SELECT a FROM t WHERE b LIKE 'x' ESCAPE '!!'"}, // one character
		{"SELECT a COLLATE 'utf8mb4_bin' FROM t", "SELECT a COLLATE 'bogus' FROM t"},                    // collation name
		{"SELECT CONVERT(a USING 'utf8mb4') FROM t", "SELECT CONVERT(a USING 'bogus') FROM t"},          // charset name
		{"SELECT CAST(a AS CHAR CHARACTER SET 'utf8mb4') FROM t", "SELECT CAST(a AS CHAR CHARACTER SET 'bogus') FROM t"},
		{"SELECT a FROM t LIMIT 1", "SELECT a FROM t LIMIT 1.5"},                  // types differ
		{"SELECT a FROM t LIMIT 1", "SELECT a FROM t LIMIT '1'"},                  //
		{"SELECT a FROM t LIMIT 1", "SELECT a FROM t LIMIT 18446744073709551616"}, // beyond uint64
		{"SELECT a FROM t INTO OUTFILE 'f' FIELDS ENCLOSED BY '|'", "SELECT a FROM t INTO OUTFILE 'f' FIELDS ENCLOSED BY '||'"},
		{"SELECT c FROM T1 WHERE id=1", "select c from t1 where id=2"}, // case
	}
	fresh := New(Options{CacheEntries: -1})
	for _, pr := range pairs {
		a, b := fresh.Parse(pr[0]), fresh.Parse(pr[1])
		if factsEqual(a, b) {
			t.Errorf("%q and %q: facts equal, the pair tests nothing", pr[0], pr[1])
		}
		ka, oka := normalizeLiterals(pr[0], nil)
		kb, okb := normalizeLiterals(pr[1], nil)
		if oka && okb && string(ka) == string(kb) {
			t.Errorf("%q and %q share key %q", pr[0], pr[1], ka)
		}
	}
}

// factsEqual compares every Facts field, ParseErr by being nil or not (its
// message quotes the text).
func factsEqual(a, b *Facts) bool {
	x, y := *a, *b
	if (x.ParseErr == nil) != (y.ParseErr == nil) {
		return false
	}
	x.ParseErr, y.ParseErr = nil, nil
	return reflect.DeepEqual(x, y)
}

// normalizedSeeds are statements for the differential tests; they also seed
// FuzzNormalizedFacts.
var normalizedSeeds = []string{
	// sysbench OLTP.
	"SELECT c FROM sbtest1 WHERE id=5014",
	"SELECT c FROM sbtest1 WHERE id BETWEEN 4990 AND 5089",
	"SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 4990 AND 5089",
	"SELECT c FROM sbtest1 WHERE id BETWEEN 4990 AND 5089 ORDER BY c",
	"SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 4990 AND 5089 ORDER BY c",
	"UPDATE sbtest1 SET k=k+1 WHERE id=4975",
	"UPDATE sbtest1 SET c='83868641912-28773972837-60736120486' WHERE id=4975",
	"DELETE FROM sbtest1 WHERE id=5014",
	"INSERT INTO sbtest1 (id, k, c, pad) VALUES (5014, 4993, '83868641912-28773972837', '67847967377-48000963322')",
	"REPLACE INTO sbtest2 (id, k) VALUES (1, 2), (3, 4)",
	// IN lists, LIMIT, ORDER/GROUP BY.
	"SELECT a FROM t WHERE id IN (1, 2, 3) AND b NOT IN ('x', 'y')",
	"SELECT a FROM t WHERE (a, b) IN ((1, 2), (3, 4))",
	"SELECT a FROM t LIMIT 10",
	"SELECT a FROM t LIMIT 5, 10",
	"SELECT a FROM t ORDER BY a LIMIT 10 OFFSET 20",
	"SELECT a FROM t ORDER BY 1",
	"SELECT a, b FROM t ORDER BY 2 DESC, 1",
	"SELECT a, b FROM t GROUP BY a, 2 HAVING COUNT(*) > 1",
	"SELECT a, b FROM t GROUP BY (1, 2)",
	"SELECT a FROM t ORDER BY a, -1",
	"SELECT a FROM t ORDER BY FIELD(id, 3, 1, 2)",
	"SELECT a FROM t ORDER BY _utf8mb4 'x', _utf8mb4 'y', a, 5",
	"SELECT `order` `by`, 1 FROM t",
	"SELECT a, ROW_NUMBER() OVER (PARTITION BY b ORDER BY 1) FROM t",
	"SELECT a FROM t USE INDEX (i1) WHERE b=1 ORDER BY a, 2",
	// Functions with effects or reading the previous statement.
	"SELECT GET_LOCK('lock1', 10)",
	"SELECT RELEASE_LOCK('lock1')",
	"SELECT LAST_INSERT_ID(5)",
	"SELECT LAST_INSERT_ID()",
	"SELECT SLEEP(1)",
	"SELECT db1.f(1)",
	"SELECT a FROM t WHERE id=1 FOR UPDATE",
	"SELECT a FROM t WHERE id=1 LOCK IN SHARE MODE",
	"SELECT a FROM t WHERE id=1 FOR UPDATE WAIT 3",
	"SELECT a INTO @x FROM t WHERE id=1",
	"SELECT @x := 1, @y",
	"SET @x = 1",
	"SET autocommit=0",
	"SET autocommit = 'ON'",
	"SET SESSION autocommit=1",
	// Names differing in case; backticks with digits and quotes inside.
	"SELECT c FROM T1 WHERE id=1",
	"SELECT c FROM t1 WHERE id=1",
	"SELECT `c1`, `x'1'` FROM `Tab``1` WHERE `2`=3",
	"SELECT t.a FROM db.t WHERE t.b='x'",
	// Identifiers starting with digits, hex and bit literals, introducers.
	"SELECT 1abc FROM t WHERE x=1",
	"SELECT x'41', b'01', 0x41 FROM t",
	"SELECT _utf8mb4 'x' COLLATE utf8mb4_bin",
	"SELECT _binary 'x', N'y'",
	// Texts the lexer reads in ways normalizeLiterals refuses.
	"SELECT @'x', @'y' := 2 FROM t WHERE a=1",
	"SELECT t. 1, t.a FROM t WHERE a=1",
	"SELECT t.1e1, 2 FROM t",
	"SELECT 1.e3, .5, 1.5.2 FROM t WHERE a=1",
	// Numbers.
	"SELECT a FROM t WHERE b=-1 AND c=+2 AND d=3-4",
	"SELECT 1.5, 0.25, -0.5, 100.00",
	"SELECT 1e5, 1.5e-3",
	"SELECT 123456789012345678, 9223372036854775807, 18446744073709551615, 18446744073709551616",
	"SELECT 00012, 0",
	// Value-checked literals.
	"SELECT CAST(a AS FLOAT(10)), CAST(b AS DECIMAL(10, 2)), CAST(c AS CHAR(5)) FROM t",
	"SELECT a FROM t WHERE b LIKE 'x%' ESCAPE '!'",
	"SELECT a COLLATE 'utf8mb4_bin', CONVERT(b USING 'latin1') FROM t",
	"SELECT a FROM t INTO OUTFILE '/tmp/f' FIELDS TERMINATED BY ',' ENCLOSED BY '\"'",
	"SELECT DATE_ADD(d, INTERVAL 1 DAY), DATE '2020-01-01' FROM t",
	"SELECT CASE a WHEN 1 THEN 'x' ELSE 'y' END FROM t",
	// MariaDB syntax the parser reads after a rewrite.
	"INSERT INTO t (a) VALUES (1) RETURNING id",
	"DELETE FROM t WHERE a=1 RETURNING a, 'x'",
	"SELECT a FROM t LIMIT 10 ROWS EXAMINED 100",
	"SELECT a FROM t WHERE b=1 INTO @x",
	"SET STATEMENT max_statement_time=1 FOR SELECT a FROM t WHERE b=2",
	"SET STATEMENT autocommit=0 FOR UPDATE t SET a=1",
	"SELECT NEXT VALUE FOR s, PREVIOUS VALUE FOR s FROM t WHERE a=1",
	// Statements that must not be shared.
	"KILL 12",
	"DO SLEEP(1)",
	"SHOW TABLES LIKE 'x%'",
	"CREATE TABLE t (a INT DEFAULT 1)",
	"CALL p(1)",
	"EXECUTE s USING @a",
	"SELECT 1",
	"SELECT a FROM t WHERE b=1 UNION SELECT 2",
	"WITH c AS (SELECT 1 AS x) SELECT x FROM c WHERE x=2",
	"SELECT a FROM t WHERE",
}

// mutateLiterals returns sql with digit runs and the contents of quoted
// strings changed at random (independently of normalizeLiterals: digits
// inside identifiers change too, and the key then tells them apart).
func mutateLiterals(sql string, r *rand.Rand) string {
	var b strings.Builder
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c >= '0' && c <= '9':
			j := i
			for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
				j++
			}
			b.WriteString(randomDigits(sql[i:j], r))
			i = j
		case c == '\'':
			j := i + 1
			for j < len(sql) {
				if sql[j] == '\'' {
					if j+1 < len(sql) && sql[j+1] == '\'' {
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j >= len(sql) { // unterminated: leave the rest
				b.WriteString(sql[i:])
				return b.String()
			}
			b.WriteByte('\'')
			b.WriteString(randomString(sql[i+1:j], r))
			b.WriteByte('\'')
			i = j + 1
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

func randomDigits(old string, r *rand.Rand) string {
	switch r.IntN(8) {
	case 0:
		return old
	case 6: // another type: the key must tell them apart
		return strconv.Itoa(r.IntN(100)) + "." + strconv.Itoa(r.IntN(100))
	case 7:
		return "'" + strconv.Itoa(r.IntN(100)) + "'"
	case 1:
		return "0"
	case 2:
		return strconv.FormatUint(r.Uint64(), 10) // up to 20 digits
	case 3:
		return strconv.Itoa(r.IntN(60)) // around FLOAT(54), small positions
	case 5: // around the 18 digits kept as int64, beyond uint64
		n := 17 + r.IntN(6)
		d := make([]byte, n)
		for i := range d {
			d[i] = byte('1' + r.IntN(9))
		}
		return string(d)
	default:
		n := 1 + r.IntN(18)
		d := make([]byte, n)
		for i := range d {
			d[i] = byte('0' + r.IntN(10))
		}
		return string(d)
	}
}

var stringPool = []string{
	"", "x", "!", "!!", "it''s", "''", "ab", "%", "a%b", "utf8mb4", "latin1",
	"utf8mb4_bin", "bogus", "ON", "OFF", "1", "0", "2020-01-01", "$.a", "(", ")",
	",", " ", "-", "by", "order",
}

func randomString(old string, r *rand.Rand) string {
	switch r.IntN(4) {
	case 0:
		return old
	case 1:
		n := r.IntN(12)
		d := make([]byte, n)
		for i := range d {
			d[i] = " abcXYZ019_%,()-.@`"[r.IntN(19)]
		}
		return string(d)
	default:
		return stringPool[r.IntN(len(stringPool))]
	}
}

// checkNormalizedFacts is the property: when sql and a variant with other
// literal values share a normalised key, the facts a cache filled by sql
// returns for the variant are those a fresh parse of the variant finds.
// cached gets an empty cache first; fresh has none.
func checkNormalizedFacts(t *testing.T, cached, fresh *Parser, sql, variant string) (shared bool) {
	t.Helper()
	cached.cache = newCache(DefaultCacheEntries, DefaultCacheBytes)
	ka, oka := normalizeLiterals(sql, nil)
	kb, okb := normalizeLiterals(variant, nil)
	want := fresh.Parse(variant)
	cached.Parse(sql)
	got := cached.Parse(variant)
	if !factsEqual(got, want) {
		t.Fatalf("facts of %q from a cache filled by %q:\n got %+v\nwant %+v", variant, sql, *got, *want)
	}
	return oka && okb && string(ka) == string(kb) && cached.Stats().NormalizedHits == 1
}

func TestNormalizedFactsDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cached, fresh := New(Options{}), New(Options{CacheEntries: -1})
	shared := 0
	for _, sql := range normalizedSeeds {
		for range 40 {
			if checkNormalizedFacts(t, cached, fresh, sql, mutateLiterals(sql, r)) {
				shared++
			}
		}
	}
	if shared < len(normalizedSeeds)*40/8 {
		t.Fatalf("only %d variants shared an entry: the test tests little", shared)
	}
}

func FuzzNormalizedFacts(f *testing.F) {
	for i, s := range normalizedSeeds {
		f.Add(s, uint64(i))
	}
	cached, fresh := New(Options{}), New(Options{CacheEntries: -1})
	f.Fuzz(func(t *testing.T, sql string, seed uint64) {
		if len(sql) > 1024 {
			return
		}
		r := rand.New(rand.NewPCG(seed, 0))
		checkNormalizedFacts(t, cached, fresh, sql, mutateLiterals(sql, r))
	})
}

func TestNormalizedCaseAndSet(t *testing.T) {
	p := New(Options{})
	a := p.Parse("SELECT c FROM T1 WHERE id=1")
	b := p.Parse("select c from t1 where id=2")
	if a == b || a.Tables[0].Name != "T1" || b.Tables[0].Name != "t1" {
		t.Fatalf("texts differing in case share facts: %+v %+v", a.Tables, b.Tables)
	}
	off := p.Parse("SET autocommit=0")
	on := p.Parse("SET autocommit=1")
	if !off.AutocommitOff || off.AutocommitOn || !on.AutocommitOn || on.AutocommitOff {
		t.Fatalf("SET autocommit: =0 %+v, =1 %+v", off, on)
	}
	if p.Parse("SET autocommit=1") != on {
		t.Fatal("SET is not in the exact-text cache")
	}
	if st := p.Stats(); st.NormalizedHits != 0 || st.Hits != 1 || st.Misses != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNormalizedStats(t *testing.T) {
	p := New(Options{})
	var first *Facts
	for i := range 100 {
		f := p.Parse("SELECT c FROM sbtest1 WHERE id=" + strconv.Itoa(i*37))
		if first == nil {
			first = f
		} else if f != first {
			t.Fatalf("select %d: not the shared facts", i)
		}
	}
	st := p.Stats()
	if st.Misses != 1 || st.Hits != 99 || st.NormalizedHits != 99 || st.Entries != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The same text again is a hit of the normalised level too: it was not
	// also stored by its exact text.
	p.Parse("SELECT c FROM sbtest1 WHERE id=0")
	if st := p.Stats(); st.NormalizedHits != 100 || st.Entries != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNormalizedHitAllocs(t *testing.T) {
	long := "SELECT c FROM sbtest1 WHERE c IN ('" + strings.Repeat("x", 600) + "', '%d') AND id=%d"
	for _, tmpl := range []string{"SELECT c FROM sbtest1 WHERE id=%d", long} {
		p := New(Options{})
		texts := make([]string, 100)
		for i := range texts {
			texts[i] = strings.ReplaceAll(tmpl, "%d", strconv.Itoa(i))
		}
		p.Parse(texts[0])
		i := 0
		if n := testing.AllocsPerRun(1000, func() {
			i++
			sink = p.Parse(texts[i%len(texts)])
		}); n != 0 {
			t.Errorf("%d-byte text: a normalised hit allocates %.1f times", len(texts[0]), n)
		}
		if st := p.Stats(); st.Misses != 1 || st.NormalizedHits < 1000 {
			t.Errorf("stats %+v", st)
		}
	}
}

// A text starting with NUL could equal a normalised key: it is not cached.
func TestNULTextNotCached(t *testing.T) {
	p := New(Options{})
	p.Parse("SELECT c FROM t WHERE id=1")
	key, _ := normalizeLiterals("SELECT c FROM t WHERE id=1", nil)
	f := p.Parse(string(key))
	if f.ParseErr == nil || p.Stats().Hits != 0 {
		t.Fatalf("facts %+v, stats %+v", f, p.Stats())
	}
}

func TestWordKind(t *testing.T) {
	for _, k := range keywords {
		for _, w := range []string{k.word, strings.ToLower(k.word), strings.ToUpper(k.word[:1]) + strings.ToLower(k.word[1:])} {
			if got := wordKind(w); got != k.kind {
				t.Errorf("wordKind(%q) = %d, want %d", w, got, k.kind)
			}
		}
		for _, w := range []string{k.word + "S", "X" + k.word, k.word[1:], k.word[:len(k.word)-1] + "_", "$" + k.word[1:]} {
			if got := wordKind(w); got != wPlain && !isKeyword(w) {
				t.Errorf("wordKind(%q) = %d, want plain", w, got)
			}
		}
	}
	if wordKind("_utf8mb4") != wCharset || wordKind("") != wPlain {
		t.Error("wordKind of _utf8mb4 or the empty word")
	}
}

func isKeyword(w string) bool {
	for _, k := range keywords {
		if k.word == w {
			return true
		}
	}
	return false
}

// Facts stored under a normalised key do not keep the text they were parsed
// from (their size would not count it).
func TestNormalizedFactsDetached(t *testing.T) {
	p := New(Options{})
	sql := "SELECT c FROM db1.sbtest1 JOIN t2 WHERE id=" + strconv.Itoa(12345) + " AND c='" + strings.Repeat("x", 100) + "'"
	f := p.ParseOwned(sql)
	if tableString(f.Tables) != "db1.sbtest1 t2" {
		t.Fatalf("tables %q", tableString(f.Tables))
	}
	lo, hi := uintptr(unsafe.Pointer(unsafe.StringData(sql))), uintptr(unsafe.Pointer(unsafe.StringData(sql)))+uintptr(len(sql))
	for _, tb := range f.Tables {
		for _, s := range []string{tb.Schema, tb.Name} {
			if p := uintptr(unsafe.Pointer(unsafe.StringData(s))); p >= lo && p < hi {
				t.Errorf("%q points into the text", s)
			}
		}
	}
}
