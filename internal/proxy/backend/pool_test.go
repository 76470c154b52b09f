package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

func TestGetPutReuse(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 2})
	c := mustGet(t, p, Variant{})
	id := c.Info.ConnectionID
	if st := p.Stats(); st.Open != 1 || st.InUse != 1 || st.Idle != 0 || st.MaxOpen != 2 {
		t.Fatalf("stats after Get: %+v", st)
	}
	if row := mustRow(t, c, "SELECT CONNECTION_ID(), DATABASE()"); row[0] != strconv.Itoa(int(id)) || row[1] != "test" {
		t.Fatalf("CONNECTION_ID(), DATABASE() = %q, handshake id %d", row, id)
	}
	row := mustRow(t, c, "SELECT ATTR_VALUE FROM performance_schema.session_connect_attrs WHERE PROCESSLIST_ID = CONNECTION_ID() AND ATTR_NAME = 'program_name'")
	if row != nil && row[0] != "pisa-proxy" {
		t.Errorf("program_name attribute = %q", row)
	}
	row = mustRow(t, c, "SELECT @@session_track_schema, @@session_track_state_change, @@session_track_system_variables")
	if row[0] != "1" || row[1] != "1" || row[2] != "*" {
		t.Errorf("trackers: %q", row)
	}
	p.Put(c)
	if st := p.Stats(); st.Open != 1 || st.InUse != 0 || st.Idle != 1 {
		t.Fatalf("stats after Put: %+v", st)
	}
	c = mustGet(t, p, Variant{})
	if c.Info.ConnectionID != id {
		t.Fatalf("Get after Put: thread %d, want %d", c.Info.ConnectionID, id)
	}
	// LIFO: the most recently returned idle conn comes first.
	c2 := mustGet(t, p, Variant{})
	p.Put(c)
	p.Put(c2)
	if c3 := mustGet(t, p, Variant{}); c3 != c2 {
		t.Fatalf("Get returned thread %d, want the last returned %d", c3.Info.ConnectionID, c2.Info.ConnectionID)
	} else {
		p.Put(c3)
	}
	if p.Endpoint().Name != "ds001" || !p.Healthy() {
		t.Fatalf("Endpoint %+v healthy %v", p.Endpoint(), p.Healthy())
	}
}

func TestPoolTimeout(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 1, WaitTimeout: 50 * time.Millisecond})
	c := mustGet(t, p, Variant{})
	defer p.Put(c)
	start := time.Now()
	_, err := p.Get(context.Background(), Variant{})
	if !errors.Is(err, ErrPoolTimeout) {
		t.Fatalf("want ErrPoolTimeout, got %v", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Fatalf("timed out after %v", d)
	}
	addr := p.Endpoint().Addr
	// The message gives the time waited: at least the wait timeout, more on a loaded machine.
	if msg := err.Error(); !strings.Contains(msg, "pool of "+addr+" is exhausted (max_open 1) after ") ||
		!strings.HasSuffix(msg, "ms") {
		t.Fatalf("message: %q", msg)
	}
	// A context deadline shorter than WaitTimeout is a timeout too.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	_, err = p.Get(ctx, Variant{})
	cancel()
	if !errors.Is(err, ErrPoolTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ctx deadline: %v", err)
	}
	// Cancellation is not a timeout.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err = p.Get(ctx, Variant{}); !errors.Is(err, context.Canceled) || errors.Is(err, ErrPoolTimeout) {
		t.Fatalf("cancelled: %v", err)
	}
	st := p.Stats()
	if st.WaitCount != 3 || st.Timeouts != 2 || st.WaitDuration < 60*time.Millisecond || st.Open != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestPutWakesWaiter(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 1, WaitTimeout: 10 * time.Second})
	c := mustGet(t, p, Variant{})
	id := c.Info.ConnectionID
	got := make(chan *Conn)
	go func() {
		c, err := p.Get(context.Background(), Variant{})
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	waitFor(t, "a waiter", func() bool { return p.Stats().WaitCount == 1 })
	p.Put(c)
	select {
	case c2 := <-got:
		if c2 == nil || c2.Info.ConnectionID != id {
			t.Fatalf("waiter got %v", c2)
		}
		p.Put(c2)
	case <-time.After(5 * time.Second):
		t.Fatal("Put did not wake the waiter")
	}
}

