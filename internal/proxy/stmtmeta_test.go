package proxy

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/database-mesh/pisanix-go/internal/metrics"
	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

func metaEntry(key string, defBytes int) *stmtMeta {
	return &stmtMeta{key: key, ok: make([]byte, 12), defs: [][]byte{make([]byte, defBytes)}, cols: 1}
}

// The cache keeps at most maxEntries entries and maxBytes bytes, evicting
// the least recently used; entries expire; an invalidation drops
// everything and refuses answers read before it.
func TestStmtMetaCacheBounds(t *testing.T) {
	now := time.Unix(1000, 0)
	mc := newStmtMetaCache(3, 1<<20, time.Minute)
	mc.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if n := mc.put(metaEntry(fmt.Sprint("k", i), 10), mc.generation()); n != 0 {
			t.Fatalf("put %d evicted %d", i, n)
		}
	}
	if e, _ := mc.get([]byte("k0")); e == nil { // k0 is now the most recently used
		t.Fatal("k0 missing")
	}
	if n := mc.put(metaEntry("k3", 10), mc.generation()); n != 1 {
		t.Fatalf("4th entry evicted %d, want 1", n)
	}
	if e, _ := mc.get([]byte("k1")); e != nil {
		t.Fatal("k1, the least recently used, was not evicted")
	}
	for _, k := range []string{"k0", "k2", "k3"} {
		if e, _ := mc.get([]byte(k)); e == nil {
			t.Fatalf("%s evicted", k)
		}
	}
	if n, b := mc.usage(); n != 3 || b <= 0 {
		t.Fatalf("usage %d entries %d bytes", n, b)
	}

	// Age.
	now = now.Add(61 * time.Second)
	if e, expired := mc.get([]byte("k0")); e != nil || !expired {
		t.Fatalf("entry older than max age: %v, expired %v", e, expired)
	}
	if n, _ := mc.usage(); n != 2 {
		t.Fatalf("%d entries after expiry, want 2", n)
	}

	// Invalidation: all gone, and an answer read before it is not kept.
	gen := mc.generation()
	if n := mc.invalidate(); n != 2 {
		t.Fatalf("invalidate dropped %d, want 2", n)
	}
	mc.put(metaEntry("old", 10), gen)
	if e, _ := mc.get([]byte("old")); e != nil {
		t.Fatal("an answer read before an invalidation was cached")
	}
	if n, b := mc.usage(); n != 0 || b != 0 {
		t.Fatalf("after invalidate: %d entries %d bytes", n, b)
	}

	// Bytes: each entry is about 1 KiB; 8 KiB hold at most 8 of them and
	// an entry over 1/8 of the bound is never cached.
	mc = newStmtMetaCache(1000, 8<<10, time.Minute)
	for i := 0; i < 50; i++ {
		mc.put(metaEntry(fmt.Sprint("b", i), 800), mc.generation())
		if _, b := mc.usage(); b > 8<<10 {
			t.Fatalf("%d bytes held, bound %d", b, 8<<10)
		}
	}
	if n, _ := mc.usage(); n == 0 || n > 8 {
		t.Fatalf("%d entries of ~1 KiB under an 8 KiB bound", n)
	}
	if e, _ := mc.get([]byte("b49")); e == nil {
		t.Fatal("the newest entry was evicted")
	}
	mc.put(metaEntry("huge", 2<<10), mc.generation())
	if e, _ := mc.get([]byte("huge")); e != nil {
		t.Fatal("an entry over 1/8 of the byte bound was cached")
	}
	mc.remove("b49")
	if e, _ := mc.get([]byte("b49")); e != nil {
		t.Fatal("remove kept the entry")
	}
	if newStmtMetaCache(0, 1<<20, time.Minute) != nil {
		t.Fatal("size 0 must turn the cache off")
	}
}

