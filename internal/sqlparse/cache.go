package sqlparse

import (
	"hash/maphash"
	"sync"
	"unsafe"
)

// cache is an LRU of Facts keyed by the exact SQL text or by a
// literal-normalised key (normalize.go; those start with a NUL byte, which no
// text cached by its exact text does), bounded both by entry count and by an
// estimate of the bytes it holds. It is split into shards, each with its own
// mutex, map and intrusive list, so concurrent sessions rarely contend; a
// hit takes one lock and allocates nothing.
type cache struct {
	seed   maphash.Seed
	mask   uint64
	shards []cacheShard
}

type cacheShard struct {
	mu         sync.Mutex
	items      map[string]*cacheEntry
	head       cacheEntry // sentinel: head.next is the most recently used
	maxEntries int
	maxBytes   int64
	bytes      int64

	// counters, guarded by mu; normHits counts the hits (also in hits) of
	// normalised keys. Misses are counted by the Parser (a miss of the exact
	// text may still hit its normalised key).
	hits, normHits, evictions, errors int64

	_ [32]byte // keep neighbouring shards' locks off one cache line
}

type cacheEntry struct {
	key        string
	facts      *Facts
	size       int64
	prev, next *cacheEntry
}

// entryOverhead approximates the memory of an entry besides the SQL text and
// the facts: the entry struct, its map slot and the map's own overhead.
const entryOverhead = int64(unsafe.Sizeof(cacheEntry{})) + 64

func newCache(maxEntries int, maxBytes int64) *cache {
	n := 16
	if maxEntries < 256 {
		n = 1 // small caches keep exact LRU order (and tests stay exact)
	}
	c := &cache{seed: maphash.MakeSeed(), mask: uint64(n - 1), shards: make([]cacheShard, n)}
	perEntries := (maxEntries + n - 1) / n
	perBytes := (maxBytes + int64(n) - 1) / int64(n)
	for i := range c.shards {
		s := &c.shards[i]
		s.items = make(map[string]*cacheEntry)
		s.head.next, s.head.prev = &s.head, &s.head
		s.maxEntries = perEntries
		s.maxBytes = perBytes
	}
	return c
}

func (c *cache) shard(key string) *cacheShard {
	if c.mask == 0 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, key)&c.mask]
}

// get returns the cached facts for key and counts a hit (normalized: key is
// a normalised key), or nil. It does not retain key, which may alias a
// reused buffer.
func (c *cache) get(key string, normalized bool) *Facts {
	s := c.shard(key)
	s.mu.Lock()
	e := s.items[key]
	if e == nil {
		s.mu.Unlock()
		return nil
	}
	s.hits++
	if normalized {
		s.normHits++
	}
	if e.facts.ParseErr != nil {
		s.errors++
	}
	if s.head.next != e {
		e.unlink()
		s.pushFront(e)
	}
	f := e.facts
	s.mu.Unlock()
	return f
}

// add stores facts under key (which the caller must own: it is kept) and
// returns the facts now cached for key: an entry added concurrently by
// another goroutine wins, so every caller shares one *Facts. Entries larger
// than a shard's byte budget are not stored.
func (c *cache) add(key string, f *Facts) *Facts {
	s := c.shard(key)
	size := int64(len(key)) + factsSize(f) + entryOverhead
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.items[key]; e != nil {
		return e.facts
	}
	if size > s.maxBytes || s.maxEntries <= 0 {
		return f
	}
	e := &cacheEntry{key: key, facts: f, size: size}
	s.items[key] = e
	s.pushFront(e)
	s.bytes += size
	for len(s.items) > s.maxEntries || s.bytes > s.maxBytes {
		old := s.head.prev
		old.unlink()
		delete(s.items, old.key)
		s.bytes -= old.size
		s.evictions++
	}
	return f
}

func (s *cacheShard) pushFront(e *cacheEntry) {
	e.prev = &s.head
	e.next = s.head.next
	s.head.next.prev = e
	s.head.next = e
}

func (e *cacheEntry) unlink() {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

// stats sums the shards' counters.
func (c *cache) stats(st *Stats) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Hits += s.hits
		st.NormalizedHits += s.normHits
		st.Evictions += s.evictions
		st.Errors += s.errors
		st.Entries += len(s.items)
		st.Bytes += s.bytes
		s.mu.Unlock()
	}
}

// factsSize estimates the heap bytes a Facts value holds.
func factsSize(f *Facts) int64 {
	n := int64(unsafe.Sizeof(Facts{}))
	n += int64(len(f.Fingerprint) + len(f.Digest))
	n += int64(cap(f.Tables)) * int64(unsafe.Sizeof(Table{}))
	for _, t := range f.Tables {
		n += int64(len(t.Schema) + len(t.Name))
	}
	if f.ParseErr != nil {
		n += 32 + int64(len(f.ParseErr.Error()))
	}
	return n
}