func TestWaitersFIFO(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 1, WaitTimeout: 10 * time.Second})
	c := mustGet(t, p, Variant{})
	const n = 5
	order := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.Get(context.Background(), Variant{})
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			time.Sleep(5 * time.Millisecond)
			p.Put(c)
		}()
		waitFor(t, "waiter "+strconv.Itoa(i), func() bool { return p.Stats().WaitCount == int64(i+1) })
	}
	p.Put(c)
	wg.Wait()
	close(order)
	want := 0
	for i := range order {
		if i != want {
			t.Fatalf("waiter %d served in position %d", i, want)
		}
		want++
	}
}

func TestMaxIdle(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 5, MaxIdle: 2})
	var conns []*Conn
	for range 4 {
		conns = append(conns, mustGet(t, p, Variant{}))
	}
	for _, c := range conns {
		p.Put(c)
	}
	if st := p.Stats(); st.Open != 2 || st.Idle != 2 || st.Closed != 2 || st.InUse != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestIdleTimeout(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 2, IdleTimeout: 300 * time.Millisecond})
	c := mustGet(t, p, Variant{})
	id := c.Info.ConnectionID
	p.Put(c)
	c = mustGet(t, p, Variant{})
	if c.Info.ConnectionID != id {
		t.Fatal("fresh idle conn not reused")
	}
	p.Put(c)
	// The reaper closes it in the background.
	// Closed is counted once the connection is really closed, just after it
	// leaves the idle list: wait for both.
	waitFor(t, "the idle conn to be reaped", func() bool {
		st := p.Stats()
		return st.Idle == 0 && st.Open == 0 && st.Closed == 1
	})
	c = mustGet(t, p, Variant{})
	if c.Info.ConnectionID == id {
		t.Fatal("expired conn reused")
	}
	p.Put(c)
}

func TestIdleTimeoutAtGet(t *testing.T) {
	// Expiry is also checked when a conn is taken, between reaper runs.
	p := newTestPool(t, PoolOptions{MaxOpen: 2})
	p.opts.IdleTimeout = 50 * time.Millisecond // no reaper: set after NewPool
	c := mustGet(t, p, Variant{})
	id := c.Info.ConnectionID
	p.Put(c)
	time.Sleep(80 * time.Millisecond)
	c = mustGet(t, p, Variant{})
	defer p.Put(c)
	if c.Info.ConnectionID == id {
		t.Fatal("expired conn reused")
	}
	if st := p.Stats(); st.Closed != 1 || st.Open != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestMaxLifetime(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 2, MaxLifetime: 500 * time.Millisecond})
	c := mustGet(t, p, Variant{})
	id := c.Info.ConnectionID
	p.Put(c)
	c = mustGet(t, p, Variant{})
	if c.Info.ConnectionID != id {
		t.Fatal("young conn not reused")
	}
	time.Sleep(550 * time.Millisecond)
	p.Put(c) // too old: closed instead of kept
	if st := p.Stats(); st.Open != 0 || st.Closed != 1 {
		t.Fatalf("stats after Put of an old conn: %+v", st)
	}
	c = mustGet(t, p, Variant{})
	if c.Info.ConnectionID == id {
		t.Fatal("old conn reused")
	}
	p.Put(c)
	waitFor(t, "the idle conn to reach its lifetime", func() bool { return p.Stats().Open == 0 })
}

