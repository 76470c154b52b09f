package proxy

import (
	"container/list"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/database-mesh/pisanix-go/internal/metrics"
	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// Answering COM_STMT_PREPARE from cached metadata.
//
// A client's prepare needs no backend statement (executes prepare the text
// lazily on the connection they get, see session_stmt.go), only the
// response: statement id, parameter and column counts and definitions,
// warnings. Drivers that prepare, execute and close for every query
// (go-sql-driver without interpolateParams) would otherwise cost the
// backend a COM_STMT_PREPARE per query on top of the execute. So each
// listener runtime keeps the responses of successful prepares, by the key
// the statement registry uses (parsing state + text) plus what else
// changes the response or its success (the backend account,
// character_set_results), bounded in entries and bytes (least recently
// used evicted first) and in age, and answers a later prepare of the same
// key without any backend.
//
// An answer may be stale: a table changed since. DDL through the listener
// clears the cache (before and after it runs); DDL behind the proxy's back
// is seen when the entry's max age is over. A stale answer is what the
// client would have got had it prepared just before the change; the
// execute's result set carries its own column definitions, and an execute
// whose lazy prepare fails (the table is gone) gets that ERR, which also
// drops the entry.

// stmtMeta is one cached prepare response. Its response fields are never
// changed once it is in the cache, so sessions write it out without holding
// the lock (elem is the cache's, changed under its lock).
type stmtMeta struct {
	key string
	// ok is the backend's prepare OK packet (the statement id in it is
	// replaced by each client's).
	ok []byte
	// defs are the parameter definitions, then the column definitions, as
	// the backend sent them; ext says they carry MariaDB's extended
	// metadata (the client's capabilities decide whether it gets them).
	defs         [][]byte
	params, cols uint16
	warnings     uint16
	ext          bool
	born         time.Time
	size         int
	elem         *list.Element // in the cache's LRU list
}

// stmtMetaOverhead approximates the memory of an entry besides its bytes
// (struct, map slot, slice headers), so that the byte bound holds for many
// small entries too.
const stmtMetaOverhead = 160

// stmtMetaCache is a listener runtime's cache of prepare responses: an
// LRU bounded by entries and bytes, whose entries expire after maxAge.
type stmtMetaCache struct {
	maxEntries int
	maxBytes   int
	maxAge     time.Duration
	now        func() time.Time // time.Now; tests move it

	mu    sync.Mutex
	m     map[string]*stmtMeta
	lru   list.List // of *stmtMeta, most recently used first
	bytes int
	// gen changes with each invalidation: a prepare whose backend answer
	// was read while a DDL ran (started before its end) is not cached.
	gen uint64
}

// newStmtMetaCache returns a cache with these bounds, nil when entries is
// 0 (off).
func newStmtMetaCache(entries, maxBytes int, maxAge time.Duration) *stmtMetaCache {
	if entries <= 0 || maxBytes <= 0 {
		return nil
	}
	return &stmtMetaCache{maxEntries: entries, maxBytes: maxBytes, maxAge: maxAge, now: time.Now,
		m: make(map[string]*stmtMeta)}
}

// stmtMetaStats are a listener's cache counters; they survive reloads
// (each runtime has its own cache).
type stmtMetaStats struct {
	hits, misses, evictions, invalidations atomic.Uint64
}

func (mc *stmtMetaCache) removeLocked(e *stmtMeta) {
	mc.lru.Remove(e.elem)
	delete(mc.m, e.key)
	mc.bytes -= e.size
}

// get returns the entry of key (nil: none) and marks it recently used. An
// entry older than maxAge is dropped: expired reports it.
func (mc *stmtMetaCache) get(key []byte) (e *stmtMeta, expired bool) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	e = mc.m[string(key)]
	if e == nil {
		return nil, false
	}
	if mc.now().Sub(e.born) > mc.maxAge {
		mc.removeLocked(e)
		return nil, true
	}
	mc.lru.MoveToFront(e.elem)
	return e, false
}

