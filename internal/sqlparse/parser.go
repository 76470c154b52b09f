package sqlparse

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/mysql"

	// The parser needs a driver for literal values; test_driver is the
	// lightweight one meant for tools outside TiDB.
	_ "github.com/pingcap/tidb/pkg/parser/test_driver"
)

// Defaults for Options.
const (
	DefaultCacheEntries = 10000
	DefaultCacheBytes   = 16 << 20
	DefaultMaxCachedSQL = 16 << 10
)

// Options configure a Parser. Zero values take the defaults.
type Options struct {
	// CacheEntries bounds the number of cached texts (default 10000);
	// negative disables the cache.
	CacheEntries int
	// CacheBytes bounds the memory the cache holds, counting each SQL text,
	// its facts and per-entry overhead (default 16 MiB).
	CacheBytes int64
	// MaxCachedSQL: longer texts are parsed on every call and never cached
	// (default 16 KiB).
	MaxCachedSQL int
}

// Stats are the parser's counters since New.
type Stats struct {
	// Hits counts Parse calls answered from the cache, by exact text or by
	// literal-normalised text; NormalizedHits those of the latter (texts
	// that differ from a cached one only in literal values). Misses counts
	// full parses.
	Hits, Misses   int64
	NormalizedHits int64
	Evictions      int64
	// Errors counts Parse calls whose text the parser rejected (cache hits
	// included): they are classified by the fallback.
	Errors int64
	// Rewrites counts texts parsed only after a MariaDB-syntax rewrite.
	Rewrites int64
	Entries  int
	Bytes    int64
}

// Parser classifies SQL texts and caches the results. It is safe for
// concurrent use.
type Parser struct {
	cache   *cache
	maxSQL  int
	pool    sync.Pool // of *parser.Parser, which is not goroutine safe
	keyPool sync.Pool // of *[]byte: normalised keys of texts too long for the stack

	misses   atomic.Int64 // full parses (microseconds each: one shared counter is fine)
	errors   atomic.Int64 // errors on misses (hits count theirs per shard)
	rewrites atomic.Int64
}

