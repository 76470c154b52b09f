package shard

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// Strategy is how a rule spreads a logical table.
type Strategy uint8

const (
	// StrategyTable: sharding_count tables "<name>_NNNNN" in the database
	// of the first actual datanode (Pisanix uses actual_datanodes[0] only).
	StrategyTable Strategy = iota + 1
	// StrategyDatabase: one table with the logical name in the database of
	// each actual datanode; the database index is the key modulo the
	// number of datanodes.
	StrategyDatabase
	// StrategyDatabaseTable: sharding_count tables "<name>_NNNNN" in the
	// database of each actual datanode (the table suffix restarts at 00000
	// in every database).
	StrategyDatabaseTable
)

func (s Strategy) String() string {
	switch s {
	case StrategyTable:
		return "table"
	case StrategyDatabase:
		return "database"
	case StrategyDatabaseTable:
		return "database_table"
	}
	return "unknown"
}

// datanode is one actual datanode of a rule.
type datanode struct {
	name string // [mysql.node] or [[node_group.member]] name
	db   string // its database
}

// rule is one compiled [[proxy.config.sharding]] rule.
//
// Shard numbering: shard = dbIndex × tableCount + tableIndex, with
// dbCount = 1 for the table strategy and tableCount = 1 for the database
// strategy, so every strategy has dbCount × tableCount shards.
type rule struct {
	table    string
	strategy Strategy
	nodes    []datanode

	dbCol, tableCol   string // "" when the strategy has no such part
	dbAlg, tableAlg   Algorithm
	dbCount, tblCount int

	dbs map[string]bool // the datanodes' databases

	// genCol and gen: the key generator (keygen.go), nil when none.
	genCol string
	gen    *Snowflake

	// join, on a per-statement copy of the rule, limits key columns to
	// the sharded table's in a join with broadcast tables.
	join *joinQual
	// binds (per-statement copy) are the bound tables a join renames.
	binds []bindRef
	// bound are the tables bound to this one (binding_tables, both ways).
	bound map[string]bool
}

func (r *rule) shards() int { return r.dbCount * r.tblCount }

// physical returns the datanode, schema and table of shard s.
func (r *rule) physical(s int) (node, schema, table string) {
	dbi, ti := s/r.tblCount, s%r.tblCount
	switch r.strategy {
	case StrategyTable:
		return r.nodes[0].name, r.nodes[0].db, PhysicalTableName(r.table, ti)
	case StrategyDatabase:
		return r.nodes[dbi].name, r.nodes[dbi].db, r.table
	default:
		return r.nodes[dbi].name, r.nodes[dbi].db, PhysicalTableName(r.table, ti)
	}
}

// PhysicalTableName is Pisanix's physical table name: the logical name,
// "_" and the table index zero-padded to 5 digits (Rust "{}_{:05}":
// t_order_00000, t_order_00042, t_order_123456 past 99999).
func PhysicalTableName(logical string, index int) string {
	return fmt.Sprintf("%s_%05d", logical, index)
}

// keyRole says which sharding parts a column drives.
type keyRole uint8

const (
	roleDB    keyRole = 1 << iota // the database part (database, database_table)
	roleTable                     // the table part (table, database_table)
)

// role returns which parts column col drives (0: not a sharding column).
// Column names compare case-insensitively, as in MySQL.
func (r *rule) role(col string) keyRole {
	var k keyRole
	if r.dbCol != "" && strings.EqualFold(col, r.dbCol) {
		k |= roleDB
	}
	if r.tableCol != "" && strings.EqualFold(col, r.tableCol) {
		k |= roleTable
	}
	return k
}

// fullRole is the role a column must have to decide the shard alone.
func (r *rule) fullRole() keyRole {
	var k keyRole
	if r.dbCol != "" {
		k |= roleDB
	}
	if r.tableCol != "" {
		k |= roleTable
	}
	return k
}

