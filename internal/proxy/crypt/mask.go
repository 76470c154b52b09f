package crypt

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// Mask is a compiled dynamic masking rule.
type Mask struct {
	Name   string
	table  string // lower case
	column string // lower case, the logical column
	users  map[string]bool
	mode   string
	first  int
	last   int
	char   string
	fixed  []byte
}

func newMask(m proxyconfig.MaskingRule) (*Mask, error) {
	mk := &Mask{Name: m.Name, table: strings.ToLower(m.Table), column: strings.ToLower(m.Column),
		mode: m.Mode, first: m.KeepFirst, last: m.KeepLast, char: m.MaskChar, fixed: []byte(m.Fixed)}
	if mk.char == "" {
		mk.char = "*"
	}
	if len(m.Users) > 0 {
		mk.users = map[string]bool{}
		for _, u := range m.Users {
			mk.users[u] = true
		}
	}
	return mk, nil
}

// AppliesTo reports whether the rule masks user's results.
func (m *Mask) AppliesTo(user string) bool { return m.users == nil || m.users[user] }

// Null reports whether the rule returns NULL.
func (m *Mask) Null() bool { return m.mode == proxyconfig.MaskNull }

// Apply appends the masked form of v to dst (v is not NULL; mode null is
// handled by the caller). Characters are counted as UTF-8 runes.
func (m *Mask) Apply(dst, v []byte) []byte {
	switch m.mode {
	case proxyconfig.MaskFixed:
		return append(dst, m.fixed...)
	case proxyconfig.MaskHash:
		sum := sha256.Sum256(v)
		return hex.AppendEncode(dst, sum[:])
	}
	n := utf8.RuneCount(v)
	i := 0
	for len(v) > 0 {
		_, size := utf8.DecodeRune(v)
		if i < m.first || i >= n-m.last {
			dst = append(dst, v[:size]...)
		} else {
			dst = append(dst, m.char...)
		}
		v = v[size:]
		i++
	}
	return dst
}

// Masks returns the rules that apply to user, nil when none.
func (s *Schema) Masks(user string) []*Mask {
	if s == nil {
		return nil
	}
	var out []*Mask
	for _, m := range s.masks {
		if m.AppliesTo(user) {
			out = append(out, m)
		}
	}
	return out
}

// HasMasks reports whether any masking rule is configured.
func (s *Schema) HasMasks() bool { return s != nil && len(s.masks) > 0 }
