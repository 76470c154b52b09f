// Package builder turns the core.database-mesh.io custom resources of a namespace into the
// configuration of a pisa-proxy sidecar (Pisanix's proxyconfigs JSON) and the custom resources of
// every namespace into pisa-daemon's configuration (daemonconfigs JSON).
//
// Everything here is a pure function of its arguments: no API calls, no clock, no randomness.
// The same objects always give the same configuration, byte for byte once marshalled, so the
// config server can version configurations by their content.
//
// The conversion follows Pisanix's controller (spec §3.4) with its bugs fixed:
//
//   - a TrafficStrategy's selector (matchLabels and matchExpressions) chooses the
//     DatabaseEndpoints of a service, and simple_loadbalance.nodes lists them — also when
//     read/write splitting is used, since pisa-proxy honours simple_loadbalance.nodes for both;
//   - mysql.node holds only the endpoints some service uses (Pisanix listed every endpoint of the
//     namespace, with their passwords);
//   - a missing probe gets pisa-proxy's defaults instead of crashing the controller;
//     monitorInterval reaches monitor_period;
//   - node_group readwrite members include endpoints without a role annotation (readwrite by
//     default) and every readWriteSplittingGroup becomes a member, not only the first;
//   - nothing panics: whatever cannot be built is reported as a Problem (the reasons of the
//     status conditions, v1alpha1.Reason*) and the service concerned is left out of the
//     configuration rather than served half-built (fail closed: a service whose rules cannot be
//     honoured gets no listener, so the application cannot bypass its governance).
package builder

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// The admin section of every built configuration (constants in Pisanix v0.2.0+).
const (
	AdminHost     = "0.0.0.0"
	AdminPort     = 5591
	AdminLogLevel = "INFO"
)

// ErrVirtualDatabaseNotFound is returned by BuildProxyConfig when the namespace has no
// VirtualDatabase with the application's name.
var ErrVirtualDatabaseNotFound = errors.New("virtualdatabase not found")

// Objects are the custom resources of one namespace, as listed from the controller's cache,
// plus the Secrets they refer to.
type Objects struct {
	VirtualDatabases  []v1alpha1.VirtualDatabase
	TrafficStrategies []v1alpha1.TrafficStrategy
	DatabaseEndpoints []v1alpha1.DatabaseEndpoint
	DataShards        []v1alpha1.DataShard
	QoSClaims         []v1alpha1.QoSClaim
	SecurityClaims    []v1alpha1.SecurityClaim
	// Secrets holds the data of the namespace's Secrets: Secrets[name][key]. Only Secrets named
	// by a passwordSecretRef are needed.
	Secrets map[string]map[string][]byte
}

// AllNamespaces holds the objects of every namespace, keyed by namespace.
type AllNamespaces map[string]Objects

// Problem is something the builder could not honour. Kind/Namespace/Name name the object at
// fault (the one whose status condition should carry Reason); Service is the VirtualDatabase
// service concerned, when there is one.
type Problem struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Service   string `json:"service,omitempty"`
	// Reason is one of the v1alpha1.Reason* constants.
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	s := fmt.Sprintf("%s %s/%s", p.Kind, p.Namespace, p.Name)
	if p.Service != "" {
		s += " service " + p.Service
	}
	return s + ": " + p.Reason + ": " + p.Message
}

// Object kinds used in Problems.
const (
	KindVirtualDatabase  = "VirtualDatabase"
	KindTrafficStrategy  = "TrafficStrategy"
	KindDatabaseEndpoint = "DatabaseEndpoint"
	KindDataShard        = "DataShard"
	KindQoSClaim         = "QoSClaim"
)

// problems collects Problems without duplicates, in the order they were first seen.
type problems struct {
	list []Problem
	seen map[Problem]bool
}

func (ps *problems) add(p Problem) {
	if ps.seen == nil {
		ps.seen = map[Problem]bool{}
	}
	if !ps.seen[p] {
		ps.seen[p] = true
		ps.list = append(ps.list, p)
	}
}

// endpoint is a DatabaseEndpoint with its proxy node, or the problem that makes it unusable.
type endpoint struct {
	obj     *v1alpha1.DatabaseEndpoint
	node    proxyconfig.Node
	problem *Problem
}