// columns returns the distinct sharding columns.
func (r *rule) columns() []string {
	switch {
	case r.dbCol == "":
		return []string{r.tableCol}
	case r.tableCol == "" || strings.EqualFold(r.dbCol, r.tableCol):
		return []string{r.dbCol}
	}
	return []string{r.dbCol, r.tableCol}
}

// Router plans statements for one listener's sharding rules. It is
// immutable and safe for concurrent use; a config reload compiles a new one.
type Router struct {
	rules  []*rule
	byName map[string]*rule
	parser *sqlparse.Parser

	// showRename maps, per database, physical table names to logical ones
	// (for SHOW TABLES).
	showRename map[string]map[string]string

	cache planCache
	// keyGens: some rule has a key generator.
	keyGens bool
	// bcasts are the broadcast tables by name (broadcast.go).
	bcasts map[string]*bcast
}

// Compile builds the Router of listener l. It returns nil (and no error)
// when the listener has no sharding rules.
//
// A datanode is a [[mysql.node]] name or, with read/write splitting, a
// [[node_group.member]] name; a group's database is its readwrite node's.
//
// Statements that name no sharded table are RouteUnsharded: the Plan has
// no targets and the listener routes them as it would without sharding
// (balancing, read/write splitting). There is no "default datanode".
func Compile(cfg *proxyconfig.Config, l *proxyconfig.Listener) (*Router, error) {
	if l == nil || len(l.Sharding) == 0 {
		return nil, nil
	}
	rt := &Router{
		byName:     make(map[string]*rule, len(l.Sharding)),
		parser:     sqlparse.New(sqlparse.Options{CacheEntries: -1}),
		showRename: make(map[string]map[string]string),
	}
	for i := range l.Sharding {
		r, err := compileRule(cfg, &l.Sharding[i])
		if err != nil {
			return nil, fmt.Errorf("sharding[%d] (%s): %w", i, l.Sharding[i].TableName, err)
		}
		if _, dup := rt.byName[r.table]; dup {
			return nil, fmt.Errorf("sharding[%d]: table %q has two rules", i, r.table)
		}
		if kg := l.Sharding[i].KeyGenerator; kg != nil {
			worker, ok := kg.EffectiveWorkerID(&cfg.Proxy)
			if !ok {
				return nil, fmt.Errorf("sharding[%d] (%s): key_generator.worker_id and proxy.key_worker_id are both unset", i, l.Sharding[i].TableName)
			}
			if err := compileKeyGenerator(r, &keyGenConfig{typ: kg.Type, column: kg.Column, worker: worker}); err != nil {
				return nil, fmt.Errorf("sharding[%d] (%s): %w", i, l.Sharding[i].TableName, err)
			}
			rt.keyGens = true
		}
		rt.compileBroadcast(r, l.Sharding[i].BroadcastTables)
		for _, name := range l.Sharding[i].BindingTables {
			if r.bound == nil {
				r.bound = map[string]bool{}
			}
			r.bound[name] = true
		}
		rt.rules = append(rt.rules, r)
		rt.byName[r.table] = r
		for s := 0; s < r.shards(); s++ {
			_, schema, table := r.physical(s)
			m := rt.showRename[schema]
			if m == nil {
				m = make(map[string]string)
				rt.showRename[schema] = m
			}
			if table != r.table {
				m[table] = r.table
			}
		}
	}
	// Binding is both ways, between rules of the same shape.
	for _, r := range rt.rules {
		for name := range r.bound {
			o := rt.byName[name]
			if o == nil || !sameShape(r, o) {
				return nil, fmt.Errorf("binding_tables of %s: %q is not a sharded table with the same strategy, algorithms, counts and datanodes", r.table, name)
			}
			if o.bound == nil {
				o.bound = map[string]bool{}
			}
			o.bound[r.table] = true
		}
	}
	rt.cache.init(defaultCacheEntries)
	return rt, nil
}