// generation returns the current generation, for put.
func (mc *stmtMetaCache) generation() uint64 {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return mc.gen
}

// put adds e, read from a backend while the cache was at generation gen,
// and returns how many entries it evicted. Nothing is added when an
// invalidation came since gen, or when e alone would take more than an
// eighth of the byte bound (it would flush many others).
func (mc *stmtMetaCache) put(e *stmtMeta, gen uint64) (evicted int) {
	e.size = len(e.key) + len(e.ok) + stmtMetaOverhead
	for _, d := range e.defs {
		e.size += len(d) + 24
	}
	if e.size > mc.maxBytes/8 {
		return 0
	}
	e.born = mc.now()
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if gen != mc.gen {
		return 0
	}
	if old := mc.m[e.key]; old != nil {
		mc.removeLocked(old) // another session's answer of the same key, just read
	}
	mc.m[e.key] = e
	e.elem = mc.lru.PushFront(e)
	mc.bytes += e.size
	for len(mc.m) > mc.maxEntries || mc.bytes > mc.maxBytes {
		mc.removeLocked(mc.lru.Back().Value.(*stmtMeta))
		evicted++
	}
	return evicted
}

// remove drops key's entry, if any (an execute found it stale).
func (mc *stmtMetaCache) remove(key string) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if e := mc.m[key]; e != nil {
		mc.removeLocked(e)
	}
}

// invalidate drops every entry and starts a new generation; it returns how
// many entries were dropped.
func (mc *stmtMetaCache) invalidate() int {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	mc.gen++
	n := len(mc.m)
	clear(mc.m)
	mc.lru.Init()
	mc.bytes = 0
	return n
}

// usage reports the entries and bytes held.
func (mc *stmtMetaCache) usage() (entries, bytes int) {
	if mc == nil {
		return 0, 0
	}
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return len(mc.m), mc.bytes
}

// metaKey builds into s.metaBuf the cache key of a statement whose registry
// key is stmtKey: besides the parsing state and text, the backend account
// (privileges decide whether a prepare succeeds) and character_set_results
// (column definitions carry the result character set and lengths).
func (s *session) metaKey(stmtKey string) []byte {
	b := s.metaBuf[:0]
	if s.account != nil {
		b = append(b, s.account.User...)
	}
	b = append(b, 0)
	b = append(b, s.state.Vars["character_set_results"]...)
	b = append(b, 0)
	b = append(b, stmtKey...)
	s.metaBuf = b
	if cap(b) > 4<<10 {
		s.metaBuf = nil // a long text's: not kept by an idle session
	}
	return b
}

// metaCacheable reports whether a prepare of statement st may be answered
// from, or stored in, c's metadata cache: no security claim (its answer is
// rewritten per statement and user), no text rewritten with the session's
// connection id, no DDL (nothing to gain), and no session state on the
// session's connection that changes what a text means there (a temporary
// table shadows a table; LOCK TABLES refuses tables it did not lock).
func (s *session) metaCacheable(c *command, st *stmt, connIDRewritten bool) bool {
	return c.rt.stmtMeta != nil && st.sec == nil && !connIDRewritten && !st.ddl &&
		s.pins&(pinSessionState|pinLock) == 0
}

