package metrics

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNewProxyRegistersEveryMetric(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	p := NewProxy(reg)
	reg.MustRegister(NewPoolCollector(func() []PoolStats {
		return []PoolStats{{Domain: "d", Server: "s:3306"}}
	}))

	// Vec metrics appear only once a series exists: touch each one.
	p.Command("d", TypeQuery, "s:3306").Processed.Inc()
	p.ClientConnected("d")
	p.ClientAuthFailed("d")
	p.BackendPinned("d", PinTransaction)
	p.Error("d", 1045)
	p.BackendConnectError("s:3306")
	p.SetEndpointUp("d", "ds1", "s:3306", true)
	p.XATransaction("d", "started")
	p.XARecovered("commit")

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, mf := range mfs {
		got[mf.GetName()] = mf.GetType().String()
	}
	want := map[string]string{
		"pisa_proxy_sql_processed_total":                      "COUNTER",
		"pisa_proxy_sql_processed_duration_seconds":           "HISTOGRAM",
		"pisa_proxy_sql_under_processing":                     "GAUGE",
		"pisa_proxy_client_connections":                       "GAUGE",
		"pisa_proxy_client_connections_total":                 "COUNTER",
		"pisa_proxy_client_auth_failures_total":               "COUNTER",
		"pisa_proxy_backend_pins_total":                       "COUNTER",
		"pisa_proxy_errors_total":                             "COUNTER",
		"pisa_proxy_backend_connect_errors_total":             "COUNTER",
		"pisa_proxy_backend_endpoint_up":                      "GAUGE",
		"pisa_proxy_backend_pool_max_open_connections":        "GAUGE",
		"pisa_proxy_backend_pool_open_connections":            "GAUGE",
		"pisa_proxy_backend_pool_idle_connections":            "GAUGE",
		"pisa_proxy_backend_pool_in_use_connections":          "GAUGE",
		"pisa_proxy_backend_pool_wait_total":                  "COUNTER",
		"pisa_proxy_backend_pool_wait_duration_seconds_total": "COUNTER",
		"pisa_proxy_backend_pool_wait_timeouts_total":         "COUNTER",
		"pisa_proxy_backend_pool_closed_total":                "COUNTER",
		"pisa_proxy_xa_transactions_total":                    "COUNTER",
		"pisa_proxy_xa_recovered_branches_total":              "COUNTER",
		"pisa_proxy_xa_in_doubt_branches":                     "GAUGE",
		"pisa_proxy_xa_decision_log_sync_seconds":             "HISTOGRAM",
	}
	for name, typ := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("metric %s not exported", name)
		} else if g != typ {
			t.Errorf("metric %s has type %v, want %v", name, g, typ)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected metric %s", name)
		}
	}

	// Naming conventions (units, _total suffixes, help text).
	for _, c := range append(p.Collectors(), p.xa.collectors()...) {
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range problems {
			t.Errorf("lint %s: %s", pr.Metric, pr.Text)
		}
	}
}

func TestNewProxyNilRegisterer(t *testing.T) {
	p := NewProxy(nil)
	p.Command("d", TypeQuery, "s").Processed.Inc()
	if got := testutil.ToFloat64(p.sqlProcessed.WithLabelValues("d", TypeQuery, "s")); got != 1 {
		t.Fatalf("got %v, want 1", got)
	}
}

