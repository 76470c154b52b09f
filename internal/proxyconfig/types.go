// Package proxyconfig is the configuration model of pisa-proxy.
//
// One set of Go types describes both the standalone TOML file (Pisanix
// "daemon" mode) and the JSON document served by the Pisa-Controller
// ("sidecar" mode); both formats use the same snake_case keys. Decoding is
// strict: unknown keys are reported as errors together with their line.
//
// The usual entry points are Load (file) and Parse (bytes). Both decode,
// apply defaults (Config.ApplyDefaults) and validate (Config.Validate).
package proxyconfig

import (
	"net"
	"strconv"
)

// Config is the whole proxy configuration (Pisanix PisaProxyConfig).
type Config struct {
	Admin Admin `toml:"admin" json:"admin"`
	Proxy Proxy `toml:"proxy" json:"proxy"`
	MySQL MySQL `toml:"mysql" json:"mysql"`
	// NodeGroup is only used by sharding combined with read/write splitting.
	NodeGroup NodeGroup `toml:"node_group" json:"node_group"`
	// ShardingSphereProxy has the shape of MySQL. Accepted for
	// compatibility; backend_type "shardingsphere-proxy" is not supported.
	ShardingSphereProxy MySQL `toml:"shardingsphere_proxy,omitzero" json:"shardingsphere_proxy,omitzero"`
	// Version is accepted and ignored (Pisanix sets it internally).
	Version string `toml:"version,omitempty" json:"version,omitempty"`
}

// Admin is the admin HTTP server (/healthz, /version, /metrics) and logging.
type Admin struct {
	Host string `toml:"host" json:"host"`
	Port int    `toml:"port" json:"port"`
	// LogLevel is one of TRACE, DEBUG, INFO, WARN, ERROR (case-insensitive).
	// ApplyDefaults upper-cases it and sets INFO when empty.
	LogLevel string `toml:"log_level" json:"log_level"`
	// Token, when set, is the bearer token /metrics and /config require
	// (the probes /healthz, /readyz and /version stay open).
	Token string `toml:"token,omitempty" json:"token,omitempty"`
}

// Proxy holds the MySQL listeners.
type Proxy struct {
	Config []Listener `toml:"config" json:"config"`
	// AllowNoListeners confirms a configuration without listeners: a
	// reload of one that has none is refused unless it says so, so that a
	// truncated or half-written file never closes every listener.
	AllowNoListeners bool `toml:"allow_no_listeners,omitempty" json:"allow_no_listeners,omitempty"`
	// MaxPacketMemory bounds, for the whole process, the memory spent on
	// large client packets being assembled (bytes; 0 = DefaultMaxPacketMemory).
	// A client whose packet does not fit waits for memory to come free,
	// then gets ERR 1037 and the session goes on.
	MaxPacketMemory int64 `toml:"max_packet_memory,omitempty" json:"max_packet_memory,omitempty"`
	// XA configures the two-phase commit of cross-shard transactions
	// (docs/sharding.md, "Transactions across shards").
	XA XA `toml:"xa,omitzero" json:"xa,omitzero"`
	// KeyWorkerID (0..1023) is the snowflake worker id of every key
	// generator that sets no worker_id of its own. Sidecars get theirs from
	// the config server, which allocates one per pod.
	KeyWorkerID *int `toml:"key_worker_id,omitempty" json:"key_worker_id,omitempty"`
}

// XA is [proxy.xa]: the identity, decision log and recovery of the
// proxy's cross-shard (XA) transactions.
type XA struct {
	// ProxyID is this proxy's identity in its XA transaction ids: recovery
	// resolves only the prepared branches of its own id, so two proxies in
	// front of the same shards must have different ids. Default: the host
	// name (the pod name on Kubernetes). 1 to 32 of [A-Za-z0-9._-].
	ProxyID string `toml:"proxy_id,omitempty" json:"proxy_id,omitempty"`
	// LogFile is the decision log (fsynced before the first XA COMMIT of
	// each transaction). It must survive a restart of the proxy. Default:
	// DefaultXALogDir/xa-<proxy_id>.log.
	LogFile string `toml:"log_file,omitempty" json:"log_file,omitempty"`
	// LogMaxBytes is the size past which the log is compacted (0 = 4 MiB).
	LogMaxBytes int64 `toml:"log_max_bytes,omitempty" json:"log_max_bytes,omitempty"`
	// RecoveryInterval is how often prepared branches left by a crash are
	// looked for with XA RECOVER (also at startup); 0 = 30s.
	RecoveryInterval Duration `toml:"recovery_interval,omitzero" json:"recovery_interval,omitzero"`
}

