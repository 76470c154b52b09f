package route

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/database-mesh/pisanix-go/internal/proxy/rxfilter"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

// Target is where a statement must run: on a node of the read set or on a
// readwrite node (the writer). The zero value is TargetReadWrite, the safe
// choice.
type Target uint8

const (
	TargetReadWrite Target = iota
	TargetRead
)

// Node roles (as in [[mysql.node]] role and Endpoint.Role).
const (
	RoleRead      = proxyconfig.RoleRead
	RoleReadWrite = proxyconfig.RoleReadWrite
)

// Rule types.
const (
	RuleRegex   = proxyconfig.RuleRegex
	RuleGeneric = proxyconfig.RuleGeneric
)

// Decision.Rule values for decisions not made by a configured rule.
const (
	// RuleNameDefault: no rule matched, default_target applied.
	RuleNameDefault = "default"
	// RuleNameReadWrite: the statement must run on a readwrite node
	// (transaction, write, locking read, SET autocommit=0...), whatever the
	// rules say.
	RuleNameReadWrite = "readwrite-required"
)

func (t Target) String() string {
	if t == TargetRead {
		return RoleRead
	}
	return RoleReadWrite
}

// ParseTarget parses "read" or "readwrite"; "" is readwrite.
func ParseTarget(s string) (Target, error) {
	switch s {
	case RoleRead:
		return TargetRead, nil
	case RoleReadWrite, "":
		return TargetReadWrite, nil
	}
	return TargetReadWrite, fmt.Errorf("route: unknown target %q (want %q or %q)", s, RoleRead, RoleReadWrite)
}

// RWRule is one read/write splitting rule (proxyconfig.Rule).
type RWRule struct {
	Name string
	// Type is "regex" or "generic"; "" infers it (regex when Regex is set).
	Type string
	// Regex: a regex rule matches when any of them matches the raw SQL text
	// (Go RE2 syntax, case-sensitive and unanchored unless written so, as
	// in Pisanix).
	Regex []string
	// Target of a regex rule: "read" or "readwrite". Generic rules decide
	// from the statement facts.
	Target string
	// Groups (node_group_name) limit the rule to statements on the shards of
	// these node groups (sharding with read/write splitting); empty: the
	// rule applies to every statement.
	Groups []string
	// AlgorithmName is the rule's balancer: "random" (default) or
	// "roundrobin".
	AlgorithmName string
}

// RWConfig is the rule part of read_write_splitting static or dynamic.
type RWConfig struct {
	// DefaultTarget is "read" or "readwrite" (default).
	DefaultTarget string
	Rules         []RWRule
}

// RWConfigFrom converts the configuration of a listener: static when present
// (static wins, as in Pisanix), else dynamic. The returned Discovery is
// non-nil for dynamic splitting.
func RWConfigFrom(rw *proxyconfig.ReadWriteSplitting) (RWConfig, *proxyconfig.Discovery) {
	var cfg RWConfig
	var rules []proxyconfig.Rule
	var disc *proxyconfig.Discovery
	switch {
	case rw == nil:
		return cfg, nil
	case rw.Static != nil:
		cfg.DefaultTarget, rules = rw.Static.DefaultTarget, rw.Static.Rules
	case rw.Dynamic != nil:
		cfg.DefaultTarget, rules, disc = rw.Dynamic.DefaultTarget, rw.Dynamic.Rules, rw.Dynamic.Discovery
	}
	for i := range rules {
		r := &rules[i]
		cfg.Rules = append(cfg.Rules, RWRule{
			Name: r.Name, Type: r.Kind(), Regex: slices.Clone(r.Regex),
			Target: r.Target, AlgorithmName: r.AlgorithmName, Groups: slices.Clone(r.NodeGroupName),
		})
	}
	return cfg, disc
}

// NodeInfo describes one node of the listener's node list; its position in
// the list is the index used everywhere (Endpoint.Index, membership).
type NodeInfo struct {
	Name string
	// Role is the configured role, "read" or "readwrite" (default).
	Role string
	// Weight is the balancing weight; 0 drains the node.
	Weight int
}

