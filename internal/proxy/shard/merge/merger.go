package merge

import (
	"errors"
	"fmt"
	"io"
	"math/big"
	"sort"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
)

// Source is one shard's current result set.
type Source interface {
	// Next returns the next row payload (text or binary protocol, as the
	// Merger was built for), valid until the next call; io.EOF at the end.
	Next() (row []byte, err error)
}

// DefaultMemoryLimit bounds the rows a re-sort buffers when
// shard.Merge.MemoryLimit is 0.
const DefaultMemoryLimit = 64 << 20

// ErrCodeOutOfSortMemory is returned (SQLSTATE HY001) when a re-sort needs
// more than the memory limit.
const ErrCodeOutOfSortMemory = 1038

// ErrCodeNotSupported is returned (SQLSTATE 42000, as a *shard.Refusal)
// for what the merger cannot answer exactly.
const ErrCodeNotSupported = shard.ErrCodeNotSupported

var (
	errShortRow = errors.New("merge: row payload too short")
	errBadRow   = errors.New("merge: malformed row payload")
	errBadValue = errors.New("merge: malformed value")
)

// notSupported is the merger's 1235, refused for reason r.
func notSupported(r shard.Reason, format string, args ...any) error {
	return shard.Refuse(r, "This version of MariaDB doesn't yet support '%s' (merging sharded results)", fmt.Sprintf(format, args...))
}

// cursor is a source with its current row decoded.
type cursor struct {
	idx    int
	src    Source
	row    []byte
	fields []field
	keys   []key // one per OrderBy key
}

// Merger merges the sources' rows. It reads its sources on the caller's
// goroutine and is not safe for concurrent use. Errors from Next are the
// sources' errors as they are, *mysql.Error 1038 for a re-sort beyond the
// memory limit, or a plain error for a row that does not decode (a
// protocol error: the caller should report it and drop the backends).
type Merger struct {
	spec    *shard.Merge
	cols    []colInfo
	bin     bool
	ncols   int
	visible int

	cursors []*cursor
	heap    []*cursor
	ordered bool    // k-way merge by OrderBy
	stale   *cursor // returned last; advance before reading again
	seq     int     // concatenation: the cursor being read
	started bool
	err     error // sticky

	// grouping
	grouping  bool
	aggByCol  []int // column -> index in accs, -1
	accs      []accum
	groupKeys []int // GroupBy columns
	pending   *cursor
	group     rowBuf // first row of the current group
	gkeys     []key
	tkeys     []key
	out       rowBuf // merged row (all columns)
	emptyAgg  bool   // non-grouped aggregates: emitted the one row
	having    []havingCond
	scratch   []byte
	bigTmp    big.Int

	// resort
	resorted  bool
	sorted    []sortedRow
	arena     []byte
	sortPos   int
	memLimit  int64
	sortRow   rowBuf
	sortKeyBy []shard.SortKey

	// distinct, offset, limit
	prev     rowBuf
	havePrev bool
	pkeyA    key
	pkeyB    key
	skipped  uint64
	emitted  uint64
	outBuf   []byte
}

// rowBuf is a row payload with its fields decoded.
type rowBuf struct {
	row    []byte
	fields []field
}

func (r *rowBuf) set(row []byte, fields []field) {
	r.row = append(r.row[:0], row...)
	r.fields = append(r.fields[:0], fields...)
}

type sortedRow struct {
	off, n int
	keys   []key
}

type havingCond struct {
	shard.Cond
	lit key
}

