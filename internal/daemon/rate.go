package daemon

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// rateUnits are tc's rate units (iproute2 tc_util.c), matched without
// regard to case like tc does. Values are bits per second per unit. Note
// that "mbps" is megaBYTES per second (it matches tc's "MBps"), "mbit" is
// megabits.
var rateUnits = map[string]float64{
	"bit":   1,
	"kibit": 1024,
	"kbit":  1000,
	"mibit": 1024 * 1024,
	"mbit":  1000 * 1000,
	"gibit": 1024 * 1024 * 1024,
	"gbit":  1000 * 1000 * 1000,
	"tibit": 1024 * 1024 * 1024 * 1024,
	"tbit":  1000 * 1000 * 1000 * 1000,
	"bps":   8,
	"kibps": 8 * 1024,
	"kbps":  8 * 1000,
	"mibps": 8 * 1024 * 1024,
	"mbps":  8 * 1000 * 1000,
	"gibps": 8 * 1024 * 1024 * 1024,
	"gbps":  8 * 1000 * 1000 * 1000,
	"tibps": 8 * 1024 * 1024 * 1024 * 1024,
	"tbps":  8 * 1000 * 1000 * 1000 * 1000,
}

// MinRate is the smallest accepted rate: HTB counts in bytes per second.
const MinRate = 8

// maxRate bounds rates to what HTB's 64-bit byte counters express with
// room to spare (and what a float64 holds exactly).
const maxRate = 1 << 53

// ParseRate parses a tc rate ("10mbit", "1.5gbit", "125kbps", "800") and
// returns bits per second.
//
// As in tc, bit/kbit/mbit/gbit/tbit are bits per second (1000 multipliers),
// bps/kbps/mbps/gbps/tbps are BYTES per second (×8), the IEC forms (kibit,
// mibps, …) use 1024 multipliers, units are case-insensitive and a bare
// number is bits per second. Unknown units ("1mps", "1k"), percentages,
// negative, zero, non-finite values and rates below 8 bit/s (one byte per
// second) are errors.
func ParseRate(s string) (uint64, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty rate")
	}
	i := numberPrefix(s)
	if i == 0 {
		return 0, fmt.Errorf("invalid rate %q: must start with a number", in)
	}
	num, unit := s[:i], s[i:]
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid rate %q: %v", in, err)
	}
	scale := 1.0
	if unit != "" {
		var ok bool
		scale, ok = rateUnits[strings.ToLower(unit)]
		if !ok {
			return 0, fmt.Errorf("invalid rate %q: unknown unit %q (use bit, kbit, mbit, gbit, tbit for bits/s or bps, kbps, mbps, gbps, tbps for bytes/s)", in, unit)
		}
	}
	bits := v * scale
	switch {
	case math.IsNaN(bits) || math.IsInf(bits, 0):
		return 0, fmt.Errorf("invalid rate %q", in)
	case bits <= 0:
		return 0, fmt.Errorf("invalid rate %q: must be positive", in)
	case bits < MinRate:
		return 0, fmt.Errorf("invalid rate %q: below the minimum of 8bit (1 byte/s)", in)
	case bits > maxRate:
		return 0, fmt.Errorf("invalid rate %q: too large", in)
	}
	return uint64(bits), nil
}

// numberPrefix returns the length of the decimal floating-point number at
// the start of s: digits, an optional fraction and an optional exponent.
// Signs are not accepted.
func numberPrefix(s string) int {
	i, digits := 0, 0
	for i < len(s) && isDigit(s[i]) {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
			digits++
		}
	}
	if digits == 0 {
		return 0
	}
	// An exponent needs at least one digit, else "e" starts the unit.
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := j
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		if k > j {
			i = k
		}
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// FormatRate renders bits per second in tc's style: the largest of bit,
// Kbit, Mbit, Gbit that keeps an exact integer, e.g. 10000000 → "10Mbit".
func FormatRate(bits uint64) string {
	units := []struct {
		name string
		div  uint64
	}{{"Tbit", 1e12}, {"Gbit", 1e9}, {"Mbit", 1e6}, {"Kbit", 1e3}}
	for _, u := range units {
		if bits >= u.div && bits%u.div == 0 {
			return strconv.FormatUint(bits/u.div, 10) + u.name
		}
	}
	return strconv.FormatUint(bits, 10) + "bit"
}
