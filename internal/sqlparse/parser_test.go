package sqlparse

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pingcap/tidb/pkg/parser/ast"
)

func TestFingerprint(t *testing.T) {
	groups := [][]string{
		{
			"SELECT c FROM sbtest1 WHERE id=42",
			"select c from sbtest1 where id = 7",
			"SELECT  c\n\tFROM sbtest1   WHERE id=-1",
			"/* comment */ select c from sbtest1 where id = 1 -- trailing",
			"SELECT c FROM sbtest1 WHERE id=?",
		},
		{
			"SELECT * FROM t WHERE a IN (1, 2, 3) AND b = 'x'",
			"select * from t where a in (4,5) and b = \"yy\"",
			"SELECT * FROM t WHERE a IN (7, 8, 9, 10, 11, 12) AND b = 'it''s'",
		},
		{
			"INSERT INTO t (a, b) VALUES (1, 'a')",
			"INSERT INTO t (a, b) VALUES (1, 'a'), (2, 'b'), (3, 'c')",
		},
		{
			"SELECT /*+ MAX_EXECUTION_TIME(1000) */ a FROM t",
			"select a from t",
		},
	}
	p := New(Options{})
	for _, g := range groups {
		first := p.Parse(g[0])
		if first.Fingerprint == "" || len(first.Digest) != 64 {
			t.Fatalf("%q: fingerprint %q digest %q", g[0], first.Fingerprint, first.Digest)
		}
		for _, sql := range g[1:] {
			f := p.Parse(sql)
			if f.Fingerprint != first.Fingerprint || f.Digest != first.Digest {
				t.Errorf("%q: fingerprint %q (%s), want %q (%s)", sql, f.Fingerprint, f.Digest,
					first.Fingerprint, first.Digest)
			}
		}
	}
	if f := p.Parse("SELECT c FROM sbtest1 WHERE id=42"); f.Fingerprint != "select `c` from `sbtest1` where `id` = ?" {
		t.Errorf("point select fingerprint %q", f.Fingerprint)
	}
	if f := p.Parse("SELECT * FROM t WHERE a IN (1,2,3)"); !strings.Contains(f.Fingerprint, "in ( ... )") {
		t.Errorf("IN list fingerprint %q", f.Fingerprint)
	}
	// The TiDB normalizer keeps a one-element IN list apart.
	if f := p.Parse("SELECT * FROM t WHERE a IN (9)"); f.Fingerprint != "select * from `t` where `a` in ( ? )" {
		t.Errorf("one-element IN list fingerprint %q", f.Fingerprint)
	}
	// Different statements, different digests.
	a, b := p.Parse("SELECT a FROM t"), p.Parse("SELECT b FROM t")
	if a.Digest == b.Digest {
		t.Errorf("distinct statements share digest %s", a.Digest)
	}
	// Rejected text still gets a fingerprint.
	if f := p.Parse("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING"); f.ParseErr == nil || f.Fingerprint == "" || f.Digest == "" {
		t.Errorf("rejected text: err %v fingerprint %q digest %q", f.ParseErr, f.Fingerprint, f.Digest)
	}
}

func TestKindClassString(t *testing.T) {
	seen := map[string]bool{}
	for k := KindOther; k <= KindDo; k++ {
		s := k.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Errorf("Kind(%d).String() = %q", k, s)
		}
		seen[s] = true
	}
	if Kind(200).String() != "unknown" || Class(200).String() != "unknown" {
		t.Error("out of range values")
	}
	for c := ClassRead; c <= ClassTransaction; c++ {
		if s := c.String(); s == "" || s == "unknown" {
			t.Errorf("Class(%d).String() = %q", c, s)
		}
	}
}