func TestCommandCounters(t *testing.T) {
	type call struct {
		domain, typ, server string
		n                   int
	}
	tests := []struct {
		name     string
		calls    []call
		inFlight []call // Begin without End
		want     string
	}{
		{
			name:  "one tuple",
			calls: []call{{"shop", TypeQuery, "10.0.0.1:3306", 3}},
			want: `
# HELP pisa_proxy_sql_processed_total Commands forwarded to a backend and answered, by domain, command type and backend server.
# TYPE pisa_proxy_sql_processed_total counter
pisa_proxy_sql_processed_total{domain="shop",server="10.0.0.1:3306",type="COM_QUERY"} 3
# HELP pisa_proxy_sql_under_processing Commands being processed right now.
# TYPE pisa_proxy_sql_under_processing gauge
pisa_proxy_sql_under_processing{domain="shop",server="10.0.0.1:3306",type="COM_QUERY"} 0
`,
		},
		{
			name: "tuples are separate series",
			calls: []call{
				{"shop", TypeQuery, "10.0.0.1:3306", 2},
				{"shop", TypeStmtExecute, "10.0.0.1:3306", 5},
				{"shop", TypeQuery, "10.0.0.2:3306", 1},
				{"blog", TypeInitDB, "10.0.0.1:3306", 1},
			},
			inFlight: []call{{"shop", TypeStmtPrepare, "10.0.0.2:3306", 2}},
			want: `
# HELP pisa_proxy_sql_processed_total Commands forwarded to a backend and answered, by domain, command type and backend server.
# TYPE pisa_proxy_sql_processed_total counter
pisa_proxy_sql_processed_total{domain="blog",server="10.0.0.1:3306",type="COM_INIT_DB"} 1
pisa_proxy_sql_processed_total{domain="shop",server="10.0.0.1:3306",type="COM_QUERY"} 2
pisa_proxy_sql_processed_total{domain="shop",server="10.0.0.1:3306",type="COM_STMT_EXECUTE"} 5
pisa_proxy_sql_processed_total{domain="shop",server="10.0.0.2:3306",type="COM_QUERY"} 1
pisa_proxy_sql_processed_total{domain="shop",server="10.0.0.2:3306",type="COM_STMT_PREPARE"} 0
# HELP pisa_proxy_sql_under_processing Commands being processed right now.
# TYPE pisa_proxy_sql_under_processing gauge
pisa_proxy_sql_under_processing{domain="blog",server="10.0.0.1:3306",type="COM_INIT_DB"} 0
pisa_proxy_sql_under_processing{domain="shop",server="10.0.0.1:3306",type="COM_QUERY"} 0
pisa_proxy_sql_under_processing{domain="shop",server="10.0.0.1:3306",type="COM_STMT_EXECUTE"} 0
pisa_proxy_sql_under_processing{domain="shop",server="10.0.0.2:3306",type="COM_QUERY"} 0
pisa_proxy_sql_under_processing{domain="shop",server="10.0.0.2:3306",type="COM_STMT_PREPARE"} 2
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewProxy(nil)
			for _, c := range tt.calls {
				for range c.n {
					m := p.Command(c.domain, c.typ, c.server)
					m.End(m.Begin())
				}
			}
			for _, c := range tt.inFlight {
				for range c.n {
					p.Command(c.domain, c.typ, c.server).Begin()
				}
			}
			c := prometheus.Collector(multiCollector{p.sqlProcessed, p.sqlUnderProcessing})
			if err := testutil.CollectAndCompare(c, strings.NewReader(tt.want)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// multiCollector merges collectors so one CollectAndCompare covers them.
type multiCollector []prometheus.Collector

func (m multiCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m {
		c.Describe(ch)
	}
}

func (m multiCollector) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m {
		c.Collect(ch)
	}
}

func TestCommandDurationHistogram(t *testing.T) {
	p := NewProxy(nil)
	m := p.Command("shop", TypeQuery, "db:3306")
	for _, v := range []float64{0.00005, 0.0002, 0.003, 0.003, 0.7, 20} {
		m.Duration.Observe(v)
	}
	want := `
# HELP pisa_proxy_sql_processed_duration_seconds Time from receiving a command to having sent its whole response to the client, in seconds.
# TYPE pisa_proxy_sql_processed_duration_seconds histogram
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="0.0001"} 1
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="0.00025"} 2
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="0.0005"} 2
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="0.001"} 2
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="0.0025"} 2
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="0.005"} 4
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="0.01"} 4
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="0.025"} 4
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="0.05"} 4
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="0.1"} 4
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="0.25"} 4
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="0.5"} 4
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="1"} 5
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="2.5"} 5
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="5"} 5
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="10"} 5
pisa_proxy_sql_processed_duration_seconds_bucket{domain="shop",server="db:3306",type="COM_QUERY",le="+Inf"} 6
pisa_proxy_sql_processed_duration_seconds_sum{domain="shop",server="db:3306",type="COM_QUERY"} 20.70625
pisa_proxy_sql_processed_duration_seconds_count{domain="shop",server="db:3306",type="COM_QUERY"} 6
`
	if err := testutil.CollectAndCompare(p.sqlDuration, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestBeginEnd(t *testing.T) {
	p := NewProxy(nil)
	m := p.Command("shop", TypeQuery, "db:3306")
	start := m.Begin()
	if got := testutil.ToFloat64(m.InFlight); got != 1 {
		t.Fatalf("in flight after Begin = %v, want 1", got)
	}
	m.End(start.Add(-30 * time.Millisecond)) // pretend it took >= 30ms
	if got := testutil.ToFloat64(m.InFlight); got != 0 {
		t.Fatalf("in flight after End = %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.Processed); got != 1 {
		t.Fatalf("processed = %v, want 1", got)
	}
	count, sum := histogramCountSum(t, p.sqlDuration)
	if count != 1 {
		t.Fatalf("sample count = %d, want 1", count)
	}
	if s := sum; s < 0.03 || s > 10 {
		t.Fatalf("sample sum = %v, want >= 0.03", s)
	}
}

// histogramCountSum returns the sample count and sum of the only series of
// the histogram vec c.
func histogramCountSum(t *testing.T, c prometheus.Collector) (uint64, float64) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("want one histogram series, got %v", mfs)
	}
	h := mfs[0].GetMetric()[0].GetHistogram()
	return h.GetSampleCount(), h.GetSampleSum()
}

func TestCommandIsCached(t *testing.T) {
	p := NewProxy(nil)
	a := p.Command("d", TypeQuery, "s")
	if b := p.Command("d", TypeQuery, "s"); a != b {
		t.Fatal("Command returned a different value for the same tuple")
	}
	if c := p.Command("d", TypeQuery, "s2"); a == c {
		t.Fatal("Command returned the same value for different tuples")
	}
	if n := testing.AllocsPerRun(100, func() { p.Command("d", TypeQuery, "s").Processed.Inc() }); n != 0 {
		t.Fatalf("cached Command allocates %v times", n)
	}
}

func TestCommandConcurrent(t *testing.T) {
	p := NewProxy(nil)
	servers := []string{"a:3306", "b:3306", "c:3306"}
	const goroutines, perG = 16, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				m := p.Command("d", TypeQuery, servers[(g+i)%len(servers)])
				m.End(m.Begin())
			}
		})
	}
	wg.Wait()
	total := 0.0
	for _, s := range servers {
		total += testutil.ToFloat64(p.Command("d", TypeQuery, s).Processed)
		if v := testutil.ToFloat64(p.Command("d", TypeQuery, s).InFlight); v != 0 {
			t.Errorf("%s in flight = %v", s, v)
		}
	}
	if total != goroutines*perG {
		t.Fatalf("processed = %v, want %d", total, goroutines*perG)
	}
	if n := testutil.CollectAndCount(p.sqlProcessed); n != len(servers) {
		t.Fatalf("%d series, want %d", n, len(servers))
	}
}

func TestClientMetrics(t *testing.T) {
	p := NewProxy(nil)
	for range 3 {
		p.ClientConnected("shop")
	}
	p.ClientDisconnected("shop")
	p.ClientConnected("blog")
	p.ClientAuthFailed("shop")
	p.ClientAuthFailed("shop")

	want := `
