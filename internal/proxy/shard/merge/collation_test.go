package merge

import (
	"bufio"
	"compress/gzip"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestCollationsGolden checks every pair of test strings against what
// MariaDB's STRCMP answered under each collation (gen_golden.sh).
func TestCollationsGolden(t *testing.T) {
	f, err := os.Open("testdata/strcmp.txt.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	n, bad := 0, 0
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "\t")
		if len(parts) != 4 {
			t.Fatalf("bad line %q", sc.Text())
		}
		id, _ := strconv.Atoi(parts[0])
		a, _ := hex.DecodeString(parts[1])
		b, _ := hex.DecodeString(parts[2])
		want, _ := strconv.Atoi(parts[3])
		coll := collationByID(uint16(id))
		if coll == nil {
			t.Fatalf("collation %d not implemented", id)
		}
		n++
		if got := coll.compare(a, b); got != want {
			bad++
			if bad < 20 {
				t.Errorf("%s: compare(%q, %q) = %d, MariaDB says %d", coll.name, a, b, got, want)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 40000 || bad > 0 {
		t.Fatalf("%d pairs, %d wrong", n, bad)
	}
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
		{Column{Type: TypeVarString, Collation: 224}, nil},
		{Column{Type: TypeVarString, Collation: 2048 + 3}, nil}, // uca1400
		{Column{Type: TypeVarString, Collation: 224, Flags: FlagBinary}, nil},
	} {
		if got := collationFor(tc.c); got != tc.want {
			t.Errorf("%+v: got %v want %v", tc.c, got, tc.want)
		}
	}
}