// Listener is one [[proxy.config]] entry: a MySQL front-end listener.
type Listener struct {
	Name       string `toml:"name" json:"name"`
	ListenAddr string `toml:"listen_addr" json:"listen_addr"`
	User       string `toml:"user" json:"user"`
	Password   string `toml:"password" json:"password"`
	DB         string `toml:"db" json:"db"`
	// BackendType is "mysql" (default). "shardingsphere-proxy" is accepted by
	// the decoder but rejected by Validate as unsupported.
	BackendType string `toml:"backend_type" json:"backend_type"`
	// PoolSize is the Pisanix pool size; it is the default for Pool.MaxOpen.
	// 0 means not set.
	PoolSize      int    `toml:"pool_size,omitempty" json:"pool_size,omitempty"`
	ServerVersion string `toml:"server_version" json:"server_version"`
	// Strategy is parsed and unused (as in Pisanix).
	Strategy string `toml:"strategy,omitempty" json:"strategy,omitempty"`

	SimpleLoadBalance  *SimpleLoadBalance  `toml:"simple_loadbalance,omitempty" json:"simple_loadbalance,omitempty"`
	ReadWriteSplitting *ReadWriteSplitting `toml:"read_write_splitting,omitempty" json:"read_write_splitting,omitempty"`
	Plugin             *Plugin             `toml:"plugin,omitempty" json:"plugin,omitempty"`
	Sharding           []Sharding          `toml:"sharding,omitempty" json:"sharding,omitempty"`
	// TransactionMode is how a transaction on a sharding listener that
	// reaches several nodes commits: "xa" (two-phase commit, atomic; the
	// default when the datanodes and the default node are more than one
	// node) or "best_effort" (one COMMIT after the other: not atomic).
	TransactionMode string `toml:"transaction_mode,omitempty" json:"transaction_mode,omitempty"`
	// SecurityClaim (beyond Pisanix): column encryption and masking.
	SecurityClaim *SecurityClaim `toml:"security_claim,omitempty" json:"security_claim,omitempty"`

	// New beyond Pisanix.

	// TLS configures TLS towards clients.
	TLS ListenerTLS `toml:"tls,omitzero" json:"tls,omitzero"`
	// Pool configures the backend connection pool of this listener.
	Pool Pool `toml:"pool,omitzero" json:"pool,omitzero"`
	// MaxConnections limits concurrent client connections; 0 = unlimited.
	MaxConnections int `toml:"max_connections,omitempty" json:"max_connections,omitempty"`
	// IdleClientTimeout closes client connections idle for longer (MariaDB's
	// wait_timeout); 0 = DefaultIdleClientTimeout.
	IdleClientTimeout Duration `toml:"idle_client_timeout,omitzero" json:"idle_client_timeout,omitzero"`
	// IdleTransactionTimeout closes a client connection idle inside a
	// transaction for longer (the transaction is rolled back); 0 =
	// DefaultIdleTransactionTimeout.
	IdleTransactionTimeout Duration `toml:"idle_transaction_timeout,omitzero" json:"idle_transaction_timeout,omitzero"`
	// NetReadTimeout bounds how long the rest of a client packet may take
	// once it started to arrive (MariaDB's net_read_timeout); 0 = default.
	NetReadTimeout Duration `toml:"net_read_timeout,omitzero" json:"net_read_timeout,omitzero"`
	// ConnectTimeout bounds a client's handshake and login (MariaDB's
	// connect_timeout); 0 = default.
	ConnectTimeout Duration `toml:"connect_timeout,omitzero" json:"connect_timeout,omitzero"`
	// MaxHandshakes limits connections in their handshake (not logged in
	// yet), counted apart from MaxConnections; 0 = DefaultMaxHandshakes.
	MaxHandshakes int `toml:"max_handshakes,omitempty" json:"max_handshakes,omitempty"`
	// MaxAllowedPacket is the largest packet a logged-in client may send
	// (bytes; 0 = DefaultMaxAllowedPacket, MariaDB's 16 MiB).
	MaxAllowedPacket int `toml:"max_allowed_packet,omitempty" json:"max_allowed_packet,omitempty"`
	// Failover makes statements wait for a backend that restarts and
	// replays interrupted transactions (off by default).
	Failover *Failover `toml:"failover,omitempty" json:"failover,omitempty"`
	// PreparedStatements bounds the statements kept prepared per backend
	// connection and the cache that answers prepares (prepared.go).
	PreparedStatements *PreparedStatements `toml:"prepared_statements,omitempty" json:"prepared_statements,omitempty"`
	// AllowPasswordless lets the listener have an account with an empty
	// password (or no account at all: the empty user). Without it such a
	// listener is refused by Validate.
	AllowPasswordless bool `toml:"allow_passwordless,omitempty" json:"allow_passwordless,omitempty"`
	// BackendAccounts lets clients log in with the backend's own accounts
	// (mysql.user, mysql_native_password), besides the accounts written
	// here; their statements run as those accounts.
	BackendAccounts bool `toml:"backend_accounts,omitempty" json:"backend_accounts,omitempty"`
	// Users are extra client accounts besides User/Password.
	Users []ListenerUser `toml:"users,omitempty" json:"users,omitempty"`

	// Governance beyond Pisanix (docs/governance.md).

	// Access restricts users (accounts with their own passwords) to
	// schemas, tables and statement kinds.
	Access *Access `toml:"access,omitempty" json:"access,omitempty"`
	// Audit logs statements as JSON lines.
	Audit *Audit `toml:"audit,omitempty" json:"audit,omitempty"`
	// EndpointBreaker stops routing to an endpoint whose error rate or
	// latency is too high, before its health check notices.
	EndpointBreaker *EndpointBreaker `toml:"endpoint_breaker,omitempty" json:"endpoint_breaker,omitempty"`
	// TopFingerprints is how many statement digests get their own series in
	// pisa_proxy_top_fingerprint_duration_seconds_total (0 = 20, < 0 none).
	TopFingerprints int `toml:"top_fingerprints,omitempty" json:"top_fingerprints,omitempty"`
}

