package merge

import (
	"math"
	"math/big"
	"math/bits"
	"strconv"
)

// decAcc sums exact decimals with a fixed scale (digits after the point).
// It works on an int64 until that overflows, then on a big.Int.
type decAcc struct {
	scale int
	small int64
	big   *big.Int // authoritative when non-nil
	tmp   big.Int
	pow   big.Int
}

func (d *decAcc) reset(scale int) {
	d.scale = scale
	d.small = 0
	d.big = nil
}

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
	1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// addInt adds an integer.
func (d *decAcc) addInt(v int64) {
	if d.big == nil && d.scale < len(pow10) {
		hi, lo := bits.Mul64(uint64(abs64(v)), uint64(pow10[d.scale]))
		if hi == 0 && lo <= math.MaxInt64 {
			if s, ok := addOverflow(d.small, neg64(int64(lo), v < 0)); ok {
				d.small = s
				return
			}
		}
	}
	d.tmp.SetInt64(v)
	d.addBig(&d.tmp, 0)
}

// addUint adds an unsigned integer.
func (d *decAcc) addUint(v uint64) {
	if v <= math.MaxInt64 {
		d.addInt(int64(v))
		return
	}
	d.tmp.SetUint64(v)
	d.addBig(&d.tmp, 0)
}

// addDecimal adds a decimal string; false if it is malformed or has more
// fraction digits than the scale.
func (d *decAcc) addDecimal(b []byte) bool {
	if !validDecimal(b) {
		return false
	}
	neg, ip, fp := splitDecimal(b)
	if len(fp) > d.scale {
		return false
	}
	if n := len(ip) + d.scale; n <= 18 && d.big == nil {
		var v int64
		for _, c := range ip {
			v = v*10 + int64(c-'0')
		}
		for i := 0; i < d.scale; i++ {
			v *= 10
			if i < len(fp) {
				v += int64(fp[i] - '0')
			}
		}
		if s, ok := addOverflow(d.small, neg64(v, neg)); ok {
			d.small = s
			return true
		}
	}
	// Slow path: build the scaled magnitude in tmp.
	d.tmp.SetInt64(0)
	var chunk uint64
	n := 0
	push := func(c byte) {
		chunk = chunk*10 + uint64(c-'0')
		n++
		if n == 18 {
			d.tmp.Mul(&d.tmp, d.pow.SetUint64(1e18))
			d.tmp.Add(&d.tmp, new(big.Int).SetUint64(chunk))
			chunk, n = 0, 0
		}
	}
	for _, c := range ip {
		push(c)
	}
	for i := 0; i < d.scale; i++ {
		if i < len(fp) {
			push(fp[i])
		} else {
			push('0')
		}
	}
	if n > 0 {
		d.tmp.Mul(&d.tmp, d.pow.SetInt64(pow10[n]))
		d.tmp.Add(&d.tmp, new(big.Int).SetUint64(chunk))
	}
	if neg {
		d.tmp.Neg(&d.tmp)
	}
	d.addBig(&d.tmp, -1)
	return true
}

// addBig adds x; scaled < 0 means x is already scaled, otherwise x is an
// integer to scale.
func (d *decAcc) addBig(x *big.Int, scaled int) {
	if d.big == nil {
		d.big = new(big.Int).SetInt64(d.small)
	}
	if scaled >= 0 && d.scale > 0 {
		x.Mul(x, d.pow.Exp(big.NewInt(10), big.NewInt(int64(d.scale)), nil))
	}
	d.big.Add(d.big, x)
}

// value returns the scaled sum as a big.Int (allocating only when small).
func (d *decAcc) value(z *big.Int) *big.Int {
	if d.big != nil {
		return z.Set(d.big)
	}
	return z.SetInt64(d.small)
}

// appendText appends the sum as a decimal with scale fraction digits.
func (d *decAcc) appendText(b []byte) []byte {
	var buf [80]byte
	var digits []byte
	neg := false
	if d.big != nil {
		digits = d.big.Append(buf[:0], 10)
	} else {
		digits = strconv.AppendInt(buf[:0], d.small, 10)
	}
	if len(digits) > 0 && digits[0] == '-' {
		neg, digits = true, digits[1:]
	}
	return appendScaled(b, neg, digits, d.scale)
}

