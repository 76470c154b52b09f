package shard

import "sort"

// Unsharded reports a prepared statement that names no sharded table: the
// listener prepares and runs it as usual.
func (p *Prepared) Unsharded() bool {
	return p.err == nil && p.fixed != nil && p.fixed.Kind == RouteUnsharded
}

// Sample returns a one-shard target of the statement (shard 0's), whose
// COM_STMT_PREPARE response has the parameters and the columns the client
// must be told: no derived columns, the client's parameter count.
func (p *Prepared) Sample() (Target, bool) {
	switch {
	case p.err != nil:
		return Target{}, false
	case p.sample != nil:
		return *p.sample, true
	case p.fixed != nil:
		if len(p.fixed.Targets) == 0 {
			return Target{}, false
		}
		return p.fixed.Targets[0], true
	}
	return Target{}, false
}

// LogicalTables returns the sharded tables whose datanodes include
// database db (the tables SHOW TABLES in db should list), sorted.
func (rt *Router) LogicalTables(db string) []string {
	var out []string
	for _, r := range rt.rules {
		if r.dbs[db] {
			out = append(out, r.table)
		}
	}
	sort.Strings(out)
	return out
}