func TestCacheHit(t *testing.T) {
	p := New(Options{})
	sql := "SELECT c FROM sbtest1 WHERE id=1"
	a := p.Parse(sql)
	b := p.Parse(string([]byte(sql))) // same text, different memory
	if a != b {
		t.Fatal("second Parse did not return the cached facts")
	}
	st := p.Stats()
	if st.Hits != 1 || st.Misses != 1 || st.Entries != 1 || st.Bytes <= int64(len(sql)) {
		t.Fatalf("stats %+v", st)
	}
	if c := p.Parse(sql + " "); c == a {
		t.Fatal("different text hit the same entry")
	}
}

func TestCacheDoesNotRetainCallerBuffer(t *testing.T) {
	p := New(Options{})
	buf := []byte("SELECT a FROM tbl_one WHERE id=1")
	f := p.Parse(string(buf))
	copy(buf, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX")
	if f.Tables[0].Name != "tbl_one" {
		t.Fatalf("table name changed with the caller's buffer: %q", f.Tables[0].Name)
	}
	if g := p.Parse("SELECT a FROM tbl_one WHERE id=1"); g != f {
		t.Fatal("entry lost")
	}
}

func TestCacheHitAllocs(t *testing.T) {
	p := New(Options{})
	sql := "SELECT c FROM sbtest1 WHERE id=1"
	p.Parse(sql)
	if n := testing.AllocsPerRun(1000, func() { p.Parse(sql) }); n != 0 {
		t.Fatalf("cache hit allocates %.1f times", n)
	}
}

func TestEvictionByEntries(t *testing.T) {
	p := New(Options{CacheEntries: 3})
	// Distinct statements (texts differing only in a literal would share
	// one normalised entry).
	q := func(i int) string { return "SELECT c" + strconv.Itoa(i) }
	for i := range 3 {
		p.Parse(q(i))
	}
	p.Parse(q(0)) // 0 is now the most recently used; 1 the least
	p.Parse(q(3)) // evicts 1
	st := p.Stats()
	if st.Entries != 3 || st.Evictions != 1 {
		t.Fatalf("stats %+v", st)
	}
	before := p.Stats().Misses
	p.Parse(q(0))
	p.Parse(q(2))
	p.Parse(q(3))
	if got := p.Stats().Misses; got != before {
		t.Fatalf("recently used entries were evicted: misses %d -> %d", before, got)
	}
	p.Parse(q(1))
	if got := p.Stats().Misses; got != before+1 {
		t.Fatalf("the least recently used entry was kept: misses %d -> %d", before, got)
	}
}

func TestEvictionByBytes(t *testing.T) {
	const budget = 8 << 10
	p := New(Options{CacheEntries: 100, CacheBytes: budget})
	for i := range 100 {
		p.Parse(fmt.Sprintf("SELECT a, b, c, d, e FROM some_table_%d WHERE id = %d /* %s */", i, i, strings.Repeat("x", 200)))
		if st := p.Stats(); st.Bytes > budget {
			t.Fatalf("cache holds %d bytes, budget %d", st.Bytes, budget)
		}
	}
	st := p.Stats()
	if st.Evictions == 0 || st.Entries >= 100 || st.Entries == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLargeTextNotCached(t *testing.T) {
	p := New(Options{MaxCachedSQL: 64})
	long := "SELECT * FROM t WHERE s = '" + strings.Repeat("x", 100) + "'"
	a, b := p.Parse(long), p.Parse(long)
	if a == b || a.Kind != KindSelect || !a.ReadOnly {
		t.Fatalf("long text: %+v", a)
	}
	if st := p.Stats(); st.Entries != 0 || st.Misses != 2 || st.Hits != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCacheDisabled(t *testing.T) {
	p := New(Options{CacheEntries: -1})
	if a, b := p.Parse("SELECT 1"), p.Parse("SELECT 1"); a == b || !equalFacts(a, b) {
		t.Fatal("cache disabled: want distinct, equal facts")
	}
	if st := p.Stats(); st.Misses != 2 || st.Entries != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestErrorsCounted(t *testing.T) {
	p := New(Options{})
	bad := "SELECT FROM WHERE ~~~"
	for range 3 {
		if f := p.Parse(bad); f.ParseErr == nil || f.ReadOnly {
			t.Fatalf("facts %+v", f)
		}
	}
	p.Parse("SELECT 1")
	st := p.Stats()
	if st.Errors != 3 || st.Misses != 2 || st.Hits != 2 {
		t.Fatalf("stats %+v", st)
	}
	// A text that parses after a MariaDB rewrite is not an error.
	if f := p.Parse("DELETE FROM t RETURNING id"); f.ParseErr != nil {
		t.Fatal(f.ParseErr)
	}
	if st := p.Stats(); st.Errors != 3 || st.Rewrites != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConcurrent(t *testing.T) {
	p := New(Options{CacheEntries: 300})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				n := (i*7 + g) % 500
				sql := "SELECT c FROM sbtest" + strconv.Itoa(n%4) + " WHERE id=" + strconv.Itoa(n)
				f := p.Parse(sql)
				if f.Kind != KindSelect || !f.ReadOnly || len(f.Tables) != 1 {
					t.Errorf("%q: %+v", sql, f)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := p.Stats()
	if st.Hits+st.Misses != 16000 || st.Entries > 300+16 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPanicRecovered(t *testing.T) {
	p := New(Options{})
	err := p.withAST("SELECT 1", func([]ast.StmtNode) { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err %v", err)
	}
	if f := p.Parse("SELECT a FROM t"); f.ParseErr != nil || f.Kind != KindSelect {
		t.Fatalf("after a panic: %+v", f)
	}
}

// Facts of the same text from two parsers (one cached, one not) are equal.
func equalFacts(a, b *Facts) bool {
	ea, eb := "", ""
	if a.ParseErr != nil {
		ea = a.ParseErr.Error()
	}
	if b.ParseErr != nil {
		eb = b.ParseErr.Error()
	}
	return fmt.Sprint(a.Kind, a.Class, a.ReadOnly, flagString(a), a.Fingerprint, a.Digest) ==
		fmt.Sprint(b.Kind, b.Class, b.ReadOnly, flagString(b), b.Fingerprint, b.Digest) &&
		ea == eb && slices.Equal(a.Tables, b.Tables)
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"SELECT c FROM sbtest1 WHERE id=1",
		"SELECT * FROM t FOR UPDATE",
		"INSERT INTO t VALUES (1) RETURNING id",
		"SET STATEMENT x=1 FOR SELECT 1",
		"SELECT a INTO @a FROM t",
		"/*M!100000 SELECT 1 */",
		"/*!100000 SELECT 1 */ /*",
		"SELECT 'unterminated",
		"SELECT `a``b` FROM `c",
		"SET @@session.autocommit := OFF; COMMIT",
		"WITH c AS (SELECT 1) DELETE FROM t",
		"SELECT PREVIOUS VALUE FOR s",
		"SELECT * FROM t LIMIT ROWS EXAMINED 5",
		"KILL QUERY ID 1",
		"@@@@",
		"-- \n#\n/*",
		"\x00\xff(((((",
	} {
		f.Add(s)
	}
	cached := New(Options{CacheEntries: 64})
	fresh := New(Options{CacheEntries: -1})
	f.Fuzz(func(t *testing.T, sql string) {
		a := cached.Parse(sql)
		b := cached.Parse(sql)
		c := fresh.Parse(sql)
		if !equalFacts(a, b) || !equalFacts(a, c) {
			t.Fatalf("%q: facts differ:\n%+v\n%+v\n%+v", sql, a, b, c)
		}
		if a.ParseErr != nil && a.ReadOnly {
			t.Fatalf("%q: rejected text is read-only", sql)
		}
		if a.ReadOnly && (a.LockingRead || a.SideEffects || a.UserVars || a.PrevResult) {
			t.Fatalf("%q: inconsistent facts %+v", sql, a)
		}
	})
}