func TestLeadingSchemaChange(t *testing.T) {
	for q, want := range map[string]bool{
		"ALTER TABLE t ADD c INT":                 true,
		"  create table x (a int)":                true,
		"/* hi */ DROP VIEW v":                    true,
		"/*!40101 ALTER TABLE t ENGINE=InnoDB */": true,
		"rename table a to b":                     true,
		"TRUNCATE t":                              true,
		"GRANT SELECT ON *.* TO u":                true,
		"SELECT * FROM t":                         false,
		"INSERT INTO t VALUES (1)":                false,
		"CALL p()":                                false,
		"DELETE FROM t":                           false,
		"dropped":                                 false,
	} {
		if got := leadingSchemaChange([]byte(q)); got != want {
			t.Errorf("leadingSchemaChange(%q) = %v, want %v", q, got, want)
		}
	}
	if !hasSemicolon([]byte("SELECT 1; ALTER TABLE t ADD c INT")) || hasSemicolon([]byte("SELECT 1 ;  ")) {
		t.Error("hasSemicolon")
	}
}

// metaProxy is a proxy on its own MariaDB (global counters undisturbed by
// other tests), with the metadata cache's metrics registered.
func metaProxy(t *testing.T, maxOpen int, edit func(*proxyconfig.Listener)) (*testProxy, *prometheus.Registry, *testutil.MariaDB, *sql.DB) {
	t.Helper()
	srv := testutil.StartMariaDB(t)
	cfg := baseConfig(srv.Addr)
	cfg.Proxy.Config[0].Pool = proxyconfig.Pool{MaxOpen: maxOpen, WaitTimeout: proxyconfig.Duration{Duration: 5 * time.Second}}
	if edit != nil {
		edit(&cfg.Proxy.Config[0])
	}
	tp, reg, _ := startProxyMetrics(t, cfg)
	reg.MustRegister(tp.p.StmtMetaCollector())
	direct := srv.Open(t, "test")
	direct.SetMaxOpenConns(1)
	return tp, reg, srv, direct
}

func comStmtPrepare(t *testing.T, direct *sql.DB) int {
	t.Helper()
	var name string
	var v int
	if err := direct.QueryRow("SHOW GLOBAL STATUS LIKE 'Com_stmt_prepare'").Scan(&name, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func metaMetric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return metricValue(t, reg, "pisa_proxy_stmt_metadata_cache_"+name, map[string]string{"domain": "test"})
}

// go-sql-driver without interpolateParams prepares, executes and closes
// for every query with arguments. Sessions preparing the same text are
// answered from the listener's cache: the backend prepares it at most once
// per connection (lazily, at the first execute there), not once per query.
func TestPrepareAnsweredFromMetadataCache(t *testing.T) {
	const maxOpen, sessions, perSession = 3, 24, 5
	tp, reg, _, direct := metaProxy(t, maxOpen, nil)
	if _, err := direct.Exec("CREATE TABLE t (id INT PRIMARY KEY, c VARCHAR(20))"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if _, err := direct.Exec("INSERT INTO t VALUES (?, ?)", i, fmt.Sprint("c", i)); err != nil {
			t.Fatal(err)
		}
	}
	query := func(db *sql.DB, id int) {
		var c string
		if err := db.QueryRow("SELECT c FROM t WHERE id = ?", id).Scan(&c); err != nil {
			t.Errorf("query %d: %v", id, err)
			return
		}
		if c != fmt.Sprint("c", id) {
			t.Errorf("id %d: got %q", id, c)
		}
	}
	before := comStmtPrepare(t, direct)
	// One first prepare, then the sessions at once.
	query(openDB(t, tp.dsn("")), 0)
	var wg sync.WaitGroup
	for s := 0; s < sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := sql.Open("mysql", tp.dsn(""))
			if err != nil {
				t.Error(err)
				return
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			for i := 0; i < perSession; i++ {
				query(db, (s*perSession+i)%100)
			}
		}()
	}
	wg.Wait()
	prepares := comStmtPrepare(t, direct) - before
	used := openBackends(tp)
	t.Logf("%d queries in %d sessions: backend Com_stmt_prepare +%d, %d backend connections, cache hits %v misses %v",
		1+sessions*perSession, sessions, prepares, used, metaMetric(t, reg, "hits_total"), metaMetric(t, reg, "misses_total"))
	if used > maxOpen {
		t.Fatalf("%d backend connections, max_open %d", used, maxOpen)
	}
	if prepares > used {
		t.Fatalf("backend prepared the text %d times for %d queries on %d connections; want at most one per connection", prepares, 1+sessions*perSession, used)
	}
	if h := metaMetric(t, reg, "hits_total"); h != sessions*perSession {
		t.Fatalf("%v cache hits, want %d", h, sessions*perSession)
	}
	if m := metaMetric(t, reg, "misses_total"); m != 1 {
		t.Fatalf("%v cache misses, want 1", m)
	}
	if n := metaMetric(t, reg, "entries"); n != 1 {
		t.Fatalf("%v entries, want 1", n)
	}
}

