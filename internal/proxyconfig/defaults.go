package proxyconfig

import (
	"strings"
	"time"
)

// Defaults.
const (
	DefaultAdminHost     = "127.0.0.1"
	DefaultAdminPort     = 5591
	DefaultLogLevel      = "INFO"
	DefaultListenAddr    = "0.0.0.0:3306"
	DefaultBackendType   = BackendMySQL
	DefaultServerVersion = "5.7.37"
	DefaultStrategy      = "simple_balance"
	DefaultBalanceType   = BalanceRandom
	DefaultTarget        = RoleReadWrite
	DefaultAlgorithm     = BalanceRandom
	DefaultTLSMinVersion = "1.2"

	DefaultNodeHost = "127.0.0.1"
	DefaultNodePort = 3306
	DefaultWeight   = 1
	DefaultRole     = RoleReadWrite

	// Client-side limits, MariaDB's defaults where it has one.
	DefaultIdleClientTimeout      = 28800 * time.Second // wait_timeout
	DefaultIdleTransactionTimeout = 10 * time.Minute
	DefaultNetReadTimeout         = 30 * time.Second // net_read_timeout
	DefaultConnectTimeout         = 10 * time.Second // connect_timeout
	DefaultMaxHandshakes          = 256
	DefaultMaxAllowedPacket       = 16 << 20 // max_allowed_packet
	MinMaxAllowedPacket           = 1024
	MaxMaxAllowedPacket           = 1 << 30
	DefaultMaxPacketMemory        = 256 << 20

	DefaultPoolMaxOpen        = 64
	DefaultPoolIdleTimeout    = 5 * time.Minute
	DefaultPoolMaxLifetime    = time.Hour
	DefaultPoolWaitTimeout    = 5 * time.Second
	DefaultPoolConnectTimeout = 5 * time.Second

	DefaultDiscoveryType       = "mha"
	DefaultMonitorPeriodMS     = 1000
	DefaultProbePeriodMS       = 1000
	DefaultProbeTimeoutMS      = 6000
	DefaultFailureThreshold    = 1
	DefaultMaxReplicationLag   = 10000
	BackendMySQL               = "mysql"
	BackendShardingSphereProxy = "shardingsphere-proxy"
	BalanceRandom              = "random"
	BalanceRoundRobin          = "roundrobin"
)

// ApplyDefaults fills every unset value with its default. It is idempotent
// and is called by Parse and Load before Validate.
func (c *Config) ApplyDefaults() {
	if c.Admin.Host == "" {
		c.Admin.Host = DefaultAdminHost
	}
	if c.Admin.Port == 0 {
		c.Admin.Port = DefaultAdminPort
	}
	c.Admin.LogLevel = strings.ToUpper(strings.TrimSpace(c.Admin.LogLevel))
	if c.Admin.LogLevel == "" {
		c.Admin.LogLevel = DefaultLogLevel
	}

	for i := range c.Proxy.Config {
		c.Proxy.Config[i].applyDefaults()
	}
	if c.Proxy.MaxPacketMemory == 0 {
		c.Proxy.MaxPacketMemory = DefaultMaxPacketMemory
	}
	for i := range c.MySQL.Nodes {
		c.MySQL.Nodes[i].applyDefaults()
	}
	for i := range c.ShardingSphereProxy.Nodes {
		c.ShardingSphereProxy.Nodes[i].applyDefaults()
	}
}

