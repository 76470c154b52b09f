package proxyconfig

import "time"

// Failover is [proxy.config.failover]: what a listener does while its
// backend restarts or its primary is switched over. Everything is off by
// default; see docs/proxy.md ("Surviving a backend restart").
type Failover struct {
	// DelayedRetry makes a statement outside a transaction that finds no
	// healthy backend (or whose backend connection died before it was
	// sent) wait for one, up to DelayedRetryTimeout, instead of failing
	// at once with ERR 2002/2013 (MaxScale's delayed_retry, Vitess's
	// failover buffering).
	DelayedRetry bool `toml:"delayed_retry,omitempty" json:"delayed_retry,omitempty"`
	// DelayedRetryTimeout bounds one statement's wait (default 10s).
	DelayedRetryTimeout Duration `toml:"delayed_retry_timeout,omitzero" json:"delayed_retry_timeout,omitzero"`
	// DelayedRetryMaxWaiting bounds how many statements of the listener
	// may wait at once (default 1000); one more fails at once, as without
	// the option.
	DelayedRetryMaxWaiting int `toml:"delayed_retry_max_waiting,omitempty" json:"delayed_retry_max_waiting,omitempty"`
	// TransactionReplay replays a transaction whose backend connection
	// died on a new connection, when every result the client was sent is
	// the same the second time (a checksum per statement); otherwise the
	// client gets ERR 2013 and its connection is closed. It implies
	// DelayedRetry's wait (bounded by DelayedRetryTimeout) for the new
	// connection.
	TransactionReplay bool `toml:"transaction_replay,omitempty" json:"transaction_replay,omitempty"`
	// TransactionReplayMaxSize bounds, per transaction, the statement text
	// kept for a replay (bytes; default 1 MiB). A larger transaction is
	// not replayed.
	TransactionReplayMaxSize int `toml:"transaction_replay_max_size,omitempty" json:"transaction_replay_max_size,omitempty"`
}

// Failover defaults.
const (
	DefaultDelayedRetryTimeout      = 10 * time.Second
	DefaultDelayedRetryMaxWaiting   = 1000
	DefaultTransactionReplayMaxSize = 1 << 20
	// MaxDelayedRetryTimeout keeps a waiting statement below the
	// timeouts clients usually have.
	MaxDelayedRetryTimeout = 10 * time.Minute
)

// Enabled reports whether any failover option is on.
func (f *Failover) Enabled() bool {
	return f != nil && (f.DelayedRetry || f.TransactionReplay)
}

func (f *Failover) applyDefaults() {
	if !f.Enabled() {
		return
	}
	setDur(&f.DelayedRetryTimeout, DefaultDelayedRetryTimeout)
	if f.DelayedRetryMaxWaiting == 0 {
		f.DelayedRetryMaxWaiting = DefaultDelayedRetryMaxWaiting
	}
	if f.TransactionReplayMaxSize == 0 {
		f.TransactionReplayMaxSize = DefaultTransactionReplayMaxSize
	}
}

func (c *Config) validateFailover(v *validator, p string, l *Listener) {
	f := l.Failover
	if f == nil {
		return
	}
	p += ".failover"
	if d := f.DelayedRetryTimeout.Duration; d < 0 || d > MaxDelayedRetryTimeout {
		v.addf(p+".delayed_retry_timeout", "must be between 0 (default %v) and %v, got %v",
			DefaultDelayedRetryTimeout, MaxDelayedRetryTimeout, d)
	}
	if f.DelayedRetryMaxWaiting < 0 {
		v.addf(p+".delayed_retry_max_waiting", "must be >= 0 (0 = %d), got %d", DefaultDelayedRetryMaxWaiting, f.DelayedRetryMaxWaiting)
	}
	if f.TransactionReplayMaxSize < 0 {
		v.addf(p+".transaction_replay_max_size", "must be >= 0 bytes (0 = %d), got %d", DefaultTransactionReplayMaxSize, f.TransactionReplayMaxSize)
	}
	if !f.Enabled() && (f.DelayedRetryTimeout.Duration != 0 || f.DelayedRetryMaxWaiting != 0 || f.TransactionReplayMaxSize != 0) {
		v.addf(p, "sets neither delayed_retry nor transaction_replay: its other keys would do nothing")
	}
	if len(l.Sharding) > 0 && f.Enabled() {
		// A sharded statement may run on several backends at once; neither
		// waiting nor replaying is implemented for it.
		v.addf(p, "is not supported on a listener with [[proxy.config.sharding]] rules")
	}
}
