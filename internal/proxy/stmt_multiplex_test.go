package proxy

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// multiplexProxy is a listener whose pool has maxOpen connections and
// gives up waiting for one after a second, with its metrics.
func multiplexProxy(t *testing.T, maxOpen int) (*testProxy, *prometheus.Registry) {
	t.Helper()
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.Config[0].Pool = proxyconfig.Pool{MaxOpen: maxOpen, WaitTimeout: proxyconfig.Duration{Duration: time.Second}}
	tp, reg, _ := startProxyMetrics(t, cfg)
	return tp, reg
}

// openBackends sums the open connections of the proxy's pools.
func openBackends(tp *testProxy) int {
	tp.p.mu.Lock()
	defer tp.p.mu.Unlock()
	n := 0
	for _, pl := range tp.p.pools {
		n += pl.Stats().Open
	}
	return n
}

func pins(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	want := map[string]string{}
	if reason != "" {
		want["reason"] = reason
	}
	return metricValue(t, reg, "pisa_proxy_backend_pins_total", want)
}

// execNoTypes builds a COM_STMT_EXECUTE that binds no new parameter types
// (new-params-bound 0): the server uses those of the statement's last
// execute that sent some.
func execNoTypes(id uint32, params []bparam) []byte {
	p := execPacket(id, 0, params)
	bitmap := (len(params) + 7) / 8
	at := 10 + bitmap
	out := append([]byte(nil), p[:at]...)
	out = append(out, 0)
	return append(out, p[at+1+2*len(params):]...)
}

func scalarRow(t *testing.T, pc *pconn, rs []*pres, types []byte) string {
	t.Helper()
	if len(rs) != 1 || rs[0].err != nil || len(rs[0].rows) != 1 {
		t.Fatalf("execute: %s", shape(rs))
	}
	return binaryRow(t, rs[0].rows[0], types)[0]
}

// Prepared statements no longer pin: sessions holding statements share
// the pool's connections, each with its own statement ids; a statement
// runs on whatever connection an execute gets, prepared there first when
// that one does not have it.
func TestPreparedStatementsDoNotPin(t *testing.T) {
	tp, reg := multiplexProxy(t, 2)
	var pcs []*pconn
	for i := 0; i < 8; i++ {
		pc := pdialProxy(t, tp.addr, 0, 0)
		a := pc.prepare(t, "SELECT CONCAT(?, '-', ?)")
		b := pc.prepare(t, "SELECT ? + 1")
		if a.id != 1 || b.id != 2 {
			t.Fatalf("session %d got statement ids %d, %d; want 1, 2", i, a.id, b.id)
		}
		pcs = append(pcs, pc)
	}
	for round := 0; round < 3; round++ {
		for i, pc := range pcs {
			rs := pc.execute(t, 1, 0, strParam(fmt.Sprint("s", i)), strParam(fmt.Sprint("r", round)))
			if got, want := scalarRow(t, pc, rs, []byte{typeVarString}), fmt.Sprintf("s%d-r%d", i, round); got != want {
				t.Fatalf("session %d round %d: %q, want %q", i, round, got, want)
			}
			rs = pc.execute(t, 2, 0, intParam(int64(i*10+round)))
			if got, want := scalarRow(t, pc, rs, []byte{typeLongLong}), fmt.Sprint(i*10+round+1); got != want {
				t.Fatalf("session %d round %d: %s, want %s", i, round, got, want)
			}
		}
	}
	if n := openBackends(tp); n > 2 {
		t.Fatalf("%d backend connections for 8 sessions with statements, max_open 2", n)
	}
	if n := pins(t, reg, ""); n != 0 {
		t.Fatalf("%v pins (prepared statements must not pin)", n)
	}
	// Each backend connection prepared each text at most once.
	if n := metricValue(t, reg, "pisa_proxy_stmt_reprepares_total", nil); n > 4 {
		t.Fatalf("%v lazy prepares for 2 texts on 2 connections", n)
	}
	// CLOSE forgets the statement in the session only.
	pcs[0].send(t, stmtPacket(mysql.ComStmtClose, 1))
	if rs := pcs[0].execute(t, 1, 0, strParam("a"), strParam("b")); rs[0].err == nil || rs[0].err.Code != 1243 {
		t.Fatalf("execute after close: %s", shape(rs))
	}
	rs := pcs[1].execute(t, 1, 0, strParam("still"), strParam("there"))
	if got := scalarRow(t, pcs[1], rs, []byte{typeVarString}); got != "still-there" {
		t.Fatalf("another session's statement after a close: %q", got)
	}
}