// Endpoint is a chosen node: Index into the listener's node list (and its
// pools) and the role it was chosen for ("read", or "readwrite" also when a
// read fell back to the writer).
type Endpoint struct {
	Index int
	Role  string
}

// Decision is the routing of one statement. Pick chooses the node, against
// the membership current at the time of the call.
type Decision struct {
	Target Target
	// Rule is the name of the rule that decided, RuleNameDefault or
	// RuleNameReadWrite.
	Rule string
	r    *RWRouter
	bal  Balancer
}

type compiledRule struct {
	name    string
	groups  []string // node groups the rule is limited to (none: all statements)
	generic bool
	res     []*rxfilter.Regexp
	target  Target
	bal     Balancer
}

// membership is an immutable snapshot of who reads and who writes.
type membership struct {
	read, write     []bool
	readers         []int
	writers         []int
	readFn, writeFn func(int) bool
}

func newMembership(n int, writers, readers []int) *membership {
	m := &membership{read: make([]bool, n), write: make([]bool, n)}
	for _, i := range writers {
		if i >= 0 && i < n && !m.write[i] {
			m.write[i] = true
			m.writers = append(m.writers, i)
		}
	}
	for _, i := range readers {
		if i >= 0 && i < n && !m.read[i] {
			m.read[i] = true
			m.readers = append(m.readers, i)
		}
	}
	slices.Sort(m.writers)
	slices.Sort(m.readers)
	m.readFn = func(i int) bool { return m.read[i] }
	m.writeFn = func(i int) bool { return m.write[i] }
	return m
}

// RWRouter routes statements of one listener for read/write splitting (static
// rules, plus a membership that discovery may change at any time). It is safe
// for concurrent use; Route and Pick do not allocate.
type RWRouter struct {
	// noWriter: no node is configured with role readwrite. The listener
	// serves reads only; statements that need the writer are refused
	// (see NoWriter).
	noWriter      bool
	nodes         []NodeInfo
	rules         []compiledRule
	defaultTarget Target
	defaultBal    Balancer // random, for default_target
	forcedBal     Balancer // random, for statements that need the writer
	m             atomic.Pointer[membership]
}

// NewRWRouter compiles cfg over the listener's nodes. The initial membership
// follows the configured roles: readwrite nodes write, read nodes read.
func NewRWRouter(cfg RWConfig, nodes []NodeInfo) (*RWRouter, error) {
	if len(nodes) == 0 {
		return nil, fmt.Errorf("route: read/write splitting needs at least one node")
	}
	r := &RWRouter{nodes: slices.Clone(nodes)}
	weights := make([]int, len(nodes))
	var writers, readers []int
	for i, n := range nodes {
		if n.Weight < 0 {
			return nil, fmt.Errorf("route: node %q has negative weight %d", n.Name, n.Weight)
		}
		weights[i] = n.Weight
		switch n.Role {
		case RoleRead:
			readers = append(readers, i)
		case RoleReadWrite, "":
			writers = append(writers, i)
		default:
			return nil, fmt.Errorf("route: node %q has unknown role %q", n.Name, n.Role)
		}
	}
	var err error
	if r.defaultTarget, err = ParseTarget(cfg.DefaultTarget); err != nil {
		return nil, err
	}
	if r.defaultBal, err = NewBalancer(KindRandom, weights); err != nil {
		return nil, err
	}
	if r.forcedBal, err = NewBalancer(KindRandom, weights); err != nil {
		return nil, err
	}
	var regexRules, genericRules []compiledRule
	for _, rc := range cfg.Rules {
		cr := compiledRule{name: rc.Name, groups: rc.Groups}
		typ := rc.Type
		if typ == "" {
			typ = RuleGeneric
			if len(rc.Regex) > 0 {
				typ = RuleRegex
			}
		}
		kind := rc.AlgorithmName
		if kind == "" {
			kind = KindRandom
		}
		if cr.bal, err = NewBalancer(kind, weights); err != nil {
			return nil, fmt.Errorf("route: rule %q: %w", rc.Name, err)
		}
		switch typ {
		case RuleRegex:
			if len(rc.Regex) == 0 {
				return nil, fmt.Errorf("route: regex rule %q has no regex", rc.Name)
			}
			for _, s := range rc.Regex {
				re, err := rxfilter.Compile(s)
				if err != nil {
					return nil, fmt.Errorf("route: rule %q: %w", rc.Name, err)
				}
				cr.res = append(cr.res, re)
			}
			if rc.Target == "" {
				return nil, fmt.Errorf("route: regex rule %q has no target", rc.Name)
			}
			if cr.target, err = ParseTarget(rc.Target); err != nil {
				return nil, fmt.Errorf("route: rule %q: %w", rc.Name, err)
			}
			regexRules = append(regexRules, cr)
		case RuleGeneric:
			cr.generic = true
			genericRules = append(genericRules, cr)
		default:
			return nil, fmt.Errorf("route: rule %q has unknown type %q", rc.Name, rc.Type)
		}
	}
	// All regex rules first (config order), then generic rules (Pisanix).
	r.rules = append(regexRules, genericRules...)
	r.noWriter = len(writers) == 0
	r.m.Store(newMembership(len(nodes), writers, readers))
	return r, nil
}