// DDL through the listener clears its cache: a prepare after an ALTER
// TABLE (text or prepared) describes the new columns.
func TestMetadataCacheClearedByDDL(t *testing.T) {
	tp, reg, _, _ := metaProxy(t, 2, nil)
	pc := pdialProxy(t, tp.addr, 0, 0)
	pc.mustQuery(t, "CREATE TABLE t2 (id INT PRIMARY KEY, a INT)")
	if st := pc.prepare(t, "SELECT * FROM t2"); st.cols != 2 {
		t.Fatalf("%d columns, want 2", st.cols)
	}
	other := pdialProxy(t, tp.addr, 0, 0)
	if st := other.prepare(t, "SELECT * FROM t2"); st.cols != 2 {
		t.Fatalf("%d columns, want 2", st.cols)
	}
	if h := metaMetric(t, reg, "hits_total"); h != 1 {
		t.Fatalf("%v hits, want 1", h)
	}
	inv := metaMetric(t, reg, "invalidations_total") // CREATE TABLE was one
	pc.mustQuery(t, "/* add one */ alter table t2 ADD COLUMN b INT")
	if st := other.prepare(t, "SELECT * FROM t2"); st.cols != 3 {
		t.Fatalf("after ALTER TABLE through the proxy: %d columns, want 3", st.cols)
	}
	if n := metaMetric(t, reg, "invalidations_total"); n != inv+1 {
		t.Fatalf("%v invalidations, want %v", n, inv+1)
	}
	// A prepared ALTER.
	alter := pc.prepare(t, "ALTER TABLE t2 ADD COLUMN c INT")
	if rs := pc.execute(t, alter.id, 0); rs[0].err != nil {
		t.Fatalf("prepared ALTER: %v", rs[0].err)
	}
	if st := other.prepare(t, "SELECT * FROM t2"); st.cols != 4 {
		t.Fatalf("after a prepared ALTER TABLE: %d columns, want 4", st.cols)
	}
	// A multi-statement text with DDL in its second statement.
	mc := pdialProxy(t, tp.addr, mysql.ClientMultiStatements, 0)
	if st := mc.prepare(t, "SELECT * FROM t2"); st.cols != 4 {
		t.Fatalf("%d columns, want 4", st.cols)
	}
	mc.query(t, "SELECT 1; ALTER TABLE t2 DROP COLUMN a")
	if st := other.prepare(t, "SELECT * FROM t2"); st.cols != 3 {
		t.Fatalf("after a multi-statement ALTER: %d columns, want 3", st.cols)
	}
	// A temporary table shadowing t2 is its session's only: that session
	// prepares on its connection, the others keep the cache (not cleared
	// by the temporary table's CREATE, not filled by that session).
	inv = metaMetric(t, reg, "invalidations_total")
	tmp := pdialProxy(t, tp.addr, 0, 0)
	tmp.mustQuery(t, "CREATE TEMPORARY TABLE t2 (only_one INT)")
	if st := tmp.prepare(t, "SELECT * FROM t2"); st.cols != 1 {
		t.Fatalf("the session with a temporary t2: %d columns, want 1", st.cols)
	}
	hits := metaMetric(t, reg, "hits_total")
	if st := other.prepare(t, "SELECT * FROM t2"); st.cols != 3 {
		t.Fatalf("another session after a temporary t2: %d columns, want 3", st.cols)
	}
	if n := metaMetric(t, reg, "invalidations_total"); n != inv {
		t.Fatalf("CREATE TEMPORARY TABLE cleared the cache (%v invalidations, want %v)", n, inv)
	}
	if h := metaMetric(t, reg, "hits_total"); h != hits+1 {
		t.Fatalf("%v hits, want %v", h, hits+1)
	}
}

