package proxyconfig

import "fmt"

// Warnings returns what the configuration asks for that works differently
// from what a reader might expect, without being an error: each starts with
// the path of the key, like the problems of Validate. pisa-proxy logs them
// when it applies the configuration. Call it after Validate succeeded.
func (c *Config) Warnings() []string {
	var out []string
	for i := range c.Proxy.Config {
		l := &c.Proxy.Config[i]
		p := fmt.Sprintf("proxy.config[%d]", i)
		rw := l.ReadWriteSplitting
		if rw == nil || l.BackendType != BackendMySQL {
			continue
		}
		hasWriter := false
		for _, name := range l.RWNodeNames(c) {
			if n := c.Node(name); n != nil && n.Role == RoleReadWrite {
				hasWriter = true
			}
		}
		if !hasWriter {
			out = append(out, fmt.Sprintf("%s.read_write_splitting: no node with role %q: the listener serves reads only "+
				"and answers statements that need the writer (writes, transactions, SET autocommit=0, locking reads) with ERROR 1290; "+
				"add a [[mysql.node]] with role = %q to allow them", p, RoleReadWrite, RoleReadWrite))
		}
		if lb := l.SimpleLoadBalance; lb != nil && len(lb.Nodes) > 0 && len(rw.Nodes) == 0 {
			out = append(out, fmt.Sprintf("%s.simple_loadbalance.nodes: read/write splitting routes over every [[mysql.node]] by role "+
				"(as Pisanix did); nodes only narrows the balancer of commands it does not route (COM_INIT_DB, COM_FIELD_LIST); "+
				"set read_write_splitting.nodes to narrow read/write splitting", p))
		}
	}
	return out
}