// A client binds parameter types once and then executes without them;
// the backend statement it runs on may have been executed by another
// client with other types since: the proxy binds the client's again.
func TestPreparedStatementTypesRebound(t *testing.T) {
	tp, _ := multiplexProxy(t, 1)
	a := pdialProxy(t, tp.addr, 0, 0)
	b := pdialProxy(t, tp.addr, 0, 0)
	sa := a.prepare(t, "SELECT ?")
	sb := b.prepare(t, "SELECT ?")
	if got := scalarRow(t, a, a.execute(t, sa.id, 0, strParam("abc")), []byte{typeVarString}); got != "abc" {
		t.Fatalf("a: %q", got)
	}
	if got := scalarRow(t, b, b.execute(t, sb.id, 0, intParam(7)), []byte{typeLongLong}); got != "7" {
		t.Fatalf("b: %q", got)
	}
	// a sends no types: its own (VAR_STRING) must apply, not b's LONGLONG.
	rs := a.readResults(t, a.cmd(t, execNoTypes(sa.id, []bparam{strParam("xyz")})), true)
	if got := scalarRow(t, a, rs, []byte{typeVarString}); got != "xyz" {
		t.Fatalf("a without types after b bound LONGLONG: %q", got)
	}
	rs = b.readResults(t, b.cmd(t, execNoTypes(sb.id, []bparam{intParam(8)})), true)
	if got := scalarRow(t, b, rs, []byte{typeLongLong}); got != "8" {
		t.Fatalf("b without types: %q", got)
	}
	// A statement never bound gets MariaDB's 1210.
	c := pdialProxy(t, tp.addr, 0, 0)
	sc := c.prepare(t, "SELECT ?")
	rs = c.readResults(t, c.cmd(t, execNoTypes(sc.id, []bparam{intParam(1)})), true)
	if rs[0].err == nil || rs[0].err.Code != 1210 {
		t.Fatalf("execute of a never-bound statement without types: %s", shape(rs))
	}
}

// fetchAll fetches from an open cursor until SERVER_STATUS_LAST_ROW_SENT
// and returns the number of rows.
func fetchAll(t *testing.T, pc *pconn, id uint32) int {
	t.Helper()
	rows := 0
	for i := 0; i < 100; i++ {
		pc.send(t, binary.LittleEndian.AppendUint32(stmtPacket(mysql.ComStmtFetch, id), 4))
		for {
			p := pc.read(t)
			if p[0] == mysql.ERRHeader {
				t.Fatalf("fetch: %v", mysql.ParseErr(p))
			}
			if pc.isEnd(p) {
				if status, _ := pc.parseEnd(t, p); status&mysql.StatusLastRowSent != 0 {
					return rows
				}
				break
			}
			rows++
		}
	}
	t.Fatal("no LAST_ROW_SENT")
	return 0
}