// A table dropped behind the proxy's back after a prepare answered from the
// cache: the execute gets the server's ERR 1146, the session goes on, and
// the next prepare asks a backend again (the entry is dropped). Both ways the
// execute can meet the drop: on a connection without the statement (its lazy
// prepare fails), and on the one that has it (the server's re-prepare fails
// the execute).
func TestExecuteAfterTableDroppedBehindProxy(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pool       int
		holdsOther bool // the session that prepared keeps its connection in a transaction
	}{
		{"lazy prepare fails", 2, true},
		{"execute fails", 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp, reg, _, direct := metaProxy(t, tc.pool, nil)
			if _, err := direct.Exec("CREATE TABLE t3 (id INT PRIMARY KEY)"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = direct.Exec("DROP TABLE IF EXISTS t3") })
			const q = "SELECT * FROM t3 WHERE id = ?"
			a := pdialProxy(t, tp.addr, 0, 0)
			if tc.holdsOther {
				// a's transaction holds the connection the statement is
				// prepared on: b's execute gets the other one.
				a.mustQuery(t, "BEGIN")
				a.mustQuery(t, "SELECT 1")
			}
			a.prepare(t, q)
			b := pdialProxy(t, tp.addr, 0, 0)
			sb := b.prepare(t, q)
			if h := metaMetric(t, reg, "hits_total"); h != 1 {
				t.Fatalf("%v hits, want 1", h)
			}
			if _, err := direct.Exec("DROP TABLE t3"); err != nil {
				t.Fatal(err)
			}
			rs := b.execute(t, sb.id, 0, intParam(1))
			if len(rs) != 1 || rs[0].err == nil || rs[0].err.Code != 1146 {
				t.Fatalf("execute after DROP TABLE: %s, want ERR 1146", shape(rs))
			}
			if got := b.mustQuery(t, "SELECT 7"); len(got.rows) != 1 {
				t.Fatalf("session after the ERR: %s", got)
			}
			b.send(t, append([]byte{mysql.ComStmtPrepare}, q...))
			if _, e := b.readPrepare(t); e == nil || e.Code != 1146 {
				t.Fatalf("prepare after the failed execute: %v, want ERR 1146 (the entry dropped)", e)
			}
			if tc.holdsOther {
				a.mustQuery(t, "ROLLBACK")
			}
		})
	}
}

// Inside a transaction a prepare is answered from the cache without
// touching the session's connection, which stays pinned: the execute runs
// in the transaction.
func TestMetadataCacheInTransaction(t *testing.T) {
	tp, reg, _, direct := metaProxy(t, 3, nil)
	if _, err := direct.Exec("CREATE TABLE t4 (id INT PRIMARY KEY, v BIGINT)"); err != nil {
		t.Fatal(err)
	}
	const q = "SELECT v FROM t4 WHERE id = ?"
	warm := pdialProxy(t, tp.addr, 0, 0)
	warm.prepare(t, q)
	pc := pdialProxy(t, tp.addr, 0, 0)
	pc.mustQuery(t, "BEGIN")
	pc.mustQuery(t, "INSERT INTO t4 VALUES (1, 42)")
	st := pc.prepare(t, q)
	if h := metaMetric(t, reg, "hits_total"); h != 1 {
		t.Fatalf("%v hits, want 1", h)
	}
	// Other sessions take the other connections meanwhile.
	for i := 0; i < 2; i++ {
		o := pdialProxy(t, tp.addr, 0, 0)
		o.mustQuery(t, "SELECT 1")
	}
	rs := pc.execute(t, st.id, 0, intParam(1))
	if got := scalarRow(t, pc, rs, []byte{typeLongLong}); got != "42" {
		t.Fatalf("execute in the transaction: %q, want the uncommitted 42", got)
	}
	if rs[0].status&mysql.StatusInTrans == 0 {
		t.Fatalf("status %#x: transaction not open", rs[0].status)
	}
	pc.mustQuery(t, "ROLLBACK")
	var n int
	if err := direct.QueryRow("SELECT COUNT(*) FROM t4").Scan(&n); err != nil || n != 0 {
		t.Fatalf("after ROLLBACK: %d rows (%v)", n, err)
	}
}