// New builds a Merger for spec over the sources (in shard order), whose
// rows have the columns cols (from the shards' column definitions) and
// are binary protocol rows when binary is set. It returns a *shard.Refusal
// (ERR 1235) when the result cannot be merged exactly.
func New(spec *shard.Merge, cols []Column, binary bool, srcs []Source) (*Merger, error) {
	if spec == nil {
		return nil, notSupported(shard.ReasonInternal, "a merge without a plan")
	}
	// A wildcard select list leaves the column count and indexes relative
	// to the end of the row: make them absolute.
	if spec = spec.Resolve(len(cols)); spec == nil {
		return nil, notSupported(shard.ReasonInternal, "%d columns for the derived ones", len(cols))
	}
	m := &Merger{spec: spec, bin: binary, ncols: len(cols), visible: spec.Columns}
	if m.visible <= 0 || m.visible > len(cols) {
		return nil, notSupported(shard.ReasonInternal, "%d visible columns of %d", spec.Columns, len(cols))
	}
	m.cols = make([]colInfo, len(cols))
	for i, c := range cols {
		m.cols[i] = newColInfo(c)
	}
	inRange := func(c int) bool { return c >= 0 && c < len(cols) }
	comparable := func(c int, what string) error {
		if !inRange(c) {
			return notSupported(shard.ReasonInternal, "%s on column %d of %d", what, c, len(cols))
		}
		if ci := &m.cols[c]; ci.kind == kindNone {
			return notSupported(shard.ReasonCollation, "%s on column `%s`: %s", what, ci.Name, ci.why)
		}
		return nil
	}
	for _, k := range spec.OrderBy {
		if err := comparable(k.Column, "ORDER BY"); err != nil {
			return nil, err
		}
	}
	for _, k := range spec.Resort {
		if err := comparable(k.Column, "ORDER BY"); err != nil {
			return nil, err
		}
	}
	for i, g := range spec.GroupBy {
		if err := comparable(g, "GROUP BY"); err != nil {
			return nil, err
		}
		found := false
		for _, k := range spec.OrderBy[:min(len(spec.GroupBy), len(spec.OrderBy))] {
			found = found || k.Column == g
		}
		if !found {
			return nil, notSupported(shard.ReasonInternal, "GROUP BY column %d (#%d) not among the leading sort keys", g, i)
		}
	}
	if spec.Distinct {
		for c := 0; c < m.visible; c++ {
			if err := comparable(c, "DISTINCT"); err != nil {
				return nil, err
			}
		}
	}
	m.aggByCol = make([]int, len(cols))
	for i := range m.aggByCol {
		m.aggByCol[i] = -1
	}
	// AVG's derived SUM and COUNT columns merge as SUM and COUNT too, so
	// that a merged row is consistent (HAVING, re-sort may read them).
	aggs := append([]shard.Aggregate(nil), spec.Aggregates...)
	for _, a := range spec.Aggregates {
		if a.Kind != shard.AggAvg {
			continue
		}
		for _, d := range []shard.Aggregate{{Column: a.SumColumn, Kind: shard.AggSum}, {Column: a.CountColumn, Kind: shard.AggCount}} {
			listed := false
			for _, b := range aggs {
				listed = listed || b.Column == d.Column
			}
			if !listed {
				aggs = append(aggs, d)
			}
		}
	}
	m.accs = make([]accum, len(aggs))
	for i, a := range aggs {
		if !inRange(a.Column) {
			return nil, notSupported(shard.ReasonInternal, "aggregate on column %d of %d", a.Column, len(cols))
		}
		if m.aggByCol[a.Column] >= 0 {
			return nil, notSupported(shard.ReasonInternal, "two aggregates on column %d", a.Column)
		}
		m.aggByCol[a.Column] = i
		acc := &m.accs[i]
		acc.agg, acc.col = a, &m.cols[a.Column]
		switch a.Kind {
		case shard.AggCount:
			if k := acc.col.kind; k != kindInt && k != kindUint && k != kindDecimal {
				return nil, notSupported(shard.ReasonAggregate, "COUNT in a %s column", typeName(acc.col))
			}
		case shard.AggSum:
			if !numeric(acc.col.kind) {
				return nil, notSupported(shard.ReasonAggregate, "SUM in a %s column", typeName(acc.col))
			}
		case shard.AggMin, shard.AggMax:
			if err := comparable(a.Column, "MIN/MAX"); err != nil {
				return nil, err
			}
		case shard.AggAvg:
			if !inRange(a.SumColumn) || !inRange(a.CountColumn) {
				return nil, notSupported(shard.ReasonInternal, "AVG with derived columns %d, %d of %d", a.SumColumn, a.CountColumn, len(cols))
			}
			acc.sumCol, acc.cntCol = &m.cols[a.SumColumn], &m.cols[a.CountColumn]
			if k := acc.col.kind; k != kindDecimal && k != kindFloat {
				return nil, notSupported(shard.ReasonAggregate, "AVG in a %s column", typeName(acc.col))
			}
			if !numeric(acc.sumCol.kind) {
				return nil, notSupported(shard.ReasonAggregate, "AVG over a %s sum", typeName(acc.sumCol))
			}
			if k := acc.cntCol.kind; k != kindInt && k != kindUint && k != kindDecimal {
				return nil, notSupported(shard.ReasonAggregate, "AVG over a %s count", typeName(acc.cntCol))
			}
			if acc.col.kind == kindDecimal && acc.sumCol.kind == kindFloat {
				return nil, notSupported(shard.ReasonAggregate, "DECIMAL AVG over a floating-point sum")
			}
		default:
			return nil, notSupported(shard.ReasonInternal, "aggregate kind %d", a.Kind)
		}
	}
	for _, c := range spec.Having {
		if err := comparable(c.Column, "HAVING"); err != nil {
			return nil, err
		}
		if c.Op < shard.OpEQ || c.Op > shard.OpGE {
			return nil, notSupported(shard.ReasonInternal, "HAVING operator %d", c.Op)
		}
		h := havingCond{Cond: c}
		if err := decodeTextKey([]byte(c.Value), &m.cols[c.Column], &h.lit); err != nil {
			if k := m.cols[c.Column].kind; k == kindInt || k == kindUint || k == kindDecimal {
				if !validDecimal([]byte(c.Value)) {
					return nil, notSupported(shard.ReasonHaving, "HAVING literal %q for a %s column", c.Value, typeName(&m.cols[c.Column]))
				}
				h.lit = key{b: []byte(c.Value)}
			} else {
				return nil, notSupported(shard.ReasonHaving, "HAVING literal %q for a %s column", c.Value, typeName(&m.cols[c.Column]))
			}
		}
		m.having = append(m.having, h)
	}
	m.grouping = len(spec.GroupBy) > 0 || len(spec.Aggregates) > 0
	m.groupKeys = spec.GroupBy
	m.gkeys = make([]key, len(spec.GroupBy))
	m.tkeys = make([]key, len(spec.GroupBy))
	m.ordered = len(spec.OrderBy) > 0
	m.memLimit = spec.MemoryLimit
	if m.memLimit <= 0 {
		m.memLimit = DefaultMemoryLimit
	}
	m.sortKeyBy = spec.Resort
	m.cursors = make([]*cursor, len(srcs))
	for i, s := range srcs {
		m.cursors[i] = &cursor{idx: i, src: s, fields: make([]field, len(cols)), keys: make([]key, len(spec.OrderBy))}
	}
	m.heap = make([]*cursor, 0, len(srcs))
	m.group.fields = make([]field, len(cols))
	m.out.fields = make([]field, len(cols))
	m.prev.fields = make([]field, len(cols))
	return m, nil
}

