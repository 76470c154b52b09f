package merge

import (
	"bufio"
	"math"
	"math/big"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestAppendDoubleGolden compares the DOUBLE formatting with what MariaDB
// printed for AVG(x) (width 23, decimals 31) of 3000 numbers.
func TestAppendDoubleGolden(t *testing.T) {
	f, err := os.Open("testdata/double.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n, bad := 0, 0
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "\t")
		v, err := strconv.ParseFloat(parts[0], 64)
		if err != nil {
			t.Fatal(err)
		}
		n++
		if got := string(appendDouble(nil, v, 31, 23, 64)); got != parts[2] {
			bad++
			if bad < 30 {
				t.Errorf("%s: got %s, MariaDB %s", parts[0], got, parts[2])
			}
		}
	}
	if n < 2900 || bad > 0 {
		t.Fatalf("%d numbers, %d wrong", n, bad)
	}
}

// TestAppendDoubleFixed: fixed decimals round the binary value half to
// even, as MariaDB does (AVG(x) of a DOUBLE(10,0) 1 and 31 zeros prints
// 0.0312); long plain forms stay plain (1234567890123456.8).
var tenth = 0.1 // a variable: constant arithmetic would be exact

func TestAppendDoubleFixed(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		dec  int
		want string
	}{
		{1.0 / 32, 4, "0.0312"},
		{1.0 / 3, 7, "0.3333333"},
		{-1.5, 3, "-1.500"},
		{tenth + 2*tenth, 1, "0.3"},
		{1234567890123456.8, 31, "1234567890123456.8"},
		{tenth + 2*tenth, 31, "0.30000000000000004"},
		{math.Copysign(0, -1), 31, "0"},
		{1e15, 31, "1e15"},
		{-1e-15, 31, "-0.000000000000001"},
		{1e-16, 31, "1e-16"},
		{math.Inf(1), 31, "0"},
		{math.NaN(), 2, "0.00"},
	} {
		if got := string(appendDouble(nil, tc.v, tc.dec, 23, 64)); got != tc.want {
			t.Errorf("appendDouble(%v, %d) = %s, want %s", tc.v, tc.dec, got, tc.want)
		}
	}
}

func TestDecAcc(t *testing.T) {
	var d decAcc
	d.reset(2)
	for _, s := range []string{"1.5", "-0.25", "99999999999999999.99", "99999999999999999.99", "0.01"} {
		if !d.addDecimal([]byte(s)) {
			t.Fatalf("addDecimal(%s)", s)
		}
	}
	d.addInt(-3)
	d.addUint(18446744073709551615)
	if got := string(d.appendText(nil)); got != "18646744073709551613.24" {
		t.Fatalf("got %s", got)
	}
	d.reset(0)
	d.addInt(-9223372036854775808)
	d.addInt(-1)
	if got := string(d.appendText(nil)); got != "-9223372036854775809" {
		t.Fatalf("got %s", got)
	}
	d.reset(1)
	for _, bad := range []string{"1.25", "abc", "", "-", "1e5"} {
		if d.addDecimal([]byte(bad)) {
			t.Errorf("addDecimal(%q) accepted", bad)
		}
	}
	z := divRound(new(big.Int), big.NewInt(-5), 2, 0)
	if z.Int64() != -3 {
		t.Fatalf("divRound(-5/2) = %v", z)
	}
}

func TestCompareDecimal(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"0", "-0.00", 0}, {"1.10", "1.1", 0}, {"-1", "1", -1}, {"-2", "-10", 1},
		{"10", "9.99", 1}, {"0.001", "0.01", -1}, {"007", "7.0", 0}, {"-0.5", "-0.49", -1},
	} {
		if got := compareDecimal([]byte(tc.a), []byte(tc.b)); got != tc.want {
			t.Errorf("compareDecimal(%s, %s) = %d", tc.a, tc.b, got)
		}
	}
}