// rawPrepare returns every packet of a prepare response, the statement id
// zeroed.
func rawPrepare(t *testing.T, pc *pconn, q string) [][]byte {
	t.Helper()
	pc.send(t, append([]byte{mysql.ComStmtPrepare}, q...))
	first := bytes.Clone(pc.read(t))
	if first[0] != mysql.OKHeader {
		t.Fatalf("prepare %q: %q", q, first)
	}
	copy(first[1:5], []byte{0, 0, 0, 0})
	out := [][]byte{first}
	for _, n := range []int{int(first[7]) | int(first[8])<<8, int(first[5]) | int(first[6])<<8} {
		if n == 0 {
			continue
		}
		if !pc.deprecateEOF() {
			n++
		}
		for i := 0; i < n; i++ {
			out = append(out, bytes.Clone(pc.read(t)))
		}
	}
	return out
}

// A prepare answered from the cache is byte for byte the one the backend
// path sends, whatever the client's capabilities (CLIENT_DEPRECATE_EOF,
// MariaDB extended metadata), also for a client whose capabilities differ
// from those of the client whose prepare filled the cache.
func TestMetadataCacheAnswerFidelity(t *testing.T) {
	tp, _, _, direct := metaProxy(t, 2, func(l *proxyconfig.Listener) { l.ServerVersion = "5.5.5-10.11.6-MariaDB" })
	if _, err := direct.Exec("CREATE TABLE t5 (id INT PRIMARY KEY, j JSON, c VARCHAR(20) CHARACTER SET latin1, d DECIMAL(10,2))"); err != nil {
		t.Fatal(err)
	}
	type variant struct {
		name      string
		caps, ext uint32
	}
	variants := []variant{
		{"classic", 0, 0},
		{"deprecate_eof", mysql.ClientDeprecateEOF, 0},
		{"extended_metadata", 0, mysql.MariaDBClientExtendedMetadata},
		{"both", mysql.ClientDeprecateEOF, mysql.MariaDBClientExtendedMetadata},
	}
	for i, fill := range variants {
		q := fmt.Sprintf("SELECT id, j, c, d, ? AS p FROM t5 WHERE id = ? /* %d */", i)
		pc := pdialProxy(t, tp.addr, fill.caps, fill.ext)
		want := rawPrepare(t, pc, q) // from the backend
		if len(want) < 8 {
			t.Fatalf("%s: %d packets", fill.name, len(want))
		}
		if got := rawPrepare(t, pc, q); !equalPackets(got, want) {
			t.Fatalf("%s: from the cache\n%q\nfrom the backend\n%q", fill.name, got, want)
		}
		for _, v := range variants {
			// Each variant's answer from the cache against its own from
			// the backend (a text the cache does not have).
			o := pdialProxy(t, tp.addr, v.caps, v.ext)
			ref := rawPrepare(t, o, q+" /* "+v.name+" */")
			got := rawPrepare(t, o, q)
			if !equalPackets(got, ref) {
				t.Fatalf("filled by %s, read by %s: from the cache\n%q\nfrom the backend\n%q", fill.name, v.name, got, ref)
			}
		}
	}
}

// character_set_results is part of the key: column definitions carry the
// result character set and lengths in it.
func TestMetadataCacheKeyHasResultCharset(t *testing.T) {
	tp, _, _, direct := metaProxy(t, 2, nil)
	if _, err := direct.Exec("CREATE TABLE t6 (id INT PRIMARY KEY, c VARCHAR(20))"); err != nil {
		t.Fatal(err)
	}
	const q = "SELECT c FROM t6 WHERE id = ?"
	a := pdialProxy(t, tp.addr, 0, 0)
	rawPrepare(t, a, q) // cached for utf8mb4 results
	b := pdialProxy(t, tp.addr, 0, 0)
	b.mustQuery(t, "SET character_set_results = latin1")
	ref := rawPrepare(t, b, q+" /* ref */")
	if got := rawPrepare(t, b, q); !equalPackets(got, ref) {
		t.Fatalf("latin1 results: from the cache\n%q\nfrom the backend\n%q", got, ref)
	}
	if equalPackets(rawPrepare(t, a, q), ref) {
		t.Fatal("utf8mb4 and latin1 results got the same definitions: the test shows nothing")
	}
}

