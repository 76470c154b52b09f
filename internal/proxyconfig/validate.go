package proxyconfig

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ValidationError lists every problem found by Validate. Each problem
// starts with the path of the offending key, e.g.
// "proxy.config[0].listen_addr: ...".
type ValidationError struct {
	// File is set by Load.
	File     string
	Problems []string
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if len(e.Problems) == 1 {
		b.WriteString("invalid configuration: ")
		b.WriteString(e.Problems[0])
		return b.String()
	}
	fmt.Fprintf(&b, "invalid configuration (%d problems):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p)
	}
	return b.String()
}

type validator struct {
	problems []string
}

func (v *validator) addf(path, format string, args ...any) {
	v.problems = append(v.problems, path+": "+fmt.Sprintf(format, args...))
}

var logLevels = []string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}

// Validate checks the configuration (normally after ApplyDefaults) and
// returns a *ValidationError listing all problems, or nil.
func (c *Config) Validate() error {
	v := &validator{}
	c.validateAdmin(v)
	c.validateNodes(v, "mysql.node", c.MySQL.Nodes)
	c.validateNodes(v, "shardingsphere_proxy.node", c.ShardingSphereProxy.Nodes)
	c.validateNodeGroups(v)

	if len(c.MySQL.Nodes) == 0 {
		for _, l := range c.Proxy.Config {
			if l.BackendType == BackendMySQL {
				v.addf("mysql.node", "at least one [[mysql.node]] is required when a mysql listener is configured")
				break
			}
		}
	}

	names := map[string]int{}
	addrs := map[string]int{}
	for i := range c.Proxy.Config {
		l := &c.Proxy.Config[i]
		p := fmt.Sprintf("proxy.config[%d]", i)
		if l.Name != "" {
			if j, dup := names[l.Name]; dup {
				v.addf(p+".name", "duplicate listener name %q (also proxy.config[%d])", l.Name, j)
			} else {
				names[l.Name] = i
			}
		}
		if key, ok := v.listenAddr(p+".listen_addr", l.ListenAddr); ok && key != "" {
			if j, dup := addrs[key]; dup {
				v.addf(p+".listen_addr", "address %q is already used by proxy.config[%d]", l.ListenAddr, j)
			} else {
				addrs[key] = i
			}
		}
		c.validateListener(v, p, l)
	}

	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

// maxUserNameChars is MariaDB's USERNAME_CHAR_LENGTH.
const maxUserNameChars = 128

// validateAccounts refuses a listener that lets someone in without a
// password (no account at all means the empty user with no password),
// unless it says allow_passwordless = true.
func (c *Config) validateAccounts(v *validator, p string, l *Listener) {
	long := func(path, user string) {
		if n := utf8.RuneCountInString(user); n > maxUserNameChars {
			v.addf(path, "user name of %d characters: MariaDB allows %d, and a longer name sent by a client is cut to that, so it could never log in", n, maxUserNameChars)
		}
	}
	long(p+".user", l.User)
	for i, u := range l.Users {
		long(fmt.Sprintf("%s.users[%d].user", p, i), u.User)
	}
	if l.Access != nil {
		for i, u := range l.Access.Users {
			long(fmt.Sprintf("%s.access.users[%d].user", p, i), u.User)
		}
	}
	if l.AllowPasswordless {
		return
	}
	// With backend_accounts the backend's accounts log in with their own
	// passwords, and an access.users entry without one names such an
	// account.
	named := l.User != "" || l.BackendAccounts
	if l.User != "" && l.Password == "" {
		v.addf(p+".password", "user %q has no password: anyone who knows the name logs in with the backend account's rights; set a password, or allow_passwordless = true to mean it", l.User)
	}
	for i, u := range l.Users {
		if u.User != "" {
			named = true
		}
		if u.User != "" && u.Password == "" {
			v.addf(fmt.Sprintf("%s.users[%d].password", p, i), "user %q has no password; set one, or allow_passwordless = true on the listener to mean it", u.User)
		}
	}
	if l.Access != nil {
		for i, u := range l.Access.Users {
			if u.User != "" {
				named = true
			}
			if u.User != "" && u.Password == "" && !l.BackendAccounts {
				v.addf(fmt.Sprintf("%s.access.users[%d].password", p, i), "user %q has no password; set one, or allow_passwordless = true on the listener to mean it", u.User)
			}
		}
	}
	if !named {
		v.addf(p+".user", "no account: without user/password the listener accepts anyone (the empty user, no password) with the backend account's rights; set user and password, or allow_passwordless = true to mean it")
	}
}

func (c *Config) validateAdmin(v *validator) {
	a := &c.Admin
	if a.Port < 1 || a.Port > 65535 {
		v.addf("admin.port", "must be between 1 and 65535, got %d", a.Port)
	}
	if a.Host != "" && net.ParseIP(a.Host) == nil && !validHostname(a.Host) {
		v.addf("admin.host", "%q is neither an IP address nor a host name", a.Host)
	}
	lvl := strings.ToUpper(a.LogLevel)
	if x := c.Proxy.XA; x.ProxyID != "" && !validProxyID.MatchString(x.ProxyID) {
		v.addf("proxy.xa.proxy_id", "must be 1 to 32 of A-Z a-z 0-9 . _ - (it is part of every XA transaction id), got %q", x.ProxyID)
	}
	if c.Proxy.XA.LogMaxBytes < 0 {
		v.addf("proxy.xa.log_max_bytes", "must be >= 0, got %d", c.Proxy.XA.LogMaxBytes)
	}
	if c.Proxy.XA.RecoveryInterval.Duration < 0 {
		v.addf("proxy.xa.recovery_interval", "must be >= 0, got %s", c.Proxy.XA.RecoveryInterval.Duration)
	}
	if id := c.Proxy.KeyWorkerID; id != nil && (*id < 0 || *id > MaxKeyWorkerID) {
		v.addf("proxy.key_worker_id", "must be between 0 and %d, got %d", MaxKeyWorkerID, *id)
	}
	if c.Proxy.MaxPacketMemory < 0 {
		v.addf("proxy.max_packet_memory", "must be >= 0, got %d", c.Proxy.MaxPacketMemory)
	}
	if lvl != "" && !contains(logLevels, lvl) {
		v.addf("admin.log_level", "must be one of %s, got %q", strings.Join(logLevels, "|"), a.LogLevel)
	}
}

// listenAddr checks a host:port listen address and returns a key for the
// uniqueness check ("" when the port is 0, i.e. ephemeral).
func (v *validator) listenAddr(path, addr string) (string, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.addf(path, "%q is not a host:port address: %v", addr, errText(err))
		return "", false
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		v.addf(path, "invalid port %q in %q", port, addr)
		return "", false
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		v.addf(path, "invalid host %q in %q", host, addr)
		return "", false
	}
	if n == 0 {
		return "", true
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), true
}

