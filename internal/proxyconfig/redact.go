package proxyconfig

import "encoding/json"

// RedactedPassword replaces passwords in Redacted.
const RedactedPassword = "******"

// Clone returns a deep copy of c.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	// Every field is JSON-representable and round-trips exactly, so a JSON
	// round trip is a complete deep copy that stays correct as fields are
	// added.
	b, err := json.Marshal(c)
	if err != nil {
		panic("proxyconfig: cannot copy config: " + err.Error())
	}
	out := new(Config)
	if err := json.Unmarshal(b, out); err != nil {
		panic("proxyconfig: cannot copy config: " + err.Error())
	}
	return out
}

// Redacted returns a deep copy of c in which every password (listener,
// extra users, discovery, nodes) and the admin token are replaced by
// "******", for logging and
// the admin /config endpoint.
func (c *Config) Redacted() *Config {
	out := c.Clone()
	if out == nil {
		return nil
	}
	if out.Admin.Token != "" {
		out.Admin.Token = RedactedPassword
	}
	for i := range out.Proxy.Config {
		l := &out.Proxy.Config[i]
		l.Password = RedactedPassword
		for j := range l.Users {
			l.Users[j].Password = RedactedPassword
		}
		if l.Access != nil {
			for j := range l.Access.Users {
				l.Access.Users[j].Password = RedactedPassword
			}
		}
		if sc := l.SecurityClaim; sc != nil {
			for j := range sc.Keys {
				if sc.Keys[j].Value != "" {
					sc.Keys[j].Value = RedactedPassword
				}
			}
		}
		if rw := l.ReadWriteSplitting; rw != nil && rw.Dynamic != nil && rw.Dynamic.Discovery != nil {
			rw.Dynamic.Discovery.Password = RedactedPassword
		}
	}
	for i := range out.MySQL.Nodes {
		out.MySQL.Nodes[i].Password = RedactedPassword
	}
	for i := range out.ShardingSphereProxy.Nodes {
		out.ShardingSphereProxy.Nodes[i].Password = RedactedPassword
	}
	return out
}
