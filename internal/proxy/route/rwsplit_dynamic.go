package route

import (
	"github.com/database-mesh/pisanix-go/internal/proxy/route/discovery"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// ApplyTopology makes a discovery topology the router's membership; pass it
// as discovery.Options.OnChange:
//
//	mon, err := discovery.New(dcfg, DiscoveryNodes(nodes), discovery.Options{OnChange: router.ApplyTopology})
func (r *RWRouter) ApplyTopology(t discovery.Topology) {
	r.SetMembership(t.Writers(), t.Readers)
}

// NodeInfos converts a listener's [[mysql.node]] list (in order) for
// NewRWRouter.
func NodeInfos(nodes []proxyconfig.Node) []NodeInfo {
	out := make([]NodeInfo, len(nodes))
	for i, n := range nodes {
		role := n.Role
		if role == "" {
			role = RoleReadWrite
		}
		out[i] = NodeInfo{Name: n.Name, Role: role, Weight: n.EffectiveWeight()}
	}
	return out
}

// DiscoveryNodes converts a listener's [[mysql.node]] list (in order) for
// discovery.New.
func DiscoveryNodes(nodes []proxyconfig.Node) []discovery.Node {
	out := make([]discovery.Node, len(nodes))
	for i, n := range nodes {
		role := n.Role
		if role == "" {
			role = RoleReadWrite
		}
		out[i] = discovery.Node{Name: n.Name, Addr: n.Addr(), Role: role}
	}
	return out
}