// prepareFromMeta answers client statement id's prepare with cached entry
// e, touching no backend, and records the statement as the backend path
// does; its first execute prepares it on the connection it gets.
func (s *session) prepareFromMeta(id uint32, st stmt, e *stmtMeta) (result, error) {
	var r result
	s.scratch = append(s.scratch[:0], e.ok...)
	s.scratch[1], s.scratch[2], s.scratch[3], s.scratch[4] = byte(id), byte(id>>8), byte(id>>16), byte(id>>24)
	if err := s.writeClient(s.scratch); err != nil {
		return r, err
	}
	r.sent = true
	convert := (s.extCaps&mysql.MariaDBClientExtendedMetadata != 0) != e.ext
	writeDefs := func(defs [][]byte) error {
		if len(defs) == 0 {
			return nil
		}
		for _, d := range defs {
			if convert {
				d = s.convertColumnDef(d)
			}
			if err := s.writeClient(d); err != nil {
				return err
			}
		}
		if s.clientDeprecateEOF() {
			return nil // as relayPrepare drops the EOFs (writeEOF, not final)
		}
		// A prepare's EOFs carry the statement's warning count and the
		// session's status flags, which the proxy knows (s.status).
		s.scratch = mysql.AppendEOF(s.scratch[:0], e.warnings, s.status)
		return s.writeClient(s.scratch)
	}
	if err := writeDefs(e.defs[:e.params]); err != nil {
		return r, err
	}
	if err := writeDefs(e.defs[e.params:]); err != nil {
		return r, err
	}
	// Counted and recorded before the answer goes out: a client that
	// reads the metrics after it sees the hit.
	s.l.stmtMetaStats.hits.Add(1)
	r.status = s.status
	st.params = e.params
	st.prep = s.stateSnapshot()
	st.metaKey = e.key
	s.stmts[id] = st
	s.lastPrepared = id
	if err := s.client.Flush(); err != nil {
		return r, fmt.Errorf("%w: %w", errClientWrite, err)
	}
	return r, nil
}

// storeMeta adds a prepare response captured by relayPrepare to c's cache.
func (s *session) storeMeta(rt *runtime, e *stmtMeta, gen uint64) {
	if n := rt.stmtMeta.put(e, gen); n > 0 {
		s.l.stmtMetaStats.evictions.Add(uint64(n))
	}
}

// forgetMeta drops statement st's cache entry after an execute's lazy
// prepare of it failed (a table dropped or changed meanwhile): the next
// client prepare asks a backend and gets the server's answer.
func (s *session) forgetMeta(rt *runtime, st *stmt) {
	if st.metaKey == "" {
		return
	}
	if rt.stmtMeta != nil {
		rt.stmtMeta.remove(st.metaKey)
	}
	if cur := s.l.rt.Load(); cur != rt && cur != nil && cur.stmtMeta != nil {
		cur.stmtMeta.remove(st.metaKey)
	}
}

// staleMetaCode reports the errors of an execute whose server-side re-prepare
// found the statement's database, tables, columns or views changed: the
// prepare answer cached for the text is then stale as well.
func staleMetaCode(code uint16) bool {
	switch code {
	case mysql.ErrCodeBadDB, mysql.ErrCodeBadField, mysql.ErrCodeNoSuchTable, mysql.ErrCodeViewInvalid:
		return true
	}
	return false
}

// schemaChanging clears the listener's metadata caches around a statement
// that may change table definitions: the runtime the command runs with,
// and the listener's current one when a reload came meanwhile. It is
// called before the statement runs (count: once per statement) and after
// it (a prepare read while it ran is not cached: see put).
func (s *session) schemaChanging(rt *runtime, count bool) {
	if rt.stmtMeta != nil {
		rt.stmtMeta.invalidate()
	}
	if cur := s.l.rt.Load(); cur != rt && cur != nil && cur.stmtMeta != nil {
		cur.stmtMeta.invalidate()
	}
	if count {
		s.l.stmtMetaStats.invalidations.Add(1)
	}
}

// changesSchema reports whether the statement text q (with the parser's
// facts, when the command has them) may change table or view definitions
// or privileges: DDL (CREATE, ALTER, DROP, RENAME, TRUNCATE...) and
// administration (GRANT, REVOKE, FLUSH...), as sqlparse classifies them,
// except a temporary table's CREATE or DROP (only its session sees it,
// and a session with temporary tables never uses the cache). Without
// facts, a text that starts with such a keyword or may hold several
// statements is parsed (cached); others are not DDL. It errs on the side
// of yes.
func (s *session) changesSchema(facts *sqlparse.Facts, q []byte, multi bool) bool {
	if facts == nil {
		if !leadingSchemaChange(q) && !(multi && hasSemicolon(q)) {
			return false
		}
		facts = s.l.proxy.parser.Parse(string(q))
	}
	if facts.TempTable && !facts.Multi && facts.Kind == sqlparse.KindDDL {
		return false
	}
	return facts.Kind == sqlparse.KindDDL || facts.Kind == sqlparse.KindAdmin ||
		facts.Class == sqlparse.ClassDDL || facts.Class == sqlparse.ClassAdmin
}