func (c *Config) validateNodes(v *validator, section string, nodes []Node) {
	names := map[string]int{}
	allZero := len(nodes) > 0
	for i := range nodes {
		n := &nodes[i]
		p := fmt.Sprintf("%s[%d]", section, i)
		if n.Name == "" {
			v.addf(p+".name", "must not be empty")
		} else if j, dup := names[n.Name]; dup {
			v.addf(p+".name", "duplicate node name %q (also %s[%d])", n.Name, section, j)
		} else {
			names[n.Name] = i
		}
		if n.User == "" {
			v.addf(p+".user", "must not be empty")
		}
		if n.Host == "" {
			v.addf(p+".host", "must not be empty")
		} else if net.ParseIP(n.Host) == nil && !validHostname(n.Host) {
			v.addf(p+".host", "%q is neither an IP address nor a host name", n.Host)
		}
		if n.Port < 1 || n.Port > 65535 {
			v.addf(p+".port", "must be between 1 and 65535, got %d", n.Port)
		}
		w := n.EffectiveWeight()
		if w < 0 {
			v.addf(p+".weight", "must be >= 0 (0 = drained), got %d", w)
		}
		if w > 0 {
			allZero = false
		}
		if n.Role != RoleRead && n.Role != RoleReadWrite {
			v.addf(p+".role", "must be %q or %q, got %q", RoleRead, RoleReadWrite, n.Role)
		}
		v.tlsPair(p+".tls", n.TLS.CertFile, n.TLS.KeyFile)
		switch m := n.TLS.Mode; m {
		case "", TLSPreferred, TLSRequired, TLSDisabled:
			if n.TLS.Enabled && m != "" && m != TLSRequired {
				v.addf(p+".tls.mode", "%q contradicts enabled = true", m)
			}
		default:
			v.addf(p+".tls.mode", "must be %q, %q or %q, got %q", TLSPreferred, TLSRequired, TLSDisabled, m)
		}
		v.fileExists(p+".tls.ca_file", n.TLS.CAFile)
	}
	if allZero {
		v.addf(section, "every node has weight 0; at least one must be > 0")
	}
}