// ListenerTLS is [proxy.config.tls]. When no certificate is configured the
// proxy generates a self-signed one.
type ListenerTLS struct {
	CertFile string `toml:"cert_file,omitempty" json:"cert_file,omitempty"`
	KeyFile  string `toml:"key_file,omitempty" json:"key_file,omitempty"`
	// Required refuses clients that do not switch to TLS.
	Required bool `toml:"required,omitempty" json:"required,omitempty"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `toml:"min_version,omitempty" json:"min_version,omitempty"`
}

// Pool is [proxy.config.pool], the backend connection pool. Zero values mean
// "use the default" (see ApplyDefaults).
type Pool struct {
	// MaxOpen is the maximum number of open backend connections per node.
	// Default: the listener's pool_size if set, else 64.
	MaxOpen int `toml:"max_open,omitempty" json:"max_open,omitempty"`
	// MaxIdle is the maximum number of idle connections kept per node.
	// Default: MaxOpen.
	MaxIdle int `toml:"max_idle,omitempty" json:"max_idle,omitempty"`
	// IdleTimeout closes connections idle for longer. Default 5m.
	IdleTimeout Duration `toml:"idle_timeout,omitzero" json:"idle_timeout,omitzero"`
	// MaxLifetime closes connections older than this. Default 1h.
	MaxLifetime Duration `toml:"max_lifetime,omitzero" json:"max_lifetime,omitzero"`
	// WaitTimeout bounds the wait for a connection when the pool is
	// exhausted. Default 5s.
	WaitTimeout Duration `toml:"wait_timeout,omitzero" json:"wait_timeout,omitzero"`
	// ConnectTimeout bounds dialing plus handshake of a backend connection.
	// Default 5s.
	ConnectTimeout Duration `toml:"connect_timeout,omitzero" json:"connect_timeout,omitzero"`
}

// ListenerUser is one [[proxy.config.users]] entry: an extra client account.
type ListenerUser struct {
	User     string `toml:"user" json:"user"`
	Password string `toml:"password" json:"password"`
}

// SimpleLoadBalance balances every statement over the listener's nodes.
type SimpleLoadBalance struct {
	// BalanceType is "random" (default, weighted) or "roundrobin".
	BalanceType string `toml:"balance_type" json:"balance_type"`
	// Nodes restricts the listener to these [mysql.node] names; empty means
	// all nodes. (Pisanix ignored this key; we honour it.)
	Nodes []string `toml:"nodes" json:"nodes"`
}

// ReadWriteSplitting is [proxy.config.read_write_splitting]. If both Static
// and Dynamic are present, Static wins (Pisanix behaviour).
type ReadWriteSplitting struct {
	Static  *RWSplittingStatic  `toml:"static,omitempty" json:"static,omitempty"`
	Dynamic *RWSplittingDynamic `toml:"dynamic,omitempty" json:"dynamic,omitempty"`

	// Nodes (beyond Pisanix) are the [mysql.node] names read/write
	// splitting routes over, by their roles; empty means every node, as in
	// Pisanix. simple_loadbalance.nodes does not narrow read/write
	// splitting (Pisanix ignored it, and its guide lists only the reader
	// there). The controller sets it to the endpoints a TrafficStrategy
	// selects.
	Nodes []string `toml:"nodes,omitempty" json:"nodes,omitempty"`

	// Beyond Pisanix: read-your-writes. CausalReads is "off" (default),
	// "gtid" (after a write, a read waits on the replica with
	// MASTER_GTID_WAIT for the session's last GTID, up to
	// CausalReadsWaitTimeout, else goes to the writer) or "window" (after a
	// write, reads stay on the writer for CausalReadsWindow).
	CausalReads            string   `toml:"causal_reads,omitempty" json:"causal_reads,omitempty"`
	CausalReadsWindow      Duration `toml:"causal_reads_window,omitzero" json:"causal_reads_window,omitzero"`
	CausalReadsWaitTimeout Duration `toml:"causal_reads_wait_timeout,omitzero" json:"causal_reads_wait_timeout,omitzero"`
}

// RWSplittingStatic routes by rules over a fixed read/readwrite node split.
type RWSplittingStatic struct {
	// DefaultTarget is "read" or "readwrite" (default).
	DefaultTarget string `toml:"default_target" json:"default_target"`
	Rules         []Rule `toml:"rule" json:"rule"`
}

// RWSplittingDynamic is RWSplittingStatic plus MHA-style discovery.
type RWSplittingDynamic struct {
	DefaultTarget string     `toml:"default_target" json:"default_target"`
	Rules         []Rule     `toml:"rule" json:"rule"`
	Discovery     *Discovery `toml:"discovery,omitempty" json:"discovery,omitempty"`
}

// Rule is one read/write splitting rule. A rule with regex and target is a
// regex rule, otherwise it is a generic rule (unless Type says otherwise).
type Rule struct {
	Name string `toml:"name" json:"name"`
	// Type is "regex" or "generic"; when empty it is inferred.
	Type   string   `toml:"type" json:"type"`
	Regex  []string `toml:"regex,omitempty" json:"regex,omitempty"`
	Target string   `toml:"target,omitempty" json:"target,omitempty"`
	// AlgorithmName is "random" (default) or "roundrobin".
	AlgorithmName string   `toml:"algorithm_name" json:"algorithm_name"`
	NodeGroupName []string `toml:"node_group_name,omitempty" json:"node_group_name,omitempty"`
}

// Rule kinds returned by Rule.Kind.
const (
	RuleRegex   = "regex"
	RuleGeneric = "generic"
)

// Kind returns RuleRegex or RuleGeneric.
func (r *Rule) Kind() string {
	switch r.Type {
	case RuleRegex, RuleGeneric:
		return r.Type
	}
	if len(r.Regex) > 0 {
		return RuleRegex
	}
	return RuleGeneric
}

// Discovery is the MHA-style monitor configuration of dynamic read/write
// splitting. All periods and timeouts are integer milliseconds (Pisanix
// compatibility); MaxReplicationLag is compared with Seconds_Behind_Master.
type Discovery struct {
	// Type must be "mha".
	Type     string `toml:"type" json:"type"`
	User     string `toml:"user" json:"user"`
	Password string `toml:"password" json:"password"`

	MonitorPeriod                  int   `toml:"monitor_period" json:"monitor_period"`
	ConnectPeriod                  int   `toml:"connect_period" json:"connect_period"`
	ConnectTimeout                 int   `toml:"connect_timeout" json:"connect_timeout"`
	ConnectFailureThreshold        int   `toml:"connect_failure_threshold" json:"connect_failure_threshold"`
	PingPeriod                     int   `toml:"ping_period" json:"ping_period"`
	PingTimeout                    int   `toml:"ping_timeout" json:"ping_timeout"`
	PingFailureThreshold           int   `toml:"ping_failure_threshold" json:"ping_failure_threshold"`
	ReplicationLagPeriod           int   `toml:"replication_lag_period" json:"replication_lag_period"`
	ReplicationLagTimeout          int   `toml:"replication_lag_timeout" json:"replication_lag_timeout"`
	ReplicationLagFailureThreshold int   `toml:"replication_lag_failure_threshold" json:"replication_lag_failure_threshold"`
	MaxReplicationLag              int   `toml:"max_replication_lag" json:"max_replication_lag"`
	ReadOnlyPeriod                 int   `toml:"read_only_period" json:"read_only_period"`
	ReadOnlyTimeout                int   `toml:"read_only_timeout" json:"read_only_timeout"`
	ReadOnlyFailureThreshold       int   `toml:"read_only_failure_threshold" json:"read_only_failure_threshold"`
	ReadOnlyEnabled                *bool `toml:"read_only_enabled,omitempty" json:"read_only_enabled,omitempty"`
	ReplicationLagEnabled          *bool `toml:"replication_lag_enabled,omitempty" json:"replication_lag_enabled,omitempty"`
}

// ReadOnlyMonitorEnabled reports read_only_enabled (default true).
func (d *Discovery) ReadOnlyMonitorEnabled() bool {
	return d.ReadOnlyEnabled == nil || *d.ReadOnlyEnabled
}

// ReplicationLagMonitorEnabled reports replication_lag_enabled (default true).
func (d *Discovery) ReplicationLagMonitorEnabled() bool {
	return d.ReplicationLagEnabled == nil || *d.ReplicationLagEnabled
}

// Plugin is [proxy.config.plugin].
type Plugin struct {
	CircuitBreak       []CircuitBreak       `toml:"circuit_break,omitempty" json:"circuit_break,omitempty"`
	ConcurrencyControl []ConcurrencyControl `toml:"concurrency_control,omitempty" json:"concurrency_control,omitempty"`
}

// Sharding is one [[proxy.config.sharding]] rule. At most one of the three
// strategies may be set.
type Sharding struct {
	TableName string `toml:"table_name" json:"table_name"`
	// ActualDatanodes name [mysql.node]s, or node_group members when read/write
	// splitting is configured as well.
	ActualDatanodes []string `toml:"actual_datanodes" json:"actual_datanodes"`
	// BindingTables and BroadcastTables are parsed and unsupported.
	BindingTables   []string `toml:"binding_tables,omitempty" json:"binding_tables,omitempty"`
	BroadcastTables []string `toml:"broadcast_tables,omitempty" json:"broadcast_tables,omitempty"`
	// KeyGenerator fills the key column of an INSERT that omits it
	// (beyond Pisanix, which refuses such an INSERT; so does this proxy
	// without a generator).
	KeyGenerator *KeyGenerator `toml:"key_generator,omitempty" json:"key_generator,omitempty"`

	TableStrategy         *TableStrategy         `toml:"table_strategy,omitempty" json:"table_strategy,omitempty"`
	DatabaseStrategy      *DatabaseStrategy      `toml:"database_strategy,omitempty" json:"database_strategy,omitempty"`
	DatabaseTableStrategy *DatabaseTableStrategy `toml:"database_table_strategy,omitempty" json:"database_table_strategy,omitempty"`
}

// InlineStrategy holds the Pisanix "inline" strategy keys. They are parsed
// for compatibility and rejected by Validate (not implemented in Pisanix
// either).
type InlineStrategy struct {
	AlgorithmExpression               string `toml:"algorithm_expression,omitempty" json:"algorithm_expression,omitempty"`
	AllowRangeQueryWithInlineSharding bool   `toml:"allow_range_query_with_inline_sharding,omitempty" json:"allow_range_query_with_inline_sharding,omitempty"`
}

// TableStrategy shards one table into ShardingCount tables on a single node.
type TableStrategy struct {
	// TableShardingAlgorithmName is "mod" or "crc32mod".
	TableShardingAlgorithmName string `toml:"table_sharding_algorithm_name,omitempty" json:"table_sharding_algorithm_name,omitempty"`
	TableShardingColumn        string `toml:"table_sharding_column,omitempty" json:"table_sharding_column,omitempty"`
	ShardingCount              int    `toml:"sharding_count,omitempty" json:"sharding_count,omitempty"`
	InlineStrategy
}

// DatabaseStrategy shards over the actual datanodes (one table per node).
type DatabaseStrategy struct {
	DatabaseShardingAlgorithmName string `toml:"database_sharding_algorithm_name,omitempty" json:"database_sharding_algorithm_name,omitempty"`
	DatabaseShardingColumn        string `toml:"database_sharding_column,omitempty" json:"database_sharding_column,omitempty"`
	InlineStrategy
}

// DatabaseTableStrategy shards over datanodes and, within each, tables.
type DatabaseTableStrategy struct {
	DatabaseShardingAlgorithmName string `toml:"database_sharding_algorithm_name,omitempty" json:"database_sharding_algorithm_name,omitempty"`
	DatabaseShardingColumn        string `toml:"database_sharding_column,omitempty" json:"database_sharding_column,omitempty"`
	TableShardingAlgorithmName    string `toml:"table_sharding_algorithm_name,omitempty" json:"table_sharding_algorithm_name,omitempty"`
	TableShardingColumn           string `toml:"table_sharding_column,omitempty" json:"table_sharding_column,omitempty"`
	ShardingCount                 int    `toml:"sharding_count,omitempty" json:"sharding_count,omitempty"`
	InlineStrategy
}

// NodeGroup is [node_group] (sharding + read/write splitting).
type NodeGroup struct {
	Members []NodeGroupMember `toml:"member" json:"member"`
}

// NodeGroupMember is one [[node_group.member]].
type NodeGroupMember struct {
	Name string `toml:"name" json:"name"`
	// ReadWrite names the group's readwrite [mysql.node].
	ReadWrite string `toml:"readwrite" json:"readwrite"`
	// Reads name the group's read [mysql.node]s.
	Reads []string `toml:"reads" json:"reads"`
}

// MySQL is [mysql] (also the shape of [shardingsphere_proxy]).
type MySQL struct {
	Nodes []Node `toml:"node" json:"node"`
}

// Node roles.
const (
	RoleRead      = "read"
	RoleReadWrite = "readwrite"
)

// Node is one [[mysql.node]] backend.
type Node struct {
	Name     string `toml:"name" json:"name"`
	DB       string `toml:"db" json:"db"`
	User     string `toml:"user" json:"user"`
	Password string `toml:"password" json:"password"`
	Host     string `toml:"host" json:"host"`
	Port     int    `toml:"port" json:"port"`
	// Weight is the load-balancing weight (default 1, 0 = drained). It is a
	// pointer so that an explicit 0 can be told from "absent"; after
	// ApplyDefaults it is never nil. Use EffectiveWeight.
	Weight *int `toml:"weight" json:"weight"`
	// Role is "read" or "readwrite" (default; optional unlike Pisanix).
	Role string `toml:"role" json:"role"`
	// TLS configures TLS towards this backend (new beyond Pisanix).
	TLS NodeTLS `toml:"tls,omitzero" json:"tls,omitzero"`
}

// NodeTLS is [mysql.node.tls].
type NodeTLS struct {
	// Mode is "preferred" (the default: TLS when the backend offers it,
	// the certificate verified only when CAFile is set), "required" (TLS
	// or no connection; the certificate verified against CAFile or the
	// system roots unless InsecureSkipVerify) or "disabled".
	Mode string `toml:"mode,omitempty" json:"mode,omitempty"`
	// Enabled is the older spelling of Mode = "required".
	Enabled            bool   `toml:"enabled" json:"enabled"`
	CAFile             string `toml:"ca_file,omitempty" json:"ca_file,omitempty"`
	CertFile           string `toml:"cert_file,omitempty" json:"cert_file,omitempty"`
	KeyFile            string `toml:"key_file,omitempty" json:"key_file,omitempty"`
	ServerName         string `toml:"server_name,omitempty" json:"server_name,omitempty"`
	InsecureSkipVerify bool   `toml:"insecure_skip_verify,omitempty" json:"insecure_skip_verify,omitempty"`
}

// Node TLS modes.
const (
	TLSPreferred = "preferred"
	TLSRequired  = "required"
	TLSDisabled  = "disabled"
)

// EffectiveMode returns the TLS mode, resolving the defaults: "required"
// when Enabled, else "preferred".
func (t NodeTLS) EffectiveMode() string {
	switch {
	case t.Mode != "":
		return t.Mode
	case t.Enabled:
		return TLSRequired
	}
	return TLSPreferred
}

// Addr returns "host:port" (IPv6 hosts are bracketed).
func (n Node) Addr() string {
	return net.JoinHostPort(n.Host, strconv.Itoa(n.Port))
}

// EffectiveWeight returns the node weight, 1 when unset.
func (n Node) EffectiveWeight() int {
	if n.Weight == nil {
		return DefaultWeight
	}
	return *n.Weight
}

// Node returns the [mysql.node] with the given name, or nil.
func (c *Config) Node(name string) *Node {
	for i := range c.MySQL.Nodes {
		if c.MySQL.Nodes[i].Name == name {
			return &c.MySQL.Nodes[i]
		}
	}
	return nil
}

// backendNodes returns the node list a listener draws from.
func (c *Config) backendNodes(l *Listener) []Node {
	if l.BackendType == BackendShardingSphereProxy {
		return c.ShardingSphereProxy.Nodes
	}
	return c.MySQL.Nodes
}

// NodeNames returns the names of the nodes this listener balances over:
// simple_loadbalance.nodes when given (deduplicated, in that order), else
// read_write_splitting.nodes when given, else every node of the backend, in
// config order.
func (l *Listener) NodeNames(cfg *Config) []string {
	if l.SimpleLoadBalance != nil && len(l.SimpleLoadBalance.Nodes) > 0 {
		seen := make(map[string]bool, len(l.SimpleLoadBalance.Nodes))
		out := make([]string, 0, len(l.SimpleLoadBalance.Nodes))
		for _, n := range l.SimpleLoadBalance.Nodes {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
		return out
	}
	if rw := l.ReadWriteSplitting; rw != nil && len(rw.Nodes) > 0 {
		return dedup(rw.Nodes)
	}
	nodes := cfg.backendNodes(l)
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

// RWNodeNames returns the nodes read/write splitting routes over:
// read_write_splitting.nodes when given (deduplicated, in that order), else
// every node of the backend, in config order. Nil without
// read_write_splitting.
func (l *Listener) RWNodeNames(cfg *Config) []string {
	rw := l.ReadWriteSplitting
	if rw == nil {
		return nil
	}
	if len(rw.Nodes) > 0 {
		return dedup(rw.Nodes)
	}
	nodes := cfg.backendNodes(l)
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

// PoolNodeNames returns every node the listener uses, each once: the read/write
// splitting nodes first (when configured), then the balancer's nodes
// (NodeNames) not among them.
func (l *Listener) PoolNodeNames(cfg *Config) []string {
	out := l.RWNodeNames(cfg)
	seen := make(map[string]bool, len(out))
	for _, n := range out {
		seen[n] = true
	}
	for _, n := range l.NodeNames(cfg) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

func dedup(names []string) []string {
	seen := make(map[string]bool, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