func numeric(k kind) bool {
	return k == kindInt || k == kindUint || k == kindDecimal || k == kindFloat
}

func typeName(c *colInfo) string {
	switch c.kind {
	case kindString:
		return "string"
	case kindInt, kindUint:
		return "integer"
	case kindFloat:
		return "floating-point"
	case kindDecimal:
		return "DECIMAL"
	case kindDateTime:
		return "date/time"
	case kindTime:
		return "TIME"
	}
	return fmt.Sprintf("type %d", c.Type)
}

// Next returns the next merged row payload, valid until the next call;
// io.EOF at the end. Once it returns io.EOF (or an error) the merger stops
// reading its sources: the caller drains or discards what they still hold.
func (m *Merger) Next() ([]byte, error) {
	if m.err != nil {
		return nil, m.err
	}
	row, err := m.next()
	if err != nil {
		m.err = err
		return nil, err
	}
	return row, nil
}

func (m *Merger) next() ([]byte, error) {
	s := m.spec
	for {
		if s.HasLimit && m.emitted >= s.Limit {
			return nil, io.EOF
		}
		row, fields, err := m.nextFinal()
		if err != nil {
			return nil, err
		}
		if s.Distinct {
			if m.havePrev && m.sameVisible(row, fields) {
				continue
			}
			m.prev.set(row, fields)
			m.havePrev = true
		}
		if m.skipped < s.Offset {
			m.skipped++
			continue
		}
		m.emitted++
		return m.project(row, fields), nil
	}
}

// nextFinal returns the next row after grouping, HAVING and re-sorting.
func (m *Merger) nextFinal() ([]byte, []field, error) {
	if len(m.sortKeyBy) == 0 {
		return m.nextFiltered()
	}
	if !m.resorted {
		if err := m.fillSort(); err != nil {
			return nil, nil, err
		}
		m.resorted = true
	}
	if m.sortPos >= len(m.sorted) {
		return nil, nil, io.EOF
	}
	e := &m.sorted[m.sortPos]
	m.sortPos++
	row := m.arena[e.off : e.off+e.n]
	if err := decodeRow(row, m.bin, m.cols, m.sortRow.fields); err != nil {
		return nil, nil, err
	}
	return row, m.sortRow.fields, nil
}