// NoWriter reports that no node is configured with role readwrite: the
// listener is read-only. Pisanix started such listeners (its shipped
// example has one read node) and failed only the statements that needed
// the writer; the proxy does the same and answers them with a clear error
// instead of sending them to a replica. Statements that only create session
// state (SET, user variables, prepared statements) then run on a reader
// (see Reader), and sessions pinned to a reader still get every statement
// that needs the writer refused, by the caller, with NeedsReadWrite.
func (r *RWRouter) NoWriter() bool { return r.noWriter }

// Reader returns a decision for a reader with the default balancer (for
// callers that would use Writer on a listener that has no writer).
func (r *RWRouter) Reader() Decision {
	return Decision{Target: TargetRead, Rule: RuleNameDefault, r: r, bal: r.defaultBal}
}

// Nodes returns the router's node list (do not modify).
func (r *RWRouter) Nodes() []NodeInfo { return r.nodes }

// SetMembership replaces the sets of writer and reader node indexes
// atomically; statements routed afterwards see the new sets. Out-of-range
// indexes are ignored. Discovery calls it; it may run concurrently with
// Route and Pick.
func (r *RWRouter) SetMembership(writers, readers []int) {
	r.m.Store(newMembership(len(r.nodes), writers, readers))
}

// Membership returns copies of the current writer and reader index sets,
// sorted.
func (r *RWRouter) Membership() (writers, readers []int) {
	m := r.m.Load()
	return slices.Clone(m.writers), slices.Clone(m.readers)
}

// NeedsReadWrite reports whether a statement must run on a readwrite node
// whatever the rules say: inside a transaction, transaction control and
// SET autocommit=0, locking reads, table locks and GET_LOCK, multi-statement
// texts, statements the parser could not parse, and everything that is not
// read-only except SET and USE (which only change session state, replayed on
// whichever node runs later statements). A nil f (no facts) only forces
// inTx.
func NeedsReadWrite(f *sqlparse.Facts, inTx bool) bool {
	if inTx {
		return true
	}
	if f == nil {
		return false
	}
	if f.ParseErr != nil || f.AutocommitOff || f.LockingRead || f.Locks || f.Multi {
		return true
	}
	switch f.Kind {
	case sqlparse.KindBegin, sqlparse.KindCommit, sqlparse.KindRollback, sqlparse.KindSavepoint,
		sqlparse.KindLockTables, sqlparse.KindUnlockTables:
		return true
	case sqlparse.KindSet, sqlparse.KindUse:
		return false
	}
	return !f.ReadOnly
}

