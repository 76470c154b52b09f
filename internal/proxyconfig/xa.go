package proxyconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Transaction modes of a sharding listener (Listener.TransactionMode).
const (
	TransactionModeXA         = "xa"
	TransactionModeBestEffort = "best_effort"
)

// XA defaults.
const (
	// DefaultXALogDir holds the decision log when proxy.xa.log_file is not
	// set.
	DefaultXALogDir                 = "/var/lib/pisa-proxy"
	DefaultXARecoveryInterval       = 30 * time.Second
	DefaultXALogMaxBytes      int64 = 4 << 20
)

var validProxyID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// EffectiveProxyID returns proxy.xa.proxy_id, or else the host name made
// into a valid id (characters outside [A-Za-z0-9._-] become '-', cut to 32).
func (x XA) EffectiveProxyID() string {
	if x.ProxyID != "" {
		return x.ProxyID
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "pisa-proxy"
	}
	h = strings.Map(func(r rune) rune {
		if r < 128 && validProxyID.MatchString(string(r)) {
			return r
		}
		return '-'
	}, h)
	if len(h) > 32 {
		h = h[:32]
	}
	return h
}

// EffectiveLogFile returns proxy.xa.log_file or its default.
func (x XA) EffectiveLogFile() string {
	if x.LogFile != "" {
		return x.LogFile
	}
	return filepath.Join(DefaultXALogDir, "xa-"+x.EffectiveProxyID()+".log")
}

// EffectiveRecoveryInterval returns proxy.xa.recovery_interval or its
// default.
func (x XA) EffectiveRecoveryInterval() time.Duration {
	if x.RecoveryInterval.Duration > 0 {
		return x.RecoveryInterval.Duration
	}
	return DefaultXARecoveryInterval
}

// KeyGenerator is [proxy.config.sharding.key_generator].
type KeyGenerator struct {
	// Type is "snowflake" (63-bit keys: milliseconds, worker id, sequence).
	Type string `toml:"type" json:"type"`
	// Column is the column filled; it must be a sharding column of the
	// rule (default: the rule's sharding column when it has one).
	Column string `toml:"column,omitempty" json:"column,omitempty"`
	// WorkerID (0..1023) must differ between proxies in front of the same
	// tables, or their keys may collide. Unset, the proxy's
	// proxy.key_worker_id is used (on Kubernetes the controller allocates
	// one per sidecar); one of the two must be set.
	WorkerID *int `toml:"worker_id,omitempty" json:"worker_id,omitempty"`
}

// EffectiveWorkerID returns the generator's worker id: its own, or else the
// proxy's key_worker_id (ok false when neither is set).
func (kg *KeyGenerator) EffectiveWorkerID(p *Proxy) (id int, ok bool) {
	switch {
	case kg.WorkerID != nil:
		return *kg.WorkerID, true
	case p.KeyWorkerID != nil:
		return *p.KeyWorkerID, true
	}
	return 0, false
}

// NeedsKeyWorkerID reports whether a key generator of c takes its worker id
// from proxy.key_worker_id (it sets none of its own).
func (c *Config) NeedsKeyWorkerID() bool {
	for i := range c.Proxy.Config {
		for _, s := range c.Proxy.Config[i].Sharding {
			if kg := s.KeyGenerator; kg != nil && kg.WorkerID == nil {
				return true
			}
		}
	}
	return false
}

// MaxKeyWorkerID is the largest snowflake worker id (10 bits).
const MaxKeyWorkerID = 1023

// KeyGeneratorSnowflake is the only key generator type.
const KeyGeneratorSnowflake = "snowflake"