func (c *Config) validateNodeGroups(v *validator) {
	names := map[string]int{}
	for i, m := range c.NodeGroup.Members {
		p := fmt.Sprintf("node_group.member[%d]", i)
		if m.Name == "" {
			v.addf(p+".name", "must not be empty")
		} else if j, dup := names[m.Name]; dup {
			v.addf(p+".name", "duplicate node group %q (also node_group.member[%d])", m.Name, j)
		} else {
			names[m.Name] = i
		}
		if m.ReadWrite != "" && c.Node(m.ReadWrite) == nil {
			v.addf(p+".readwrite", "unknown node %q (not in [mysql.node])", m.ReadWrite)
		}
		for k, r := range m.Reads {
			if c.Node(r) == nil {
				v.addf(fmt.Sprintf("%s.reads[%d]", p, k), "unknown node %q (not in [mysql.node])", r)
			}
		}
		if m.ReadWrite == "" && len(m.Reads) == 0 {
			v.addf(p, "has neither readwrite nor reads")
		}
	}
}

func (c *Config) nodeGroup(name string) bool {
	for _, m := range c.NodeGroup.Members {
		if m.Name == name {
			return true
		}
	}
	return false
}

func (c *Config) validateListener(v *validator, p string, l *Listener) {
	switch l.BackendType {
	case BackendMySQL:
	case BackendShardingSphereProxy:
		v.addf(p+".backend_type", "%q is not supported (Pisanix only had a stub); use %q", l.BackendType, BackendMySQL)
	default:
		v.addf(p+".backend_type", "must be %q, got %q", BackendMySQL, l.BackendType)
	}
	if l.PoolSize < 0 {
		v.addf(p+".pool_size", "must be >= 0, got %d", l.PoolSize)
	}
	if l.MaxConnections < 0 {
		v.addf(p+".max_connections", "must be >= 0 (0 = unlimited), got %d", l.MaxConnections)
	}
	v.nonNegative(p+".idle_client_timeout", l.IdleClientTimeout)
	v.nonNegative(p+".idle_transaction_timeout", l.IdleTransactionTimeout)
	v.nonNegative(p+".net_read_timeout", l.NetReadTimeout)
	v.nonNegative(p+".connect_timeout", l.ConnectTimeout)
	if l.MaxHandshakes < 0 {
		v.addf(p+".max_handshakes", "must be >= 0, got %d", l.MaxHandshakes)
	}
	if m := l.MaxAllowedPacket; m != 0 && (m < MinMaxAllowedPacket || m > MaxMaxAllowedPacket) {
		v.addf(p+".max_allowed_packet", "must be between %d and %d bytes (as MariaDB's), got %d", MinMaxAllowedPacket, MaxMaxAllowedPacket, m)
	} else if mem := c.Proxy.MaxPacketMemory; mem > 0 && int64(m) > mem {
		v.addf(p+".max_allowed_packet", "(%d) must not exceed proxy.max_packet_memory (%d): such a packet could never be read", m, mem)
	}
	c.validateAccounts(v, p, l)
	c.validateFailover(v, p, l)
	c.validatePreparedStatements(v, p, l)

	// Users.
	users := map[string]string{}
	if l.User != "" {
		users[l.User] = p + ".user"
	}
	for i, u := range l.Users {
		up := fmt.Sprintf("%s.users[%d]", p, i)
		if u.User == "" {
			v.addf(up+".user", "must not be empty")
			continue
		}
		if prev, dup := users[u.User]; dup {
			v.addf(up+".user", "duplicate user %q (also %s)", u.User, prev)
			continue
		}
		users[u.User] = up
	}

	// TLS.
	v.tlsPair(p+".tls", l.TLS.CertFile, l.TLS.KeyFile)
	if mv := l.TLS.MinVersion; mv != "" && mv != "1.2" && mv != "1.3" {
		v.addf(p+".tls.min_version", "must be \"1.2\" or \"1.3\", got %q", mv)
	}

	// Pool.
	pp := p + ".pool"
	if l.Pool.MaxOpen < 1 {
		v.addf(pp+".max_open", "must be >= 1, got %d", l.Pool.MaxOpen)
	}
	if l.Pool.MaxIdle < 0 {
		v.addf(pp+".max_idle", "must be >= 0, got %d", l.Pool.MaxIdle)
	} else if l.Pool.MaxIdle > l.Pool.MaxOpen {
		v.addf(pp+".max_idle", "(%d) must not exceed max_open (%d)", l.Pool.MaxIdle, l.Pool.MaxOpen)
	}
	v.nonNegative(pp+".idle_timeout", l.Pool.IdleTimeout)
	v.nonNegative(pp+".max_lifetime", l.Pool.MaxLifetime)
	v.nonNegative(pp+".wait_timeout", l.Pool.WaitTimeout)
	v.nonNegative(pp+".connect_timeout", l.Pool.ConnectTimeout)

	// Node selection.
	if lb := l.SimpleLoadBalance; lb != nil {
		v.balance(p+".simple_loadbalance.balance_type", lb.BalanceType)
		if l.BackendType != BackendShardingSphereProxy {
			for i, n := range lb.Nodes {
				if c.Node(n) == nil {
					v.addf(fmt.Sprintf("%s.simple_loadbalance.nodes[%d]", p, i), "unknown node %q (not in [mysql.node])", n)
				}
			}
		}
	}
	if l.BackendType == BackendMySQL && len(c.MySQL.Nodes) > 0 {
		hasPositive := false
		known := 0
		for _, name := range l.NodeNames(c) {
			if n := c.Node(name); n != nil {
				known++
				if n.EffectiveWeight() > 0 {
					hasPositive = true
				}
			}
		}
		if known > 0 && !hasPositive && !c.allWeightsZero() {
			wp := p
			if l.SimpleLoadBalance != nil && len(l.SimpleLoadBalance.Nodes) > 0 {
				wp += ".simple_loadbalance.nodes"
			}
			v.addf(wp, "every node of this listener has weight 0")
		}
	}
	if rw := l.ReadWriteSplitting; rw != nil && l.BackendType != BackendShardingSphereProxy {
		for i, n := range rw.Nodes {
			if c.Node(n) == nil {
				v.addf(fmt.Sprintf("%s.read_write_splitting.nodes[%d]", p, i), "unknown node %q (not in [mysql.node])", n)
			}
		}
	}

	if rw := l.ReadWriteSplitting; rw != nil {
		rp := p + ".read_write_splitting"
		if rw.Static == nil && rw.Dynamic == nil {
			v.addf(rp, "needs a static or dynamic section")
		}
		if s := rw.Static; s != nil {
			v.target(rp+".static.default_target", s.DefaultTarget)
			c.validateRules(v, rp+".static.rule", s.Rules)
		}
		if d := rw.Dynamic; d != nil {
			v.target(rp+".dynamic.default_target", d.DefaultTarget)
			c.validateRules(v, rp+".dynamic.rule", d.Rules)
			if d.Discovery == nil {
				v.addf(rp+".dynamic.discovery", "is required")
			} else {
				validateDiscovery(v, rp+".dynamic.discovery", d.Discovery)
			}
		}
	}

	if rw := l.ReadWriteSplitting; rw != nil {
		switch rw.CausalReads {
		case "", "off", "gtid", "window":
		default:
			v.addf(p+".read_write_splitting.causal_reads", "must be off, gtid or window, got %q", rw.CausalReads)
		}
		if rw.CausalReadsWindow.Duration < 0 || rw.CausalReadsWaitTimeout.Duration < 0 {
			v.addf(p+".read_write_splitting", "causal_reads_window and causal_reads_wait_timeout must not be negative")
		}
	}
	// The governance validators below repeat the per-field checks; run them only when those
	// found nothing, so that one bad regex is reported once.
	before := len(v.problems)
	if pl := l.Plugin; pl != nil {
		for i, cb := range pl.CircuitBreak {
			cp := fmt.Sprintf("%s.plugin.circuit_break[%d]", p, i)
			if len(cb.Regex) == 0 && len(cb.Fingerprint) == 0 {
				v.addf(cp+".regex", "must not be empty (or give fingerprint)")
			}
			v.regexes(cp+".regex", cb.Regex, cb.CaseInsensitive)
		}
		for i, cc := range pl.ConcurrencyControl {
			cp := fmt.Sprintf("%s.plugin.concurrency_control[%d]", p, i)
			if len(cc.Regex) == 0 && len(cc.Fingerprint) == 0 {
				v.addf(cp+".regex", "must not be empty (or give fingerprint)")
			}
			v.regexes(cp+".regex", cc.Regex, cc.CaseInsensitive)
			if cc.MaxConcurrency < 0 {
				v.addf(cp+".max_concurrency", "must be >= 0, got %d", cc.MaxConcurrency)
			}
			if cc.Duration < 0 {
				v.addf(cp+".duration", "must be >= 0 seconds, got %d", cc.Duration)
			}
		}
	}
	if pl := l.Plugin; pl != nil && len(v.problems) == before {
		if err := ValidateCircuitBreaks(pl.CircuitBreak); err != nil {
			v.addf(p+".plugin.circuit_break", "%v", err)
		}
	}
	if len(v.problems) == before {
		if err := l.Governance().Validate(); err != nil {
			v.addf(p, "%v", err)
		}
	}
	if b := l.EndpointBreaker; b != nil {
		if err := b.WithDefaults().Validate(); err != nil {
			v.addf(p+".endpoint_breaker", "%v", err)
		}
	}

	tables := map[string]int{}
	for i := range l.Sharding {
		sp := fmt.Sprintf("%s.sharding[%d]", p, i)
		c.validateSharding(v, sp, &l.Sharding[i], l.ReadWriteSplitting != nil)
		validateKeyGenerator(v, sp, &l.Sharding[i], &c.Proxy)
		validateBroadcast(v, sp, l, i)
		validateBinding(v, sp, l, i)
		// A SELECT on every shard reads all the physical tables of a node
		// at once, on a connection each.
		perNode := 0
		if ts := l.Sharding[i].TableStrategy; ts != nil {
			perNode = ts.ShardingCount
		}
		if dts := l.Sharding[i].DatabaseTableStrategy; dts != nil {
			perNode = dts.ShardingCount
		}
		if l.Pool.MaxOpen > 0 && perNode > l.Pool.MaxOpen {
			v.addf(sp, "sharding_count %d is more than pool.max_open %d: a SELECT on every shard of %q reads its %d tables on one node at once, one connection each",
				perNode, l.Pool.MaxOpen, l.Sharding[i].TableName, perNode)
		}
		if name := l.Sharding[i].TableName; name != "" {
			if j, dup := tables[name]; dup {
				v.addf(sp+".table_name", "table %q already has a rule (%s.sharding[%d]): one rule per table", name, p, j)
			} else {
				tables[name] = i
			}
		}
	}
	switch l.TransactionMode {
	case "", TransactionModeXA, TransactionModeBestEffort:
		if l.TransactionMode != "" && len(l.Sharding) == 0 {
			v.addf(p+".transaction_mode", "applies to sharding listeners only ([[proxy.config.sharding]])")
		}
	default:
		v.addf(p+".transaction_mode", "must be %q or %q, got %q", TransactionModeXA, TransactionModeBestEffort, l.TransactionMode)
	}
	c.validateSecurityClaim(v, p, l)
	if l.BackendAccounts && len(l.Sharding) > 0 {
		// Sharded statements run on the datanodes' accounts.
		v.addf(p+".backend_accounts", "is not supported with sharding")
	}
}

