//go:build chaos

// The drills of issue 10 against real MariaDB servers started here
// (hack/mariadb.sh, hack/replication.sh), run by `make chaos`
// (hack/chaos.sh). Each prints one line: CHAOS <tab> drill <tab> what was
// done <tab> what the client saw <tab> what was lost; a drill fails when
// anything was lost.
package proxy

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

func report(t *testing.T, drill, done, saw, lost string) {
	t.Helper()
	fmt.Printf("CHAOS\t%s\t%s\t%s\t%s\n", drill, done, saw, lost)
	if !strings.HasPrefix(lost, "nothing") {
		t.Errorf("%s: lost %s", drill, lost)
	}
}

func errName(err error) string {
	switch {
	case err == nil:
		return "ok"
	case isClosedConn(err):
		return "closed connection"
	case mysqlErrCode(err) != 0:
		return fmt.Sprintf("ERR %d", mysqlErrCode(err))
	}
	return err.Error()
}

func on(opt bool) string {
	if opt {
		return "with failover"
	}
	return "without failover"
}

// Drill: the backend thread of a session is killed inside its transaction.
func TestChaosKillInTransaction(t *testing.T) {
	for _, replay := range []bool{false, true} {
		m := testutil.StartMariaDB(t)
		m.Exec(t, "CREATE TABLE chaos_kill (id INT PRIMARY KEY)")
		cfg := baseConfig(m.Addr)
		if replay {
			cfg.Proxy.Config[0].Failover = &proxyconfig.Failover{TransactionReplay: true}
		}
		tp := startProxy(t, cfg)
		c := sqlConn(t, openDB(t, tp.dsn("")))
		execAll(t, c, "BEGIN", "INSERT INTO chaos_kill VALUES (1)")
		killTxThread(t, m)
		var saw []string
		committed := false
		for _, q := range []string{"INSERT INTO chaos_kill VALUES (2)", "COMMIT"} {
			_, err := c.ExecContext(context.Background(), q)
			saw = append(saw, strings.Fields(q)[0]+": "+errName(err))
			if err != nil {
				break
			}
			committed = q == "COMMIT"
		}
		var n int
		if err := m.Open(t, "test").QueryRow("SELECT COUNT(*) FROM chaos_kill").Scan(&n); err != nil {
			t.Fatal(err)
		}
		lost := "nothing"
		switch {
		case committed && n != 2:
			lost = fmt.Sprintf("%d of 2 acknowledged rows", 2-n)
		case !committed && n != 0:
			lost = fmt.Sprintf("atomicity: %d row(s) of an unacknowledged transaction committed", n)
		case committed:
			lost = "nothing (2 of 2 rows committed)"
		default:
			lost = "nothing (no COMMIT acknowledged, 0 rows committed)"
		}
		report(t, "kill-in-transaction", "BEGIN; INSERT; KILL backend thread; INSERT; COMMIT ("+on(replay)+")",
			strings.Join(saw, ", "), lost)
	}
}

// load runs transactional writers through dsn until stop is closed: each
// transaction inserts (worker, seq) into chaos_ledger and adds 1 to the
// worker's row of chaos_acct. It returns the acknowledged commits and the
// errors seen by name.
type loadResult struct {
	txs    int
	acked  map[[2]int]bool
	errors map[string]int
}

func runLoad(dsn string, workers int, stop <-chan struct{}) *loadResult {
	res := &loadResult{acked: map[[2]int]bool{}, errors: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 1; w <= workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			db, _ := sql.Open("mysql", dsn)
			defer db.Close()
			db.SetMaxOpenConns(1)
			for seq := 1; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				err := func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					if _, err := tx.Exec("INSERT INTO chaos_ledger VALUES (?, ?)", w, seq); err != nil {
						tx.Rollback()
						return err
					}
					if _, err := tx.Exec("UPDATE chaos_acct SET n = n + 1 WHERE id = ?", w); err != nil {
						tx.Rollback()
						return err
					}
					return tx.Commit()
				}()
				mu.Lock()
				res.txs++
				if err == nil {
					res.acked[[2]int{w, seq}] = true
				} else {
					res.errors[errName(err)]++
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}(w)
	}
	wg.Wait()
	return res
}

func loadSchema(t *testing.T, m *testutil.MariaDB, workers int) {
	m.Exec(t, "DROP TABLE IF EXISTS chaos_ledger, chaos_acct")
	m.Exec(t, "CREATE TABLE chaos_ledger (w INT, seq INT, PRIMARY KEY (w, seq))")
	m.Exec(t, "CREATE TABLE chaos_acct (id INT PRIMARY KEY, n INT)")
	for w := 1; w <= workers; w++ {
		m.Exec(t, "INSERT INTO chaos_acct VALUES (?, 0)", w)
	}
}