// validateKeyGenerator checks a rule's key generator (p names the rule).
func validateKeyGenerator(v *validator, p string, s *Sharding, px *Proxy) {
	kg := s.KeyGenerator
	if kg == nil {
		return
	}
	if kg.Type != KeyGeneratorSnowflake {
		v.addf(p+".key_generator.type", "must be %q, got %q", KeyGeneratorSnowflake, kg.Type)
	}
	switch {
	case kg.WorkerID != nil:
		if id := *kg.WorkerID; id < 0 || id > MaxKeyWorkerID {
			v.addf(p+".key_generator.worker_id", "must be between 0 and %d, got %d", MaxKeyWorkerID, id)
		}
	case px.KeyWorkerID == nil:
		v.addf(p+".key_generator.worker_id", "not set, and proxy.key_worker_id is not set either: "+
			"give this proxy a worker id no other proxy writing the table has (on Kubernetes the "+
			"config server allocates proxy.key_worker_id to each sidecar that names its pod)")
	}
	var cols []string
	if ts := s.TableStrategy; ts != nil {
		cols = append(cols, ts.TableShardingColumn)
	}
	if ds := s.DatabaseStrategy; ds != nil {
		cols = append(cols, ds.DatabaseShardingColumn)
	}
	if dts := s.DatabaseTableStrategy; dts != nil {
		cols = append(cols, dts.DatabaseShardingColumn)
		if !strings.EqualFold(dts.TableShardingColumn, dts.DatabaseShardingColumn) {
			cols = append(cols, dts.TableShardingColumn)
		}
	}
	switch {
	case kg.Column == "" && len(cols) > 1:
		v.addf(p+".key_generator.column", "must name the sharding column to fill (%s)", strings.Join(cols, " or "))
	case kg.Column != "" && !slices.ContainsFunc(cols, func(c string) bool { return strings.EqualFold(c, kg.Column) }):
		v.addf(p+".key_generator.column", "%q is not a sharding column of %s (%s): the generated key routes the row", kg.Column, s.TableName, strings.Join(cols, ", "))
	}
}

// validateBroadcast checks the broadcast_tables of rule i of listener l:
// names, not a sharded table, listed once in the listener.
func validateBroadcast(v *validator, p string, l *Listener, i int) {
	for j, name := range l.Sharding[i].BroadcastTables {
		path := fmt.Sprintf("%s.broadcast_tables[%d]", p, j)
		if name == "" {
			v.addf(path, "is empty")
			continue
		}
		for k := range l.Sharding {
			if l.Sharding[k].TableName == name {
				v.addf(path, "%q is a sharded table (sharding[%d])", name, k)
			}
			for m, other := range l.Sharding[k].BroadcastTables {
				if other == name && (k < i || (k == i && m < j)) {
					v.addf(path, "%q is already a broadcast table of sharding[%d]: list it once", name, k)
				}
			}
		}
	}
}

// validateBinding checks the binding_tables of rule i of listener l: each
// names another rule of the listener that shards the same way (strategy,
// algorithms, sharding_count, actual_datanodes), so that equal keys are on
// the same shard.
func validateBinding(v *validator, p string, l *Listener, i int) {
	s := &l.Sharding[i]
	for j, name := range s.BindingTables {
		path := fmt.Sprintf("%s.binding_tables[%d]", p, j)
		var o *Sharding
		for k := range l.Sharding {
			if k != i && l.Sharding[k].TableName == name {
				o = &l.Sharding[k]
			}
		}
		switch {
		case name == s.TableName:
			v.addf(path, "%q is the rule's own table", name)
		case o == nil:
			v.addf(path, "%q has no [[proxy.config.sharding]] rule in this listener: a binding table is sharded like %s", name, s.TableName)
		case !sameSharding(s, o):
			v.addf(path, "%q is not sharded like %s (strategy, algorithms, sharding_count and actual_datanodes must be the same)", name, s.TableName)
		}
	}
}

func sameSharding(a, b *Sharding) bool {
	if !slices.Equal(a.ActualDatanodes, b.ActualDatanodes) {
		return false
	}
	switch {
	case a.TableStrategy != nil && b.TableStrategy != nil:
		return a.TableStrategy.TableShardingAlgorithmName == b.TableStrategy.TableShardingAlgorithmName &&
			a.TableStrategy.ShardingCount == b.TableStrategy.ShardingCount
	case a.DatabaseStrategy != nil && b.DatabaseStrategy != nil:
		return a.DatabaseStrategy.DatabaseShardingAlgorithmName == b.DatabaseStrategy.DatabaseShardingAlgorithmName
	case a.DatabaseTableStrategy != nil && b.DatabaseTableStrategy != nil:
		x, y := a.DatabaseTableStrategy, b.DatabaseTableStrategy
		return x.DatabaseShardingAlgorithmName == y.DatabaseShardingAlgorithmName && x.TableShardingAlgorithmName == y.TableShardingAlgorithmName &&
			x.ShardingCount == y.ShardingCount && strings.EqualFold(x.DatabaseShardingColumn, x.TableShardingColumn) == strings.EqualFold(y.DatabaseShardingColumn, y.TableShardingColumn)
	}
	return false
}
