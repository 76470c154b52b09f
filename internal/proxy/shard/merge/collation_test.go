package merge

import (
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestCollationsGolden checks every ordered pair of test strings against
// what MariaDB's STRCMP answered under each collation (gen_golden.sh).
func TestCollationsGolden(t *testing.T) {
	b, err := os.ReadFile("testdata/strcmp.txt")
	if err != nil {
		t.Fatal(err)
	}
	var coll *collation
	var words [][]byte
	n, bad, colls := 0, 0, 0
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "C "):
			id, _ := strconv.Atoi(line[2:])
			if coll = collationByID(uint16(id)); coll == nil {
				t.Fatalf("collation %d not implemented", id)
			}
			words = words[:0]
			colls++
		case strings.HasPrefix(line, "W"):
			w, err := hex.DecodeString(strings.TrimSpace(line[1:]))
			if err != nil {
				t.Fatal(err)
			}
			words = append(words, w)
		case strings.HasPrefix(line, "R "):
			res := line[2:]
			if len(res) != len(words)*len(words) {
				t.Fatalf("%s: %d results for %d words", coll.name, len(res), len(words))
			}
			for i, a := range words {
				for j, b := range words {
					want := map[byte]int{'<': -1, '=': 0, '>': 1}[res[i*len(words)+j]]
					n++
					if got := coll.compare(a, b); got != want {
						bad++
						if bad < 20 {
							t.Errorf("%s: compare(%q, %q) = %d, MariaDB says %d", coll.name, a, b, got, want)
						}
					}
				}
			}
		}
	}
	if colls < 14 || n < 100000 || bad > 0 {
		t.Fatalf("%d collations, %d pairs, %d wrong", colls, n, bad)
	}
	t.Logf("%d collations, %d pairs", colls, n)
}

func TestCollationFor(t *testing.T) {
	for _, tc := range []struct {
		c    Column
		want *collation
	}{
		{Column{Type: TypeVarString, Collation: 45}, collGen4},
		{Column{Type: TypeVarString, Collation: 45, Flags: FlagBinary}, collBinPad}, // utf8mb4_bin reported as 45
		{Column{Type: TypeVarString, Collation: 33}, collGen3},
		{Column{Type: TypeVarString, Collation: 8}, collSwedish},
		{Column{Type: TypeBlob, Collation: 63, Flags: FlagBinary}, collBinary},
		{Column{Type: TypeVarString, Collation: 46}, collBinPad},
		{Column{Type: TypeVarString, Collation: 1070}, collBinNoPad},
		{Column{Type: TypeVarString, Collation: 1071}, collBinNoPad},
		{Column{Type: TypeVarString, Collation: 224}, collUCA4},
		{Column{Type: TypeVarString, Collation: 192}, collUCA3},
		{Column{Type: TypeVarString, Collation: 225}, nil},      // utf8mb4_icelandic_ci
		{Column{Type: TypeVarString, Collation: 2048 + 3}, nil}, // uca1400
		{Column{Type: TypeVarString, Collation: 225, Flags: FlagBinary}, nil},
	} {
		if got := collationFor(tc.c); got != tc.want {
			t.Errorf("%+v: got %v want %v", tc.c, got, tc.want)
		}
	}
}
