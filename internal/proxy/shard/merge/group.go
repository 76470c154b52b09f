package merge

import (
	"encoding/binary"
	"io"
	"math"
	"math/big"
	"math/bits"
	"strconv"

	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
)

// accum merges one aggregate column over the rows of a group.
type accum struct {
	agg            shard.Aggregate
	col            *colInfo
	sumCol, cntCol *colInfo // AggAvg

	any bool    // a non-NULL value was seen
	dec decAcc  // COUNT, exact SUM, AVG's sum
	cnt decAcc  // AVG's count
	f   float64 // floating-point SUM, AVG's sum
	val []byte  // MIN/MAX: the best value's encoding
	vf  field   // its field within val
	vk  key     // its key
	k   key     // scratch
	q   big.Int // AVG: scratch
	num big.Int
}

// avgSmall divides an int64 sum, shifted by 10^shift, by den, rounding
// half away from zero, when everything fits 64 bits.
func avgSmall(d *decAcc, den uint64, shift int) (int64, bool) {
	if d.big != nil || shift < 0 || shift >= len(pow10) || den == 0 {
		return 0, false
	}
	hi, num := bits.Mul64(abs64(d.small), uint64(pow10[shift]))
	if hi != 0 {
		return 0, false
	}
	q, r := num/den, num%den
	if r >= den-r {
		q++
	}
	if q > math.MaxInt64 {
		return 0, false
	}
	return neg64(int64(q), d.small < 0), true
}

func (a *accum) reset() {
	a.any = false
	a.f = 0
	a.val = a.val[:0]
	switch a.agg.Kind {
	case shard.AggAvg:
		a.dec.reset(scaleOf(a.sumCol))
		a.cnt.reset(0)
	case shard.AggSum:
		a.dec.reset(scaleOf(a.col))
	default:
		a.dec.reset(0)
	}
}

func scaleOf(c *colInfo) int {
	if c.kind == kindDecimal {
		return int(c.Decimals)
	}
	return 0
}

// addNumber adds the key of a numeric column to an exact or float sum.
func addNumber(d *decAcc, f *float64, k *key, c *colInfo) error {
	switch c.kind {
	case kindInt:
		d.addInt(k.i)
	case kindUint:
		d.addUint(k.u)
	case kindDecimal:
		if !d.addDecimal(k.b) {
			return errBadValue
		}
	case kindFloat:
		*f += k.f
	}
	return nil
}