func equalPackets(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// A listener with metadata_cache_size = 0 prepares every time on a backend;
// max_per_connection bounds the statements kept on one connection.
func TestPreparedStatementsConfig(t *testing.T) {
	off := 0
	tp, reg, _, direct := metaProxy(t, 1, func(l *proxyconfig.Listener) {
		l.PreparedStatements = &proxyconfig.PreparedStatements{MetadataCacheSize: &off, MaxPerConnection: 2}
	})
	pc := pdialProxy(t, tp.addr, 0, 0)
	before := comStmtPrepare(t, direct)
	for i := 0; i < 3; i++ {
		pc.prepare(t, "SELECT 1")
	}
	if n := comStmtPrepare(t, direct) - before; n != 3 {
		t.Fatalf("cache off: %d backend prepares for 3, want 3", n)
	}
	if h := metaMetric(t, reg, "hits_total"); h != 0 {
		t.Fatalf("cache off: %v hits", h)
	}
	for i := 0; i < 4; i++ {
		pc.prepare(t, fmt.Sprintf("SELECT %d + ?", i))
	}
	if n := metricValue(t, reg, "pisa_proxy_stmt_evictions_total", nil); n < 2 {
		t.Fatalf("max_per_connection 2: %v evictions after 5 texts on one connection", n)
	}
	var name, count string
	if err := direct.QueryRow("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'").Scan(&name, &count); err != nil {
		t.Fatal(err)
	}
	if count != "2" {
		t.Fatalf("Prepared_stmt_count %s, want 2 (max_per_connection)", count)
	}
}

// BenchmarkQueryRowWithArgs: go-sql-driver's db.QueryRow with an argument
// (prepare, execute, close per query) from 8 goroutines through the proxy,
// with the metadata cache off (every prepare on a backend, as before it
// existed) and on; it reports the backend's Com_stmt_prepare per query.
//
//	go test -run '^$' -bench BenchmarkQueryRowWithArgs -benchtime 5s ./internal/proxy
func BenchmarkQueryRowWithArgs(b *testing.B) {
	srv := testutil.StartMariaDB(b)
	direct := srv.Open(b, "test")
	direct.SetMaxOpenConns(1)
	for _, q := range []string{"CREATE TABLE t (id INT PRIMARY KEY, c VARCHAR(20))",
		"INSERT INTO t SELECT seq, CONCAT('c', seq) FROM seq_0_to_999"} {
		if _, err := direct.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	status := func() float64 {
		var name string
		var v float64
		if err := direct.QueryRow("SHOW GLOBAL STATUS LIKE 'Com_stmt_prepare'").Scan(&name, &v); err != nil {
			b.Fatal(err)
		}
		return v
	}
	for _, size := range []int{0, proxyconfig.DefaultMetadataCacheSize} {
		name := "cache_off"
		if size > 0 {
			name = "cache_on"
		}
		b.Run(name, func(b *testing.B) {
			cfg := baseConfig(srv.Addr)
			cfg.Proxy.Config[0].PreparedStatements = &proxyconfig.PreparedStatements{MetadataCacheSize: &size}
			cfg.ApplyDefaults()
			p := New(slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.NewProxy(nil))
			if err := p.Apply(cfg); err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			db, err := sql.Open("mysql", "proxy:proxypass@tcp("+p.Listener("test").Addr().String()+")/test")
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(8)
			db.SetMaxIdleConns(8)
			b.SetParallelism(8 / max(1, goruntime.GOMAXPROCS(0)))
			before := status()
			var next atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var c string
				for pb.Next() {
					if err := db.QueryRow("SELECT c FROM t WHERE id = ?", next.Add(1)%1000).Scan(&c); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric((status()-before)/float64(b.N), "backend_prepares/op")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
		})
	}
}
