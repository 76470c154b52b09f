package builder

import (
	"errors"
	"fmt"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

func dur(d *metav1.Duration) proxyconfig.Duration {
	if d == nil {
		return proxyconfig.Duration{}
	}
	return proxyconfig.D(d.Duration)
}

func match(regex []string, caseInsensitive bool, fingerprint []string) proxyconfig.MatchSpec {
	return proxyconfig.MatchSpec{Regex: regex, CaseInsensitive: caseInsensitive, Fingerprint: fingerprint}
}

// governance copies the TrafficStrategy's plugin rules (circuit break, concurrency control) and
// the governance beyond Pisanix (access control, audit, endpoint breaker) onto the listener.
func (b *proxyBuilder) governance(ts *v1alpha1.TrafficStrategy, l *proxyconfig.Listener) (string, error) {
	spec := &ts.Spec
	if len(spec.CircuitBreaks) > 0 || len(spec.ConcurrencyControls) > 0 {
		pl := &proxyconfig.Plugin{}
		for _, cb := range spec.CircuitBreaks {
			pl.CircuitBreak = append(pl.CircuitBreak, proxyconfig.CircuitBreak{Name: cb.Name,
				MatchSpec: match(cb.Regex, cb.CaseInsensitive, cb.Fingerprint), DryRun: cb.DryRun})
		}
		for _, cc := range spec.ConcurrencyControls {
			pl.ConcurrencyControl = append(pl.ConcurrencyControl, proxyconfig.ConcurrencyControl{Name: cc.Name,
				MatchSpec: match(cc.Regex, cc.CaseInsensitive, cc.Fingerprint), MaxConcurrency: int(cc.MaxConcurrency),
				Duration: int(cc.Duration), DryRun: cc.DryRun, WaitTimeout: dur(cc.WaitTimeout), MaxQueue: int(cc.MaxQueue)})
		}
		l.Plugin = pl
	}
	if ac := spec.AccessControl; ac != nil {
		cfg := &proxyconfig.Access{Users: []proxyconfig.AccessUser{}}
		for i, u := range ac.Users {
			password, p := b.n.password(u.Password, u.PasswordSecretRef)
			if p != "" {
				return v1alpha1.ReasonSecretNotFound, fmt.Errorf("spec.accessControl.users[%d] (%s).passwordSecretRef: %s", i, u.User, p)
			}
			kinds := make([]string, 0, len(u.Kinds))
			for _, k := range u.Kinds {
				kinds = append(kinds, string(k))
			}
			if len(kinds) == 0 {
				kinds = nil
			}
			cfg.Users = append(cfg.Users, proxyconfig.AccessUser{User: u.User, Password: password, Schemas: u.Schemas,
				Tables: u.Tables, Kinds: kinds, MaxRows: uint64(max(u.MaxRows, 0))})
		}
		l.Access = cfg
	}
	if a := spec.Audit; a != nil {
		cfg := &proxyconfig.Audit{Output: a.Output, MaxSizeMB: int(a.MaxSizeMB), MaxBackups: int(a.MaxBackups),
			MaxAgeDays: int(a.MaxAgeDays), Compress: a.Compress, SlowThreshold: dur(a.SlowThreshold),
			LogSQL: a.LogSQL, Include: string(a.Include), BufferSize: int(a.BufferSize)}
		if a.SampleRate != "" {
			r, err := strconv.ParseFloat(a.SampleRate, 64)
			if err != nil || r < 0 || r > 1 {
				return v1alpha1.ReasonInvalidSpec, fmt.Errorf("spec.audit.sampleRate: %q is not a number from 0 to 1", a.SampleRate)
			}
			cfg.SampleRate = &r
		}
		l.Audit = cfg
	}
	if eb := spec.EndpointBreaker; eb != nil {
		cfg := &proxyconfig.EndpointBreaker{MinRequests: int(eb.MinRequests), Window: dur(eb.Window), OpenFor: dur(eb.OpenFor),
			HalfOpenMax: int(eb.HalfOpenMax), Timeout: dur(eb.Timeout)}
		if eb.ErrorRate != "" {
			r, err := strconv.ParseFloat(eb.ErrorRate, 64)
			if err != nil || r <= 0 || r > 1 {
				return v1alpha1.ReasonInvalidSpec, fmt.Errorf("spec.endpointBreaker.errorRate: %q is not a number in (0, 1]", eb.ErrorRate)
			}
			cfg.ErrorRate = r
		}
		l.EndpointBreaker = cfg
	}
	if f := spec.Failover; f != nil {
		l.Failover = &proxyconfig.Failover{DelayedRetry: f.DelayedRetry, DelayedRetryTimeout: dur(f.DelayedRetryTimeout),
			DelayedRetryMaxWaiting: int(f.DelayedRetryMaxWaiting), TransactionReplay: f.TransactionReplay,
			TransactionReplayMaxSize: int(f.TransactionReplayMaxSize)}
	}
	return "", nil
}

// sharding converts a DataShard into the listener's sharding rules and node groups.
//
// actual_datanodes name DatabaseEndpoints (value) or readWriteSplittingGroups
// (valueFromReadWriteSplitting); expression is ignored, as in Pisanix. Every group declared by
// any rule becomes a node_group member: its readwrite node is the first (by name) of its
// endpoints whose role is readwrite (annotated or not), its reads are its endpoints whose role
// is read. A group's endpoints are those its selector picks in the namespace, or without a
// selector the service's selected endpoints (one such group at most); two groups with the same
// readwrite endpoint are refused (two shards on one server). A group's rules are appended to the listener's
// read/write splitting rules with node_group_name set to the group.
func (b *proxyBuilder) sharding(ds *v1alpha1.DataShard, sel []*endpoint, out *built) (string, error) {
	l := out.listener
	l.TransactionMode = ds.Spec.TransactionMode
	declared := map[string]*v1alpha1.ReadWriteSplittingGroup{}
	var order []string
	for i := range ds.Spec.Rules {
		for j := range ds.Spec.Rules[i].ReadWriteSplittingGroup {
			g := &ds.Spec.Rules[i].ReadWriteSplittingGroup[j]
			if _, dup := declared[g.Name]; !dup {
				declared[g.Name] = g
				order = append(order, g.Name)
			}
		}
	}
	for i := range ds.Spec.Rules {
		r := &ds.Spec.Rules[i]
		p := fmt.Sprintf("spec.rules[%d] (%s)", i, r.TableName)
		s := proxyconfig.Sharding{TableName: r.TableName, ActualDatanodes: []string{}}
		if r.ActualDatanodes != nil && r.ActualDatanodes.ValueSource != nil {
			for k, v := range r.ActualDatanodes.ValueSource.Nodes {
				switch {
				case v.Value != "":
					ep := b.n.byName[v.Value]
					if ep == nil {
						return v1alpha1.ReasonDatabaseEndpointNotFound,
							fmt.Errorf("%s.actualDatanodes.valueSource.nodes[%d]: DatabaseEndpoint %q not found", p, k, v.Value)
					}
					if ep.problem != nil {
						b.ps.add(*ep.problem)
						return ep.problem.Reason, fmt.Errorf("%s.actualDatanodes.valueSource.nodes[%d]: DatabaseEndpoint %q is unusable: %s",
							p, k, v.Value, ep.problem.Message)
					}
					s.ActualDatanodes = append(s.ActualDatanodes, v.Value)
					out.nodes = appendEndpoint(out.nodes, ep)
				case v.ValueFromReadWriteSplitting != nil:
					name := v.ValueFromReadWriteSplitting.Name
					if declared[name] == nil {
						return v1alpha1.ReasonInvalidRule,
							fmt.Errorf("%s.actualDatanodes.valueSource.nodes[%d]: no readWriteSplittingGroup %q", p, k, name)
					}
					if l.ReadWriteSplitting == nil {
						return v1alpha1.ReasonInvalidRule,
							fmt.Errorf("%s.actualDatanodes.valueSource.nodes[%d]: node group %q needs the TrafficStrategy's readWriteSplitting", p, k, name)
					}
					s.ActualDatanodes = append(s.ActualDatanodes, name)
				default:
					return v1alpha1.ReasonInvalidRule, fmt.Errorf("%s.actualDatanodes.valueSource.nodes[%d] is empty", p, k)
				}
			}
		}
		if len(s.ActualDatanodes) == 0 {
			return v1alpha1.ReasonInvalidRule, fmt.Errorf("%s: actualDatanodes.valueSource.nodes is empty", p)
		}
		if n := countSet(r.TableStrategy != nil, r.DatabaseStrategy != nil, r.DatabaseTableStrategy != nil); n > 1 {
			// The CRD schema refuses this; objects stored before it did
			// must not have one strategy silently picked.
			return v1alpha1.ReasonInvalidRule, fmt.Errorf("%s: only one of tableStrategy, databaseStrategy, databaseTableStrategy may be set", p)
		}
		switch {
		case r.TableStrategy != nil:
			t := r.TableStrategy
			s.TableStrategy = &proxyconfig.TableStrategy{TableShardingAlgorithmName: string(t.TableShardingAlgorithmName),
				TableShardingColumn: t.TableShardingColumn, ShardingCount: int(t.ShardingCount)}
		case r.DatabaseStrategy != nil:
			d := r.DatabaseStrategy
			s.DatabaseStrategy = &proxyconfig.DatabaseStrategy{DatabaseShardingAlgorithmName: string(d.DatabaseShardingAlgorithmName),
				DatabaseShardingColumn: d.DatabaseShardingColumn}
		case r.DatabaseTableStrategy != nil:
			d := r.DatabaseTableStrategy
			s.DatabaseTableStrategy = &proxyconfig.DatabaseTableStrategy{
				DatabaseShardingAlgorithmName: string(d.DatabaseShardingAlgorithmName), DatabaseShardingColumn: d.DatabaseShardingColumn,
				TableShardingAlgorithmName: string(d.TableShardingAlgorithmName), TableShardingColumn: d.TableShardingColumn,
				ShardingCount: int(d.ShardingCount)}
		default:
			return v1alpha1.ReasonInvalidRule, fmt.Errorf("%s: one of tableStrategy, databaseStrategy, databaseTableStrategy is required", p)
		}
		s.BroadcastTables = append([]string(nil), r.BroadcastTables...)
		s.BindingTables = append([]string(nil), r.BindingTables...)
		if kg := r.KeyGenerator; kg != nil {
			s.KeyGenerator = &proxyconfig.KeyGenerator{Type: kg.Type, Column: kg.Column}
			if kg.WorkerID != nil {
				s.KeyGenerator.WorkerID = new(int(*kg.WorkerID))
			}
		}
		l.Sharding = append(l.Sharding, s)
	}

	if len(order) == 0 {
		return "", nil
	}
	if l.ReadWriteSplitting == nil {
		return v1alpha1.ReasonInvalidRule, errors.New("readWriteSplittingGroup needs the TrafficStrategy's readWriteSplitting")
	}
	unselected := ""
	primaries := map[string]string{} // readwrite endpoint → group
	for _, name := range order {
		g := declared[name]
		members := sel
		if g.Selector == nil {
			if unselected != "" {
				return v1alpha1.ReasonInvalidRule, fmt.Errorf(
					"readWriteSplittingGroups %q and %q both take the TrafficStrategy's endpoints (no selector): they would be one server; give each group a selector", unselected, name)
			}
			unselected = name
		} else {
			ls, err := metav1.LabelSelectorAsSelector(g.Selector)
			if err != nil {
				return v1alpha1.ReasonInvalidRule, fmt.Errorf("readWriteSplittingGroup %q: selector: %w", name, err)
			}
			members = nil
			for _, ep := range b.n.endpoints {
				if !ls.Matches(labels.Set(ep.obj.Labels)) {
					continue
				}
				if ep.problem != nil {
					b.ps.add(*ep.problem)
					return ep.problem.Reason, fmt.Errorf("readWriteSplittingGroup %q: DatabaseEndpoint %q is unusable: %s",
						name, ep.obj.Name, ep.problem.Message)
				}
				members = append(members, ep)
				out.nodes = appendEndpoint(out.nodes, ep)
			}
		}
		m := proxyconfig.NodeGroupMember{Name: name, Reads: []string{}}
		for _, ep := range members {
			switch ep.node.Role {
			case proxyconfig.RoleRead:
				m.Reads = append(m.Reads, ep.obj.Name)
			default:
				if m.ReadWrite == "" {
					m.ReadWrite = ep.obj.Name
				}
			}
		}
		if m.ReadWrite == "" && len(m.Reads) == 0 {
			return v1alpha1.ReasonInvalidRule, fmt.Errorf("node group %q has no endpoint", name)
		}
		if other, dup := primaries[m.ReadWrite]; dup && m.ReadWrite != "" {
			return v1alpha1.ReasonInvalidRule, fmt.Errorf(
				"readWriteSplittingGroups %q and %q have the same readwrite endpoint %q: two shards would be one server", other, name, m.ReadWrite)
		}
		primaries[m.ReadWrite] = name
		for _, r := range g.Rules {
			if r.Target == v1alpha1.TargetReadWrite && m.ReadWrite == "" {
				return v1alpha1.ReasonInvalidRule, fmt.Errorf("node group %q: rule %q targets readwrite but no selected endpoint is readwrite", name, r.Name)
			}
		}
		out.groups = append(out.groups, m)
		gr := rules(g.Rules)
		for k := range gr {
			gr[k].NodeGroupName = []string{name}
		}
		if rw := l.ReadWriteSplitting; rw.Dynamic != nil {
			rw.Dynamic.Rules = append(rw.Dynamic.Rules, gr...)
		} else {
			rw.Static.Rules = append(rw.Static.Rules, gr...)
		}
	}
	return "", nil
}

func appendEndpoint(list []*endpoint, ep *endpoint) []*endpoint {
	for _, e := range list {
		if e == ep {
			return list
		}
	}
	return append(list, ep)
}

// countSet counts the true values.
func countSet(vs ...bool) int {
	n := 0
	for _, v := range vs {
		if v {
			n++
		}
	}
	return n
}
