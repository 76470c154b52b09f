// Package rxmatch matches statements against an ordered list of rules, each
// a set of regular expressions and/or fingerprints. It is shared by the
// circuit-break and concurrency-control packages.
//
// Regular expressions are unanchored Go (RE2) regexps matched against the
// statement text. Because the same statement text is usually sent again and
// again, the result of the regexp pass is cached per compiled Set in a small
// direct-mapped cache keyed by the text, so a repeated statement costs one
// hash and one string comparison instead of running every regexp.
package rxmatch

import (
	"fmt"
	"hash/maphash"
	"math/bits"
	"strings"
	"sync/atomic"

	"github.com/database-mesh/pisanix-go/internal/proxy/rxfilter"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// Normalizer turns a configured fingerprint into the form found in
// sqlparse.Facts.Fingerprint. Nil means: trim spaces only.
type Normalizer func(string) string

// Set is a compiled, immutable list of rules. Its methods are safe for
// concurrent use.
type Set struct {
	rx    [][]*rxfilter.Regexp // per rule
	anyRx bool
	fp    map[string][]int32 // fingerprint or digest -> rule indexes
	cache *cache             // nil when more than 64 rules
}

const (
	cacheSlots  = 1024
	maxCacheLen = 4096 // longer texts are matched each time, not cached
)

type entry struct {
	sql  string
	mask uint64
}

// cache is direct-mapped. A text is admitted only the second time it is
// seen within a while (a doorkeeper bitset, cleared after doorReset
// admissions attempts), so that a stream of unique texts (literals inlined
// by the client) costs no allocation and does not evict repeated ones.
type cache struct {
	seed  maphash.Seed
	slots [cacheSlots]atomic.Pointer[entry]
	door  [doorBits / 64]atomic.Uint64
	doorN atomic.Int64
}

const (
	doorBits  = 1 << 16
	doorReset = doorBits / 4
)

// admit reports whether h was seen recently, and records it.
func (c *cache) admit(h uint64) bool {
	bit := (h >> 32) % doorBits
	w, m := &c.door[bit/64], uint64(1)<<(bit%64)
	if w.Load()&m != 0 {
		return true
	}
	w.Or(m)
	if c.doorN.Add(1) >= doorReset {
		c.doorN.Store(0)
		for i := range c.door {
			c.door[i].Store(0)
		}
	}
	return false
}

// Compile compiles what each rule matches (rules[i] is rule i's spec).
// name(i) names rule i in error messages.
func Compile(rules []proxyconfig.MatchSpec, name func(i int) string, norm Normalizer) (*Set, error) {
	s := &Set{rx: make([][]*rxfilter.Regexp, len(rules))}
	for i := range rules {
		r := &rules[i]
		for j, src := range r.Regex {
			if src == "" {
				return nil, fmt.Errorf("%s.regex[%d]: empty regular expression", name(i), j)
			}
			re, err := rxfilter.Compile(r.Pattern(j))
			if err != nil {
				return nil, fmt.Errorf("%s.regex[%d]: invalid regular expression %q: %v", name(i), j, src, err)
			}
			s.rx[i] = append(s.rx[i], re)
			s.anyRx = true
		}
		for j, f := range r.Fingerprint {
			k := NormalizeKey(f, norm)
			if k == "" {
				return nil, fmt.Errorf("%s.fingerprint[%d]: empty fingerprint", name(i), j)
			}
			if s.fp == nil {
				s.fp = map[string][]int32{}
			}
			s.fp[k] = append(s.fp[k], int32(i))
		}
	}
	if len(rules) <= 64 && s.anyRx {
		s.cache = &cache{seed: maphash.MakeSeed()}
	}
	return s, nil
}

// NormalizeKey is how a configured fingerprint is stored: a 64-digit hex
// digest is lowercased, anything else is trimmed and passed to norm.
func NormalizeKey(f string, norm Normalizer) string {
	f = strings.TrimSpace(f)
	if isHexDigest(f) {
		return strings.ToLower(f)
	}
	if norm != nil && f != "" {
		return norm(f)
	}
	return f
}

func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// Len is the number of rules.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rx)
}

// Empty reports whether no rule can ever match.
func (s *Set) Empty() bool { return s == nil || (!s.anyRx && len(s.fp) == 0) }

// Next returns the index of the first rule at or after from that matches
// the statement, or -1. f may be nil (no fingerprint matching).
func (s *Set) Next(sql string, f *sqlparse.Facts, from int) int {
	if s == nil || from >= len(s.rx) {
		return -1
	}
	if s.cache != nil {
		m := s.regexMask(sql) | s.fpMask(f)
		m >>= uint(from)
		if m == 0 {
			return -1
		}
		return from + bits.TrailingZeros64(m)
	}
	byDigest, byFP := s.fpRules(f)
	for i := from; i < len(s.rx); i++ {
		if s.ruleRegex(i, sql) || contains(byDigest, i) || contains(byFP, i) {
			return i
		}
	}
	return -1
}

func contains(a []int32, i int) bool {
	for _, v := range a {
		if int(v) == i {
			return true
		}
	}
	return false
}

func (s *Set) ruleRegex(i int, sql string) bool {
	for _, re := range s.rx[i] {
		if re.MatchString(sql) {
			return true
		}
	}
	return false
}

// fpRules returns the rules listing the statement's digest and those
// listing its fingerprint.
func (s *Set) fpRules(f *sqlparse.Facts) (byDigest, byFP []int32) {
	if f == nil || len(s.fp) == 0 {
		return nil, nil
	}
	if f.Digest != "" {
		byDigest = s.fp[f.Digest]
	}
	if f.Fingerprint != "" {
		byFP = s.fp[f.Fingerprint]
	}
	return byDigest, byFP
}

func (s *Set) fpMask(f *sqlparse.Facts) uint64 {
	var m uint64
	a, b := s.fpRules(f)
	for _, i := range a {
		m |= 1 << uint(i)
	}
	for _, i := range b {
		m |= 1 << uint(i)
	}
	return m
}

func (s *Set) regexMask(sql string) uint64 {
	if !s.anyRx || sql == "" {
		return 0
	}
	if len(sql) > maxCacheLen {
		return s.computeMask(sql)
	}
	h := maphash.String(s.cache.seed, sql)
	slot := &s.cache.slots[h%cacheSlots]
	if e := slot.Load(); e != nil && e.sql == sql {
		return e.mask
	}
	m := s.computeMask(sql)
	if s.cache.admit(h) {
		slot.Store(&entry{sql: strings.Clone(sql), mask: m})
	}
	return m
}

func (s *Set) computeMask(sql string) uint64 {
	var m uint64
	for i := range s.rx {
		if s.ruleRegex(i, sql) {
			m |= 1 << uint(i)
		}
	}
	return m
}
