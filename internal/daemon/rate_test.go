package daemon

import (
	"strings"
	"testing"
)

func TestParseRate(t *testing.T) {
	ok := []struct {
		in   string
		bits uint64
	}{
		{"8bit", 8},
		{"1kbit", 1000},
		{"10mbit", 10_000_000},
		{"10Mbit", 10_000_000},
		{"1.5gbit", 1_500_000_000},
		{"2tbit", 2_000_000_000_000},
		{"1bps", 8},
		{"1kbps", 8000},
		{"1mbps", 8_000_000}, // bytes per second, like tc's MBps
		{"1MBps", 8_000_000},
		{"1gbps", 8_000_000_000},
		{"1tbps", 8_000_000_000_000},
		{"1kibit", 1024},
		{"1mibit", 1 << 20},
		{"1gibit", 1 << 30},
		{"1kibps", 8192},
		{"1mibps", 8 << 20},
		{"1000", 1000}, // bare number: bits per second, as in tc
		{"1e3kbit", 1_000_000},
		{" 10mbit ", 10_000_000},
		{".5mbit", 500_000},
	}
	for _, c := range ok {
		got, err := ParseRate(c.in)
		if err != nil || got != c.bits {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", c.in, got, err, c.bits)
		}
	}
	bad := []struct{ in, msg string }{
		{"", "empty"},
		{"1mps", "unknown unit"}, // Pisanix's documentation typo
		{"1k", "unknown unit"},
		{"1m", "unknown unit"},
		{"mbit", "must start with a number"},
		{"-1mbit", "must start with a number"},
		{"0mbit", "positive"},
		{"0", "positive"},
		{"4bit", "minimum"},
		{"10%", "unknown unit"},
		{"1.2.3mbit", "unknown unit"},
		{"10 mbit", "unknown unit"},
		{"1e400bit", "invalid rate"},
		{"100000tbit", "too large"},
		{"NaN", "must start with a number"},
		{"inf", "must start with a number"},
		{"0x10mbit", "unknown unit"},
	}
	for _, c := range bad {
		got, err := ParseRate(c.in)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("ParseRate(%q) = %d, %v; want an error containing %q", c.in, got, err, c.msg)
		}
	}
}

func TestFormatRate(t *testing.T) {
	for in, want := range map[uint64]string{
		10_000_000: "10Mbit", 1500: "1500bit", 1_500_000: "1500Kbit", 8: "8bit", 2_000_000_000: "2Gbit", 3_000_000_000_000: "3Tbit",
	} {
		if got := FormatRate(in); got != want {
			t.Errorf("FormatRate(%d) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"10mbit", "1mps", "1e3kbit", "1.5", "8bit", "9999999tbps"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseRate(s)
		if err == nil && (v < MinRate || v > maxRate) {
			t.Fatalf("ParseRate(%q) = %d out of range", s, v)
		}
	})
}