func (l *Listener) applyDefaults() {
	if l.ListenAddr == "" {
		l.ListenAddr = DefaultListenAddr
	}
	if l.BackendType == "" {
		l.BackendType = DefaultBackendType
	}
	if l.ServerVersion == "" {
		l.ServerVersion = DefaultServerVersion
	}
	if l.Strategy == "" {
		l.Strategy = DefaultStrategy
	}
	// Pisanix panics when neither is present; we balance over all nodes.
	if l.SimpleLoadBalance == nil && l.ReadWriteSplitting == nil {
		l.SimpleLoadBalance = &SimpleLoadBalance{}
	}
	if lb := l.SimpleLoadBalance; lb != nil && lb.BalanceType == "" {
		lb.BalanceType = DefaultBalanceType
	}
	if rw := l.ReadWriteSplitting; rw != nil {
		if s := rw.Static; s != nil {
			if s.DefaultTarget == "" {
				s.DefaultTarget = DefaultTarget
			}
			applyRuleDefaults(s.Rules)
		}
		if d := rw.Dynamic; d != nil {
			if d.DefaultTarget == "" {
				d.DefaultTarget = DefaultTarget
			}
			applyRuleDefaults(d.Rules)
			if d.Discovery != nil {
				d.Discovery.applyDefaults()
			}
		}
	}

	if l.TLS.MinVersion == "" {
		l.TLS.MinVersion = DefaultTLSMinVersion
	}
	setDur(&l.IdleClientTimeout, DefaultIdleClientTimeout)
	setDur(&l.IdleTransactionTimeout, DefaultIdleTransactionTimeout)
	setDur(&l.NetReadTimeout, DefaultNetReadTimeout)
	setDur(&l.ConnectTimeout, DefaultConnectTimeout)
	if l.MaxHandshakes == 0 {
		l.MaxHandshakes = DefaultMaxHandshakes
	}
	if l.MaxAllowedPacket == 0 {
		l.MaxAllowedPacket = DefaultMaxAllowedPacket
	}
	l.Failover.applyDefaults()

	p := &l.Pool
	// Pisanix's pool_size was the capacity of the idle queue: it never
	// limited open connections (a busy pool dialed more). So pool_size is
	// max_idle here, and max_open stays at its default unless pool_size is
	// larger: a migrated pool_size = 3 neither caps a listener at three
	// concurrent statements nor starves a statement that fans out to more
	// shards than that.
	if p.MaxOpen == 0 {
		p.MaxOpen = max(DefaultPoolMaxOpen, l.PoolSize)
	}
	if p.MaxIdle == 0 {
		if l.PoolSize > 0 {
			p.MaxIdle = min(l.PoolSize, p.MaxOpen)
		} else {
			p.MaxIdle = p.MaxOpen
		}
	}
	setDur(&p.IdleTimeout, DefaultPoolIdleTimeout)
	setDur(&p.MaxLifetime, DefaultPoolMaxLifetime)
	setDur(&p.WaitTimeout, DefaultPoolWaitTimeout)
	setDur(&p.ConnectTimeout, DefaultPoolConnectTimeout)
}

func setDur(d *Duration, def time.Duration) {
	if d.Duration == 0 {
		d.Duration = def
	}
}

func applyRuleDefaults(rules []Rule) {
	for i := range rules {
		if rules[i].AlgorithmName == "" {
			rules[i].AlgorithmName = DefaultAlgorithm
		}
	}
}

func (d *Discovery) applyDefaults() {
	if d.Type == "" {
		d.Type = DefaultDiscoveryType
	}
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setInt(&d.MonitorPeriod, DefaultMonitorPeriodMS)
	setInt(&d.ConnectPeriod, DefaultProbePeriodMS)
	setInt(&d.ConnectTimeout, DefaultProbeTimeoutMS)
	setInt(&d.ConnectFailureThreshold, DefaultFailureThreshold)
	setInt(&d.PingPeriod, DefaultProbePeriodMS)
	setInt(&d.PingTimeout, DefaultProbeTimeoutMS)
	setInt(&d.PingFailureThreshold, DefaultFailureThreshold)
	setInt(&d.ReplicationLagPeriod, DefaultProbePeriodMS)
	setInt(&d.ReplicationLagTimeout, DefaultProbeTimeoutMS)
	setInt(&d.ReplicationLagFailureThreshold, DefaultFailureThreshold)
	setInt(&d.MaxReplicationLag, DefaultMaxReplicationLag)
	setInt(&d.ReadOnlyPeriod, DefaultProbePeriodMS)
	setInt(&d.ReadOnlyTimeout, DefaultProbeTimeoutMS)
	setInt(&d.ReadOnlyFailureThreshold, DefaultFailureThreshold)
	if d.ReadOnlyEnabled == nil {
		t := true
		d.ReadOnlyEnabled = &t
	}
	if d.ReplicationLagEnabled == nil {
		t := true
		d.ReplicationLagEnabled = &t
	}
}

func (n *Node) applyDefaults() {
	if n.Host == "" {
		n.Host = DefaultNodeHost
	}
	if n.Port == 0 {
		n.Port = DefaultNodePort
	}
	if n.Weight == nil {
		w := DefaultWeight
		n.Weight = &w
	}
	if n.Role == "" {
		n.Role = DefaultRole
	}
}