# HELP pisa_proxy_client_connections Client connections currently open.
# TYPE pisa_proxy_client_connections gauge
pisa_proxy_client_connections{domain="blog"} 1
pisa_proxy_client_connections{domain="shop"} 2
# HELP pisa_proxy_client_connections_total Client connections accepted.
# TYPE pisa_proxy_client_connections_total counter
pisa_proxy_client_connections_total{domain="blog"} 1
pisa_proxy_client_connections_total{domain="shop"} 3
# HELP pisa_proxy_client_auth_failures_total Client handshakes rejected because authentication failed.
# TYPE pisa_proxy_client_auth_failures_total counter
pisa_proxy_client_auth_failures_total{domain="shop"} 2
`
	c := multiCollector{p.clientConnections, p.clientConnectionsTotal, p.clientAuthFailures}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestPinsAndErrors(t *testing.T) {
	tests := []struct {
		name string
		do   func(p *Proxy)
		c    func(p *Proxy) prometheus.Collector
		want string
	}{
		{
			name: "pins by reason",
			do: func(p *Proxy) {
				p.BackendPinned("shop", PinTransaction)
				p.BackendPinned("shop", PinTransaction)
				p.BackendPinned("shop", PinUserVariable)
				p.BackendPinned("shop", PinTemporaryTable)
				p.BackendPinned("shop", PinLock)
				p.BackendPinned("blog", PinPreparedStatement)
			},
			c: func(p *Proxy) prometheus.Collector { return p.backendPins },
			want: `