// namespace indexes the objects of one namespace.
type namespace struct {
	name      string
	objs      *Objects
	ts        map[string]*v1alpha1.TrafficStrategy
	ds        map[string]*v1alpha1.DataShard
	qc        map[string]*v1alpha1.QoSClaim
	sc        map[string]*v1alpha1.SecurityClaim
	endpoints []*endpoint // DatabaseEndpoints with a MySQL server, sorted by name
	byName    map[string]*endpoint
}

// inNamespace reports whether an object of namespace objNS belongs to ns ("" matches: objects
// built in tests often have no namespace).
func inNamespace(objNS, ns string) bool { return objNS == "" || objNS == ns }

func index(ns string, objs *Objects) *namespace {
	n := &namespace{name: ns, objs: objs, ts: map[string]*v1alpha1.TrafficStrategy{},
		ds: map[string]*v1alpha1.DataShard{}, qc: map[string]*v1alpha1.QoSClaim{}, byName: map[string]*endpoint{},
		sc: map[string]*v1alpha1.SecurityClaim{}}
	for i := range objs.SecurityClaims {
		if o := &objs.SecurityClaims[i]; inNamespace(o.Namespace, ns) {
			n.sc[o.Name] = o
		}
	}
	for i := range objs.TrafficStrategies {
		if o := &objs.TrafficStrategies[i]; inNamespace(o.Namespace, ns) {
			n.ts[o.Name] = o
		}
	}
	for i := range objs.DataShards {
		if o := &objs.DataShards[i]; inNamespace(o.Namespace, ns) {
			n.ds[o.Name] = o
		}
	}
	for i := range objs.QoSClaims {
		if o := &objs.QoSClaims[i]; inNamespace(o.Namespace, ns) {
			n.qc[o.Name] = o
		}
	}
	for i := range objs.DatabaseEndpoints {
		o := &objs.DatabaseEndpoints[i]
		if !inNamespace(o.Namespace, ns) || o.Spec.Database.MySQL == nil {
			continue
		}
		if _, dup := n.byName[o.Name]; dup {
			continue
		}
		ep := n.endpoint(o)
		n.endpoints = append(n.endpoints, ep)
		n.byName[o.Name] = ep
	}
	slices.SortFunc(n.endpoints, func(a, b *endpoint) int { return cmp.Compare(a.obj.Name, b.obj.Name) })
	return n
}

func (n *namespace) endpoint(o *v1alpha1.DatabaseEndpoint) *endpoint {
	m := o.Spec.Database.MySQL
	ep := &endpoint{obj: o}
	fail := func(reason, format string, args ...any) *endpoint {
		ep.problem = &Problem{Kind: KindDatabaseEndpoint, Namespace: n.name, Name: o.Name, Reason: reason,
			Message: fmt.Sprintf(format, args...)}
		return ep
	}
	role := proxyconfig.RoleReadWrite
	if r, ok := o.Annotations[v1alpha1.DatabaseEndpointRoleAnnotation]; ok {
		role = strings.TrimSpace(r)
		if role != proxyconfig.RoleRead && role != proxyconfig.RoleReadWrite {
			return fail(v1alpha1.ReasonInvalidSpec, "annotation %s must be %q or %q, got %q",
				v1alpha1.DatabaseEndpointRoleAnnotation, proxyconfig.RoleRead, proxyconfig.RoleReadWrite, r)
		}
	}
	if m.Host == "" {
		return fail(v1alpha1.ReasonInvalidSpec, "spec.database.MySQL.host is empty")
	}
	password, p := n.password(m.Password, m.PasswordSecretRef)
	if p != "" {
		return fail(v1alpha1.ReasonSecretNotFound, "spec.database.MySQL.passwordSecretRef: %s", p)
	}
	port := int(m.Port)
	if port == 0 {
		port = proxyconfig.DefaultNodePort
	}
	weight := proxyconfig.DefaultWeight
	ep.node = proxyconfig.Node{Name: o.Name, DB: m.DB, User: m.User, Password: password, Host: m.Host,
		Port: port, Weight: &weight, Role: role}
	return ep
}

// password resolves a plain password or a secret reference; the second result describes a
// missing Secret or key.
func (n *namespace) password(plain string, ref *v1alpha1.SecretKeySelector) (string, string) {
	if ref == nil {
		return plain, ""
	}
	data, ok := n.objs.Secrets[ref.Name]
	if !ok {
		return "", fmt.Sprintf("Secret %q not found", ref.Name)
	}
	v, ok := data[ref.Key]
	if !ok {
		return "", fmt.Sprintf("Secret %q has no key %q", ref.Name, ref.Key)
	}
	return string(v), ""
}

