package proxyconfig

import (
	"strings"
	"testing"
	"time"
)

// withPrepared inserts a [proxy.config.prepared_statements] table into the
// minimal file's listener.
func withPrepared(table string) string {
	return strings.Replace(minimalPisanix, "[proxy.config.simple_loadbalance]",
		"[proxy.config.prepared_statements]\n"+table+"\n[proxy.config.simple_loadbalance]", 1)
}

func TestPreparedStatementsDefaults(t *testing.T) {
	cfg := mustParse(t, minimalPisanix, TOML)
	ps := cfg.Proxy.Config[0].PreparedStatements
	if ps.StmtsPerConnection() != 128 {
		t.Fatalf("max_per_connection default %d", ps.StmtsPerConnection())
	}
	if n, b, age := ps.MetadataCache(); n != 1024 || b != 8<<20 || age != time.Minute {
		t.Fatalf("metadata cache defaults %d %d %v", n, b, age)
	}
	cfg = mustParse(t, withPrepared(`max_per_connection = 32
metadata_cache_size = 0
metadata_cache_max_bytes = 65536
metadata_cache_max_age = "5s"`), TOML)
	ps = cfg.Proxy.Config[0].PreparedStatements
	if ps.StmtsPerConnection() != 32 {
		t.Fatalf("max_per_connection %d", ps.StmtsPerConnection())
	}
	if n, b, age := ps.MetadataCache(); n != 0 || b != 65536 || age != 5*time.Second {
		t.Fatalf("metadata cache %d %d %v (0 must turn it off)", n, b, age)
	}
}

func TestPreparedStatementsRefused(t *testing.T) {
	for _, tc := range []struct{ table, want string }{
		{`max_per_connection = -1`, "prepared_statements.max_per_connection"},
		{`max_per_connection = 20000`, "prepared_statements.max_per_connection"},
		{`metadata_cache_size = -1`, "prepared_statements.metadata_cache_size"},
		{`metadata_cache_max_bytes = -1`, "prepared_statements.metadata_cache_max_bytes"},
		{`metadata_cache_max_age = "-1s"`, "prepared_statements.metadata_cache_max_age"},
		{`metadata_cache_max_age = "48h"`, "prepared_statements.metadata_cache_max_age"},
		{`bogus = 1`, "bogus"},
	} {
		_, err := Parse([]byte(withPrepared(tc.table)), TOML)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want an error naming %q, got %v", tc.table, tc.want, err)
		}
	}
}
