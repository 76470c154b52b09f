package merge

import (
	"bytes"
	"unicode/utf8"
)

// collation compares strings as a MariaDB collation does.
type collation struct {
	name string
	// padSpace: trailing spaces do not count (PAD SPACE); otherwise the
	// longer string is greater (NO PAD).
	padSpace bool
	// by: how characters weigh.
	by collBy
	// mb4: 4-byte UTF-8 sequences are characters (utf8mb4), weighing
	// U+FFFD in general_ci; in utf8mb3 they are ill-formed.
	mb4 bool
}

type collBy uint8

const (
	byBytes     collBy = iota // byte value (binary, 8-bit *_bin, utf8 *_bin: code point order)
	byLatin1SW                // latin1_swedish_ci's table
	byGeneralCI               // utf8 general_ci: the BMP table
	byUCA                     // utf8 unicode_ci: UCA 4.0.0 primary weights
)

var (
	collBinary    = &collation{name: "binary", by: byBytes}
	collBinPad    = &collation{name: "_bin", by: byBytes, padSpace: true}
	collBinNoPad  = &collation{name: "_nopad_bin", by: byBytes}
	collSwedish   = &collation{name: "latin1_swedish_ci", by: byLatin1SW, padSpace: true}
	collSwedishNP = &collation{name: "latin1_swedish_nopad_ci", by: byLatin1SW}
	collGen3      = &collation{name: "utf8mb3_general_ci", by: byGeneralCI, padSpace: true}
	collGen3NP    = &collation{name: "utf8mb3_general_nopad_ci", by: byGeneralCI}
	collGen4      = &collation{name: "utf8mb4_general_ci", by: byGeneralCI, padSpace: true, mb4: true}
	collGen4NP    = &collation{name: "utf8mb4_general_nopad_ci", by: byGeneralCI, mb4: true}
	collUCA3      = &collation{name: "utf8mb3_unicode_ci", by: byUCA, padSpace: true}
	collUCA3NP    = &collation{name: "utf8mb3_unicode_nopad_ci", by: byUCA}
	collUCA4      = &collation{name: "utf8mb4_unicode_ci", by: byUCA, padSpace: true, mb4: true}
	collUCA4NP    = &collation{name: "utf8mb4_unicode_nopad_ci", by: byUCA, mb4: true}
)

// binPadIDs are the *_bin collations (PAD SPACE) of single-byte character
// sets and of utf8mb3/utf8mb4 (whose byte order is code point order);
// their *_nopad_bin twins are id+1024 except for the utf8 ones.
var binPadIDs = map[uint16]bool{
	43: true, 46: true, 47: true, 50: true, 53: true, 58: true, 64: true, 65: true,
	66: true, 67: true, 68: true, 69: true, 70: true, 71: true, 72: true, 73: true,
	74: true, 75: true, 77: true, 78: true, 79: true, 80: true, 81: true, 82: true,
	83: true, 89: true, 93: true,
}

// collationByID returns the collation with this id, nil when the merger
// does not implement it.
func collationByID(id uint16) *collation {
	switch id {
	case CollationBinary:
		return collBinary
	case 8:
		return collSwedish
	case 1032:
		return collSwedishNP
	case 33:
		return collGen3
	case 1057:
		return collGen3NP
	case 45:
		return collGen4
	case 1069:
		return collGen4NP
	case 1070, 1107: // utf8mb4_nopad_bin, utf8mb3_nopad_bin
		return collBinNoPad
	case 192:
		return collUCA3
	case 1216:
		return collUCA3NP
	case 224:
		return collUCA4
	case 1248:
		return collUCA4NP
	}
	if binPadIDs[id] {
		return collBinPad
	}
	if id > 1024 && binPadIDs[id-1024] {
		return collBinNoPad
	}
	return nil
}

// collationFor picks the collation of a string column. MariaDB sets the
// BINARY flag for *_bin collations while reporting the default collation
// of the result character set; such a column compares as that set's
// *_bin collation.
func collationFor(c Column) *collation {
	if c.Collation != CollationBinary && c.Flags&FlagBinary != 0 {
		switch c.Collation {
		case 33, 45, 83, 46:
			return collBinPad
		case 8, 47:
			return collBinPad
		}
		if coll := collationByID(c.Collation); coll != nil && coll.by == byBytes {
			return coll
		}
		return nil
	}
	return collationByID(c.Collation)
}

// generalCI is the general_ci weight of each BMP code point.
var generalCI = func() *[0x10000]uint16 {
	t := new([0x10000]uint16)
	for i := range t {
		t[i] = uint16(i)
	}
	for _, d := range generalCIDiffs {
		t[d>>16] = uint16(d)
	}
	return t
}()

const illFormed = 0xFF0000 // weight of an ill-formed byte: above every character

// next returns the weight of the first character of s and its length.
func (c *collation) next(s []byte) (w uint32, n int) {
	switch c.by {
	case byLatin1SW:
		return uint32(latin1SwedishCI[s[0]]), 1
	case byGeneralCI:
		b := s[0]
		if b < utf8.RuneSelf {
			return uint32(generalCI[b]), 1
		}
		r, n := utf8.DecodeRune(s)
		if r == utf8.RuneError && n <= 1 || n == 4 && !c.mb4 {
			return illFormed + uint32(b), 1
		}
		if r > 0xFFFF {
			return 0xFFFD, n
		}
		return uint32(generalCI[r]), n
	}
	return uint32(s[0]), 1
}

// compare orders a and b.
func (c *collation) compare(a, b []byte) int {
	if c.by == byUCA {
		return c.compareUCA(a, b)
	}
	if c.by == byBytes {
		if !c.padSpace {
			return bytes.Compare(a, b)
		}
		n := min(len(a), len(b))
		if r := bytes.Compare(a[:n], b[:n]); r != 0 {
			return r
		}
		return padCompare(a[n:], b[n:], nil)
	}
	// Equal leading bytes weigh the same when they are whole characters:
	// any byte in latin1, ASCII in UTF-8.
	i, n := 0, min(len(a), len(b))
	if c.by == byLatin1SW {
		for i < n && a[i] == b[i] {
			i++
		}
	} else {
		for i < n && a[i] == b[i] && a[i] < utf8.RuneSelf {
			i++
		}
	}
	a, b = a[i:], b[i:]
	for len(a) > 0 && len(b) > 0 {
		if c.by == byGeneralCI && a[0] < utf8.RuneSelf && b[0] < utf8.RuneSelf {
			wa, wb := generalCI[a[0]], generalCI[b[0]]
			if wa != wb {
				return cmp3(wa < wb, wa > wb)
			}
			a, b = a[1:], b[1:]
			continue
		}
		wa, na := c.next(a)
		wb, nb := c.next(b)
		if wa != wb {
			return cmp3(wa < wb, wa > wb)
		}
		a, b = a[na:], b[nb:]
	}
	if !c.padSpace {
		return cmp3(len(a) < len(b), len(a) > len(b))
	}
	return padCompare(a, b, c)
}

// padCompare compares the rest of the longer string (one of a, b is empty)
// with spaces.
func padCompare(a, b []byte, c *collation) int {
	sign := 1
	if len(a) == 0 {
		a, sign = b, -1
	}
	for len(a) > 0 {
		w, n := uint32(a[0]), 1
		if c != nil {
			w, n = c.next(a)
		}
		if w != ' ' {
			if w < ' ' {
				return -sign
			}
			return sign
		}
		a = a[n:]
	}
	return 0
}
