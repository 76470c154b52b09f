package builder

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
	"github.com/database-mesh/pisanix-go/internal/daemonconfig"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// DaemonAppName is the daemon "app" name of a VirtualDatabase: "<namespace>.<name>".
// Pisanix used the bare name, so two namespaces with a VirtualDatabase of the same name collided
// (and its TrafficStrategies and QoSClaims were matched across namespaces). A namespace name
// has no dot, so the first dot separates the two.
func DaemonAppName(namespace, name string) string { return namespace + "." + name }

// BuildDaemonConfig builds pisa-daemon's configuration (the daemonconfigs JSON) from the objects
// of every namespace: one app per VirtualDatabase having a service with a qosClaim, one service
// per such service, with the QoSClaim's qos_group and, as endpoints, the host and port of the
// DatabaseEndpoints the service's TrafficStrategy selects (every endpoint of the namespace when
// the service has no TrafficStrategy, as for the proxy). Everything is looked up in the
// VirtualDatabase's own namespace. Services that cannot be built are reported and left out.
// Apps are sorted by namespace and name; the result has no Version and no global section.
func BuildDaemonConfig(all AllNamespaces) (*daemonconfig.Config, []Problem) {
	cfg := &daemonconfig.Config{App: []daemonconfig.App{}}
	var ps problems
	nss := make([]string, 0, len(all))
	for ns := range all {
		nss = append(nss, ns)
	}
	slices.Sort(nss)
	for _, ns := range nss {
		objs := all[ns]
		n := index(ns, &objs)
		vdbs := make([]*v1alpha1.VirtualDatabase, 0, len(objs.VirtualDatabases))
		for i := range objs.VirtualDatabases {
			if inNamespace(objs.VirtualDatabases[i].Namespace, ns) {
				vdbs = append(vdbs, &objs.VirtualDatabases[i])
			}
		}
		slices.SortFunc(vdbs, func(a, b *v1alpha1.VirtualDatabase) int { return cmp.Compare(a.Name, b.Name) })
		for _, vdb := range vdbs {
			app := daemonconfig.App{Name: DaemonAppName(ns, vdb.Name), Service: []daemonconfig.Service{}}
			for i := range vdb.Spec.Services {
				if s, ok := daemonService(n, vdb, &vdb.Spec.Services[i], &ps); ok {
					app.Service = append(app.Service, s)
				}
			}
			if len(app.Service) > 0 {
				cfg.App = append(cfg.App, app)
			}
		}
	}
	return cfg, ps.list
}

func daemonService(n *namespace, vdb *v1alpha1.VirtualDatabase, svc *v1alpha1.VirtualDatabaseService, ps *problems) (daemonconfig.Service, bool) {
	if svc.QoSClaim == "" {
		return daemonconfig.Service{}, false
	}
	fail := func(kind, name, reason, format string, args ...any) (daemonconfig.Service, bool) {
		ps.add(Problem{Kind: kind, Namespace: n.name, Name: name, Service: svc.Name, Reason: reason,
			Message: fmt.Sprintf(format, args...)})
		return daemonconfig.Service{}, false
	}
	qc := n.qc[svc.QoSClaim]
	if qc == nil {
		return fail(KindVirtualDatabase, vdb.Name, v1alpha1.ReasonQoSClaimNotFound, "QoSClaim %q not found", svc.QoSClaim)
	}
	g := qc.Spec.TrafficQoS.QoSGroup
	if g == nil || g.Rate == "" {
		return fail(KindQoSClaim, qc.Name, v1alpha1.ReasonInvalidSpec, "spec.trafficQoS.qos_group.rate is empty")
	}
	var ts *v1alpha1.TrafficStrategy
	if svc.TrafficStrategy != "" {
		if ts = n.ts[svc.TrafficStrategy]; ts == nil {
			return fail(KindVirtualDatabase, vdb.Name, v1alpha1.ReasonTrafficStrategyNotFound,
				"TrafficStrategy %q not found", svc.TrafficStrategy)
		}
	}
	sel, err := n.selected(ts, ps)
	if err != nil {
		return fail(KindTrafficStrategy, ts.Name, v1alpha1.ReasonInvalidSpec, "spec.selector: %v", err)
	}
	if len(sel) == 0 {
		if ts == nil {
			return fail(KindVirtualDatabase, vdb.Name, v1alpha1.ReasonNoEndpoints, "no usable DatabaseEndpoint in namespace %s", n.name)
		}
		return fail(KindTrafficStrategy, ts.Name, v1alpha1.ReasonNoEndpoints, "the selector matches no usable DatabaseEndpoint")
	}
	s := daemonconfig.Service{Name: svc.Name, QoSGroup: &daemonconfig.QoSGroup{Rate: g.Rate, Ceil: g.Ceil}, Endpoints: []daemonconfig.Endpoint{}}
	for _, ep := range sel {
		e := daemonconfig.Endpoint{IP: ep.node.Host, Port: ep.node.Port}
		if e.Port == 0 {
			e.Port = proxyconfig.DefaultNodePort
		}
		if !slices.Contains(s.Endpoints, e) {
			s.Endpoints = append(s.Endpoints, e)
		}
	}
	return s, true
}