func (m *Merger) accumulate(row []byte, fields []field) error {
	for i := range m.accs {
		a := &m.accs[i]
		f := &fields[a.agg.Column]
		switch a.agg.Kind {
		case shard.AggCount, shard.AggSum:
			if f.null {
				continue
			}
			if err := decodeKey(row, f, a.col, m.bin, &a.k); err != nil {
				return err
			}
			if err := addNumber(&a.dec, &a.f, &a.k, a.col); err != nil {
				return err
			}
			a.any = true
		case shard.AggMin, shard.AggMax:
			if f.null {
				continue
			}
			if err := decodeKey(row, f, a.col, m.bin, &a.k); err != nil {
				return err
			}
			if a.any {
				r := compareKeys(&a.k, &a.vk, a.col)
				if a.agg.Kind == shard.AggMin && r >= 0 || a.agg.Kind == shard.AggMax && r <= 0 {
					continue
				}
			}
			a.val = append(a.val[:0], row[f.start:f.end]...)
			a.vf = field{start: 0, end: len(a.val), val: f.val - f.start}
			if err := decodeKey(a.val, &a.vf, a.col, m.bin, &a.vk); err != nil {
				return err
			}
			a.any = true
		case shard.AggAvg:
			sf, cf := &fields[a.agg.SumColumn], &fields[a.agg.CountColumn]
			if !sf.null {
				if err := decodeKey(row, sf, a.sumCol, m.bin, &a.k); err != nil {
					return err
				}
				if err := addNumber(&a.dec, &a.f, &a.k, a.sumCol); err != nil {
					return err
				}
				a.any = true
			}
			if !cf.null {
				if err := decodeKey(row, cf, a.cntCol, m.bin, &a.k); err != nil {
					return err
				}
				var unused float64
				if err := addNumber(&a.cnt, &unused, &a.k, a.cntCol); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// nonAggNull reports whether every non-aggregate column of the row is NULL.
func (m *Merger) nonAggNull(fields []field) bool {
	for c := range fields {
		if m.aggByCol[c] < 0 && !fields[c].null {
			return false
		}
	}
	return true
}

// nextGrouped returns the next row after grouping (the raw rows when the
// plan has no aggregates).
func (m *Merger) nextGrouped() ([]byte, []field, error) {
	if !m.grouping {
		c, err := m.nextRaw()
		if err != nil {
			return nil, nil, err
		}
		return c.row, c.fields, nil
	}
	for i := range m.accs {
		m.accs[i].reset()
	}
	if len(m.groupKeys) == 0 {
		// One row for the whole result. Its plain columns come from the
		// first row that has any (a shard without matching rows answers
		// NULLs).
		if m.emptyAgg {
			return nil, nil, io.EOF
		}
		m.emptyAgg = true
		first, allNull := true, true
		for {
			c, err := m.nextRaw()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, nil, err
			}
			if first || allNull && !m.nonAggNull(c.fields) {
				m.group.set(c.row, c.fields)
				allNull = m.nonAggNull(c.fields)
				first = false
			}
			if err := m.accumulate(c.row, c.fields); err != nil {
				return nil, nil, err
			}
		}
		if first {
			m.nullRow()
		}
		return m.build()
	}
	c := m.pending
	m.pending = nil
	if c == nil {
		var err error
		if c, err = m.nextRaw(); err != nil {
			return nil, nil, err
		}
	}
	m.group.set(c.row, c.fields)
	for i, g := range m.groupKeys {
		if err := decodeKey(m.group.row, &m.group.fields[g], &m.cols[g], m.bin, &m.gkeys[i]); err != nil {
			return nil, nil, err
		}
	}
	if err := m.accumulate(c.row, c.fields); err != nil {
		return nil, nil, err
	}
	for {
		c, err := m.nextRaw()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		same := true
		for i, g := range m.groupKeys {
			if err := decodeKey(c.row, &c.fields[g], &m.cols[g], m.bin, &m.tkeys[i]); err != nil {
				return nil, nil, err
			}
			if compareKeys(&m.tkeys[i], &m.gkeys[i], &m.cols[g]) != 0 {
				same = false
				break
			}
		}
		if !same {
			m.pending = c
			break
		}
		if err := m.accumulate(c.row, c.fields); err != nil {
			return nil, nil, err
		}
	}
	return m.build()
}

// nullRow makes the group row all NULLs.
func (m *Merger) nullRow() {
	r := m.group.row[:0]
	if m.bin {
		r = append(r, 0)
		nb := (m.ncols + 7 + 2) / 8
		for i := 0; i < nb; i++ {
			r = append(r, 0xff)
		}
	} else {
		for i := 0; i < m.ncols; i++ {
			r = append(r, 0xfb)
		}
	}
	m.group.row = r
	for i := range m.group.fields {
		m.group.fields[i] = field{null: true}
	}
}

// build encodes the merged row of the current group into m.out.
func (m *Merger) build() ([]byte, []field, error) {
	b := m.out.row[:0]
	nb := 0
	if m.bin {
		nb = (m.ncols + 7 + 2) / 8
		b = append(b, 0)
		for i := 0; i < nb; i++ {
			b = append(b, 0)
		}
	}
	for c := 0; c < m.ncols; c++ {
		start := len(b)
		var null bool
		if ai := m.aggByCol[c]; ai >= 0 {
			b, null = m.appendAgg(b, &m.accs[ai])
		} else {
			f := &m.group.fields[c]
			null = f.null
			if !null {
				b = append(b, m.group.row[f.start:f.end]...)
			}
		}
		if null {
			b = b[:start]
			if m.bin {
				bit := c + 2
				b[1+bit>>3] |= 1 << (bit & 7)
			} else {
				b = append(b, 0xfb)
			}
		}
	}
	m.out.row = b
	if err := decodeRow(b, m.bin, m.cols, m.out.fields); err != nil {
		return nil, nil, err
	}
	return b, m.out.fields, nil
}

// appendAgg appends the encoding of an aggregate's merged value; null
// when it is NULL.
func (m *Merger) appendAgg(b []byte, a *accum) ([]byte, bool) {
	c := a.col
	switch a.agg.Kind {
	case shard.AggCount:
		return m.appendExact(b, c, &a.dec), false
	case shard.AggSum:
		if !a.any {
			return b, true
		}
		if c.kind == kindFloat {
			return m.appendFloat(b, c, a.f), false
		}
		return m.appendExact(b, c, &a.dec), false
	case shard.AggMin, shard.AggMax:
		if !a.any {
			return b, true
		}
		return append(b, a.val...), false
	case shard.AggAvg:
		cnt := a.cnt.value(&m.bigTmp)
		if cnt.Sign() <= 0 || !a.any {
			return b, true
		}
		if c.kind == kindFloat {
			var sum float64
			if a.sumCol.kind == kindFloat {
				sum = a.f
			} else {
				m.scratch = a.dec.appendText(m.scratch[:0])
				sum, _ = strconv.ParseFloat(string(m.scratch), 64)
			}
			n, _ := new(big.Float).SetInt(cnt).Float64()
			return m.appendFloat(b, c, sum/n), false
		}
		if !cnt.IsUint64() {
			return b, true
		}
		den := cnt.Uint64()
		scale := int(c.Decimals)
		var buf [100]byte
		var digits []byte
		if q, ok := avgSmall(&a.dec, den, scale-a.dec.scale); ok {
			digits = strconv.AppendInt(buf[:0], q, 10)
		} else {
			q := divRound(&a.q, a.dec.value(&a.num), den, scale-a.dec.scale)
			digits = q.Append(buf[:0], 10)
		}
		neg := false
		if digits[0] == '-' {
			neg, digits = true, digits[1:]
		}
		m.scratch = appendScaled(m.scratch[:0], neg, digits, scale)
		return m.appendString(b, m.scratch), false
	}
	return b, true
}

// appendString appends a string value (length-encoded in both protocols).
func (m *Merger) appendString(b, s []byte) []byte {
	b = appendLenEnc(b, uint64(len(s)))
	return append(b, s...)
}

func appendLenEnc(b []byte, v uint64) []byte {
	switch {
	case v < 251:
		return append(b, byte(v))
	case v < 1<<16:
		return append(b, 0xfc, byte(v), byte(v>>8))
	case v < 1<<24:
		return append(b, 0xfd, byte(v), byte(v>>8), byte(v>>16))
	}
	b = append(b, 0xfe)
	return binary.LittleEndian.AppendUint64(b, v)
}

// appendExact appends an exact sum in column c's type.
func (m *Merger) appendExact(b []byte, c *colInfo, d *decAcc) []byte {
	if !m.bin || c.kind == kindDecimal {
		m.scratch = d.appendText(m.scratch[:0])
		if c.kind == kindDecimal && d.scale != int(c.Decimals) {
			m.scratch = d.appendText(m.scratch[:0])
		}
		return m.appendString(b, m.scratch)
	}
	v := d.value(&m.bigTmp)
	var u uint64
	if v.IsInt64() {
		u = uint64(v.Int64())
	} else if v.IsUint64() {
		u = v.Uint64()
	}
	switch c.Type {
	case TypeTiny:
		return append(b, byte(u))
	case TypeShort, TypeYear:
		return binary.LittleEndian.AppendUint16(b, uint16(u))
	case TypeLong, TypeInt24:
		return binary.LittleEndian.AppendUint32(b, uint32(u))
	}
	return binary.LittleEndian.AppendUint64(b, u)
}

// appendFloat appends a floating-point value in column c's type.
func (m *Merger) appendFloat(b []byte, c *colInfo, v float64) []byte {
	if m.bin {
		if c.Type == TypeFloat {
			return binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(v)))
		}
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	bits := 64
	if c.Type == TypeFloat {
		bits = 32
	}
	m.scratch = appendDouble(m.scratch[:0], v, int(c.Decimals), int(c.Length), bits)
	return m.appendString(b, m.scratch)
}