func (c *Config) validateRules(v *validator, p string, rules []Rule) {
	for i := range rules {
		r := &rules[i]
		rp := fmt.Sprintf("%s[%d]", p, i)
		switch r.Type {
		case "", RuleRegex, RuleGeneric:
		default:
			v.addf(rp+".type", "must be %q or %q, got %q", RuleRegex, RuleGeneric, r.Type)
		}
		if r.Kind() == RuleRegex {
			if len(r.Regex) == 0 {
				v.addf(rp+".regex", "a regex rule needs at least one regex")
			}
			if r.Target == "" {
				v.addf(rp+".target", "a regex rule needs a target (%q or %q)", RoleRead, RoleReadWrite)
			} else {
				v.target(rp+".target", r.Target)
			}
			v.regexes(rp+".regex", r.Regex, false)
		} else {
			if len(r.Regex) > 0 {
				v.addf(rp+".regex", "not allowed on a generic rule")
			}
			if r.Target != "" {
				v.addf(rp+".target", "not allowed on a generic rule")
			}
		}
		v.balance(rp+".algorithm_name", r.AlgorithmName)
		for k, g := range r.NodeGroupName {
			if !c.nodeGroup(g) {
				v.addf(fmt.Sprintf("%s.node_group_name[%d]", rp, k), "unknown node group %q (not in [node_group])", g)
			}
		}
	}
}

