package shard

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pingcap/tidb/pkg/parser/ast"
	pmysql "github.com/pingcap/tidb/pkg/parser/mysql"
)

// Key generators ([proxy.config.sharding.key_generator]): an INSERT into
// a sharded table that omits the generator's column gets that column, with
// a new key per row, before it is planned, so the rows are routed by the
// generated keys. Without a generator such an INSERT is refused, as Pisanix
// did ("fields is empty" / no sharding value).

// SnowflakeEpoch is the start of snowflake time (2020-01-01T00:00:00Z).
var SnowflakeEpoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// MaxWorkerID is the largest snowflake worker id (10 bits).
const MaxWorkerID = 1023

// Snowflake makes 63-bit keys: milliseconds since SnowflakeEpoch (41 bits),
// the worker id (10 bits), a sequence (12 bits). Keys of one worker only
// grow; keys of different workers never collide, so every proxy in front
// of the same tables needs its own worker id. When the clock goes back, or
// more than 4096 keys are needed in a millisecond, the generator runs
// ahead of the clock instead of waiting.
type Snowflake struct {
	worker int64
	now    func() time.Time

	mu   sync.Mutex
	last int64 // milliseconds since the epoch of the last key
	seq  int64
}

// NewSnowflake returns the generator of worker (0..MaxWorkerID).
func NewSnowflake(worker int) *Snowflake {
	return &Snowflake{worker: int64(worker) & MaxWorkerID, now: time.Now}
}

// Next returns a new key.
func (g *Snowflake) Next() int64 {
	ms := g.now().Sub(SnowflakeEpoch).Milliseconds()
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case ms > g.last:
		g.last, g.seq = ms, 0
	default:
		g.seq++
		if g.seq > 4095 {
			g.last, g.seq = g.last+1, 0
		}
	}
	return g.last<<22 | g.worker<<12 | g.seq
}

// HasKeyGenerators reports whether a rule of the router generates keys.
func (rt *Router) HasKeyGenerators() bool { return rt.keyGens }

// insertPrefix matches texts that may be an INSERT or REPLACE.
var insertPrefix = regexp.MustCompile(`(?is)^\s*(/\*.*?\*/\s*)*(INSERT|REPLACE)\b`)

// FillKeys adds generated keys to an INSERT (or REPLACE) … VALUES into a
// sharded table whose rule has a key generator and whose column list
// omits the generator's column. ok is false when the statement is not
// such an INSERT (it is then planned as it is); first is the first row's
// key (what LAST_INSERT_ID() reports).
func (rt *Router) FillKeys(sql, db string) (out string, first int64, ok bool) {
	out, _, ok = rt.addKeyColumn(sql, db, func(r *rule, i int) ast.ExprNode {
		id := r.gen.Next()
		if i == 0 {
			first = id
		}
		return ast.NewValueExpr(id, "", "")
	})
	return out, first, ok
}

// keyMarker stands, in a restored text, for a `?` the proxy adds: the
// restorer writes values, not markers, so a number no text has is written
// and replaced. Its digits are checked absent from the text first.
const keyMarker int64 = 7318034651149732093

// keyMarkers is FillKeys for a prepared statement: each row gets a `?` for
// its key, which every COM_STMT_EXECUTE fills with a new key (GenKeys).
func (rt *Router) keyMarkers(sql, db string) (out string, r *rule, ok bool) {
	marker := strconv.FormatInt(keyMarker, 10)
	if strings.Contains(sql, marker) {
		return "", nil, false
	}
	rows := 0
	out, r, ok = rt.addKeyColumn(sql, db, func(*rule, int) ast.ExprNode {
		rows++
		return ast.NewValueExpr(keyMarker, "", "")
	})
	if !ok || strings.Count(out, marker) != rows {
		return "", nil, false
	}
	return strings.ReplaceAll(out, marker, "?"), r, true
}

// addKeyColumn adds the generator's column to an INSERT (or REPLACE) …
// VALUES into a sharded table whose rule generates keys and whose column
// list omits that column, with value(rule, row) in each row.
func (rt *Router) addKeyColumn(sql, db string, value func(*rule, int) ast.ExprNode) (out string, r *rule, ok bool) {
	if !rt.keyGens || !insertPrefix.MatchString(sql) {
		return "", nil, false
	}
	_ = rt.parser.WithASTMode(sql, func(stmts []ast.StmtNode, mode pmysql.SQLMode) {
		if len(stmts) != 1 {
			return
		}
		st, isInsert := stmts[0].(*ast.InsertStmt)
		if !isInsert || st.Select != nil || len(st.Columns) == 0 || len(st.Lists) == 0 || st.Table == nil || st.Table.TableRefs == nil {
			return
		}
		ts, isSource := st.Table.TableRefs.Left.(*ast.TableSource)
		if !isSource {
			return
		}
		tn, isName := ts.Source.(*ast.TableName)
		if !isName {
			return
		}
		rl := rt.byName[tn.Name.O]
		schema := tn.Schema.O
		if schema == "" {
			schema = db
		}
		if rl == nil || rl.gen == nil || !rl.dbs[schema] {
			return
		}
		for _, c := range st.Columns {
			if strings.EqualFold(c.Name.O, rl.genCol) {
				return // the client gave the key
			}
		}
		for _, row := range st.Lists {
			if len(row) != len(st.Columns) {
				return // the planner reports the count mismatch
			}
		}
		st.Columns = append(st.Columns, &ast.ColumnName{Name: ast.NewCIStr(rl.genCol)})
		for i := range st.Lists {
			st.Lists[i] = append(st.Lists[i], value(rl, i))
		}
		res := newRestorer(sql, mode)
		st.Accept(wrapper{res})
		t, err := res.restore(st)
		if err != nil || len(t.holes) != 0 {
			return
		}
		out, r, ok = strings.Join(t.parts, ""), rl, true
	})
	return out, r, ok
}

