package proxy

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/database-mesh/pisanix-go/internal/metrics"
	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// startProxyMetrics is startProxy with the proxy's metrics in a registry
// the test reads, and its log lines in a buffer.
func startProxyMetrics(t testing.TB, cfg *proxyconfig.Config) (*testProxy, *prometheus.Registry, *syncBuffer) {
	t.Helper()
	cfg.ApplyDefaults()
	reg := prometheus.NewRegistry()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := New(logger, metrics.NewProxy(reg))
	if err := p.Apply(cfg); err != nil {
		t.Fatalf("apply config: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return &testProxy{p: p, addr: p.Listener(cfg.Proxy.Config[0].Name).Addr().String(), cfg: cfg}, reg, logs
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// metricValue sums the samples of a counter or gauge whose labels include
// want.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// greeted opens a socket to addr and reads the greeting.
func greeted(t testing.TB, addr string) (net.Conn, *mysql.Conn) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	c := mysql.NewConn(nc)
	if _, err := c.ReadPacket(); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	return nc, c
}

// writeHeader writes a packet header announcing n payload bytes.
func writeHeader(t testing.TB, nc net.Conn, n int, seq byte) {
	t.Helper()
	h := []byte{byte(n), byte(n >> 8), byte(n >> 16), seq}
	if _, err := nc.Write(h); err != nil {
		t.Fatal(err)
	}
}

// readErr reads one packet and returns the error it carries.
func readErr(t testing.TB, c *mysql.Conn) *mysql.Error {
	t.Helper()
	p, err := c.ReadPacket()
	if err != nil {
		t.Fatalf("want an ERR packet, read failed: %v", err)
	}
	if len(p) == 0 || p[0] != mysql.ERRHeader {
		t.Fatalf("want an ERR packet, got %q", p)
	}
	return mysql.ParseErr(p)
}

func expectEOF(t testing.TB, nc net.Conn) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	_, err := nc.Read(b[:])
	if err == nil {
		t.Fatal("connection still open: got a byte")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection not closed")
	}
}

// A stranger cannot make the proxy buffer more than a handshake needs.
func TestHandshakePacketLimit(t *testing.T) {
	tp, reg, _ := startProxyMetrics(t, baseConfig(testutil.MariaDBAddr(t)))
	nc, c := greeted(t, tp.addr)
	writeHeader(t, nc, 8<<20, 1)
	if _, err := nc.Write(make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	c.SetSeq(2) // as MariaDB: the sequence after the packet's header
	e := readErr(t, c)
	if e.Code != 1153 || e.SQLState != "08S01" || e.Message != "Got a packet bigger than 'max_allowed_packet' bytes" {
		t.Fatalf("got %v", e)
	}
	expectEOF(t, nc)
	if v := metricValue(t, reg, "pisa_proxy_errors_total", map[string]string{"code": "1153"}); v != 1 {
		t.Fatalf("errors_total{code=1153} = %v", v)
	}
}

// A long user name is cut to MariaDB's 128 characters, in the refusal and
// in the log.
func TestLongUserName(t *testing.T) {
	tp, _, logs := startProxyMetrics(t, baseConfig(testutil.MariaDBAddr(t)))
	long := strings.Repeat("u", 300)
	nc, err := net.DialTimeout("tcp", tp.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_, err = mysql.ClientHandshake(mysql.NewConn(nc), &mysql.ClientConfig{User: long, Password: "x"})
	var me *mysql.Error
	if !errors.As(err, &me) || me.Code != 1045 {
		t.Fatalf("want 1045, got %v", err)
	}
	want := "'" + strings.Repeat("u", 128) + "'@"
	if !strings.Contains(me.Message, want) {
		t.Fatalf("message does not name the user cut to 128 characters: %q", me.Message)
	}
	if strings.Contains(logs.String(), strings.Repeat("u", 129)) {
		t.Fatal("log has the user name longer than 128 characters")
	}
	// A name larger than a handshake packet is refused before it is read.
	nc2, c2 := greeted(t, tp.addr)
	writeHeader(t, nc2, 4<<20, 1)
	_, _ = nc2.Write(bytes.Repeat([]byte{'u'}, 64<<10))
	c2.SetSeq(2)
	if e := readErr(t, c2); e.Code != 1153 {
		t.Fatalf("4 MiB user name: got %v", e)
	}
}

// A logged-in client's packet larger than max_allowed_packet gets ERR 1153
// and its connection is closed, as MariaDB does; one within the limit runs.
func TestMaxAllowedPacket(t *testing.T) {
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.Config[0].MaxAllowedPacket = 64 << 10
	tp, _, _ := startProxyMetrics(t, cfg)
	rc := dialRaw(t, tp.addr)
	q := "SELECT LENGTH('" + strings.Repeat("x", 60<<10) + "')"
	if p := rc.command(t, append([]byte{mysql.ComQuery}, q...)); p[0] == mysql.ERRHeader {
		t.Fatalf("query within the limit: %v", mysql.ParseErr(p))
	}
	rc.readUntilEnd(t, []byte{1}, false)
	big := append([]byte{mysql.ComQuery}, "SELECT '"+strings.Repeat("x", 70<<10)+"'"...)
	rc.c.ResetSeq()
	if err := rc.c.WritePacketFlush(big); err != nil {
		t.Fatal(err)
	}
	if e := readErr(t, rc.c); e.Code != 1153 || e.SQLState != "08S01" {
		t.Fatalf("got %v", e)
	}
	expectEOF(t, rc.c.NetConn())
}

// A packet with a wrong sequence id gets ERR 1156 (sequence 0) before the
// connection closes, as MariaDB sends it.
func TestWrongSequenceID(t *testing.T) {
	tp, _, _ := startProxyMetrics(t, baseConfig(testutil.MariaDBAddr(t)))
	rc := dialRaw(t, tp.addr)
	rc.c.SetSeq(5)
	if err := rc.c.WritePacketFlush([]byte{mysql.ComPing}); err != nil {
		t.Fatal(err)
	}
	rc.c.SetSeq(0)
	if e := readErr(t, rc.c); e.Code != 1156 || e.SQLState != "08S01" || e.Message != "Got packets out of order" {
		t.Fatalf("got %v", e)
	}
	expectEOF(t, rc.c.NetConn())
}

// A malformed handshake gets ERR 1043, counted.
func TestBadHandshakeCounted(t *testing.T) {
	tp, reg, _ := startProxyMetrics(t, baseConfig(testutil.MariaDBAddr(t)))
	nc, c := greeted(t, tp.addr)
	c.SetSeq(1)
	if err := c.WritePacketFlush([]byte("short")); err != nil {
		t.Fatal(err)
	}
	if e := readErr(t, c); e.Code != 1043 {
		t.Fatalf("got %v", e)
	}
	expectEOF(t, nc)
	if v := metricValue(t, reg, "pisa_proxy_errors_total", map[string]string{"code": "1043"}); v != 1 {
		t.Fatalf("errors_total{code=1043} = %v", v)
	}
}

// A client that stalls in the middle of a packet is closed after
// net_read_timeout with ERR 1159.
func TestNetReadTimeout(t *testing.T) {
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.Config[0].NetReadTimeout = proxyconfig.D(300 * time.Millisecond)
	tp, reg, _ := startProxyMetrics(t, cfg)
	rc := dialRaw(t, tp.addr)
	nc := rc.c.NetConn()
	writeHeader(t, nc, 100, 0)
	if _, err := nc.Write([]byte{mysql.ComQuery, 'S', 'E'}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rc.c.SetSeq(1)
	if e := readErr(t, rc.c); e.Code != 1159 || e.SQLState != "08S01" {
		t.Fatalf("got %v", e)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v", d)
	}
	expectEOF(t, nc)
	if v := metricValue(t, reg, "pisa_proxy_client_timeouts_total", map[string]string{"kind": "net_read"}); v != 1 {
		t.Fatalf("client_timeouts_total{kind=net_read} = %v", v)
	}
	// A client that idles between commands is not cut by it.
	idle := dialRaw(t, tp.addr)
	time.Sleep(600 * time.Millisecond)
	if p := idle.command(t, []byte{mysql.ComPing}); p[0] != mysql.OKHeader {
		t.Fatalf("ping after idling: %q", p)
	}
}

// A session idle inside a transaction is closed after
// idle_transaction_timeout and its transaction rolled back; the pool
// connection it held serves others.
func TestIdleTransactionTimeout(t *testing.T) {
	rootExec(t, "CREATE TABLE IF NOT EXISTS test.i10_idletx (id INT PRIMARY KEY)", "DELETE FROM test.i10_idletx")
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.Config[0].IdleTransactionTimeout = proxyconfig.D(400 * time.Millisecond)
	cfg.Proxy.Config[0].Pool.MaxOpen = 1
	tp, reg, logs := startProxyMetrics(t, cfg)
	db := openDB(t, tp.dsn(""))
	c := sqlConn(t, db)
	ctx := context.Background()
	for _, q := range []string{"BEGIN", "INSERT INTO test.i10_idletx VALUES (1)"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// Outside a transaction, idling longer is fine.
	other := sqlConn(t, openDB(t, tp.dsn("")))
	time.Sleep(time.Second)
	if _, err := c.ExecContext(ctx, "COMMIT"); err == nil {
		t.Fatal("COMMIT after idle_transaction_timeout succeeded")
	}
	n := queryString(t, other, "SELECT COUNT(*) FROM test.i10_idletx")
	if n != "0" {
		t.Fatalf("rows after the idle transaction was closed: %s (want 0: rolled back)", n)
	}
	if v := metricValue(t, reg, "pisa_proxy_client_timeouts_total", map[string]string{"kind": "idle_in_transaction"}); v != 1 {
		t.Fatalf("client_timeouts_total{kind=idle_in_transaction} = %v", v)
	}
	if !strings.Contains(logs.String(), "idle inside a transaction") {
		t.Fatal("not logged")
	}
}

// Silent sockets hold neither max_connections nor, for long, the handshake
// slots: a real client logs in while they sit there.
func TestSilentSocketsDoNotLockOut(t *testing.T) {
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.Config[0].MaxConnections = 2
	cfg.Proxy.Config[0].MaxHandshakes = 4
	tp, reg, logs := startProxyMetrics(t, cfg)
	for i := 0; i < 20; i++ {
		nc, err := net.DialTimeout("tcp", tp.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
	}
	time.Sleep(1200 * time.Millisecond) // older than handshakeEvictAge
	for i := 0; i < 2; i++ {
		start := time.Now()
		rc := dialRaw(t, tp.addr)
		if p := rc.command(t, []byte{mysql.ComPing}); p[0] != mysql.OKHeader {
			t.Fatalf("ping: %q", p)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("login took %v", d)
		}
	}
	// max_connections counts logged-in sessions only.
	err := openDB(t, tp.dsn("")).Ping()
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1040 {
		t.Fatalf("third login: want 1040, got %v", err)
	}
	if v := metricValue(t, reg, "pisa_proxy_client_handshakes", nil); v > 4 {
		t.Fatalf("client_handshakes = %v, over max_handshakes", v)
	}
	if v := metricValue(t, reg, "pisa_proxy_client_refusals_total", map[string]string{"reason": "max_handshakes"}); v == 0 {
		t.Fatal("no refusal counted for max_handshakes")
	}
	// Refusals are logged at most once a second each.
	if n := strings.Count(logs.String(), "reason=max_handshakes"); n > 3 {
		t.Fatalf("%d log lines for max_handshakes refusals", n)
	}
}

func TestLogLimiter(t *testing.T) {
	l := newLogLimiter(50 * time.Millisecond)
	if ok, _ := l.allow("a"); !ok {
		t.Fatal("first line dropped")
	}
	for i := 0; i < 5; i++ {
		if ok, _ := l.allow("a"); ok {
			t.Fatal("line within the interval passed")
		}
	}
	if ok, _ := l.allow("b"); !ok {
		t.Fatal("other key dropped")
	}
	time.Sleep(60 * time.Millisecond)
	ok, n := l.allow("a")
	if !ok || n != 5 {
		t.Fatalf("after the interval: ok=%v suppressed=%d, want true 5", ok, n)
	}
	if got := clip(strings.Repeat("é", 300)); len(got) > 300 || !strings.HasSuffix(got, "(600 bytes)") {
		t.Fatalf("clip: %q", got)
	}
}

// Packets that do not fit max_packet_memory wait, then are dropped with
// ERR 1037; the session goes on. Memory is given back after each packet.
func TestPacketMemoryBudget(t *testing.T) {
	defer func(d time.Duration) { packetMemoryWait = d }(packetMemoryWait)
	packetMemoryWait = 300 * time.Millisecond
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.MaxPacketMemory = 4 << 20
	cfg.Proxy.Config[0].MaxAllowedPacket = 4 << 20
	tp, reg, _ := startProxyMetrics(t, cfg)
	holder := dialRaw(t, tp.addr)
	// holder sends 3 MiB of a 4 MiB packet and stalls: its buffer is charged.
	nc := holder.c.NetConn()
	writeHeader(t, nc, 4<<20-100, 0)
	if _, err := nc.Write(append([]byte{mysql.ComQuery}, make([]byte, 3<<20)...)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "holder's memory charged", func() error {
		if used, _ := tp.p.PacketMemory(); used < 2<<20 {
			return fmt.Errorf("used %d", used)
		}
		return nil
	})
	rc := dialRaw(t, tp.addr)
	q := append([]byte{mysql.ComQuery}, "SELECT LENGTH('"+strings.Repeat("x", 2<<20)+"')"...)
	rc.c.ResetSeq()
	if err := rc.c.WritePacketFlush(q); err != nil {
		t.Fatal(err)
	}
	if e := readErr(t, rc.c); e.Code != 1037 || e.SQLState != "HY001" {
		t.Fatalf("got %v", e)
	}
	if p := rc.command(t, []byte{mysql.ComPing}); p[0] != mysql.OKHeader {
		t.Fatalf("session unusable after 1037: %q", p)
	}
	if v := metricValue(t, reg, "pisa_proxy_packet_memory_refusals_total", nil); v != 1 {
		t.Fatalf("packet_memory_refusals_total = %v", v)
	}
	// The holder goes away: its memory comes back, the query fits.
	nc.Close()
	eventually(t, 5*time.Second, "memory given back", func() error {
		if used, _ := tp.p.PacketMemory(); used != 0 {
			return fmt.Errorf("used %d", used)
		}
		return nil
	})
	p := rc.command(t, q)
	rows := rc.readUntilEnd(t, p, false)
	if got := textRow(t, rows[3]); got[0] != fmt.Sprint(2<<20) {
		t.Fatalf("LENGTH = %v", got)
	}
	if used, _ := tp.p.PacketMemory(); used != 0 {
		t.Fatalf("memory still charged after the command: %d", used)
	}
}

// A listener with extra accounts and no user of its own does not let the
// empty user in.
func TestNoEmptyUserBesideAccounts(t *testing.T) {
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.Config[0].User, cfg.Proxy.Config[0].Password = "", ""
	cfg.Proxy.Config[0].Users = []proxyconfig.ListenerUser{{User: "app", Password: "pw"}}
	tp, _, _ := startProxyMetrics(t, cfg)
	db, err := sql.Open("mysql", fmt.Sprintf("@tcp(%s)/test", tp.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ping(); mysqlErrCode(err) != 1045 {
		t.Fatalf("empty user: want 1045, got %v", err)
	}
	if err := openDB(t, fmt.Sprintf("app:pw@tcp(%s)/test", tp.addr)).Ping(); err != nil {
		t.Fatal(err)
	}
}

// A backend that refuses the backend account reaches the client as 2002
// (no healthy backend), not as 1045 naming the backend account.
func TestBackendLoginFailureIs2002(t *testing.T) {
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.MySQL.Nodes[0].User = "no_such_backend_user"
	cfg.MySQL.Nodes[0].Password = "wrong"
	tp, _, _ := startProxyMetrics(t, cfg)
	c := sqlConn(t, openDB(t, tp.dsn("")))
	_, err := c.ExecContext(context.Background(), "SELECT 1")
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != 2002 || strings.Contains(me.Message, "no_such_backend_user") {
		t.Fatalf("want 2002 not naming the backend account, got %v", err)
	}
}

// Passwords in SQL logged at DEBUG are redacted.
func TestDebugLogRedactsPasswords(t *testing.T) {
	tp, _, logs := startProxyMetrics(t, baseConfig(testutil.MariaDBAddr(t)))
	c := sqlConn(t, openDB(t, tp.dsn("")))
	_, _ = c.ExecContext(context.Background(), "ALTER USER i10_no_such_user IDENTIFIED BY 'TopSecret123'")
	_, _ = c.ExecContext(context.Background(), "SELECT PASSWORD('TopSecret456')")
	out := logs.String()
	if !strings.Contains(out, "i10_no_such_user") {
		t.Fatalf("statement not logged at DEBUG:\n%s", out)
	}
	if strings.Contains(out, "TopSecret") {
		t.Fatalf("password in the log:\n%s", out)
	}
}
