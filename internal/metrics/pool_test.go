package metrics

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const poolHeader = `
# HELP pisa_proxy_backend_pool_closed_total Connections closed by the pool.
# TYPE pisa_proxy_backend_pool_closed_total counter
%closed%
# HELP pisa_proxy_backend_pool_idle_connections Idle connections of the pool.
# TYPE pisa_proxy_backend_pool_idle_connections gauge
%idle%
# HELP pisa_proxy_backend_pool_in_use_connections Connections of the pool in use by sessions.
# TYPE pisa_proxy_backend_pool_in_use_connections gauge
%inuse%
# HELP pisa_proxy_backend_pool_max_open_connections Maximum open connections of the pool (0 = unlimited).
# TYPE pisa_proxy_backend_pool_max_open_connections gauge
%max%
# HELP pisa_proxy_backend_pool_open_connections Open connections of the pool, in use or idle.
# TYPE pisa_proxy_backend_pool_open_connections gauge
%open%
# HELP pisa_proxy_backend_pool_wait_duration_seconds_total Total time sessions waited for a connection from the pool, in seconds.
# TYPE pisa_proxy_backend_pool_wait_duration_seconds_total counter
%waitsec%
# HELP pisa_proxy_backend_pool_wait_timeouts_total Waits for a connection from the pool that timed out.
# TYPE pisa_proxy_backend_pool_wait_timeouts_total counter
%timeouts%
# HELP pisa_proxy_backend_pool_wait_total Times a session waited for a connection from the pool.
# TYPE pisa_proxy_backend_pool_wait_total counter
%waits%
`

func poolText(fields map[string]string) string {
	s := poolHeader
	for k, v := range fields {
		s = strings.ReplaceAll(s, "%"+k+"%", strings.TrimSpace(v))
	}
	return s
}

func TestPoolCollector(t *testing.T) {
	tests := []struct {
		name  string
		stats []PoolStats
		want  string
	}{
		{
			name:  "no pools",
			stats: nil,
			want:  "",
		},
		{
			name: "one pool",
			stats: []PoolStats{{
				Domain: "shop", Node: "ds001", Server: "10.0.0.1:3306",
				MaxOpen: 64, Open: 10, Idle: 7, InUse: 3,
				WaitCount: 12, WaitDuration: 1500 * time.Millisecond, Timeouts: 2, Closed: 5,
			}},
			want: poolText(map[string]string{
				"closed":   `pisa_proxy_backend_pool_closed_total{domain="shop",node="ds001",server="10.0.0.1:3306"} 5`,
				"idle":     `pisa_proxy_backend_pool_idle_connections{domain="shop",node="ds001",server="10.0.0.1:3306"} 7`,
				"inuse":    `pisa_proxy_backend_pool_in_use_connections{domain="shop",node="ds001",server="10.0.0.1:3306"} 3`,
				"max":      `pisa_proxy_backend_pool_max_open_connections{domain="shop",node="ds001",server="10.0.0.1:3306"} 64`,
				"open":     `pisa_proxy_backend_pool_open_connections{domain="shop",node="ds001",server="10.0.0.1:3306"} 10`,
				"waitsec":  `pisa_proxy_backend_pool_wait_duration_seconds_total{domain="shop",node="ds001",server="10.0.0.1:3306"} 1.5`,
				"timeouts": `pisa_proxy_backend_pool_wait_timeouts_total{domain="shop",node="ds001",server="10.0.0.1:3306"} 2`,
				"waits":    `pisa_proxy_backend_pool_wait_total{domain="shop",node="ds001",server="10.0.0.1:3306"} 12`,
			}),
		},
		{
			name: "two pools, unlimited max",
			stats: []PoolStats{
				{Domain: "shop", Node: "n", Server: "a:3306", Open: 2, Idle: 2},
				{Domain: "blog", Node: "n", Server: "a:3306", Open: 1, InUse: 1, WaitDuration: 250 * time.Microsecond, WaitCount: 1},
			},
			want: poolText(map[string]string{
				"closed": `
pisa_proxy_backend_pool_closed_total{domain="blog",node="n",server="a:3306"} 0
pisa_proxy_backend_pool_closed_total{domain="shop",node="n",server="a:3306"} 0`,
				"idle": `
pisa_proxy_backend_pool_idle_connections{domain="blog",node="n",server="a:3306"} 0
pisa_proxy_backend_pool_idle_connections{domain="shop",node="n",server="a:3306"} 2`,
				"inuse": `
pisa_proxy_backend_pool_in_use_connections{domain="blog",node="n",server="a:3306"} 1
pisa_proxy_backend_pool_in_use_connections{domain="shop",node="n",server="a:3306"} 0`,
				"max": `
pisa_proxy_backend_pool_max_open_connections{domain="blog",node="n",server="a:3306"} 0
pisa_proxy_backend_pool_max_open_connections{domain="shop",node="n",server="a:3306"} 0`,
				"open": `
pisa_proxy_backend_pool_open_connections{domain="blog",node="n",server="a:3306"} 1
pisa_proxy_backend_pool_open_connections{domain="shop",node="n",server="a:3306"} 2`,
				"waitsec": `
pisa_proxy_backend_pool_wait_duration_seconds_total{domain="blog",node="n",server="a:3306"} 0.00025
pisa_proxy_backend_pool_wait_duration_seconds_total{domain="shop",node="n",server="a:3306"} 0`,
				"timeouts": `
pisa_proxy_backend_pool_wait_timeouts_total{domain="blog",node="n",server="a:3306"} 0
pisa_proxy_backend_pool_wait_timeouts_total{domain="shop",node="n",server="a:3306"} 0`,
				"waits": `
pisa_proxy_backend_pool_wait_total{domain="blog",node="n",server="a:3306"} 1
pisa_proxy_backend_pool_wait_total{domain="shop",node="n",server="a:3306"} 0`,
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewPoolCollector(func() []PoolStats { return tt.stats })
			if err := testutil.CollectAndCompare(c, strings.NewReader(tt.want)); err != nil {
				t.Fatal(err)
			}
			if n := testutil.CollectAndCount(c); n != 8*len(tt.stats) {
				t.Fatalf("%d metrics, want %d", n, 8*len(tt.stats))
			}
		})
	}
}

// Two nodes on one host:port (a schema per node on one server, as in
// Pisanix's sharding examples) are two series, and a scrape has no error.
func TestPoolCollectorNodesShareServer(t *testing.T) {
	c := NewPoolCollector(func() []PoolStats {
		return []PoolStats{
			{Domain: "shop", Node: "ds001", Server: "127.0.0.1:3306", Open: 1},
			{Domain: "shop", Node: "ds002", Server: "127.0.0.1:3306", Open: 2},
		}
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "pisa_proxy_backend_pool_open_connections" {
			continue
		}
		got := map[string]float64{}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "node" {
					got[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
		if got["ds001"] != 1 || got["ds002"] != 2 || len(got) != 2 {
			t.Fatalf("open connections by node: %v", got)
		}
		return
	}
	t.Fatal("no pisa_proxy_backend_pool_open_connections")
}

func TestPoolCollectorCallsSourcePerScrape(t *testing.T) {
	var calls atomic.Int64
	c := NewPoolCollector(func() []PoolStats {
		n := calls.Add(1)
		return []PoolStats{{Domain: "d", Server: "s", Open: int(n)}}
	})
	reg := prometheus.NewPedanticRegistry() // also checks Describe matches Collect
	reg.MustRegister(c)
	for want := 1; want <= 3; want++ {
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
		if got := calls.Load(); got != int64(want) {
			t.Fatalf("source called %d times after %d scrapes", got, want)
		}
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
}
