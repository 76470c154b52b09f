package shard

import (
	"encoding/binary"
	"hash/crc32"
	"math"
	"strconv"
	"strings"
)

// Algorithm maps a sharding key to a shard index in [0, count).
//
// Both algorithms are Pisanix's (pisa-proxy/proxy/strategy/src/
// sharding_rewrite/mod.rs, trait CalcShardingIdx):
//
//   - mod: key % count on the unsigned 64-bit key (Rust u64::wrapping_rem).
//   - crc32mod: crc32(key as 8 bytes, big-endian) % count, crc32 being the
//     IEEE polynomial (Rust crate crc32fast, the same as Go's
//     crc32.ChecksumIEEE). The 32-bit checksum is reduced modulo count.
//
// Worked examples (count 4): mod(5) = 1, mod(8) = 0; crc32mod(1) =
// crc32(00 00 00 00 00 00 00 01) = 0x1225efff, % 4 = 3; crc32mod(100) =
// 0x2ffd7a28 % 4 = 0 (TestPisanixNumbering has more, computed with
// Python's zlib.crc32).
//
// Keys. Pisanix places a row only when its sharding value is a non-negative
// integer literal (INSERT parses the value text as u64 and fails otherwise)
// and finds it by `col = <integer literal>`. We agree on that whole domain
// and extend it deterministically, identically for INSERT and for every
// WHERE form, so that a row is always found where it was put:
//
//   - negative integers use their two's complement bit pattern as the u64
//     key (-1 is 18446744073709551615). Pisanix computed the same crc32
//     (i64::to_be_bytes is that bit pattern) and a negative "index" for mod
//     (it then used a table that cannot exist or panicked), so no data
//     Pisanix placed is affected;
//   - a decimal or float literal with an integral value (5.0, 5e0) is that
//     integer; other ones (5.5) are not keys: INSERT refuses them (an INT
//     column would round them, a DECIMAL one would not: their placement is
//     ambiguous) and WHERE scatters;
//   - a string literal (or string parameter) whose whole text is a decimal
//     integer, optionally signed ("42", "-7", "+007") is that integer: MySQL
//     compares an integer column with such a string numerically, and rows
//     inserted into a character column with such text are placed by its
//     value, so both column types agree. Any other string is not a key
//     (INSERT refuses it, WHERE scatters): MySQL's string to number
//     conversion ("5abc" = 5, " 5" = 5) cannot be matched exactly;
//   - NULL is not a key: INSERT refuses a NULL sharding value, and
//     `col IS NULL` scatters;
//   - hexadecimal and bit literals (0x05, b'101') are not keys: they are
//     numbers or binary strings depending on the column.
type Algorithm uint8

const (
	// AlgMod is Pisanix's "mod".
	AlgMod Algorithm = iota + 1
	// AlgCRC32Mod is Pisanix's "crc32mod".
	AlgCRC32Mod
)

func (a Algorithm) String() string {
	switch a {
	case AlgMod:
		return "mod"
	case AlgCRC32Mod:
		return "crc32mod"
	}
	return "unknown"
}

func parseAlgorithm(name string) (Algorithm, bool) {
	switch name {
	case "mod":
		return AlgMod, true
	case "crc32mod":
		return AlgCRC32Mod, true
	}
	return 0, false
}

// Index returns the shard index of key among count shards (count >= 1).
func (a Algorithm) Index(key uint64, count int) int {
	switch a {
	case AlgCRC32Mod:
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], key)
		return int(crc32.ChecksumIEEE(b[:]) % uint32(count))
	default:
		return int(key % uint64(count))
	}
}

// keyKind classifies a sharding value.
type keyKind uint8

const (
	keyInvalid keyKind = iota // not usable as a key (see Algorithm)
	keyNull                   // SQL NULL
	keyInt                    // an integer: bits holds it
)

// key is a sharding value: an integer as the 64-bit pattern Pisanix hashes,
// and whether it is a negative int64 (to order keys for ranges).
type key struct {
	kind keyKind
	neg  bool
	str  bool // from a string: usable for = and IN, never for ranges
	bits uint64
}

func intKey(v int64) key   { return key{kind: keyInt, neg: v < 0, bits: uint64(v)} }
func uintKey(v uint64) key { return key{kind: keyInt, bits: v} }

// int64 returns the key as an int64 when it fits.
func (k key) int64() (int64, bool) {
	if k.kind != keyInt || (!k.neg && k.bits > math.MaxInt64) {
		return 0, false
	}
	return int64(k.bits), true
}

// floatKey is the key of a float value: integral values only.
func floatKey(f float64) key {
	if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) {
		return key{}
	}
	if f >= -9223372036854775808 && f < 9223372036854775808 {
		return intKey(int64(f))
	}
	if f >= 0 && f < 18446744073709551616 {
		return uintKey(uint64(f))
	}
	return key{}
}

// stringKey is the key of a string value: an optionally signed decimal
// integer, nothing else.
func stringKey(s string) key {
	if s == "" {
		return key{}
	}
	neg := false
	digits := s
	switch s[0] {
	case '-':
		neg, digits = true, s[1:]
	case '+':
		digits = s[1:]
	}
	if digits == "" {
		return key{}
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return key{}
		}
	}
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return intKey(0)
	}
	u, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return key{}
	}
	if !neg {
		return uintKey(u)
	}
	if u > 1<<63 {
		return key{}
	}
	return intKey(int64(-u)) // -(1<<63) wraps to MinInt64 exactly
}

// decimalKey is the key of a decimal literal's text ("5.00", "-3.0").
func decimalKey(s string) key {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		frac := s[i+1:]
		if strings.Trim(frac, "0") != "" {
			return key{}
		}
		s = s[:i]
	}
	return stringKey(s)
}

// argKey is the key of a decoded COM_STMT_EXECUTE parameter.
func argKey(a any) key {
	switch v := a.(type) {
	case nil:
		return key{kind: keyNull}
	case int64:
		return intKey(v)
	case uint64:
		return uintKey(v)
	case int:
		return intKey(int64(v))
	case int32:
		return intKey(int64(v))
	case uint32:
		return uintKey(uint64(v))
	case float64:
		return floatKey(v)
	case float32:
		return floatKey(float64(v))
	case []byte:
		k := stringKey(string(v))
		k.str = true
		return k
	case string:
		k := stringKey(v)
		k.str = true
		return k
	case bool:
		if v {
			return intKey(1)
		}
		return intKey(0)
	}
	return key{}
}