// New returns a Parser.
func New(opts Options) *Parser {
	if opts.CacheEntries == 0 {
		opts.CacheEntries = DefaultCacheEntries
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	if opts.MaxCachedSQL <= 0 {
		opts.MaxCachedSQL = DefaultMaxCachedSQL
	}
	p := &Parser{maxSQL: opts.MaxCachedSQL}
	if opts.CacheEntries > 0 {
		p.cache = newCache(opts.CacheEntries, opts.CacheBytes)
	}
	p.pool.New = func() any {
		tp := parser.New()
		tp.SetMariaDB(true)
		return tp
	}
	return p
}

// Parse returns the facts of one COM_QUERY or COM_STMT_PREPARE text. The
// result is shared with other callers through the cache: do not modify it.
// Parse does not retain sql (it copies what it keeps), so sql may alias a
// reused buffer. It never panics and never fails: text the parser rejects
// gets conservative facts with ParseErr set.
func (p *Parser) Parse(sql string) *Facts { return p.parse(sql, false) }

// ParseOwned is Parse for a text that is an ordinary Go string, never
// changed (not one aliasing a buffer): what it keeps is not copied.
func (p *Parser) ParseOwned(sql string) *Facts { return p.parse(sql, true) }

// normKeyStack: normalised keys of texts up to this long are built in a
// stack buffer (sysbench's statements are 30 to 230 bytes), longer ones in
// a pooled buffer.
const normKeyStack = 320

// parse looks the text up by its exact text, then by its literal-normalised
// key (normalize.go), and parses it on a miss of both. Facts that texts
// differing only in literal values may share (shareable) are stored under
// the normalised key only, so that texts seen once do not flood the cache;
// others under the exact text, as are texts that do not normalise.
func (p *Parser) parse(sql string, owned bool) *Facts {
	if p.cache == nil || len(sql) > p.maxSQL || (len(sql) > 0 && sql[0] == normPrefix) {
		// A text starting with NUL could equal a normalised key: it is
		// nonsense anyway, and is never cached.
		return p.parseUncached(sql, owned)
	}
	if f := p.cache.get(sql, false); f != nil {
		return f
	}
	var stack [normKeyStack]byte
	var pooled *[]byte
	buf := stack[:0]
	if len(sql)+1 > len(stack) {
		pooled = p.getKeyBuf(len(sql) + 1)
		buf = (*pooled)[:0]
	}
	key, normOK := normalizeLiterals(sql, buf)
	if normOK {
		// The key is looked up in place; get does not retain it.
		if f := p.cache.get(unsafe.String(unsafe.SliceData(key), len(key)), true); f != nil {
			p.putKeyBuf(pooled)
			return f
		}
	}
	p.misses.Add(1)
	text := sql
	if !owned {
		text = strings.Clone(sql)
	}
	f := p.analyze(text)
	if f.ParseErr != nil {
		p.errors.Add(1)
	}
	if normOK && shareable(f) {
		detachText(f)
		f = p.cache.add(string(key), f)
	} else {
		f = p.cache.add(text, f)
	}
	p.putKeyBuf(pooled)
	return f
}

func (p *Parser) parseUncached(sql string, owned bool) *Facts {
	p.misses.Add(1)
	if !owned {
		sql = strings.Clone(sql)
	}
	f := p.analyze(sql)
	if f.ParseErr != nil {
		p.errors.Add(1)
	}
	return f
}

// getKeyBuf returns a pooled buffer of at least n bytes (a key is at most
// one byte longer than its text, which is at most maxSQL long).
func (p *Parser) getKeyBuf(n int) *[]byte {
	b, _ := p.keyPool.Get().(*[]byte)
	if b == nil {
		b = new([]byte)
	}
	if cap(*b) < n {
		*b = make([]byte, 0, n)
	}
	return b
}

// putKeyBuf returns a pooled key buffer (nil: the stack one was used).
func (p *Parser) putKeyBuf(b *[]byte) {
	if b != nil {
		p.keyPool.Put(b)
	}
}

// Stats returns the counters and the cache's current size.
func (p *Parser) Stats() Stats {
	var st Stats
	if p.cache != nil {
		p.cache.stats(&st)
	}
	st.Misses += p.misses.Load()
	st.Errors += p.errors.Load()
	st.Rewrites = p.rewrites.Load()
	return st
}

// sqlModes are tried in order until one parses: the MariaDB default first,
// then modes a session may have set that change how text is tokenized.
var sqlModes = [...]mysql.SQLMode{
	mysql.ModeNone,
	mysql.ModeIgnoreSpace,
	mysql.ModeANSIQuotes,
	mysql.ModeNoBackslashEscapes,
}

// analyze computes the facts of sql (which it may keep references into).
func (p *Parser) analyze(sql string) *Facts {
	text := versionComments(sql)
	f := &Facts{}
	f.Fingerprint, f.Digest = fingerprint(text)

	err := p.withAST(text, func(stmts []ast.StmtNode) { classify(stmts, f) })
	if err == nil {
		return f
	}
	toks := lex(text)
	if re, rw, ok := mariadbRewrite(text, toks); ok {
		g := &Facts{Fingerprint: f.Fingerprint, Digest: f.Digest}
		if p.withAST(re, func(stmts []ast.StmtNode) { classify(stmts, g) }) == nil {
			rw.apply(g)
			p.rewrites.Add(1)
			return g
		}
	}
	f = &Facts{Fingerprint: f.Fingerprint, Digest: f.Digest, ParseErr: err}
	fallback(text, toks, f)
	return f
}

// withAST parses sql with a pooled TiDB parser and hands the statements to
// use before the parser goes back to the pool (the parser reuses the slice).
// A panic in the parser or in use becomes an error.
func (p *Parser) withAST(sql string, use func([]ast.StmtNode)) (err error) {
	tp := p.pool.Get().(*parser.Parser)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sqlparse: parser panic: %v", r)
			return // the parser's state is unknown: drop it
		}
		if len(sql) <= p.maxSQL {
			p.pool.Put(tp) // don't let pooled parsers pin big ASTs
		}
	}()
	var stmts []ast.StmtNode
	for i, mode := range sqlModes {
		// Retry only in modes that can change how this text lexes.
		if (mode == mysql.ModeANSIQuotes && !strings.Contains(sql, `"`)) ||
			(mode == mysql.ModeNoBackslashEscapes && !strings.Contains(sql, `\`)) {
			continue
		}
		tp.SetSQLMode(mode)
		var perr error
		stmts, _, perr = tp.ParseSQL(sql)
		if perr == nil {
			err = nil
			break
		}
		if i == 0 {
			// Report the error of the default mode; drop the stack trace
			// the parser attaches, keep the message.
			err = errors.New("sqlparse: syntax error, " + strings.TrimSpace(perr.Error()))
		}
	}
	if err != nil {
		return err
	}
	if len(stmts) == 0 {
		return errors.New("sqlparse: empty query")
	}
	use(stmts)
	return nil
}

// fingerprint normalizes sql with the TiDB digester (a lexer-level pass that
// works on text the grammar rejects too).
func fingerprint(sql string) (norm, digest string) {
	defer func() {
		if recover() != nil {
			norm, digest = "", ""
		}
	}()
	n, d := parser.NormalizeDigest(sql)
	if d != nil {
		digest = d.String()
	}
	return n, digest
}

// versionComments rewrites executable comments the TiDB lexer mishandles
// into the form it knows, keeping the text's length: MariaDB runs
// /*M!NNNNNN ... */ (the TiDB lexer skips it as a plain comment) and
// /*!NNNNNN ... */ with a six-digit version (the lexer takes five digits).
// The version is dropped: the content is taken as executed.
func versionComments(sql string) string {
	if !strings.Contains(sql, "/*!") && !strings.Contains(sql, "/*M!") {
		return sql
	}
	var b []byte
	for i := 0; i+3 <= len(sql); i++ {
		if sql[i] != '/' || sql[i+1] != '*' {
			continue
		}
		j := i + 2
		if j < len(sql) && sql[j] == 'M' {
			j++
		}
		if j >= len(sql) || sql[j] != '!' {
			continue
		}
		end := skipDigits(sql, j+1)
		if j == i+2 && end-(j+1) <= 5 {
			continue // a form the lexer reads correctly
		}
		if b == nil {
			b = []byte(sql)
		}
		// "/*!" then blanks over the M and the version.
		b[i], b[i+1], b[i+2] = '/', '*', '!'
		for k := i + 3; k < end; k++ {
			b[k] = ' '
		}
		i = end - 1
	}
	if b == nil {
		return sql
	}
	return string(b)
}