// GenKeys is how the executions of a prepared INSERT that omits its
// table's generated key fill it: the statement has a `?` more per row, at
// Slots of its parameters (ascending), each given a new key.
type GenKeys struct {
	gen   *Snowflake
	slots []int
}

// Slots are the indexes, among the statement's parameters, of the keys.
func (g *GenKeys) Slots() []int { return g.slots }

// Next returns a new key.
func (g *GenKeys) Next() int64 { return g.gen.Next() }

// Gen returns how the statement's executions generate keys, or nil when
// they do not (the client gives every parameter).
func (p *Prepared) Gen() *GenKeys { return p.gen }

// ClientParams is the number of parameters the client sends: Params less
// the generated keys.
func (p *Prepared) ClientParams() int {
	if p.gen != nil {
		return p.Params - len(p.gen.slots)
	}
	return p.Params
}

// prepareGen plans a prepared INSERT whose keys its rule generates (nil
// when sql is not one): the text with a `?` per row for the key, whose
// positions become GenKeys. It is cached apart from the texts planned as
// they are (a text INSERT of the same text gets its keys from FillKeys).
func (rt *Router) prepareGen(sql, db string) *Prepared {
	key := cacheKey{db: db, sql: sql, gen: true}
	if p := rt.cache.get(key); p != nil {
		return p
	}
	out, r, ok := rt.keyMarkers(sql, db)
	if !ok {
		return nil
	}
	p := rt.prepare(out, db)
	if p.err == nil {
		part := 1
		if r.role(r.genCol)&roleDB != 0 {
			part = 0
		}
		g := &GenKeys{gen: r.gen, slots: make([]int, 0, len(p.rows))}
		for _, row := range p.rows {
			g.slots = append(g.slots, row[part].param)
		}
		if len(g.slots) == 0 || !slices.IsSorted(g.slots) || g.slots[0] < 0 {
			// Not the plan of a key per row: never expected.
			p = fail(ReasonInsert, "INSERT into sharded table %s without its key column %s could not be planned with generated keys; give %s",
				r.table, r.genCol, r.genCol)
		} else {
			p.gen = g
		}
	}
	if len(sql) <= maxCachedSQL {
		rt.cache.put(cacheKey{db: strings.Clone(db), sql: strings.Clone(sql), gen: true}, p)
	}
	return p
}

// compileKeyGenerator sets a rule's key generator from its configuration.
func compileKeyGenerator(r *rule, kg *keyGenConfig) error {
	if kg == nil {
		return nil
	}
	if kg.typ != "snowflake" {
		return fmt.Errorf("key_generator.type %q is not supported (snowflake)", kg.typ)
	}
	col := kg.column
	if col == "" {
		cols := r.columns()
		if len(cols) != 1 {
			return fmt.Errorf("key_generator.column must name one of the sharding columns %v", cols)
		}
		col = cols[0]
	}
	if r.role(col) == 0 {
		return fmt.Errorf("key_generator.column %q is not a sharding column of %s", col, r.table)
	}
	if kg.worker < 0 || kg.worker > MaxWorkerID {
		return fmt.Errorf("key_generator.worker_id %d is out of range 0..%d", kg.worker, MaxWorkerID)
	}
	r.genCol, r.gen = col, snowflakeOf(kg.worker)
	return nil
}

// snowflakes holds the process's generators by worker id, so that a
// reloaded configuration (a new Router) goes on from the last key made:
// a fresh generator would start its sequence at 0 again within the same
// millisecond, or behind a generator that had run ahead of the clock, and
// repeat keys.
var snowflakes struct {
	sync.Mutex
	m map[int]*Snowflake
}

func snowflakeOf(worker int) *Snowflake {
	snowflakes.Lock()
	defer snowflakes.Unlock()
	g := snowflakes.m[worker]
	if g == nil {
		if snowflakes.m == nil {
			snowflakes.m = map[int]*Snowflake{}
		}
		g = NewSnowflake(worker)
		snowflakes.m[worker] = g
	}
	return g
}

type keyGenConfig struct {
	typ, column string
	worker      int
}