func validateDiscovery(v *validator, p string, d *Discovery) {
	if d.Type != DefaultDiscoveryType {
		v.addf(p+".type", "must be %q, got %q", DefaultDiscoveryType, d.Type)
	}
	if d.User == "" {
		v.addf(p+".user", "must not be empty")
	}
	ints := []struct {
		key string
		val int
	}{
		{"monitor_period", d.MonitorPeriod},
		{"connect_period", d.ConnectPeriod},
		{"connect_timeout", d.ConnectTimeout},
		{"connect_failure_threshold", d.ConnectFailureThreshold},
		{"ping_period", d.PingPeriod},
		{"ping_timeout", d.PingTimeout},
		{"ping_failure_threshold", d.PingFailureThreshold},
		{"replication_lag_period", d.ReplicationLagPeriod},
		{"replication_lag_timeout", d.ReplicationLagTimeout},
		{"replication_lag_failure_threshold", d.ReplicationLagFailureThreshold},
		{"max_replication_lag", d.MaxReplicationLag},
		{"read_only_period", d.ReadOnlyPeriod},
		{"read_only_timeout", d.ReadOnlyTimeout},
		{"read_only_failure_threshold", d.ReadOnlyFailureThreshold},
	}
	for _, f := range ints {
		if f.val < 0 {
			v.addf(p+"."+f.key, "must be >= 0, got %d", f.val)
		}
	}
}