# HELP pisa_proxy_backend_pins_total Times a session pinned its backend connection instead of returning it to the pool, by reason.
# TYPE pisa_proxy_backend_pins_total counter
pisa_proxy_backend_pins_total{domain="blog",reason="prepared_statement"} 1
pisa_proxy_backend_pins_total{domain="shop",reason="lock"} 1
pisa_proxy_backend_pins_total{domain="shop",reason="temporary_table"} 1
pisa_proxy_backend_pins_total{domain="shop",reason="transaction"} 2
pisa_proxy_backend_pins_total{domain="shop",reason="user_variable"} 1
`,
		},
		{
			name: "errors by code",
			do: func(p *Proxy) {
				p.Error("shop", 1045)
				p.Error("shop", 1045)
				p.Error("shop", 2002)
				p.Error("blog", 1049)
				p.Error("blog", 1047)
			},
			c: func(p *Proxy) prometheus.Collector { return p.errors },
			want: `
# HELP pisa_proxy_errors_total MySQL errors sent to clients, by error code (errors from backends and from the proxy itself).
# TYPE pisa_proxy_errors_total counter
pisa_proxy_errors_total{code="1045",domain="shop"} 2
pisa_proxy_errors_total{code="1047",domain="blog"} 1
pisa_proxy_errors_total{code="1049",domain="blog"} 1
pisa_proxy_errors_total{code="2002",domain="shop"} 1
`,
		},
		{
			name: "backend connect errors",
			do: func(p *Proxy) {
				p.BackendConnectError("10.0.0.1:3306")
				p.BackendConnectError("10.0.0.1:3306")
				p.BackendConnectError("10.0.0.2:3306")
			},
			c: func(p *Proxy) prometheus.Collector { return p.backendConnectErrors },
			want: `
# HELP pisa_proxy_backend_connect_errors_total Failed attempts to open a connection to a backend (dial, handshake or authentication).
# TYPE pisa_proxy_backend_connect_errors_total counter
pisa_proxy_backend_connect_errors_total{server="10.0.0.1:3306"} 2
pisa_proxy_backend_connect_errors_total{server="10.0.0.2:3306"} 1
`,
		},
		{
			name: "endpoint up",
			do: func(p *Proxy) {
				p.SetEndpointUp("shop", "ds001", "10.0.0.1:3306", true)
				p.SetEndpointUp("shop", "ds002", "10.0.0.2:3306", true)
				p.SetEndpointUp("shop", "ds002", "10.0.0.2:3306", false)
				p.SetEndpointUp("shop", "ds003", "10.0.0.2:3306", true) // another schema of that server
			},
			c: func(p *Proxy) prometheus.Collector { return p.backendEndpointUp },
			want: `
