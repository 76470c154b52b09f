// Package rxfilter runs a regular expression only on texts that can match
// it. Compile finds, in the expression's syntax tree, a literal every match
// contains; MatchString looks for that literal first (strings.Index, or an
// ASCII case-insensitive search) and runs the regexp only when it is there.
// Statement rules (circuit break, concurrency control, read/write
// splitting) name tables or keywords that most statements do not contain,
// and a statement text that differs on every call (literals inlined by the
// client) cannot be answered from a cache: the regexp ran on every one.
//
// The answer is the regexp's own: a text without the literal cannot match.
package rxfilter

import (
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Regexp is a compiled regular expression with its literal prefilter.
type Regexp struct {
	re   *regexp.Regexp
	lit  string // every match contains it ("": no prefilter)
	fold bool   // lit is upper-case ASCII, compared case-insensitively
}

// Compile compiles expr as regexp.Compile does.
func Compile(expr string) (*Regexp, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	r := &Regexp{re: re}
	if tree, err := syntax.Parse(expr, syntax.Perl); err == nil {
		r.lit, r.fold = required(tree.Simplify())
		if r.fold {
			r.lit = strings.ToUpper(r.lit)
		}
	}
	return r, nil
}

// MustCompile is Compile that panics on an invalid expression (tests).
func MustCompile(expr string) *Regexp {
	r, err := Compile(expr)
	if err != nil {
		panic(err)
	}
	return r
}

// String returns the expression.
func (r *Regexp) String() string { return r.re.String() }

// Literal returns the literal every match contains and whether it compares
// case-insensitively ("" when there is none).
func (r *Regexp) Literal() (string, bool) { return r.lit, r.fold }

// MatchString reports whether s contains a match of the expression.
func (r *Regexp) MatchString(s string) bool {
	switch {
	case r.lit == "":
	case r.fold:
		if !containsFold(s, r.lit) {
			return false
		}
	default:
		if !strings.Contains(s, r.lit) {
			return false
		}
	}
	return r.re.MatchString(s)
}

// required returns the longest literal that every match of re contains,
// and whether it is matched case-insensitively. A case-insensitive literal
// is cut to its longest piece of ASCII characters whose case variants are
// all ASCII (not k or s: the Kelvin sign and the long s fold to them), so
// that an ASCII case-insensitive search finds every match.
func required(re *syntax.Regexp) (string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase == 0 {
			for _, c := range re.Rune {
				if c == utf8.RuneError {
					// Invalid UTF-8 in the text reads as U+FFFD.
					return "", false
				}
			}
			return string(re.Rune), false
		}
		best, cur := "", []rune(nil)
		for _, c := range append(re.Rune, 0) {
			if c != 0 && asciiFold(c) {
				cur = append(cur, c)
				continue
			}
			if len(cur) > len(best) {
				best = string(cur)
			}
			cur = cur[:0]
		}
		return best, best != ""
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
	case syntax.OpConcat:
		best, fold := "", false
		for _, sub := range re.Sub {
			if l, f := required(sub); len(l) > len(best) {
				best, fold = l, f
			}
		}
		return best, fold
	}
	return "", false
}

// asciiFold reports an ASCII character all of whose case variants
// (unicode.SimpleFold's orbit) are ASCII.
func asciiFold(c rune) bool {
	if c >= utf8.RuneSelf || c == 0 {
		return false
	}
	for f := unicode.SimpleFold(c); f != c; f = unicode.SimpleFold(f) {
		if f >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// containsFold reports whether s contains the upper-case ASCII needle,
// ASCII case-insensitively.
func containsFold(s, needle string) bool {
	n := len(needle)
	first := needle[0]
	for i := 0; i+n <= len(s); i++ {
		if upper(s[i]) != first {
			continue
		}
		k := 1
		for k < n && upper(s[i+k]) == needle[k] {
			k++
		}
		if k == n {
			return true
		}
	}
	return false
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}