var shardingAlgorithms = []string{"mod", "crc32mod"}

func (c *Config) validateSharding(v *validator, p string, s *Sharding, withRW bool) {
	if s.TableName == "" {
		v.addf(p+".table_name", "must not be empty")
	}
	if len(s.ActualDatanodes) == 0 {
		v.addf(p+".actual_datanodes", "must not be empty")
	}
	for i, dn := range s.ActualDatanodes {
		if c.Node(dn) == nil && !(withRW && c.nodeGroup(dn)) {
			what := "[mysql.node]"
			if withRW {
				what = "[mysql.node] or [node_group]"
			}
			v.addf(fmt.Sprintf("%s.actual_datanodes[%d]", p, i), "unknown datanode %q (not in %s)", dn, what)
		}
	}
	// Every datanode needs its database (the physical tables' schema), and
	// two datanodes of one rule must not be the same database: both shards
	// would be one table, and every row would be counted twice.
	seen := map[string]int{}
	for i, dn := range s.ActualDatanodes {
		n := c.Node(dn)
		if n == nil && withRW {
			for _, m := range c.NodeGroup.Members {
				if m.Name == dn {
					n = c.Node(m.ReadWrite)
				}
			}
		}
		if n == nil {
			continue
		}
		path := fmt.Sprintf("%s.actual_datanodes[%d]", p, i)
		if n.DB == "" {
			v.addf(path, "datanode %q has no db: the physical tables' database must be set on [[mysql.node]] %q", dn, n.Name)
			continue
		}
		key := n.Addr() + "/" + n.DB
		if j, dup := seen[key]; dup {
			v.addf(path, "datanode %q is the same database (%s) as actual_datanodes[%d]: two shards would be one table", dn, key, j)
		} else {
			seen[key] = i
		}
	}
	set := 0
	if ts := s.TableStrategy; ts != nil {
		set++
		sp := p + ".table_strategy"
		v.inline(sp, ts.InlineStrategy)
		v.algorithm(sp+".table_sharding_algorithm_name", ts.TableShardingAlgorithmName)
		v.nonEmpty(sp+".table_sharding_column", ts.TableShardingColumn)
		v.shardCount(sp+".sharding_count", ts.ShardingCount)
	}
	if ds := s.DatabaseStrategy; ds != nil {
		set++
		sp := p + ".database_strategy"
		v.inline(sp, ds.InlineStrategy)
		v.algorithm(sp+".database_sharding_algorithm_name", ds.DatabaseShardingAlgorithmName)
		v.nonEmpty(sp+".database_sharding_column", ds.DatabaseShardingColumn)
	}
	if dts := s.DatabaseTableStrategy; dts != nil {
		set++
		sp := p + ".database_table_strategy"
		v.inline(sp, dts.InlineStrategy)
		v.algorithm(sp+".database_sharding_algorithm_name", dts.DatabaseShardingAlgorithmName)
		v.nonEmpty(sp+".database_sharding_column", dts.DatabaseShardingColumn)
		v.algorithm(sp+".table_sharding_algorithm_name", dts.TableShardingAlgorithmName)
		v.nonEmpty(sp+".table_sharding_column", dts.TableShardingColumn)
		v.shardCount(sp+".sharding_count", dts.ShardingCount)
	}
	if set > 1 {
		v.addf(p, "only one of table_strategy, database_strategy, database_table_strategy may be set")
	}
}