func TestVariants(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 1, WaitTimeout: 5 * time.Second})
	c := mustGet(t, p, Variant{FoundRows: true})
	if c.Info.Capabilities&mysql.ClientFoundRows == 0 || !c.Variant().FoundRows {
		t.Fatal("FOUND_ROWS not negotiated")
	}
	mustExec(t, c, "CREATE TEMPORARY TABLE fr (id INT PRIMARY KEY, v INT)")
	mustExec(t, c, "INSERT INTO fr VALUES (1, 1)")
	if ok := mustExec(t, c, "UPDATE fr SET v = 1 WHERE id = 1"); ok.AffectedRows != 1 {
		t.Fatalf("FOUND_ROWS: affected %d, want 1 (matched)", ok.AffectedRows)
	}
	c.MarkDirty()
	p.Put(c)

	// MaxOpen is shared: the idle FOUND_ROWS conn gives its slot up.
	c2 := mustGet(t, p, Variant{})
	if c2.Info.Capabilities&mysql.ClientFoundRows != 0 || c2.Info.ConnectionID == c.Info.ConnectionID {
		t.Fatal("wrong variant")
	}
	mustExec(t, c2, "CREATE TEMPORARY TABLE fr (id INT PRIMARY KEY, v INT)")
	mustExec(t, c2, "INSERT INTO fr VALUES (1, 1)")
	if ok := mustExec(t, c2, "UPDATE fr SET v = 1 WHERE id = 1"); ok.AffectedRows != 0 {
		t.Fatalf("no FOUND_ROWS: affected %d, want 0 (changed)", ok.AffectedRows)
	}
	c2.MarkDirty()
	if st := p.Stats(); st.Open != 1 || st.Closed != 1 {
		t.Fatalf("stats: %+v", st)
	}
	// A waiter for the other variant gets the slot of a returned conn.
	got := make(chan *Conn)
	go func() {
		c, err := p.Get(context.Background(), Variant{FoundRows: true})
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	waitFor(t, "a waiter", func() bool { return p.Stats().WaitCount == 1 })
	p.Put(c2)
	c3 := <-got
	if c3 == nil || !c3.Variant().FoundRows || c3.Info.Capabilities&mysql.ClientFoundRows == 0 {
		t.Fatalf("waiter got %+v", c3)
	}
	p.Put(c3)
	if st := p.Stats(); st.Open != 1 || st.Idle != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestDirtyReset(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 1})
	c := mustGet(t, p, Variant{})
	want := NewSessionState("mysql")
	want.SetVar("time_zone", "+05:00")
	if err := c.Sync(want); err != nil {
		t.Fatal(err)
	}
	ok := mustExec(t, c, "SET @u = 1")
	if !want.ApplyOK(&ok) {
		t.Fatal("SET @u not reported as an unreplayable state change")
	}
	mustExec(t, c, "BEGIN")
	c.MarkDirty()
	p.Put(c)
	c2 := mustGet(t, p, Variant{})
	defer p.Put(c2)
	if c2.Dirty() {
		t.Fatal("still dirty")
	}
	row := mustRow(t, c2, "SELECT @u IS NULL, @@in_transaction, @@session_track_schema, @@session_track_system_variables, DATABASE(), @@time_zone = @@GLOBAL.time_zone")
	if row[0] != "1" || row[1] != "0" || row[2] != "1" || row[3] != "*" || row[5] != "1" {
		t.Fatalf("after reset: %q", row)
	}
	if row[4] != c2.DB() {
		t.Fatalf("DATABASE() %q, recorded %q", row[4], c2.DB())
	}
	// Only the character set of the handshake, which the server restores.
	if len(c2.vars) != len(c2.baseline) || c2.vars["collation_connection"] != c2.baseline["collation_connection"] {
		t.Fatalf("recorded vars after reset: %v, handshake's %v", c2.vars, c2.baseline)
	}
	t.Logf("same thread after reset: %v", c2.Info.ConnectionID == c.Info.ConnectionID)
	// Sync after a reset applies everything again.
	if err := c2.Sync(want); err != nil {
		t.Fatal(err)
	}
	if row := mustRow(t, c2, "SELECT @@time_zone, DATABASE()"); row[0] != "+05:00" || row[1] != "mysql" {
		t.Fatalf("after Sync: %q", row)
	}
}

func TestOpenTransactionIsReset(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 1})
	c := mustGet(t, p, Variant{})
	ok := mustExec(t, c, "BEGIN")
	if ok.Status&mysql.StatusInTrans == 0 {
		t.Fatalf("BEGIN status %#x", ok.Status)
	}
	p.Put(c) // not marked dirty, but the server said a transaction is open
	c = mustGet(t, p, Variant{})
	defer p.Put(c)
	if row := mustRow(t, c, "SELECT @@in_transaction"); row[0] != "0" {
		t.Fatal("transaction survived Put")
	}
}

