package shard

import (
	"math"
	"testing"
)

// TestPisanixNumbering checks the algorithms against values computed
// independently (Python: zlib.crc32(struct.pack('>Q', k)) % n; k % n).
func TestPisanixNumbering(t *testing.T) {
	crc := []struct {
		key            uint64
		sum            uint32
		m4, m3, m7, m2 int
	}{
		{0, 0x6522df69, 1, 1, 4, 1},
		{1, 0x1225efff, 3, 0, 1, 1},
		{2, 0x8b2cbe45, 1, 1, 6, 1},
		{3, 0xfc2b8ed3, 3, 0, 4, 1},
		{5, 0x15482be6, 2, 0, 0, 0},
		{42, 0xbe9916bf, 3, 1, 5, 1},
		{100, 0x2ffd7a28, 0, 0, 3, 0},
		{12345, 0xe5616192, 2, 2, 5, 0},
		{1 << 63, 0x36195ab3, 3, 0, 6, 1},
		{math.MaxUint64, 0x2144df1c, 0, 1, 4, 0},
	}
	for _, c := range crc {
		for n, want := range map[int]int{4: c.m4, 3: c.m3, 7: c.m7, 2: c.m2} {
			if got := AlgCRC32Mod.Index(c.key, n); got != want {
				t.Errorf("crc32mod(%d) %% %d = %d, want %d", c.key, n, got, want)
			}
			if got := AlgMod.Index(c.key, n); got != int(c.key%uint64(n)) {
				t.Errorf("mod(%d) %% %d = %d", c.key, n, got)
			}
		}
		if int(c.sum%4) != c.m4 {
			t.Fatalf("table inconsistent for %d", c.key)
		}
	}
	if got := PhysicalTableName("t_order", 0); got != "t_order_00000" {
		t.Errorf("got %q", got)
	}
	if got := PhysicalTableName("t_order", 42); got != "t_order_00042" {
		t.Errorf("got %q", got)
	}
	if got := PhysicalTableName("t", 123456); got != "t_123456" {
		t.Errorf("got %q", got)
	}
}

func TestKeys(t *testing.T) {
	cases := []struct {
		in   any
		kind keyKind
		bits uint64
	}{
		{int64(5), keyInt, 5},
		{int64(-1), keyInt, math.MaxUint64},
		{uint64(math.MaxUint64), keyInt, math.MaxUint64},
		{float64(7), keyInt, 7},
		{float64(7.5), keyInvalid, 0},
		{"42", keyInt, 42},
		{"+007", keyInt, 7},
		{"-3", keyInt, uint64(math.MaxUint64 - 2)},
		{"-9223372036854775808", keyInt, 1 << 63},
		{"-9223372036854775809", keyInvalid, 0},
		{"18446744073709551615", keyInt, math.MaxUint64},
		{"18446744073709551616", keyInvalid, 0},
		{" 5", keyInvalid, 0},
		{"5abc", keyInvalid, 0},
		{"", keyInvalid, 0},
		{[]byte("12"), keyInt, 12},
		{nil, keyNull, 0},
		{struct{}{}, keyInvalid, 0},
	}
	for _, c := range cases {
		k := argKey(c.in)
		if k.kind != c.kind || (k.kind == keyInt && k.bits != c.bits) {
			t.Errorf("argKey(%#v) = %+v, want kind %d bits %d", c.in, k, c.kind, c.bits)
		}
	}
	for s, want := range map[string]keyKind{"5.000": keyInt, "5.5": keyInvalid, "-2.0": keyInt, "7": keyInt} {
		if k := decimalKey(s); k.kind != want {
			t.Errorf("decimalKey(%q) = %+v", s, k)
		}
	}
}
