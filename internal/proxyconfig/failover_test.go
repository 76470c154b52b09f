package proxyconfig

import (
	"strings"
	"testing"
	"time"
)

// withFailover inserts a [proxy.config.failover] table into the minimal
// file's listener.
func withFailover(table string) string {
	return strings.Replace(minimalPisanix, "[proxy.config.simple_loadbalance]",
		"[proxy.config.failover]\n"+table+"\n[proxy.config.simple_loadbalance]", 1)
}

func TestFailoverDefaults(t *testing.T) {
	cfg := mustParse(t, withFailover(`delayed_retry = true
transaction_replay = true`), TOML)
	f := cfg.Proxy.Config[0].Failover
	if !f.DelayedRetry || !f.TransactionReplay || f.DelayedRetryTimeout.Duration != 10*time.Second ||
		f.DelayedRetryMaxWaiting != 1000 || f.TransactionReplayMaxSize != 1<<20 {
		t.Fatalf("defaults: %+v", f)
	}
	cfg = mustParse(t, minimalPisanix, TOML)
	if cfg.Proxy.Config[0].Failover.Enabled() {
		t.Fatal("failover on without the table")
	}
}

func TestFailoverRefused(t *testing.T) {
	for _, tc := range []struct{ table, want string }{
		{`delayed_retry = true
delayed_retry_timeout = "-1s"`, "failover.delayed_retry_timeout"},
		{`delayed_retry = true
delayed_retry_timeout = "1h"`, "failover.delayed_retry_timeout"},
		{`delayed_retry = true
delayed_retry_max_waiting = -1`, "failover.delayed_retry_max_waiting"},
		{`transaction_replay = true
transaction_replay_max_size = -5`, "failover.transaction_replay_max_size"},
		{`delayed_retry_timeout = "5s"`, "sets neither delayed_retry nor transaction_replay"},
		{`delayed_retry = true
bogus = 1`, "bogus"},
	} {
		_, err := Parse([]byte(withFailover(tc.table)), TOML)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want an error naming %q, got %v", tc.table, tc.want, err)
		}
	}
}