func TestBrokenConnClosed(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 1})
	c := mustGet(t, p, Variant{})
	c.MarkBroken()
	p.Put(c)
	if st := p.Stats(); st.Open != 0 || st.Closed != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestLiveness(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 2})
	c := mustGet(t, p, Variant{})
	id := c.Info.ConnectionID
	if !c.Alive() {
		t.Fatal("fresh conn not alive")
	}
	p.Put(c)

	db := testutil.Open(t, testutil.MariaDBDSN(t))
	if _, err := db.Exec(fmt.Sprintf("KILL %d", id)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the kill to reach the socket", func() bool { return !c.Alive() })
	// Taken back right away (idle < 1s) it would not be checked; make it
	// look idle for longer.
	c.lastUsed = time.Now().Add(-2 * time.Second)
	c2 := mustGet(t, p, Variant{})
	defer p.Put(c2)
	if c2.Info.ConnectionID == id {
		t.Fatal("dead conn returned")
	}
	mustExec(t, c2, "SELECT 1")
	if st := p.Stats(); st.Open != 1 || st.Closed != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestKillQuery(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 2})
	c := mustGet(t, p, Variant{})
	defer p.Put(c)
	type result struct {
		row []string
		err error
		d   time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		row, err := c.queryRow("SELECT SLEEP(30)")
		done <- result{row, err, time.Since(start)}
	}()
	db := testutil.Open(t, testutil.MariaDBDSN(t))
	waitFor(t, "the query to run", func() bool {
		var n int
		err := db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'SELECT SLEEP%'", c.Info.ConnectionID).Scan(&n)
		return err == nil && n == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Kill(ctx, c.Info.ConnectionID, true); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	select {
	case r := <-done:
		var me *mysql.Error
		interrupted := r.err == nil && len(r.row) == 1 && r.row[0] == "1" ||
			errors.As(r.err, &me) && me.Code == mysql.ErrCodeQueryInterrupted
		if !interrupted || r.d > 10*time.Second {
			t.Fatalf("SLEEP after KILL QUERY: %q, %v after %v", r.row, r.err, r.d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("KILL QUERY did not interrupt the query")
	}
	// KILL QUERY keeps the connection.
	mustExec(t, c, "SELECT 1")
	// Killing an unknown thread reports the server's error.
	err := p.Kill(ctx, 0x7ffffff0, false)
	var me *mysql.Error
	if !errors.As(err, &me) || me.Code != mysql.ErrCodeNoSuchThread {
		t.Fatalf("Kill of an unknown thread: %v", err)
	}
	if st := p.Stats(); st.Open != 1 {
		t.Fatalf("Kill's connections counted in the pool: %+v", st)
	}
}

// relay forwards a TCP port to the test server, to make an endpoint go away
// and come back.
type relay struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startRelay(t *testing.T, addr, target string) *relay {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may still be in use for a moment
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	r := &relay{ln: ln}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, b)
			r.mu.Unlock()
			r.wg.Add(2)
			go func() { defer r.wg.Done(); io.Copy(b, c); b.Close() }()
			go func() { defer r.wg.Done(); io.Copy(c, b); c.Close() }()
		}
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *relay) stop() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
	r.wg.Wait()
}

func TestUnreachableAndRecovery(t *testing.T) {
	target := testutil.MariaDBAddr(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t)))
	ep := testEndpoint(t)
	ep.Addr = addr
	p := NewPool("test", ep, PoolOptions{MaxOpen: 2, ConnectTimeout: 2 * time.Second}, quietLogger)
	defer p.Close()

	start := time.Now()
	_, err := p.Get(context.Background(), Variant{})
	if !errors.Is(err, ErrConnect) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("want ErrConnect mentioning %s, got %v", addr, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("failing Get took %v", d)
	}
	if p.Healthy() {
		t.Fatal("healthy after a failed dial")
	}
	if st := p.Stats(); st.Open != 0 {
		t.Fatalf("failed dial leaked a slot: %+v", st)
	}
	// Still unhealthy: Get keeps trying (and failing) at once.
	if _, err := p.Get(context.Background(), Variant{}); !errors.Is(err, ErrConnect) {
		t.Fatalf("second Get: %v", err)
	}

	startRelay(t, addr, target)
	waitFor(t, "the prober to see the endpoint back", p.Healthy)
	c := mustGet(t, p, Variant{})
	mustExec(t, c, "SELECT 1")
	p.Put(c)
}

func TestServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a MariaDB")
	}
	start := time.Now()
	m := testutil.StartMariaDB(t)
	t.Logf("started in %v", time.Since(start))
	ep := Endpoint{Name: "restart", Addr: m.Addr, User: "root", DB: "test"}
	p := NewPool("test", ep, PoolOptions{MaxOpen: 4, ConnectTimeout: 2 * time.Second}, quietLogger)
	defer p.Close()
	var conns []*Conn
	for range 3 {
		conns = append(conns, mustGet(t, p, Variant{}))
	}
	for _, c := range conns {
		p.Put(c)
	}
	m.Stop()
	if _, err := p.Get(context.Background(), Variant{}); err == nil {
		// The dead idle conns are discarded only when idle for > 1s; make them so.
		t.Log("Get right after the crash returned an idle conn (not yet checked)")
	}
	p.mu.Lock()
	for _, l := range p.idle {
		for _, c := range l {
			c.lastUsed = time.Now().Add(-2 * time.Second)
		}
	}
	p.mu.Unlock()
	_, err := p.Get(context.Background(), Variant{})
	if !errors.Is(err, ErrConnect) {
		t.Fatalf("Get with the server down: %v", err)
	}
	if p.Healthy() {
		t.Fatal("healthy with the server down")
	}
	start = time.Now()
	m.Start()
	t.Logf("restarted in %v", time.Since(start))
	start = time.Now()
	waitFor(t, "the prober to see the server back", p.Healthy)
	t.Logf("healthy %v after the restart", time.Since(start))
	c := mustGet(t, p, Variant{})
	mustExec(t, c, "SELECT 1")
	p.Put(c)
}

func TestConcurrentGetPut(t *testing.T) {
	p := newTestPool(t, PoolOptions{MaxOpen: 4, MaxIdle: 2, WaitTimeout: 20 * time.Second})
	var wg sync.WaitGroup
	var maxOpen atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			st := p.Stats()
			if int64(st.Open) > maxOpen.Load() {
				maxOpen.Store(int64(st.Open))
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	want := NewSessionState("test")
	want.SetVar("time_zone", "+01:00")
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := NewSessionState("test")
			if g%2 == 0 {
				mine.SetVar("time_zone", "+02:00")
			}
			for i := range 30 {
				c, err := p.Get(context.Background(), Variant{FoundRows: i%7 == 0})
				if err != nil {
					t.Error(err)
					return
				}
				if err := c.Sync(mine); err != nil {
					t.Error(err)
				}
				if i%5 == 0 {
					if _, err := c.Exec("SET @x = 1"); err != nil {
						t.Error(err)
					}
					c.MarkDirty()
				} else if _, err := c.Exec("SELECT @@time_zone"); err != nil {
					t.Error(err)
				}
				p.Put(c)
			}
		}()
	}
	wg.Wait()
	close(stop)
	st := p.Stats()
	if maxOpen.Load() > 4 || st.Open > 4 || st.InUse != 0 || st.Idle > 2 {
		t.Fatalf("max open seen %d, stats %+v", maxOpen.Load(), st)
	}
	t.Logf("stats: %+v", st)
}

func TestClose(t *testing.T) {
	before := runtime.NumGoroutine()
	p := NewPool("test", testEndpoint(t), PoolOptions{MaxOpen: 1, IdleTimeout: time.Minute}, quietLogger)
	c := mustGet(t, p, Variant{})
	errc := make(chan error)
	go func() {
		_, err := p.Get(context.Background(), Variant{})
		errc <- err
	}()
	waitFor(t, "a waiter", func() bool { return p.Stats().WaitCount == 1 })
	p.Close()
	if err := <-errc; !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("waiter after Close: %v", err)
	}
	if _, err := p.Get(context.Background(), Variant{}); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	p.Put(c)
	if st := p.Stats(); st.Open != 0 || st.Closed != 1 {
		t.Fatalf("stats: %+v", st)
	}
	p.Close() // idempotent

	// Unhealthy pool: the prober stops too.
	ep := testEndpoint(t)
	ep.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t)))
	p2 := NewPool("test", ep, PoolOptions{}, quietLogger)
	if _, err := p2.Get(context.Background(), Variant{}); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	p2.Close()
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestConnectErrors(t *testing.T) {
	ep := testEndpoint(t)
	ep.Password = "wrong-password"
	ep.User = "no_such_user_xyz"
	p := NewPool("test", ep, PoolOptions{}, quietLogger)
	defer p.Close()
	_, err := p.Get(context.Background(), Variant{})
	var me *mysql.Error
	if !errors.Is(err, ErrConnect) || !errors.As(err, &me) || me.Code != mysql.ErrCodeAccessDenied {
		t.Fatalf("bad credentials: %v", err)
	}
	ep = testEndpoint(t)
	ep.DB = "no_such_db_xyz"
	p2 := NewPool("test", ep, PoolOptions{}, quietLogger)
	defer p2.Close()
	if _, err := p2.Get(context.Background(), Variant{}); !errors.As(err, &me) || me.Code != mysql.ErrCodeBadDB {
		t.Fatalf("bad db: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