// verify compares the acknowledged commits with what server m holds: an
// acknowledged commit missing is lost; a ledger count that differs from the
// account's is a half-committed transaction.
func verify(t *testing.T, m *testutil.MariaDB, res *loadResult) (saw, lost string) {
	db := m.Open(t, "test")
	have := map[[2]int]bool{}
	rows, err := db.Query("SELECT w, seq FROM chaos_ledger")
	if err != nil {
		t.Fatal(err)
	}
	perWorker := map[int]int{}
	for rows.Next() {
		var k [2]int
		if err := rows.Scan(&k[0], &k[1]); err != nil {
			t.Fatal(err)
		}
		have[k] = true
		perWorker[k[0]]++
	}
	rows.Close()
	missing, half := 0, 0
	for k := range res.acked {
		if !have[k] {
			missing++
		}
	}
	rows, err = db.Query("SELECT id, n FROM chaos_acct")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		if n != perWorker[id] {
			half++
		}
	}
	rows.Close()
	var errs []string
	total := 0
	for name, n := range res.errors {
		errs = append(errs, fmt.Sprintf("%d×%s", n, name))
		total += n
	}
	sort.Strings(errs)
	saw = fmt.Sprintf("%d errors in %d transactions", total, res.txs)
	if total > 0 {
		saw += " (" + strings.Join(errs, ", ") + ")"
	}
	inDoubt := len(have) - len(res.acked) + missing
	switch {
	case missing > 0 || half > 0:
		lost = fmt.Sprintf("%d acknowledged commits missing, %d half-committed workers", missing, half)
	default:
		lost = fmt.Sprintf("nothing (%d acknowledged commits all present, no half transaction; %d unacknowledged found committed)",
			len(res.acked), inDoubt)
	}
	return saw, lost
}

// Drill: the backend restarts (graceful shutdown, start) under load.
func TestChaosRestartUnderLoad(t *testing.T) {
	const workers = 8
	m := testutil.StartMariaDB(t)
	// The last run sends prepared statements (go-sql-driver prepares,
	// executes and closes each statement inside the transaction).
	for _, run := range []struct{ opt, ps bool }{{false, false}, {true, false}, {true, true}} {
		opt := run.opt
		loadSchema(t, m, workers)
		cfg := baseConfig(m.Addr)
		if opt {
			cfg.Proxy.Config[0].Failover = &proxyconfig.Failover{DelayedRetry: true, TransactionReplay: true,
				DelayedRetryTimeout: proxyconfig.D(30 * time.Second)}
		}
		tp := startProxy(t, cfg)
		stop := make(chan struct{})
		done := make(chan *loadResult)
		dsn, protocol := tp.dsn("interpolateParams=true"), "text"
		if run.ps {
			dsn, protocol = tp.dsn("interpolateParams=false"), "prepared statements"
		}
		go func() { done <- runLoad(dsn, workers, stop) }()
		time.Sleep(1500 * time.Millisecond)
		m.Shutdown()
		time.Sleep(500 * time.Millisecond)
		m.Start()
		time.Sleep(2 * time.Second)
		close(stop)
		res := <-done
		saw, lost := verify(t, m, res)
		report(t, "backend-restart", fmt.Sprintf("%d writers, %s, hack/mariadb.sh shutdown + restart (%s)", workers, protocol, on(opt)), saw, lost)
	}
}

// Drill: the primary is shut down and its replica promoted under load
// (dynamic read/write splitting finds the new writer).
func TestChaosPromotedReplica(t *testing.T) {
	const workers = 8
	for _, opt := range []bool{false, true} {
		r := testutil.StartReplication(t, 1)
		loadSchema(t, r.Primary, workers)
		r.WaitSynced()
		cfg := rwConfig(r)
		static := cfg.Proxy.Config[0].ReadWriteSplitting.Static
		cfg.Proxy.Config[0].ReadWriteSplitting = &proxyconfig.ReadWriteSplitting{Dynamic: &proxyconfig.RWSplittingDynamic{
			DefaultTarget: static.DefaultTarget, Rules: static.Rules,
			Discovery: &proxyconfig.Discovery{Type: "mha", User: "root", Password: "",
				MonitorPeriod: 100, ConnectPeriod: 100, ConnectTimeout: 500, ConnectFailureThreshold: 1,
				PingPeriod: 100, PingTimeout: 500, PingFailureThreshold: 1,
				ReplicationLagPeriod: 100, ReplicationLagTimeout: 500, ReplicationLagFailureThreshold: 1, MaxReplicationLag: 5,
				ReadOnlyPeriod: 100, ReadOnlyTimeout: 500, ReadOnlyFailureThreshold: 1},
		}}
		if opt {
			cfg.Proxy.Config[0].Failover = &proxyconfig.Failover{DelayedRetry: true, TransactionReplay: true,
				DelayedRetryTimeout: proxyconfig.D(30 * time.Second)}
		}
		tp := startProxy(t, cfg)
		stop := make(chan struct{})
		done := make(chan *loadResult)
		go func() { done <- runLoad(tp.dsn("interpolateParams=true"), workers, stop) }()
		time.Sleep(1500 * time.Millisecond)
		r.Primary.Shutdown()
		r.Promote(0)
		time.Sleep(3 * time.Second)
		close(stop)
		res := <-done
		saw, lost := verify(t, r.Primary, res)
		report(t, "promoted-replica", fmt.Sprintf("%d writers, primary shut down, replica promoted (%s)", workers, on(opt)), saw, lost)
	}
}