// appendScaled appends the integer digits (no sign) divided by 10^scale.
func appendScaled(b []byte, neg bool, digits []byte, scale int) []byte {
	if neg {
		b = append(b, '-')
	}
	if scale == 0 {
		return append(b, digits...)
	}
	if len(digits) <= scale {
		b = append(b, '0', '.')
		for i := len(digits); i < scale; i++ {
			b = append(b, '0')
		}
		return append(b, digits...)
	}
	ip := len(digits) - scale
	b = append(b, digits[:ip]...)
	b = append(b, '.')
	return append(b, digits[ip:]...)
}

func abs64(v int64) uint64 {
	if v < 0 {
		return uint64(-v) // -MinInt64 wraps to 1<<63, which is right as a uint64
	}
	return uint64(v)
}

func neg64(v int64, neg bool) int64 {
	if neg {
		return -v
	}
	return v
}

func addOverflow(a, b int64) (int64, bool) {
	s := a + b
	if (a >= 0) == (b >= 0) && (s >= 0) != (a >= 0) {
		return 0, false
	}
	return s, true
}

// divRound returns round(num*10^shift / den) half away from zero, shift may
// be negative; den > 0.
func divRound(z, num *big.Int, den uint64, shift int) *big.Int {
	n := new(big.Int).Set(num)
	dd := new(big.Int).SetUint64(den)
	ten := big.NewInt(10)
	if shift > 0 {
		n.Mul(n, new(big.Int).Exp(ten, big.NewInt(int64(shift)), nil))
	} else if shift < 0 {
		dd.Mul(dd, new(big.Int).Exp(ten, big.NewInt(int64(-shift)), nil))
	}
	neg := n.Sign() < 0
	n.Abs(n)
	r := new(big.Int)
	z.QuoRem(n, dd, r)
	r.Lsh(r, 1)
	if r.Cmp(dd) >= 0 {
		z.Add(z, big.NewInt(1))
	}
	if neg {
		z.Neg(z)
	}
	return z
}

// appendDouble appends v as MariaDB prints a DOUBLE (or FLOAT, when bits
// is 32) column with the given decimals and display width: a fixed number
// of decimals when decimals < 31, otherwise the shortest digits that read
// back as v, in plain notation when the exponent is moderate, else as
// d.ddde±N. width (the column's display length) is not used: aggregate
// results are printed without truncation.
func appendDouble(b []byte, v float64, decimals int, width int, bitSize int) []byte {
	if decimals < notFixedDecimals {
		if math.IsInf(v, 0) || math.IsNaN(v) {
			v = 0
		}
		return strconv.AppendFloat(b, v, 'f', decimals, bitSize)
	}
	if v == 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		// -0 prints 0; so does an overflowed SUM/AVG in MariaDB 10.11
		// (SUM of 1.7e308 twice is 0).
		return append(b, '0')
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], v, 'e', -1, bitSize)
	neg := e[0] == '-'
	if neg {
		e = e[1:]
	}
	// e is d[.ddd]e±XX
	ei := 0
	for e[ei] != 'e' {
		ei++
	}
	var dig [20]byte
	nd := 0
	for _, c := range e[:ei] {
		if c != '.' {
			dig[nd] = c
			nd++
		}
	}
	exp, _ := strconv.Atoi(string(e[ei+1:]))
	decpt := exp + 1 // digits before the point
	digs := dig[:nd]
	// MariaDB prints aggregate results into a buffer wide enough for any
	// plain form, and chooses plain notation when the point is at most 15
	// (DBL_DIG) places from the first digit on the left, or 14 zeros on the
	// right, unless there are fraction digits.
	const maxF = 15
	plain := decpt >= 1-maxF && (decpt <= maxF || nd > decpt)
	if plain {
		if neg {
			b = append(b, '-')
		}
		switch {
		case decpt <= 0:
			b = append(b, '0', '.')
			for i := decpt; i < 0; i++ {
				b = append(b, '0')
			}
			return append(b, digs...)
		case decpt < nd:
			b = append(b, digs[:decpt]...)
			b = append(b, '.')
			return append(b, digs[decpt:]...)
		default:
			b = append(b, digs...)
			for i := nd; i < decpt; i++ {
				b = append(b, '0')
			}
			return b
		}
	}
	if neg {
		b = append(b, '-')
	}
	b = append(b, digs[0])
	if nd > 1 {
		b = append(b, '.')
		b = append(b, digs[1:]...)
	}
	b = append(b, 'e')
	return strconv.AppendInt(b, int64(exp), 10)
}