// An open cursor and pending long data keep the connection with the
// session (pins "cursor", "long_data") until done; then another session
// gets it (a pool of one: it would wait and fail otherwise).
func TestCursorAndLongDataPinUntilDone(t *testing.T) {
	tp, reg := multiplexProxy(t, 1)
	a := pdialProxy(t, tp.addr, 0, 0)
	b := pdialProxy(t, tp.addr, 0, 0)
	sa := a.prepare(t, "SELECT seq FROM seq_1_to_10 WHERE seq > ?")
	sb := b.prepare(t, "SELECT seq FROM seq_1_to_10 WHERE seq > ?")
	bOK := func(step string) {
		t.Helper()
		if rs := b.execute(t, sb.id, 0, intParam(8)); len(rs) != 1 || len(rs[0].rows) != 2 {
			t.Fatalf("%s: other session: %s", step, shape(rs))
		}
	}
	openCursor := func() {
		t.Helper()
		r := a.readResult(t, a.cmd(t, execPacket(sa.id, 1, []bparam{intParam(0)})), true)
		if r.err != nil || r.status&mysql.StatusCursorExists == 0 {
			t.Fatalf("execute with cursor: %s", r)
		}
	}

	// Fetched to the end: released.
	openCursor()
	if pins(t, reg, "cursor") != 1 {
		t.Fatalf("cursor pins: %v", pins(t, reg, "cursor"))
	}
	// While it is open, the other session cannot get the only connection.
	rs := b.execute(t, sb.id, 0, intParam(8))
	if rs[0].err == nil {
		t.Fatalf("another session ran while the only connection held a cursor: %s", shape(rs))
	}
	if n := fetchAll(t, a, sa.id); n != 10 {
		t.Fatalf("cursor gave %d rows", n)
	}
	bOK("after the last row")

	// Reset closes the cursor.
	openCursor()
	if p := a.cmd(t, stmtPacket(mysql.ComStmtReset, sa.id)); p[0] != mysql.OKHeader {
		t.Fatalf("reset: %q", p)
	}
	bOK("after reset")
	if code := errCode(t, a.cmd(t, binary.LittleEndian.AppendUint32(stmtPacket(mysql.ComStmtFetch, sa.id), 4))); code != 1421 {
		t.Fatalf("fetch after reset: %d", code)
	}

	// Close closes it; the other session's statement (same text, same
	// backend statement) still works.
	openCursor()
	a.send(t, stmtPacket(mysql.ComStmtClose, sa.id))
	a.ping(t)
	bOK("after close")

	// Long data pins until the execute.
	sl := a.prepare(t, "SELECT CAST(LENGTH(?) AS SIGNED)")
	a.send(t, append(stmtPacket(mysql.ComStmtSendLongData, sl.id, 0, 0), make([]byte, 5000)...))
	a.send(t, append(stmtPacket(mysql.ComStmtSendLongData, sl.id, 0, 0), make([]byte, 3000)...))
	a.ping(t) // long data has no response
	if pins(t, reg, "long_data") != 1 {
		t.Fatalf("long data pins: %v", pins(t, reg, "long_data"))
	}
	rs = a.execute(t, sl.id, 0, bparam{typ: typeBlob, longData: true})
	if len(rs) != 1 || len(rs[0].rows) != 1 || binaryRow(t, rs[0].rows[0], []byte{typeLongLong})[0] != "8000" {
		t.Fatalf("execute with long data: %s", shape(rs))
	}
	bOK("after the long data's execute")
	if n := pins(t, reg, "prepared_statement"); n != 0 {
		t.Fatalf("prepared_statement pins: %v", n)
	}
}

// A lost backend connection: statements are prepared again on the next
// one; an open cursor is lost (ERR 2013 once).
func TestCursorLostWithBackend(t *testing.T) {
	m := testutil.StartMariaDB(t)
	cfg := baseConfig(m.Addr)
	tp, reg, logs := startProxyMetrics(t, cfg)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	})
	a := pdialProxy(t, tp.addr, 0, 0)
	st := a.prepare(t, "SELECT seq FROM seq_1_to_10 WHERE seq > ?")
	r := a.readResult(t, a.cmd(t, execPacket(st.id, 1, []bparam{intParam(0)})), true)
	if r.err != nil || r.status&mysql.StatusCursorExists == 0 {
		t.Fatalf("execute with cursor: %s", r)
	}
	tid := a.scalar(t, "SELECT @@pseudo_thread_id") // the pinned connection
	m.Exec(t, "KILL "+tid)
	time.Sleep(100 * time.Millisecond)
	p := a.cmd(t, binary.LittleEndian.AppendUint32(stmtPacket(mysql.ComStmtFetch, st.id), 4))
	if code := errCode(t, p); code != 2013 {
		t.Fatalf("fetch after the loss: %d", code)
	}
	if code := errCode(t, a.cmd(t, binary.LittleEndian.AppendUint32(stmtPacket(mysql.ComStmtFetch, st.id), 4))); code != 1421 {
		t.Fatalf("second fetch after the loss: %d (want 1421, no cursor)", code)
	}
	before := metricValue(t, reg, "pisa_proxy_stmt_reprepares_total", nil)
	if rs := a.execute(t, st.id, 0, intParam(7)); len(rs) != 1 || len(rs[0].rows) != 3 {
		t.Fatalf("execute after the loss: %s", shape(rs))
	}
	if after := metricValue(t, reg, "pisa_proxy_stmt_reprepares_total", nil); after != before+1 {
		t.Fatalf("reprepares %v → %v", before, after)
	}
}