// Drill: strangers send huge packets before logging in.
func TestChaosOversizedPreAuth(t *testing.T) {
	tp := startProxy(t, baseConfig(testutil.MariaDBAddr(t)))
	const clients = 16
	codes := map[string]int{}
	start := time.Now()
	for i := 0; i < clients; i++ {
		nc, c := greeted(t, tp.addr)
		writeHeader(t, nc, 128<<20, 1)
		_, _ = nc.Write(make([]byte, 64<<10))
		c.SetSeq(2)
		p, err := c.ReadPacket()
		switch {
		case err != nil:
			codes["closed"]++
		case p[0] == mysql.ERRHeader:
			codes[fmt.Sprintf("ERR %d", mysql.ParseErr(p).Code)]++
		default:
			codes["other"]++
		}
		nc.Close()
	}
	took := time.Since(start)
	ok := queryString(t, openDB(t, tp.dsn("")), "SELECT 1") == "1"
	lost := "nothing (a normal client logs in and queries afterwards)"
	if !ok {
		lost = "service: a normal client could not query"
	}
	report(t, "oversized-pre-auth", fmt.Sprintf("%d clients announce 128 MiB handshake packets", clients),
		fmt.Sprintf("%v, all %d answered and closed in %v", codes, clients, took.Round(time.Millisecond)), lost)
}

// Drill: logged-in clients stall mid-packet and idle inside transactions
// while the pool is small; others keep working.
func TestChaosStalledClients(t *testing.T) {
	testutil.Exec(t, testutil.MariaDBDSN(t), "CREATE TABLE IF NOT EXISTS test.chaos_stall (id INT PRIMARY KEY)")
	testutil.Exec(t, testutil.MariaDBDSN(t), "DELETE FROM test.chaos_stall")
	cfg := baseConfig(testutil.MariaDBAddr(t))
	l := &cfg.Proxy.Config[0]
	l.NetReadTimeout = proxyconfig.D(time.Second)
	l.IdleTransactionTimeout = proxyconfig.D(time.Second)
	l.Pool.MaxOpen = 4
	l.Pool.WaitTimeout = proxyconfig.D(5 * time.Second)
	tp := startProxy(t, cfg)
	const stalled = 32
	for i := 0; i < stalled; i++ {
		rc := dialRaw(t, tp.addr)
		writeHeader(t, rc.c.NetConn(), 100, 0)
		_, _ = rc.c.NetConn().Write([]byte{mysql.ComQuery, 'S'})
	}
	db := openDB(t, tp.dsn(""))
	var idle []*sql.Conn
	for i := 0; i < 4; i++ {
		c := sqlConn(t, db)
		execAll(t, c, "BEGIN", fmt.Sprintf("INSERT INTO test.chaos_stall VALUES (%d)", i))
		idle = append(idle, c)
	}
	start := time.Now()
	other := sqlConn(t, openDB(t, tp.dsn("")))
	v := queryString(t, other, "SELECT 42")
	waited := time.Since(start)
	var n int
	if err := testutil.Open(t, testutil.MariaDBDSN(t)).QueryRow("SELECT COUNT(*) FROM test.chaos_stall").Scan(&n); err != nil {
		t.Fatal(err)
	}
	_, err := idle[0].ExecContext(context.Background(), "COMMIT")
	lost := "nothing (no row of the idle transactions committed; their COMMIT fails)"
	if n != 0 || err == nil || v != "42" {
		lost = fmt.Sprintf("%d rows committed, COMMIT %v, other client got %q", n, err, v)
	}
	report(t, "stalled-clients", fmt.Sprintf("%d clients stall mid-packet, 4 idle inside BEGIN, pool of 4", stalled),
		fmt.Sprintf("another client answered after %v; idle transactions closed and rolled back", waited.Round(time.Millisecond)), lost)
}

// Drill: a flood of silent sockets does not lock real logins out.
func TestChaosHandshakeFlood(t *testing.T) {
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.Config[0].MaxHandshakes = 64
	tp := startProxy(t, cfg)
	const flood = 500
	for i := 0; i < flood; i++ {
		nc, err := net.DialTimeout("tcp", tp.addr, 5*time.Second)
		if err != nil {
			continue
		}
		defer nc.Close()
	}
	time.Sleep(1200 * time.Millisecond) // the silent sockets are older than handshakeEvictAge
	var worst time.Duration
	for i := 0; i < 10; i++ {
		start := time.Now()
		db := openDB(t, tp.dsn("timeout=10s"))
		if v := queryString(t, db, "SELECT 1"); v != "1" {
			t.Fatalf("login %d: %q", i, v)
		}
		db.Close()
		worst = max(worst, time.Since(start))
	}
	report(t, "handshake-flood", fmt.Sprintf("%d silent sockets, max_handshakes 64, 1.2 s later 10 real logins", flood),
		fmt.Sprintf("every login answered, slowest in %v", worst.Round(time.Millisecond)), "nothing (no login refused)")
}