func (v *validator) inline(p string, in InlineStrategy) {
	if in.AlgorithmExpression != "" || in.AllowRangeQueryWithInlineSharding {
		v.addf(p+".algorithm_expression", "inline sharding is not supported")
	}
}

func (v *validator) algorithm(p, name string) {
	if !contains(shardingAlgorithms, name) {
		v.addf(p, "must be %q or %q, got %q", "mod", "crc32mod", name)
	}
}

func (v *validator) shardCount(p string, n int) {
	if n < 1 {
		v.addf(p, "must be >= 1, got %d", n)
	}
}

func (v *validator) nonEmpty(p, s string) {
	if s == "" {
		v.addf(p, "must not be empty")
	}
}

func (v *validator) balance(p, s string) {
	if s != BalanceRandom && s != BalanceRoundRobin {
		v.addf(p, "must be %q or %q, got %q", BalanceRandom, BalanceRoundRobin, s)
	}
}

func (v *validator) target(p, s string) {
	if s != RoleRead && s != RoleReadWrite {
		v.addf(p, "must be %q or %q, got %q", RoleRead, RoleReadWrite, s)
	}
}

func (v *validator) nonNegative(p string, d Duration) {
	if d.Duration < 0 {
		v.addf(p, "must not be negative, got %s", d.Duration)
	}
}

func (v *validator) regexes(p string, res []string, caseInsensitive bool) {
	for i, re := range res {
		expr := re
		if caseInsensitive {
			expr = "(?i)" + re
		}
		if _, err := regexp.Compile(expr); err != nil {
			v.addf(fmt.Sprintf("%s[%d]", p, i), "invalid regular expression %q: %s", re, errText(err))
		}
	}
}

func (v *validator) tlsPair(p, cert, key string) {
	switch {
	case cert != "" && key == "":
		v.addf(p+".key_file", "must be set together with cert_file")
	case cert == "" && key != "":
		v.addf(p+".cert_file", "must be set together with key_file")
	}
	v.fileExists(p+".cert_file", cert)
	v.fileExists(p+".key_file", key)
}

func (v *validator) fileExists(p, path string) {
	if path == "" {
		return
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		v.addf(p, "cannot read %q: %s", path, errText(err))
	case st.IsDir():
		v.addf(p, "%q is a directory", path)
	}
}

func (c *Config) allWeightsZero() bool {
	if len(c.MySQL.Nodes) == 0 {
		return false
	}
	for _, n := range c.MySQL.Nodes {
		if n.EffectiveWeight() > 0 {
			return false
		}
	}
	return true
}

// validHostname accepts RFC 1123-ish host names (letters, digits, '-', '_'
// and dots).
func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			ok := r == '-' || r == '_' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
			if !ok {
				return false
			}
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// errText drops the redundant prefix of some standard errors.
func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	if ae, ok := err.(*net.AddrError); ok {
		return ae.Err
	}
	return err.Error()
}