# HELP pisa_proxy_backend_endpoint_up 1 if the backend endpoint is healthy and used for routing, 0 if it is ejected.
# TYPE pisa_proxy_backend_endpoint_up gauge
pisa_proxy_backend_endpoint_up{domain="shop",node="ds001",server="10.0.0.1:3306"} 1
pisa_proxy_backend_endpoint_up{domain="shop",node="ds002",server="10.0.0.2:3306"} 0
pisa_proxy_backend_endpoint_up{domain="shop",node="ds003",server="10.0.0.2:3306"} 1
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewProxy(nil)
			tt.do(p)
			if err := testutil.CollectAndCompare(tt.c(p), strings.NewReader(tt.want)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPinAndErrorDoNotAllocateWhenCached(t *testing.T) {
	p := NewProxy(nil)
	p.BackendPinned("d", PinTransaction)
	p.Error("d", 1064)
	if n := testing.AllocsPerRun(100, func() { p.BackendPinned("d", PinTransaction) }); n != 0 {
		t.Errorf("BackendPinned allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { p.Error("d", 1064) }); n != 0 {
		t.Errorf("Error allocates %v times", n)
	}
}

func TestForget(t *testing.T) {
	setup := func() *Proxy {
		p := NewProxy(nil)
		for _, d := range []string{"shop", "blog"} {
			for _, s := range []string{"a:3306", "b:3306"} {
				p.Command(d, TypeQuery, s).Processed.Inc()
				p.Command(d, TypeStmtExecute, s).Duration.Observe(0.001)
				p.SetEndpointUp(d, "n-"+s, s, true)
			}
			p.ClientConnected(d)
			p.ClientAuthFailed(d)
			p.BackendPinned(d, PinLock)
			p.Error(d, 1045)
		}
		return p
	}

	t.Run("endpoint", func(t *testing.T) {
		p := setup()
		p.ForgetEndpoint("shop", "a:3306")
		for _, tc := range []struct {
			c    prometheus.Collector
			want int
		}{
			// 2 domains × 2 servers × 2 types, minus shop/a:3306's 2 types.
			{p.sqlProcessed, 6}, {p.sqlDuration, 6}, {p.backendEndpointUp, 3},
			{p.backendPins, 2}, {p.clientConnections, 2},
		} {
			if n := testutil.CollectAndCount(tc.c); n != tc.want {
				t.Errorf("%d series, want %d", n, tc.want)
			}
		}
		// A new Command for the forgotten tuple starts from zero and is exported again.
		p.Command("shop", TypeQuery, "a:3306").Processed.Inc()
		if got := testutil.ToFloat64(p.sqlProcessed.WithLabelValues("shop", TypeQuery, "a:3306")); got != 1 {
			t.Errorf("recreated series = %v, want 1", got)
		}
	})

	t.Run("domain", func(t *testing.T) {
		p := setup()
		p.ForgetDomain("shop")
		for _, tc := range []struct {
			name string
			c    prometheus.Collector
			want int
		}{
			{"processed", p.sqlProcessed, 4}, {"duration", p.sqlDuration, 4},
			{"up", p.backendEndpointUp, 2}, {"pins", p.backendPins, 1},
			{"errors", p.errors, 1}, {"auth", p.clientAuthFailures, 1},
			{"conns total", p.clientConnectionsTotal, 1},
			{"conns (kept)", p.clientConnections, 2},
		} {
			if n := testutil.CollectAndCount(tc.c); n != tc.want {
				t.Errorf("%s: %d series, want %d", tc.name, n, tc.want)
			}
		}
		p.BackendPinned("shop", PinLock)
		p.Error("shop", 1045)
		if got := testutil.ToFloat64(p.backendPins.WithLabelValues("shop", PinLock)); got != 1 {
			t.Errorf("recreated pin series = %v, want 1", got)
		}
		if got := testutil.ToFloat64(p.errors.WithLabelValues("shop", "1045")); got != 1 {
			t.Errorf("recreated error series = %v, want 1", got)
		}
	})
}

func TestDurationBuckets(t *testing.T) {
	if !sort.Float64sAreSorted(DurationBuckets) {
		t.Fatal("buckets not sorted")
	}
	if DurationBuckets[0] != 0.0001 || DurationBuckets[len(DurationBuckets)-1] != 10 {
		t.Fatalf("buckets span %v..%v, want 100µs..10s", DurationBuckets[0], DurationBuckets[len(DurationBuckets)-1])
	}
}

// BenchmarkCommand is the per-statement cost on the session hot path: a
// cached lookup, Inc and Observe.
func BenchmarkCommand(b *testing.B) {
	p := NewProxy(prometheus.NewRegistry())
	for i := range 50 { // a realistic number of other cached tuples
		p.Command("shop", TypeQuery, fmt.Sprintf("10.0.0.%d:3306", i))
	}
	domain, typ, server := "shop", TypeQuery, "10.0.0.7:3306"
	b.ReportAllocs()
	for b.Loop() {
		m := p.Command(domain, typ, server)
		m.Processed.Inc()
		m.Duration.Observe(0.00042)
	}
}

// BenchmarkCommandBeginEnd adds the in-flight gauge and two clock reads.
func BenchmarkCommandBeginEnd(b *testing.B) {
	p := NewProxy(prometheus.NewRegistry())
	b.ReportAllocs()
	for b.Loop() {
		m := p.Command("shop", TypeQuery, "10.0.0.7:3306")
		m.End(m.Begin())
	}
}

func BenchmarkCommandParallel(b *testing.B) {
	p := NewProxy(prometheus.NewRegistry())
	servers := []string{"10.0.0.1:3306", "10.0.0.2:3306", "10.0.0.3:3306", "10.0.0.4:3306"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m := p.Command("shop", TypeQuery, servers[i%len(servers)])
			m.Processed.Inc()
			m.Duration.Observe(0.00042)
			i++
		}
	})
}

// BenchmarkWithLabelValues is what the hot path would cost without the
// cache, for comparison.
func BenchmarkWithLabelValues(b *testing.B) {
	p := NewProxy(prometheus.NewRegistry())
	b.ReportAllocs()
	for b.Loop() {
		p.sqlProcessed.WithLabelValues("shop", TypeQuery, "10.0.0.7:3306").Inc()
		p.sqlDuration.WithLabelValues("shop", TypeQuery, "10.0.0.7:3306").Observe(0.00042)
	}
}