// schemaWords are the leading keywords of statements that may change table
// definitions or privileges (sqlparse's ClassDDL and the part of ClassAdmin
// that matters here).
var schemaWords = [...]string{"CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE", "GRANT", "REVOKE", "FLUSH"}

// leadingSchemaChange reports whether q starts with one of schemaWords.
func leadingSchemaChange(q []byte) bool {
	i := 0
	for i < len(q) && (q[i] == ' ' || q[i] == '\t' || q[i] == '\n' || q[i] == '\r') {
		i++
	}
	if i < len(q) {
		// The common case: a first letter no schema word starts with.
		switch upper(q[i]) {
		case 'C', 'A', 'D', 'R', 'T', 'G', 'F', '(', '/', '#', '-':
		default:
			return false
		}
	}
	for _, kw := range schemaWords {
		if sqlparse.StartsWith(q, kw) {
			return true
		}
	}
	return false
}

// hasSemicolon reports a ';' followed by more than white space (maybe in
// a string or comment: then the caller parses for nothing).
func hasSemicolon(q []byte) bool {
	for i := len(q) - 1; i >= 0; i-- {
		switch q[i] {
		case ' ', '\t', '\n', '\r', ';':
			continue
		}
		for j := 0; j < i; j++ {
			if q[j] == ';' {
				return true
			}
		}
		return false
	}
	return false
}

// stmtMetaCollector exports the listeners' metadata cache counters and
// sizes at scrape time (nothing is recorded per statement but atomics).
type stmtMetaCollector struct {
	p                                      *Proxy
	hits, misses, evictions, invalidations *prometheus.Desc
	entries, bytes                         *prometheus.Desc
}

func newStmtMetaCollector(p *Proxy) *stmtMetaCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(metrics.Namespace+"_stmt_metadata_cache_"+name, help, []string{metrics.LabelDomain}, nil)
	}
	return &stmtMetaCollector{p: p,
		hits:          d("hits_total", "Client COM_STMT_PREPAREs answered from the listener's cache of prepare responses, without a backend."),
		misses:        d("misses_total", "Client COM_STMT_PREPAREs the cache could have answered but did not have (prepared on a backend)."),
		evictions:     d("evictions_total", "Entries dropped from the prepare metadata cache by its bounds (entries, bytes) or their age."),
		invalidations: d("invalidations_total", "Statements through the listener that may change table definitions (DDL) and cleared its prepare metadata cache."),
		entries:       d("entries", "Entries in the listener's prepare metadata cache."),
		bytes:         d("bytes", "Estimated memory held by the listener's prepare metadata cache."),
	}
}

func (c *stmtMetaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hits, c.misses, c.evictions, c.invalidations, c.entries, c.bytes} {
		ch <- d
	}
}

func (c *stmtMetaCollector) Collect(ch chan<- prometheus.Metric) {
	c.p.mu.Lock()
	ls := make([]*Listener, 0, len(c.p.listeners))
	for _, l := range c.p.listeners {
		ls = append(ls, l)
	}
	c.p.mu.Unlock()
	for _, l := range ls {
		st := &l.stmtMetaStats
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l.name)
		}
		counter(c.hits, st.hits.Load())
		counter(c.misses, st.misses.Load())
		counter(c.evictions, st.evictions.Load())
		counter(c.invalidations, st.invalidations.Load())
		var n, b int
		if rt := l.rt.Load(); rt != nil {
			n, b = rt.stmtMeta.usage()
		}
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(n), l.name)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(b), l.name)
	}
}