func compileRule(cfg *proxyconfig.Config, s *proxyconfig.Sharding) (*rule, error) {
	if s.TableName == "" {
		return nil, fmt.Errorf("table_name is empty")
	}
	if len(s.ActualDatanodes) == 0 {
		return nil, fmt.Errorf("actual_datanodes is empty")
	}
	r := &rule{table: s.TableName, dbs: make(map[string]bool)}
	for _, name := range s.ActualDatanodes {
		db, ok := datanodeDB(cfg, name)
		if !ok {
			return nil, fmt.Errorf("unknown datanode %q", name)
		}
		if db == "" {
			return nil, fmt.Errorf("datanode %q has no db: sharding needs each datanode's database", name)
		}
		r.nodes = append(r.nodes, datanode{name: name, db: db})
		r.dbs[db] = true
	}
	set := 0
	var ok1, ok2 bool
	if ts := s.TableStrategy; ts != nil {
		set++
		r.strategy = StrategyTable
		r.tableCol, r.tblCount, r.dbCount = ts.TableShardingColumn, ts.ShardingCount, 1
		r.tableAlg, ok1 = parseAlgorithm(ts.TableShardingAlgorithmName)
		ok2 = true
		r.nodes = r.nodes[:1]
		r.dbs = map[string]bool{r.nodes[0].db: true}
	}
	if ds := s.DatabaseStrategy; ds != nil {
		set++
		r.strategy = StrategyDatabase
		r.dbCol, r.dbCount, r.tblCount = ds.DatabaseShardingColumn, len(r.nodes), 1
		r.dbAlg, ok1 = parseAlgorithm(ds.DatabaseShardingAlgorithmName)
		ok2 = true
	}
	if dts := s.DatabaseTableStrategy; dts != nil {
		set++
		r.strategy = StrategyDatabaseTable
		r.dbCol, r.dbCount = dts.DatabaseShardingColumn, len(r.nodes)
		r.tableCol, r.tblCount = dts.TableShardingColumn, dts.ShardingCount
		r.dbAlg, ok1 = parseAlgorithm(dts.DatabaseShardingAlgorithmName)
		r.tableAlg, ok2 = parseAlgorithm(dts.TableShardingAlgorithmName)
	}
	switch {
	case set == 0:
		return nil, fmt.Errorf("no strategy")
	case set > 1:
		return nil, fmt.Errorf("more than one strategy")
	case !ok1 || !ok2:
		return nil, fmt.Errorf("unknown sharding algorithm (mod or crc32mod)")
	case r.tblCount < 1:
		return nil, fmt.Errorf("sharding_count must be >= 1")
	case (r.dbCol == "" && r.strategy != StrategyTable) || (r.tableCol == "" && r.strategy != StrategyDatabase):
		return nil, fmt.Errorf("sharding column is empty")
	}
	return r, nil
}

// datanodeDB returns the database of a datanode: a [[mysql.node]]'s db,
// or a node group's readwrite node's db.
func datanodeDB(cfg *proxyconfig.Config, name string) (string, bool) {
	if n := cfg.Node(name); n != nil {
		return n.DB, true
	}
	for _, m := range cfg.NodeGroup.Members {
		if m.Name == name {
			if n := cfg.Node(m.ReadWrite); n != nil {
				return n.DB, true
			}
			return "", false
		}
	}
	return "", false
}

// planCache caches Prepared statements by (db, SQL text). It is bounded:
// when full it starts over empty (a working set that fits stays cached).
// Reads take no lock.
type planCache struct {
	max int64
	m   atomic.Pointer[sync.Map] // cacheKey -> *Prepared
	n   atomic.Int64
}

type cacheKey struct {
	db, sql string
	gen     bool // planned with generated keys (prepareGen)
}

const defaultCacheEntries = 4096

func (c *planCache) init(n int) {
	c.max = int64(n)
	c.m.Store(new(sync.Map))
}

func (c *planCache) get(k cacheKey) *Prepared {
	if v, ok := c.m.Load().Load(k); ok {
		return v.(*Prepared)
	}
	return nil
}

func (c *planCache) put(k cacheKey, p *Prepared) {
	if c.n.Add(1) > c.max {
		c.m.Store(new(sync.Map))
		c.n.Store(1)
	}
	c.m.Load().Store(k, p)
}
