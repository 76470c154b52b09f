package merge

import (
	"errors"
	"io"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/shard"
)

var fuzzTypes = []byte{TypeTiny, TypeShort, TypeLong, TypeLongLong, TypeInt24, TypeYear, TypeFloat, TypeDouble,
	TypeNewDecimal, TypeDate, TypeDateTime, TypeTimestamp, TypeTime, TypeVarString, TypeString, TypeBlob,
	TypeBit, TypeJSON, TypeGeometry, TypeNull, TypeEnum}

var fuzzColls = []uint16{63, 45, 33, 8, 46, 47, 1070, 224, 0}

// FuzzMerge builds a plan, columns and rows from random bytes: the merger
// must return errors, never panic or loop.
func FuzzMerge(f *testing.F) {
	f.Add([]byte{2, 0, 2, 3, 0, 0, 13, 1, 1, 0, 1, 0, 0, 2, 1, 1, 'a', 1, '1', 2, 1, 'b', 1, '2'})
	f.Add([]byte{3, 1, 3, 8, 0, 1, 0, 0, 0, 3, 1, 0, 1, 1, 2, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 6, 2, 0x22, 1, 1, 1, 0, 0, 1, 2, 1, 0xfb, 1, 0xfb})
	f.Add([]byte{1, 0, 2, 7, 0, 1, 0, 0, 0, 1, 0, 1, 0, 1, 3, 'i', 'n', 'f', 1, 1, 3, 'N', 'a', 'N'})
	f.Fuzz(fuzzOne)
}

func fuzzOne(t *testing.T, data []byte) {
	{
		p := &fuzzBytes{b: data}
		ncols := 1 + int(p.next()%6)
		mode := p.next()
		bin := mode&1 != 0
		nsrc := int(p.next() % 5)
		cols := make([]Column, ncols)
		for i := range cols {
			c := p.next()
			cols[i] = Column{Type: fuzzTypes[int(c)%len(fuzzTypes)], Collation: fuzzColls[int(c>>5)%len(fuzzColls)],
				Decimals: p.next() % 40}
			if c&0x10 != 0 {
				cols[i].Flags |= FlagUnsigned
			}
		}
		spec := &shard.Merge{Columns: 1 + int(p.next())%ncols, Distinct: mode&2 != 0, HasLimit: mode&4 != 0,
			Offset: uint64(p.next() % 4), Limit: uint64(p.next() % 8), MemoryLimit: int64(p.next()) * 64}
		for i := int(p.next() % 3); i > 0; i-- {
			spec.OrderBy = append(spec.OrderBy, shard.SortKey{Column: int(p.next()) % ncols, Desc: p.next()&1 != 0})
		}
		if mode&8 != 0 && len(spec.OrderBy) > 0 {
			spec.GroupBy = []int{spec.OrderBy[0].Column}
		}
		for i := int(p.next() % 3); i > 0; i-- {
			spec.Aggregates = append(spec.Aggregates, shard.Aggregate{Column: int(p.next()) % ncols,
				Kind: shard.AggKind(1 + p.next()%5), SumColumn: int(p.next()) % ncols, CountColumn: int(p.next()) % ncols})
		}
		if mode&16 != 0 {
			spec.Having = []shard.Cond{{Column: int(p.next()) % ncols, Op: shard.CmpOp(1 + p.next()%6), Value: string(p.take(int(p.next() % 8)))}}
		}
		if mode&32 != 0 {
			spec.Resort = []shard.SortKey{{Column: int(p.next()) % ncols, Desc: mode&64 != 0}}
		}
		shards := make([][][]byte, nsrc)
		for s := 0; p.more() && nsrc > 0; s = (s + 1) % nsrc {
			var row []byte
			if p.next()&1 == 0 {
				row = p.take(int(p.next() % 24)) // raw bytes
			} else if bin {
				row = append(row, 0)
				row = append(row, p.take((ncols+9)/8)...)
				row = append(row, p.take(int(p.next()%24))...)
			} else {
				for i := 0; i < ncols; i++ {
					if p.next()%5 == 0 {
						row = append(row, 0xfb)
					} else {
						row = mysql.AppendLenEncString(row, string(p.take(int(p.next()%10))))
					}
				}
			}
			shards[s] = append(shards[s], row)
		}
		m, err := New(spec, cols, bin, sources(shards...))
		if err != nil {
			var me *mysql.Error
			if !errors.As(err, &me) {
				t.Fatalf("New: %v is not a *mysql.Error", err)
			}
			return
		}
		for i := 0; ; i++ {
			if i > 10000 {
				t.Fatal("too many rows")
			}
			row, err := m.Next()
			if err != nil {
				if err != io.EOF && row != nil {
					t.Fatal("row with an error")
				}
				return
			}
			// The merged row must decode with the visible columns.
			ci := make([]colInfo, spec.Columns)
			for j := range ci {
				ci[j] = newColInfo(cols[j])
			}
			if err := decodeRow(row, bin, ci, make([]field, spec.Columns)); err != nil {
				t.Fatalf("merged row %x does not decode: %v", row, err)
			}
		}
	}
}

type fuzzBytes struct {
	b []byte
}

func (p *fuzzBytes) more() bool { return len(p.b) > 0 }

func (p *fuzzBytes) next() byte {
	if len(p.b) == 0 {
		return 0
	}
	c := p.b[0]
	p.b = p.b[1:]
	return c
}

func (p *fuzzBytes) take(n int) []byte {
	n = min(n, len(p.b))
	out := p.b[:n]
	p.b = p.b[n:]
	return out
}

// FuzzParseColumn: any payload parses or fails, never panics; a parsed
// column definition re-encoded parses to the same column.
func FuzzParseColumn(f *testing.F) {
	f.Add(colDef("id", TypeLongLong, FlagNotNull, 63, 0, 20))
	f.Add(colDef("name", TypeVarString, 0, 45, 0, 400))
	f.Fuzz(func(t *testing.T, p []byte) {
		c, err := ParseColumn(p)
		if err != nil {
			return
		}
		again, err := ParseColumn(colDef(c.Name, c.Type, c.Flags, c.Collation, c.Decimals, c.Length))
		if err != nil || again != c {
			t.Fatalf("round trip: %+v %+v %v", c, again, err)
		}
	})
}