// 1,000 client connections, each with prepared statements, executing at
// once through a pool of 32: at most 32 backend connections, every
// execute answered.
func TestThousandClientsWithStatements(t *testing.T) {
	const clients, maxOpen = 1000, 32
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.Config[0].Pool = proxyconfig.Pool{MaxOpen: maxOpen, WaitTimeout: proxyconfig.Duration{Duration: 30 * time.Second}}
	tp, reg, _ := startProxyMetrics(t, cfg)
	db := openDB(t, tp.dsn(""))
	db.SetMaxOpenConns(clients)
	db.SetMaxIdleConns(clients)
	ctx := context.Background()
	conns := make([]*sql.Conn, clients)
	stmts := make([]*sql.Stmt, clients)
	for i := range conns {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		st, err := c.PrepareContext(ctx, "SELECT ? * 2 + ?")
		if err != nil {
			t.Fatalf("client %d prepare: %v", i, err)
		}
		conns[i], stmts[i] = c, st
	}
	var maxSeen atomic.Int64
	stop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		for {
			if n := int64(openBackends(tp)); n > maxSeen.Load() {
				maxSeen.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range stmts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 3; j++ {
				var v int
				if err := stmts[i].QueryRowContext(ctx, i, j).Scan(&v); err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				if v != 2*i+j {
					errs <- fmt.Errorf("client %d: %d, want %d", i, v, 2*i+j)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	watch.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := maxSeen.Load(); n > maxOpen || n == 0 {
		t.Fatalf("%d backend connections open at most for %d clients (max_open %d)", n, clients, maxOpen)
	}
	if n := pins(t, reg, ""); n != 0 {
		t.Fatalf("%v pins", n)
	}
	t.Logf("%d clients with prepared statements, %d backend connections at most", clients, maxSeen.Load())
}

// go-sql-driver sends a large argument with COM_STMT_SEND_LONG_DATA (here
// above 4 KiB: maxAllowedPacket 8192, one parameter): sessions holding
// statements share one backend connection, each execute's long data
// reaches the right statement.
func TestLongDataThroughSharedConnection(t *testing.T) {
	tp, reg := multiplexProxy(t, 1)
	db := openDB(t, tp.dsn("maxAllowedPacket=8192"))
	ctx := context.Background()
	var stmts []*sql.Stmt
	for i := 0; i < 4; i++ {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		st, err := c.PrepareContext(ctx, "SELECT CONCAT(LENGTH(?), ':', ?)")
		if err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, st)
	}
	for round := 0; round < 3; round++ {
		for i, st := range stmts {
			big := make([]byte, 5000+1000*i+round)
			for j := range big {
				big[j] = byte('a' + i)
			}
			var got string
			if err := st.QueryRowContext(ctx, big, i).Scan(&got); err != nil {
				t.Fatalf("session %d round %d: %v", i, round, err)
			}
			if want := fmt.Sprintf("%d:%d", len(big), i); got != want {
				t.Fatalf("session %d round %d: %q, want %q", i, round, got, want)
			}
		}
	}
	if pins(t, reg, "long_data") == 0 {
		t.Fatal("no long data went through COM_STMT_SEND_LONG_DATA: the test proves nothing")
	}
	if n := pins(t, reg, "prepared_statement"); n != 0 {
		t.Fatalf("prepared_statement pins: %v", n)
	}
}

// A statement prepared on another connection than the client's prepare
// is prepared in the state the client prepared it in: after USE of
// another database, and the connection that had it lost, the execute
// still reads the table of the database the statement was prepared in
// (as MariaDB's own statement would).
func TestLazyPrepareKeepsPrepareTimeDatabase(t *testing.T) {
	m := testutil.StartMariaDB(t)
	m.Exec(t, "CREATE DATABASE other")
	m.Exec(t, "CREATE TABLE test.t_x (id INT PRIMARY KEY)")
	m.Exec(t, "INSERT INTO test.t_x VALUES (1), (2), (3)")
	m.Exec(t, "CREATE TABLE other.t_x (id INT PRIMARY KEY)")
	m.Exec(t, "INSERT INTO other.t_x VALUES (1), (2), (3), (4), (5)")
	tp, reg, _ := startProxyMetrics(t, baseConfig(m.Addr))
	a := pdialProxy(t, tp.addr, 0, 0)
	st := a.prepare(t, "SELECT COUNT(*) FROM t_x")
	count := func(step string) string {
		t.Helper()
		rs := a.execute(t, st.id, 0)
		if len(rs) != 1 || rs[0].err != nil || len(rs[0].rows) != 1 {
			t.Fatalf("%s: %s", step, shape(rs))
		}
		return binaryRow(t, rs[0].rows[0], []byte{typeLongLong})[0]
	}
	if n := count("in test"); n != "3" {
		t.Fatalf("in test: %s rows", n)
	}
	a.mustQuery(t, "USE other")
	if n := a.scalar(t, "SELECT COUNT(*) FROM t_x"); n != "5" {
		t.Fatalf("text query after USE other: %s", n)
	}
	if n := count("after USE other, same connection"); n != "3" {
		t.Fatalf("after USE other: %s rows, want test.t_x's 3", n)
	}
	if killIdle(t, m) == 0 {
		t.Fatal("no pooled connection to kill")
	}
	time.Sleep(100 * time.Millisecond) // the kill is asynchronous
	// The first execute may find the dead pooled connection (2013; the
	// pool checks connections idle for more than a second).
	if rs := a.execute(t, st.id, 0); len(rs) != 1 || (rs[0].err != nil && rs[0].err.Code != 2013) {
		t.Fatalf("first execute after the kill: %s", shape(rs))
	}
	before := metricValue(t, reg, "pisa_proxy_stmt_reprepares_total", nil)
	if killIdle(t, m) == 0 {
		t.Fatal("no pooled connection to kill")
	}
	time.Sleep(1100 * time.Millisecond) // idle long enough to be checked
	if n := count("after USE other, on a new connection"); n != "3" {
		t.Fatalf("prepared again on a new connection after USE other: %s rows, want test.t_x's 3", n)
	}
	if after := metricValue(t, reg, "pisa_proxy_stmt_reprepares_total", nil); after != before+1 {
		t.Fatalf("reprepares %v -> %v", before, after)
	}
	// The session's own state is back on that connection.
	if n := a.scalar(t, "SELECT COUNT(*) FROM t_x"); n != "5" {
		t.Fatalf("text query after the lazy prepare: %s (database not restored)", n)
	}
	if db := a.scalar(t, "SELECT DATABASE()"); db != "other" {
		t.Fatalf("DATABASE() = %s", db)
	}
}

// With failover's delayed retry, a prepared statement's execute waits for
// a restarting backend like a text statement does, and runs on the new
// connection (prepared there first).
func TestPreparedExecuteWaitsThroughRestart(t *testing.T) {
	m := testutil.StartMariaDB(t)
	m.Exec(t, "CREATE TABLE delayed_ps (id INT PRIMARY KEY)")
	tp, reg, _ := startProxyMetrics(t, failoverConfig(m.Addr, proxyconfig.Failover{
		DelayedRetry: true, DelayedRetryTimeout: proxyconfig.D(30 * time.Second)}))
	db := openDB(t, tp.dsn(""))
	c := sqlConn(t, db)
	ctx := context.Background()
	ins, err := c.PrepareContext(ctx, "INSERT INTO delayed_ps VALUES (?)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ins.ExecContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	down := time.Now()
	started := make(chan struct{})
	go func() {
		time.Sleep(time.Second)
		m.Start()
		close(started)
	}()
	if _, err := ins.ExecContext(ctx, 2); err != nil {
		t.Fatalf("execute while the server restarts: %v", err)
	}
	waited := time.Since(down)
	<-started
	if waited < 900*time.Millisecond {
		t.Fatalf("the execute returned after %v, before the server was back", waited)
	}
	if v := queryString(t, c, "SELECT COUNT(*) FROM delayed_ps"); v != "2" {
		t.Fatalf("rows: %s, want 2", v)
	}
	if n := metricValue(t, reg, "pisa_proxy_stmt_reprepares_total", nil); n < 1 {
		t.Fatalf("the statement was not prepared on the new connection (reprepares %v)", n)
	}
}

// MariaDB's COM_STMT_BULK_EXECUTE without types (the client sent them
// with an earlier one) on a backend statement another session bound with
// other types since: the proxy sends the client's types again.
func TestBulkExecuteTypesRebound(t *testing.T) {
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.Config[0].ServerVersion = "10.11.99-MariaDB-pisa"
	cfg.Proxy.Config[0].Pool = proxyconfig.Pool{MaxOpen: 1, WaitTimeout: proxyconfig.Duration{Duration: time.Second}}
	tp, _, _ := startProxyMetrics(t, cfg)
	a := pdialProxy(t, tp.addr, 0, mysql.MariaDBClientStmtBulkOps)
	b := pdialProxy(t, tp.addr, 0, mysql.MariaDBClientStmtBulkOps)
	a.mustQuery(t, "DROP TABLE IF EXISTS pisa_bulk_mux")
	a.mustQuery(t, "CREATE TABLE pisa_bulk_mux (id INT PRIMARY KEY, v VARCHAR(20))")
	t.Cleanup(func() { rootExec(t, "DROP TABLE IF EXISTS pisa_bulk_mux") })
	sa := a.prepare(t, "INSERT INTO pisa_bulk_mux VALUES (?, ?)")
	sb := b.prepare(t, "INSERT INTO pisa_bulk_mux VALUES (?, ?)")
	types := []byte{typeLongLong, typeVarString}
	row := func(i int) []bparam { return []bparam{intParam(int64(i)), strParam(fmt.Sprint("a", i))} }
	if rs := a.readResults(t, a.cmd(t, bulkPacket(sa.id, types, [][]bparam{row(1), row(2)})), true); rs[0].ok == nil {
		t.Fatalf("bulk with types: %s", shape(rs))
	}
	// b binds other types on the same backend statement (one connection).
	if rs := b.execute(t, sb.id, 0, strParam("10"), intParam(7)); rs[0].ok == nil {
		t.Fatalf("b's execute: %s", shape(rs))
	}
	p := bulkPacket(sa.id, types, [][]bparam{row(3), row(4)})
	noTypes := append(append([]byte(nil), p[:5]...), 0, 0)
	noTypes = append(noTypes, p[7+2*len(types):]...)
	if rs := a.readResults(t, a.cmd(t, noTypes), true); len(rs) != 1 || rs[0].ok == nil || rs[0].ok.AffectedRows != 2 {
		t.Fatalf("bulk without types after b bound others: %s", shape(rs))
	}
	if got := a.scalar(t, "SELECT GROUP_CONCAT(id, '=', v ORDER BY id) FROM pisa_bulk_mux"); got != "1=a1,2=a2,3=a3,4=a4,10=7" {
		t.Fatalf("table: %s", got)
	}
}

// A prepared statement that assigns a user variable (in a result set,
// which reports no state change) keeps its connection like the same text
// would: the session sees its variable, other sessions never do.
func TestPreparedUserVariablePins(t *testing.T) {
	tp, reg := multiplexProxy(t, 2)
	a := pdialProxy(t, tp.addr, 0, 0)
	b := pdialProxy(t, tp.addr, 0, 0)
	sa := a.prepare(t, "SELECT @pv := ?")
	sb := b.prepare(t, "SELECT ? + 1")
	if got := scalarRow(t, a, a.execute(t, sa.id, 0, intParam(42)), []byte{typeLongLong}); got != "42" {
		t.Fatalf("assign: %q", got)
	}
	for i := 0; i < 4; i++ {
		b.execute(t, sb.id, 0, intParam(int64(i)))
		if v := b.scalar(t, "SELECT COALESCE(@pv, 'none')"); v != "none" {
			t.Fatalf("another session sees @pv = %s", v)
		}
		if v := a.scalar(t, "SELECT @pv"); v != "42" {
			t.Fatalf("the session lost its @pv: %q", v)
		}
	}
	// a's execute pinned (b's text reading @pv pins too: the text scan
	// over-approximates).
	if n := pins(t, reg, "session_state"); n < 1 {
		t.Fatalf("session_state pins: %v", n)
	}
}