// genericTarget is the generic rule: read for read-only statements without
// locking reads or side effects, readwrite otherwise.
func genericTarget(f *sqlparse.Facts) Target {
	if f != nil && f.ParseErr == nil && f.ReadOnly && !f.LockingRead && !f.SideEffects {
		return TargetRead
	}
	return TargetReadWrite
}

// Route decides where sql (with its parser facts f, possibly nil) runs.
// inTx tells that the session is inside a transaction (as the server
// reported): such statements always go to a readwrite node, and the session
// normally keeps using its pinned connection anyway. Otherwise: statements
// that need the writer (see NeedsReadWrite) go readwrite; then regex rules
// in config order, then generic rules, then default_target.
func (r *RWRouter) Route(sql string, f *sqlparse.Facts, inTx bool) Decision {
	return r.RouteGroup(sql, f, inTx, "")
}

// RouteGroup is Route for a statement on a shard of node group group (""
// for a statement on no node group): rules limited to other node groups
// (node_group_name) are passed over.
func (r *RWRouter) RouteGroup(sql string, f *sqlparse.Facts, inTx bool, group string) Decision {
	if NeedsReadWrite(f, inTx) {
		return Decision{Target: TargetReadWrite, Rule: RuleNameReadWrite, r: r, bal: r.forcedBal}
	}
	for i := range r.rules {
		cr := &r.rules[i]
		if len(cr.groups) > 0 && !slices.Contains(cr.groups, group) {
			continue
		}
		if cr.generic {
			return Decision{Target: genericTarget(f), Rule: cr.name, r: r, bal: cr.bal}
		}
		for _, re := range cr.res {
			if re.MatchString(sql) {
				return Decision{Target: cr.target, Rule: cr.name, r: r, bal: cr.bal}
			}
		}
	}
	return Decision{Target: r.defaultTarget, Rule: RuleNameDefault, r: r, bal: r.defaultBal}
}

// Writer returns a decision for the writer with the balancer of forced
// readwrite statements (for callers that must write or must read fresh data,
// e.g. causal reads falling back).
func (r *RWRouter) Writer() Decision {
	return Decision{Target: TargetReadWrite, Rule: RuleNameReadWrite, r: r, bal: r.forcedBal}
}

// ToWriter returns d retargeted at the writer (same rule and balancer).
func (d Decision) ToWriter() Decision {
	d.Target = TargetReadWrite
	return d
}

// Pick chooses a node for the decision among the current members: a reader
// for TargetRead, falling back to a writer when no reader is usable; a writer
// for TargetReadWrite. usable (may be nil) further filters nodes, typically
// by pool health; it must be fast and must not call the router. ok is false
// when no node is usable (the caller answers "no healthy backend").
func (d Decision) Pick(usable func(i int) bool) (ep Endpoint, ok bool) {
	if d.r == nil || d.bal == nil {
		return Endpoint{Index: -1}, false
	}
	m := d.r.m.Load()
	if d.Target == TargetRead {
		if i, ok := next(d.bal, m.read, m.readFn, usable); ok {
			return Endpoint{Index: i, Role: RoleRead}, true
		}
	}
	if i, ok := next(d.bal, m.write, m.writeFn, usable); ok {
		return Endpoint{Index: i, Role: RoleReadWrite}, true
	}
	return Endpoint{Index: -1}, false
}

// filter combines a membership set with a caller's usable function without
// allocating: filters are pooled and their method value is made once.
type filter struct {
	set    []bool
	usable func(int) bool
	fn     func(int) bool
}

func (f *filter) test(i int) bool { return f.set[i] && f.usable(i) }

var filters = sync.Pool{New: func() any {
	f := new(filter)
	f.fn = f.test
	return f
}}

func next(b Balancer, set []bool, setFn, usable func(int) bool) (int, bool) {
	if usable == nil {
		return b.Next(setFn)
	}
	f := filters.Get().(*filter)
	f.set, f.usable = set, usable
	i, ok := b.Next(f.fn)
	f.set, f.usable = nil, nil
	filters.Put(f)
	return i, ok
}
