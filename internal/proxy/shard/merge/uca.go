package merge

import (
	_ "embed"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// utf8mb3/utf8mb4_unicode_ci: UCA 4.0.0, primary level only (case and
// accent insensitive), as MariaDB compares them. A character weighs zero
// or more 16-bit weights (ß weighs like "ss", ignorable characters weigh
// nothing); characters above the BMP weigh U+FFFD's FFFD.

//go:embed uca400_weights.txt
var uca400Explicit string

// ucaTable: for each BMP code point, its weights are
// ucaPool[ucaIndex[cp]>>8 : ucaIndex[cp]>>8 + ucaIndex[cp]&0xff].
type ucaTable struct {
	index [0x10000]uint32
	pool  []uint16
}

var (
	ucaOnce sync.Once
	uca     *ucaTable
)

const ucaSpace = 0x0209 // the weight of ' '

func ucaWeights() *ucaTable {
	ucaOnce.Do(func() {
		t := &ucaTable{pool: make([]uint16, 0, 2*0x10000)}
		for cp := 0; cp < 0x10000; cp++ {
			base := 0xFBC0
			switch {
			case cp >= 0x4E00 && cp <= 0x9FA5:
				base = 0xFB40
			case cp >= 0x3400 && cp <= 0x4DB5:
				base = 0xFB80
			}
			t.index[cp] = uint32(len(t.pool))<<8 | 2
			t.pool = append(t.pool, uint16(base+cp>>15), uint16(cp&0x7FFF|0x8000))
		}
		for _, line := range strings.Split(uca400Explicit, "\n") {
			cpHex, wHex, ok := strings.Cut(line, " ")
			if !ok {
				continue
			}
			cp, err1 := strconv.ParseUint(cpHex, 16, 16)
			w, err2 := hex.DecodeString(wHex)
			if err1 != nil || err2 != nil || len(w)%2 != 0 || len(w)/2 > 255 {
				panic("merge: bad uca400_weights.txt line " + line)
			}
			t.index[cp] = uint32(len(t.pool))<<8 | uint32(len(w)/2)
			for i := 0; i < len(w); i += 2 {
				t.pool = append(t.pool, uint16(w[i])<<8|uint16(w[i+1]))
			}
		}
		uca = t
	})
	return uca
}

// ucaScanner yields the weights of a string one at a time.
type ucaScanner struct {
	t   *ucaTable
	s   []byte
	w   []uint16 // pending weights of the current character
	mb4 bool
}

var ucaFFFD = []uint16{0xFFFD} // the weights of a character above the BMP

// next returns the next weight, or -1 at the end.
func (sc *ucaScanner) next() int {
	for len(sc.w) == 0 {
		if len(sc.s) == 0 {
			return -1
		}
		b := sc.s[0]
		var cp rune
		n := 1
		if b < utf8.RuneSelf {
			cp = rune(b)
		} else {
			cp, n = utf8.DecodeRune(sc.s)
			if cp == utf8.RuneError && n <= 1 || n == 4 && !sc.mb4 {
				// An ill-formed byte weighs more than any character.
				sc.s = sc.s[1:]
				return 0xFFFF
			}
		}
		sc.s = sc.s[n:]
		if cp > 0xFFFF {
			sc.w = ucaFFFD
			break
		}
		x := sc.t.index[cp]
		sc.w = sc.t.pool[x>>8 : x>>8+x&0xff]
	}
	w := sc.w[0]
	sc.w = sc.w[1:]
	return int(w)
}

// compareUCA orders a and b by their primary weights.
func (c *collation) compareUCA(a, b []byte) int {
	// Equal ASCII prefixes weigh the same.
	i, n := 0, min(len(a), len(b))
	for i < n && a[i] == b[i] && a[i] < utf8.RuneSelf {
		i++
	}
	t := ucaWeights()
	sa := ucaScanner{t: t, s: a[i:], mb4: c.mb4}
	sb := ucaScanner{t: t, s: b[i:], mb4: c.mb4}
	for {
		wa, wb := sa.next(), sb.next()
		if wa != wb {
			switch {
			case wa >= 0 && wb >= 0:
				return cmp3(wa < wb, wa > wb)
			case !c.padSpace:
				return cmp3(wa < 0, wb < 0)
			case wb < 0:
				return padUCA(wa, &sa)
			default:
				return -padUCA(wb, &sb)
			}
		}
		if wa < 0 {
			return 0
		}
	}
}

// padUCA compares the rest of a longer string, starting with weight w,
// with spaces.
func padUCA(w int, sc *ucaScanner) int {
	for ; w >= 0; w = sc.next() {
		if w != ucaSpace {
			return cmp3(w < ucaSpace, w > ucaSpace)
		}
	}
	return 0
}