// selector compiles a TrafficStrategy's selector. A TrafficStrategy without a selector (or
// none at all) selects every endpoint of the namespace, as Pisanix effectively did.
func selector(ts *v1alpha1.TrafficStrategy) (labels.Selector, error) {
	if ts == nil || ts.Spec.Selector == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(ts.Spec.Selector)
}

// SelectEndpoints returns the names (sorted) of the DatabaseEndpoints with a MySQL server among
// eps that ts selects; for the TrafficStrategy's status. A nil ts or selector selects all.
func SelectEndpoints(ts *v1alpha1.TrafficStrategy, eps []v1alpha1.DatabaseEndpoint) ([]string, error) {
	sel, err := selector(ts)
	if err != nil {
		return nil, err
	}
	var out []string
	for i := range eps {
		if eps[i].Spec.Database.MySQL != nil && (ts == nil || inNamespace(eps[i].Namespace, ts.Namespace)) &&
			sel.Matches(labels.Set(eps[i].Labels)) {
			out = append(out, eps[i].Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// selected returns the usable endpoints ts selects, reporting the selected endpoints that are
// unusable.
func (n *namespace) selected(ts *v1alpha1.TrafficStrategy, ps *problems) ([]*endpoint, error) {
	sel, err := selector(ts)
	if err != nil {
		return nil, err
	}
	var out []*endpoint
	for _, ep := range n.endpoints {
		if !sel.Matches(labels.Set(ep.obj.Labels)) {
			continue
		}
		if ep.problem != nil {
			ps.add(*ep.problem)
			continue
		}
		out = append(out, ep)
	}
	return out, nil
}

// unmatched explains that ts's selector matches no usable DatabaseEndpoint: it names the
// TrafficStrategy and its selector, lists the namespace's endpoints it did not match with their
// labels, and gives the kubectl label command that makes one match (for matchLabels selectors).
func (n *namespace) unmatched(ts *v1alpha1.TrafficStrategy) string {
	var b strings.Builder
	fmt.Fprintf(&b, "TrafficStrategy %q: spec.selector %s matches no usable DatabaseEndpoint", ts.Name,
		metav1.FormatLabelSelector(ts.Spec.Selector))
	sel, _ := selector(ts) // valid: the caller selected with it
	var names []string
	var first string
	for _, ep := range n.endpoints {
		if sel.Matches(labels.Set(ep.obj.Labels)) {
			continue // matched but unusable: its own problem says why
		}
		if first == "" {
			first = ep.obj.Name
		}
		l := labels.Set(ep.obj.Labels).String()
		if l == "" {
			l = "no labels"
		}
		names = append(names, fmt.Sprintf("%s (%s)", ep.obj.Name, l))
	}
	if len(names) == 0 {
		fmt.Fprintf(&b, "; namespace %s has no other DatabaseEndpoint with a MySQL server", n.name)
		return b.String()
	}
	fmt.Fprintf(&b, "; not matched in namespace %s: %s", n.name, strings.Join(names, ", "))
	if sel := ts.Spec.Selector; sel != nil && len(sel.MatchExpressions) == 0 && len(sel.MatchLabels) > 0 {
		keys := make([]string, 0, len(sel.MatchLabels))
		for k := range sel.MatchLabels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		pairs := make([]string, 0, len(keys))
		for _, k := range keys {
			pairs = append(pairs, k+"="+sel.MatchLabels[k])
		}
		fmt.Fprintf(&b, "; to select an endpoint: kubectl label databaseendpoint -n %s %s %s",
			n.name, first, strings.Join(pairs, " "))
	}
	return b.String()
}

// BuildProxyConfig builds the configuration of the sidecars of application app (the
// VirtualDatabase named app) in namespace ns. It returns ErrVirtualDatabaseNotFound (wrapped)
// when there is no such VirtualDatabase; every other difficulty is a Problem, and the services
// concerned are left out. The result has no Version: the config server sets it.
func BuildProxyConfig(ns, app string, objs Objects) (*proxyconfig.Config, []Problem, error) {
	var vdb *v1alpha1.VirtualDatabase
	for i := range objs.VirtualDatabases {
		if o := &objs.VirtualDatabases[i]; o.Name == app && inNamespace(o.Namespace, ns) {
			vdb = o
			break
		}
	}
	if vdb == nil {
		return nil, nil, fmt.Errorf("%w: %s/%s", ErrVirtualDatabaseNotFound, ns, app)
	}
	n := index(ns, &objs)
	b := &proxyBuilder{n: n, vdb: vdb, used: map[string]*endpoint{}}
	cfg := &proxyconfig.Config{
		Admin:     proxyconfig.Admin{Host: AdminHost, Port: AdminPort, LogLevel: AdminLogLevel},
		Proxy:     proxyconfig.Proxy{Config: []proxyconfig.Listener{}},
		MySQL:     proxyconfig.MySQL{Nodes: []proxyconfig.Node{}},
		NodeGroup: proxyconfig.NodeGroup{Members: []proxyconfig.NodeGroupMember{}},
	}
	for i := range vdb.Spec.Services {
		svc := &vdb.Spec.Services[i]
		s := b.service(svc)
		if s == nil {
			continue
		}
		if err := b.mergeGroups(s.groups); err != nil {
			b.ps.add(b.vdbProblem(svc, v1alpha1.ReasonInvalidRule, "%s", err))
			continue
		}
		for _, ep := range s.nodes {
			b.used[ep.obj.Name] = ep
		}
		cfg.Proxy.Config = append(cfg.Proxy.Config, *s.listener)
	}
	for _, ep := range n.endpoints {
		if b.used[ep.obj.Name] != nil {
			cfg.MySQL.Nodes = append(cfg.MySQL.Nodes, ep.node)
		}
	}
	cfg.NodeGroup.Members = append(cfg.NodeGroup.Members, b.groups...)
	// A VirtualDatabase without services asks for no listener; one whose
	// services are all broken does not, and a sidecar keeps its listeners.
	cfg.Proxy.AllowNoListeners = len(vdb.Spec.Services) == 0
	if len(cfg.Proxy.Config) > 1 {
		if err := check(cfg); err != nil {
			b.ps.add(Problem{Kind: KindVirtualDatabase, Namespace: ns, Name: vdb.Name, Reason: v1alpha1.ReasonInvalidSpec,
				Message: err.Error()})
		}
	}
	return cfg, b.ps.list, nil
}

type proxyBuilder struct {
	n      *namespace
	vdb    *v1alpha1.VirtualDatabase
	ps     problems
	used   map[string]*endpoint
	groups []proxyconfig.NodeGroupMember
}

// built is one service's listener and what it needs in the rest of the configuration.
type built struct {
	listener *proxyconfig.Listener
	nodes    []*endpoint // balancer nodes and datanodes
	groups   []proxyconfig.NodeGroupMember
}

func (b *proxyBuilder) vdbProblem(svc *v1alpha1.VirtualDatabaseService, reason, format string, args ...any) Problem {
	return Problem{Kind: KindVirtualDatabase, Namespace: b.n.name, Name: b.vdb.Name, Service: svc.Name,
		Reason: reason, Message: fmt.Sprintf(format, args...)}
}

func (b *proxyBuilder) mergeGroups(gs []proxyconfig.NodeGroupMember) error {
	for _, g := range gs {
		if i := slices.IndexFunc(b.groups, func(m proxyconfig.NodeGroupMember) bool { return m.Name == g.Name }); i >= 0 {
			if !slices.Equal(b.groups[i].Reads, g.Reads) || b.groups[i].ReadWrite != g.ReadWrite {
				return fmt.Errorf("node group %q is also used by another service with other endpoints", g.Name)
			}
		}
	}
	for _, g := range gs {
		if !slices.ContainsFunc(b.groups, func(m proxyconfig.NodeGroupMember) bool { return m.Name == g.Name }) {
			b.groups = append(b.groups, g)
		}
	}
	return nil
}

// service builds one VirtualDatabase service, or returns nil after reporting why it cannot.
func (b *proxyBuilder) service(svc *v1alpha1.VirtualDatabaseService) *built {
	n := b.n
	fail := func(reason, format string, args ...any) *built {
		b.ps.add(b.vdbProblem(svc, reason, format, args...))
		return nil
	}
	m := svc.DatabaseMySQL
	if m == nil {
		return fail(v1alpha1.ReasonInvalidSpec, "databaseMySQL is missing")
	}
	password, p := n.password(m.Password, m.PasswordSecretRef)
	if p != "" {
		return fail(v1alpha1.ReasonSecretNotFound, "databaseMySQL.passwordSecretRef: %s", p)
	}
	if password == "" {
		// pisa-proxy refuses a listener anyone can log in to: say so here
		// rather than serving a configuration every sidecar rejects.
		return fail(v1alpha1.ReasonInvalidSpec,
			"databaseMySQL.password (or passwordSecretRef) is empty: pisa-proxy refuses listeners without a password")
	}
	var ts *v1alpha1.TrafficStrategy
	if svc.TrafficStrategy != "" {
		if ts = n.ts[svc.TrafficStrategy]; ts == nil {
			return fail(v1alpha1.ReasonTrafficStrategyNotFound, "TrafficStrategy %q not found", svc.TrafficStrategy)
		}
	}
	tsFail := func(reason, format string, args ...any) *built {
		b.ps.add(Problem{Kind: KindTrafficStrategy, Namespace: n.name, Name: ts.Name, Service: svc.Name,
			Reason: reason, Message: fmt.Sprintf(format, args...)})
		return nil
	}
	sel, err := n.selected(ts, &b.ps)
	if err != nil {
		return tsFail(v1alpha1.ReasonInvalidSpec, "spec.selector: %v", err)
	}
	if len(sel) == 0 {
		if ts == nil {
			return fail(v1alpha1.ReasonNoEndpoints, "no usable DatabaseEndpoint in namespace %s", n.name)
		}
		return tsFail(v1alpha1.ReasonNoEndpoints, "%s", n.unmatched(ts))
	}

	host, port := m.Host, int(m.Port)
	if host == "" {
		host = "0.0.0.0"
	}
	if port == 0 {
		port = 3306
	}
	l := &proxyconfig.Listener{
		BackendType:   proxyconfig.BackendMySQL,
		Name:          svc.Name,
		ListenAddr:    net.JoinHostPort(host, strconv.Itoa(port)),
		User:          m.User,
		Password:      password,
		DB:            m.DB,
		PoolSize:      int(m.PoolSize),
		ServerVersion: m.ServerVersion,
	}
	out := &built{listener: l, nodes: sel}

	balance := proxyconfig.BalanceRandom
	if ts != nil && ts.Spec.LoadBalance != nil && ts.Spec.LoadBalance.SimpleLoadBalance != nil &&
		ts.Spec.LoadBalance.SimpleLoadBalance.Kind != "" {
		balance = string(ts.Spec.LoadBalance.SimpleLoadBalance.Kind)
	}
	l.SimpleLoadBalance = &proxyconfig.SimpleLoadBalance{BalanceType: balance, Nodes: names(sel)}

	// The listener must be accepted by the proxy on its own (a rule the proxy refuses would make
	// the sidecar reject the whole configuration, every service included), and what it would
	// refuse is the fault of the object that brought it: check it as each object's part is added.
	if err := checkAlone(out); err != nil {
		return fail(v1alpha1.ReasonInvalidSpec, "%s", err)
	}
	if ts != nil {
		if ts.Spec.LoadBalance != nil && ts.Spec.LoadBalance.ReadWriteSplitting != nil {
			rw, reason, err := b.readWriteSplitting(ts.Spec.LoadBalance.ReadWriteSplitting)
			if err != nil {
				return tsFail(reason, "%v", err)
			}
			// Read/write splitting routes over the selected endpoints only (without nodes it
			// would use every node of the configuration, as in Pisanix).
			rw.Nodes = names(sel)
			l.ReadWriteSplitting = rw
		}
		if reason, err := b.governance(ts, l); err != nil {
			return tsFail(reason, "%v", err)
		}
		if err := checkAlone(out); err != nil {
			return tsFail(v1alpha1.ReasonInvalidRule, "%s", err)
		}
	}

	if svc.SecurityClaim != "" && !b.addSecurityClaim(svc, out) {
		return nil
	}
	if svc.DataShard != "" {
		ds := n.ds[svc.DataShard]
		if ds == nil {
			return fail(v1alpha1.ReasonDataShardNotFound, "DataShard %q not found", svc.DataShard)
		}
		if reason, err := b.sharding(ds, sel, out); err != nil {
			b.ps.add(Problem{Kind: KindDataShard, Namespace: n.name, Name: ds.Name, Service: svc.Name,
				Reason: reason, Message: err.Error()})
			return nil
		}
		if err := checkAlone(out); err != nil {
			b.ps.add(Problem{Kind: KindDataShard, Namespace: n.name, Name: ds.Name, Service: svc.Name,
				Reason: v1alpha1.ReasonInvalidRule, Message: err.Error()})
			return nil
		}
	}
	return out
}

func names(eps []*endpoint) []string {
	out := make([]string, len(eps))
	for i, ep := range eps {
		out[i] = ep.obj.Name
	}
	return out
}

func rules(in []v1alpha1.ReadWriteSplittingRule) []proxyconfig.Rule {
	out := make([]proxyconfig.Rule, 0, len(in))
	for _, r := range in {
		out = append(out, proxyconfig.Rule{Name: r.Name, Type: string(r.Type), Regex: r.Regex,
			Target: string(r.Target), AlgorithmName: string(r.AlgorithmName)})
	}
	return out
}

// readWriteSplitting converts the TrafficStrategy's readWriteSplitting; dynamic wins over
// static when both are set (as in Pisanix).
func (b *proxyBuilder) readWriteSplitting(in *v1alpha1.ReadWriteSplitting) (*proxyconfig.ReadWriteSplitting, string, error) {
	switch {
	case in.Dynamic != nil:
		d := in.Dynamic
		mha := d.Discovery.MasterHighAvailability
		if mha == nil {
			return nil, v1alpha1.ReasonInvalidRule,
				errors.New("spec.loadBalance.readWriteSplitting.dynamic.discovery.masterHighAvailability is required")
		}
		if mp := mha.MonitorPeriod; mp != nil && mha.MonitorInterval != 0 && *mp != mha.MonitorInterval {
			return nil, v1alpha1.ReasonInvalidSpec, fmt.Errorf("spec.loadBalance.readWriteSplitting.dynamic.discovery.masterHighAvailability: "+
				"monitorInterval (%d) and its deprecated spelling monitorPeriod (%d) differ; remove monitorPeriod", mha.MonitorInterval, *mp)
		}
		password, p := b.n.password(mha.Password, mha.PasswordSecretRef)
		if p != "" {
			return nil, v1alpha1.ReasonSecretNotFound,
				fmt.Errorf("spec.loadBalance.readWriteSplitting.dynamic.discovery.masterHighAvailability.passwordSecretRef: %s", p)
		}
		return &proxyconfig.ReadWriteSplitting{Dynamic: &proxyconfig.RWSplittingDynamic{
			DefaultTarget: target(d.DefaultTarget),
			Rules:         rules(d.Rules),
			Discovery:     discovery(mha, password),
		}}, "", nil
	case in.Static != nil:
		return &proxyconfig.ReadWriteSplitting{Static: &proxyconfig.RWSplittingStatic{
			DefaultTarget: target(in.Static.DefaultTarget),
			Rules:         rules(in.Static.Rules),
		}}, "", nil
	}
	return nil, v1alpha1.ReasonInvalidRule, errors.New("spec.loadBalance.readWriteSplitting needs static or dynamic")
}

func target(t v1alpha1.ReadWriteSplittingTarget) string {
	if t == "" {
		return proxyconfig.DefaultTarget
	}
	return string(t)
}

// discovery flattens masterHighAvailability; a missing probe or a zero value gets pisa-proxy's
// default, written out so that the served configuration says what runs.
func discovery(mha *v1alpha1.MasterHighAvailability, password string) *proxyconfig.Discovery {
	or := func(v int64, def int) int {
		if v <= 0 {
			return def
		}
		return int(v)
	}
	probe := func(p *v1alpha1.Probe) (period, timeout, threshold int) {
		if p == nil {
			p = &v1alpha1.Probe{}
		}
		return or(p.PeriodMilliseconds, proxyconfig.DefaultProbePeriodMS),
			or(p.TimeoutMilliseconds, proxyconfig.DefaultProbeTimeoutMS),
			or(p.FailureThreshold, proxyconfig.DefaultFailureThreshold)
	}
	interval := mha.MonitorInterval
	if interval == 0 && mha.MonitorPeriod != nil {
		interval = *mha.MonitorPeriod // Pisanix v0.2.0–v0.3.2 spelling
	}
	d := &proxyconfig.Discovery{Type: proxyconfig.DefaultDiscoveryType, User: mha.User, Password: password,
		MonitorPeriod: or(interval, proxyconfig.DefaultMonitorPeriodMS)}
	d.ConnectPeriod, d.ConnectTimeout, d.ConnectFailureThreshold = probe(mha.ConnectionProbe)
	d.PingPeriod, d.PingTimeout, d.PingFailureThreshold = probe(mha.PingProbe)
	d.ReadOnlyPeriod, d.ReadOnlyTimeout, d.ReadOnlyFailureThreshold = probe(mha.ReadOnlyProbe)
	var lag *v1alpha1.Probe
	d.MaxReplicationLag = proxyconfig.DefaultMaxReplicationLag
	if p := mha.ReplicationLagProbe; p != nil {
		lag = &p.Probe
		d.MaxReplicationLag = or(p.MaxReplicationLag, proxyconfig.DefaultMaxReplicationLag)
	}
	d.ReplicationLagPeriod, d.ReplicationLagTimeout, d.ReplicationLagFailureThreshold = probe(lag)
	return d
}

// mustJSON marshals values that cannot fail to marshal (plain structs).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // unreachable: configuration types hold no channels, funcs or cycles
	}
	return b
}

// checkAlone validates a listener the way the sidecar will: in a configuration of its own,
// decoded strictly, defaulted and validated.
func checkAlone(s *built) error {
	cfg := &proxyconfig.Config{Proxy: proxyconfig.Proxy{Config: []proxyconfig.Listener{*s.listener}}}
	for _, ep := range s.nodes {
		if cfg.Node(ep.obj.Name) == nil {
			cfg.MySQL.Nodes = append(cfg.MySQL.Nodes, ep.node)
		}
	}
	cfg.NodeGroup.Members = s.groups
	if err := check(cfg); err != nil {
		// Name the listener: its index in this one-listener config means nothing to users.
		return errors.New(strings.ReplaceAll(err.Error(), "proxy.config[0]", fmt.Sprintf("listener %q", s.listener.Name)))
	}
	return nil
}

// check validates cfg as a sidecar will. A key generator without a worker id of its own is
// checked with a proxy.key_worker_id set: the config server gives each sidecar pod its own.
func check(cfg *proxyconfig.Config) error {
	if cfg.Proxy.KeyWorkerID == nil && cfg.NeedsKeyWorkerID() {
		c := *cfg
		c.Proxy.KeyWorkerID = new(0)
		cfg = &c
	}
	_, err := proxyconfig.Parse(mustJSON(cfg), proxyconfig.JSON)
	return err
}

// Deprecations lists the fields of ts kept only for Pisanix compatibility, each with what to
// write instead; pisa-controller reports them in the TrafficStrategy's Deprecated condition.
func Deprecations(ts *v1alpha1.TrafficStrategy) []string {
	lb := ts.Spec.LoadBalance
	if lb == nil || lb.ReadWriteSplitting == nil || lb.ReadWriteSplitting.Dynamic == nil {
		return nil
	}
	mha := lb.ReadWriteSplitting.Dynamic.Discovery.MasterHighAvailability
	if mha == nil {
		return nil
	}
	const path = "spec.loadBalance.readWriteSplitting.dynamic.discovery.masterHighAvailability"
	var out []string
	if mha.MonitorPeriod != nil {
		out = append(out, fmt.Sprintf("%s.monitorPeriod is deprecated (Pisanix v0.2.0–v0.3.2 spelling): rename it to monitorInterval", path))
	}
	probes := []struct {
		name string
		p    *v1alpha1.Probe
	}{{"connectionProbe", mha.ConnectionProbe}, {"pingProbe", mha.PingProbe}, {"readOnlyProbe", mha.ReadOnlyProbe}}
	if mha.ReplicationLagProbe != nil {
		probes = append(probes, struct {
			name string
			p    *v1alpha1.Probe
		}{"replicationLagProbe", &mha.ReplicationLagProbe.Probe})
	}
	for _, pr := range probes {
		if pr.p != nil && pr.p.SuccessThreshold > 1 {
			out = append(out, fmt.Sprintf("%s.%s.successThreshold %d is not honoured: one successful check marks an endpoint up "+
				"(as in Pisanix, which never read it); remove it or set 1", path, pr.name, pr.p.SuccessThreshold))
		}
	}
	return out
}