// nextFiltered returns the next grouped row that satisfies HAVING.
func (m *Merger) nextFiltered() ([]byte, []field, error) {
	for {
		row, fields, err := m.nextGrouped()
		if err != nil {
			return nil, nil, err
		}
		ok, err := m.matchHaving(row, fields)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			return row, fields, nil
		}
	}
}

func (m *Merger) matchHaving(row []byte, fields []field) (bool, error) {
	for i := range m.having {
		h := &m.having[i]
		c := &m.cols[h.Column]
		f := &fields[h.Column]
		if f.null {
			return false, nil // NULL compared with a literal is never true
		}
		var r int
		if h.lit.b != nil && c.kind != kindString && c.kind != kindDecimal {
			// An integer column compared with a non-integer literal.
			var v key
			if err := decodeKey(row, f, c, m.bin, &v); err != nil {
				return false, err
			}
			m.scratch = m.scratch[:0]
			if c.kind == kindUint {
				m.scratch = appendUint(m.scratch, v.u)
			} else {
				m.scratch = appendInt(m.scratch, v.i)
			}
			r = compareDecimal(m.scratch, h.lit.b)
		} else {
			if err := decodeKey(row, f, c, m.bin, &m.pkeyA); err != nil {
				return false, err
			}
			r = compareKeys(&m.pkeyA, &h.lit, c)
		}
		var ok bool
		switch h.Op {
		case shard.OpEQ:
			ok = r == 0
		case shard.OpNE:
			ok = r != 0
		case shard.OpLT:
			ok = r < 0
		case shard.OpLE:
			ok = r <= 0
		case shard.OpGT:
			ok = r > 0
		case shard.OpGE:
			ok = r >= 0
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

// fillSort buffers the rows and sorts them by Resort. With LIMIT (and no
// DISTINCT, which needs every row) only the first Offset+Limit rows can be
// sent, so whenever twice that many are buffered the buffer is sorted and
// cut back: memory stays bounded by the limit, not the row count.
func (m *Merger) fillSort() error {
	m.sortRow.fields = make([]field, m.ncols)
	keep := -1
	if s := m.spec; s.HasLimit && !s.Distinct && s.Offset+s.Limit < 1<<20 {
		keep = int(s.Offset + s.Limit)
	}
	for {
		row, _, err := m.nextFiltered()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		m.sorted = append(m.sorted, sortedRow{off: len(m.arena), n: len(row)})
		m.arena = append(m.arena, row...)
		if keep >= 0 && len(m.sorted) >= 2*keep+64 {
			if err := m.sortBuffered(keep); err != nil {
				return err
			}
		}
		used := int64(len(m.arena)) + int64(len(m.sorted))*int64(64+len(m.sortKeyBy)*64)
		if used > m.memLimit {
			return mysql.NewError(ErrCodeOutOfSortMemory, "HY001",
				"Out of sort memory, consider increasing the merge memory limit (%d bytes) of the sharded query", m.memLimit)
		}
	}
	return m.sortBuffered(keep)
}

// sortBuffered sorts the buffered rows (stable: equal rows keep their
// arrival order) and keeps the first keep of them (all when keep < 0).
func (m *Merger) sortBuffered(keep int) error {
	fields := m.sortRow.fields
	for i := range m.sorted {
		e := &m.sorted[i]
		row := m.arena[e.off : e.off+e.n]
		if err := decodeRow(row, m.bin, m.cols, fields); err != nil {
			return err
		}
		if len(e.keys) != len(m.sortKeyBy) {
			e.keys = make([]key, len(m.sortKeyBy))
		}
		for j, k := range m.sortKeyBy {
			if err := decodeKey(row, &fields[k.Column], &m.cols[k.Column], m.bin, &e.keys[j]); err != nil {
				return err
			}
		}
	}
	sort.SliceStable(m.sorted, func(i, j int) bool {
		a, b := &m.sorted[i], &m.sorted[j]
		for x, k := range m.sortKeyBy {
			r := compareKeys(&a.keys[x], &b.keys[x], &m.cols[k.Column])
			if r != 0 {
				return (r < 0) != k.Desc
			}
		}
		return false
	})
	if keep < 0 || len(m.sorted) <= keep {
		return nil
	}
	// Keep the first rows, compacting the arena (keys are decoded again
	// at the next sort).
	arena := make([]byte, 0, len(m.arena)/2+64)
	for i := 0; i < keep; i++ {
		e := &m.sorted[i]
		row := m.arena[e.off : e.off+e.n]
		e.off = len(arena)
		arena = append(arena, row...)
	}
	m.arena = arena
	m.sorted = m.sorted[:keep]
	return nil
}

// sameVisible reports whether the row equals the previous one over the
// visible columns.
func (m *Merger) sameVisible(row []byte, fields []field) bool {
	for c := 0; c < m.visible; c++ {
		ci := &m.cols[c]
		if decodeKey(row, &fields[c], ci, m.bin, &m.pkeyA) != nil ||
			decodeKey(m.prev.row, &m.prev.fields[c], ci, m.bin, &m.pkeyB) != nil {
			return false
		}
		if compareKeys(&m.pkeyA, &m.pkeyB, ci) != 0 {
			return false
		}
	}
	return true
}

// project returns the visible columns of a row.
func (m *Merger) project(row []byte, fields []field) []byte {
	if m.visible == m.ncols {
		return row
	}
	if !m.bin {
		return row[:fields[m.visible-1].end]
	}
	nb := (m.visible + 7 + 2) / 8
	b := append(m.outBuf[:0], 0x00)
	for i := 0; i < nb; i++ {
		b = append(b, 0)
	}
	for c := 0; c < m.visible; c++ {
		if fields[c].null {
			bit := c + 2
			b[1+bit>>3] |= 1 << (bit & 7)
		}
	}
	start := fields[0].start
	b = append(b, row[start:fields[m.visible-1].end]...)
	m.outBuf = b
	return b
}

// nextRaw returns the next row of the merged (or concatenated) sources.
func (m *Merger) nextRaw() (*cursor, error) {
	if !m.ordered {
		for m.seq < len(m.cursors) {
			c := m.cursors[m.seq]
			if err := m.read(c); err == io.EOF {
				m.seq++
				continue
			} else if err != nil {
				return nil, err
			}
			return c, nil
		}
		return nil, io.EOF
	}
	if !m.started {
		m.started = true
		for _, c := range m.cursors {
			if err := m.read(c); err == io.EOF {
				continue
			} else if err != nil {
				return nil, err
			}
			m.heap = append(m.heap, c)
			m.up(len(m.heap) - 1)
		}
	} else if c := m.stale; c != nil {
		m.stale = nil
		if err := m.read(c); err == io.EOF {
			n := len(m.heap) - 1
			m.heap[0] = m.heap[n]
			m.heap = m.heap[:n]
		} else if err != nil {
			return nil, err
		}
		if len(m.heap) > 0 {
			m.down(0)
		}
	}
	if len(m.heap) == 0 {
		return nil, io.EOF
	}
	m.stale = m.heap[0]
	return m.heap[0], nil
}

// read advances a cursor and decodes its row.
func (m *Merger) read(c *cursor) error {
	row, err := c.src.Next()
	if err != nil {
		return err
	}
	if err := decodeRow(row, m.bin, m.cols, c.fields); err != nil {
		return fmt.Errorf("merge: shard %d: %w", c.idx, err)
	}
	c.row = row
	for i, k := range m.spec.OrderBy {
		if err := decodeKey(row, &c.fields[k.Column], &m.cols[k.Column], m.bin, &c.keys[i]); err != nil {
			return fmt.Errorf("merge: shard %d: column %d: %w", c.idx, k.Column, err)
		}
	}
	return nil
}

// less orders two cursors by OrderBy, then by shard.
func (m *Merger) less(a, b *cursor) bool {
	for i, k := range m.spec.OrderBy {
		r := compareKeys(&a.keys[i], &b.keys[i], &m.cols[k.Column])
		if r != 0 {
			return (r < 0) != k.Desc
		}
	}
	return a.idx < b.idx
}

func (m *Merger) up(i int) {
	h := m.heap
	for i > 0 {
		p := (i - 1) / 2
		if !m.less(h[i], h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (m *Merger) down(i int) {
	h := m.heap
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		j := l
		if r := l + 1; r < n && m.less(h[r], h[l]) {
			j = r
		}
		if !m.less(h[j], h[i]) {
			return
		}
		h[i], h[j] = h[j], h[i]
		i = j
	}
}

func appendInt(b []byte, v int64) []byte {
	if v < 0 {
		b = append(b, '-')
		return appendUint(b, abs64(v))
	}
	return appendUint(b, uint64(v))
}

func appendUint(b []byte, v uint64) []byte {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, buf[i:]...)
}
