package proxy

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// These tests run pisa-proxy as a process (built from cmd/pisa-proxy) in
// front of two throwaway MariaDB servers, kill it (SIGKILL) or a server at
// each step of the two-phase commit, and check that every transaction is
// wholly there or wholly absent once recovery has run.

// xaProxyProc is a pisa-proxy process.
type xaProxyProc struct {
	t    *testing.T
	bin  string
	cfg  string
	addr string
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
	done chan struct{}
}

func buildProxyBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pisa-proxy")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/pisa-proxy")
	cmd.Dir = testutil.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// writeXAConfig writes the proxy's configuration: t_acct and t_tx sharded
// over the two servers (database_strategy, mod on id), XA mode.
func writeXAConfig(t *testing.T, dir, proxyID string, m1, m2 *testutil.MariaDB) (path, addr string) {
	t.Helper()
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t)))
	cfg := fmt.Sprintf(`[admin]
host = "127.0.0.1"
port = %d
log_level = "INFO"

[proxy.xa]
proxy_id = %q
log_file = %q
recovery_interval = "1s"

[[proxy.config]]
name = "shard"
listen_addr = %q
user = "proxy"
password = "proxypass"
db = "test"
[proxy.config.simple_loadbalance]
nodes = ["ds001"]
[[proxy.config.sharding]]
table_name = "t_acct"
actual_datanodes = ["ds001", "ds002"]
[proxy.config.sharding.database_strategy]
database_sharding_algorithm_name = "mod"
database_sharding_column = "id"
[[proxy.config.sharding]]
table_name = "t_tx"
actual_datanodes = ["ds001", "ds002"]
[proxy.config.sharding.database_strategy]
database_sharding_algorithm_name = "mod"
database_sharding_column = "id"

[[mysql.node]]
name = "ds001"
host = "127.0.0.1"
port = %d
user = "root"
password = ""
db = "test"

[[mysql.node]]
name = "ds002"
host = "127.0.0.1"
port = %d
user = "root"
password = ""
db = "test"
`, testutil.FreePort(t), proxyID, filepath.Join(dir, "xa-"+proxyID+".log"), addr, m1.Port, m2.Port)
	path = filepath.Join(dir, proxyID+".toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, addr
}

// start runs the proxy with the failpoints fp (PISA_TEST_XA_FAILPOINT) and
// waits until it accepts connections.
func (p *xaProxyProc) start(fp string) {
	p.t.Helper()
	p.out = &testutil.SyncBuffer{}
	p.cmd = exec.Command(p.bin, "daemon", "-c", p.cfg)
	p.cmd.Env = append(os.Environ(), "PISA_TEST_XA_FAILPOINT="+fp)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(p.cmd, p.done)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			if fp != "" && strings.Contains(p.out.String(), "failpoint") {
				return // clients already reached the failpoint
			}
			p.t.Fatalf("pisa-proxy exited at start:\n%s", p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("pisa-proxy did not listen on %s:\n%s", p.addr, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL (kill -9) and waits for the process to end.
func (p *xaProxyProc) kill() {
	if p.cmd == nil {
		return
	}
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// waitExit waits for the process to end by itself (a failpoint).
func (p *xaProxyProc) waitExit(d time.Duration) bool {
	select {
	case <-p.done:
		p.cmd = nil
		return true
	case <-time.After(d):
		return false
	}
}

func newXAProxyProc(t *testing.T, bin, dir, proxyID string, m1, m2 *testutil.MariaDB) *xaProxyProc {
	cfg, addr := writeXAConfig(t, dir, proxyID, m1, m2)
	p := &xaProxyProc{t: t, bin: bin, cfg: cfg, addr: addr}
	t.Cleanup(p.kill)
	return p
}

func (p *xaProxyProc) db(t *testing.T) *sql.DB {
	return openDB(t, fmt.Sprintf("proxy:proxypass@tcp(%s)/test?timeout=3s&readTimeout=30s&writeTimeout=10s", p.addr))
}

// waitNoPrepared waits until neither server has a prepared XA branch.
func waitNoPrepared(t *testing.T, d time.Duration, ms ...*testutil.MariaDB) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := 0
		for _, m := range ms {
			left += len(xaRecover(t, m))
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d prepared XA branches still there after %s", left, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func xaPreparedCount(t *testing.T, ms ...*testutil.MariaDB) int {
	n := 0
	for _, m := range ms {
		n += len(xaRecover(t, m))
	}
	return n
}

// tagRows returns the ids of t_tx rows with tag on both servers.
func tagRows(t *testing.T, tag string, ms ...*testutil.MariaDB) []string {
	t.Helper()
	var ids []string
	for _, m := range ms {
		ids = append(ids, rowsOf(t, m.Open(t, "test"), "SELECT id FROM t_tx WHERE tag = ?", tag)...)
	}
	sort.Strings(ids)
	return ids
}

// TestShardingXACrash kills the proxy (SIGKILL) at each step of a two-phase
// commit and a backend between the steps; after recovery each transaction
// is wholly committed (when the decision was logged) or wholly absent. A
// second proxy with another proxy_id never resolves the first one's
// branches.
func TestShardingXACrash(t *testing.T) {
	m1 := testutil.StartMariaDB(t, "--innodb-lock-wait-timeout=5")
	m2 := testutil.StartMariaDB(t, "--innodb-lock-wait-timeout=5")
	for _, m := range []*testutil.MariaDB{m1, m2} {
		m.Exec(t, "CREATE TABLE t_tx (id BIGINT PRIMARY KEY, tag VARCHAR(40))")
	}
	bin := buildProxyBinary(t)
	dir := t.TempDir()
	px := newXAProxyProc(t, bin, dir, "crash-a", m1, m2)
	other := newXAProxyProc(t, bin, dir, "crash-b", m1, m2)

	// Each step: failpoint, whether the transaction must end committed,
	// prepared branches left when the proxy died.
	steps := []struct {
		fp        string
		committed bool
		prepared  int
	}{
		{"after_prepare:1", false, 1},
		{"after_prepare:2", false, 2},
		{"after_decision", true, 2},
		{"after_commit:1", true, 1},
		{"after_commit:2", true, 0},
	}
	for i, st := range steps {
		tag := "step-" + st.fp
		px.start(st.fp)
		db := px.db(t)
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		base := 100 * (i + 1)
		if _, err := tx.Exec(fmt.Sprintf("INSERT INTO t_tx (id, tag) VALUES (%d, ?), (%d, ?), (%d, ?), (%d, ?)", base, base+1, base+2, base+3), tag, tag, tag, tag); err != nil {
			t.Fatalf("%s: insert: %v", st.fp, err)
		}
		err = tx.Commit()
		if err == nil {
			t.Fatalf("%s: COMMIT answered although the proxy was to die", st.fp)
		}
		if !px.waitExit(10 * time.Second) {
			t.Fatalf("%s: the failpoint did not kill the proxy:\n%s", st.fp, px.out.String())
		}
		db.Close()
		if got := xaPreparedCount(t, m1, m2); got != st.prepared {
			t.Fatalf("%s: %d prepared branches after the crash, want %d", st.fp, got, st.prepared)
		}
		if st.prepared > 0 && i == 0 {
			// Another proxy leaves them alone.
			other.start("")
			time.Sleep(2500 * time.Millisecond) // two recovery intervals
			if got := xaPreparedCount(t, m1, m2); got != st.prepared {
				t.Fatalf("the proxy crash-b resolved crash-a's branches: %d left, want %d\n%s", got, st.prepared, other.out.String())
			}
			other.kill()
		}
		// Restarted, the proxy resolves them at startup.
		px.start("")
		waitNoPrepared(t, 10*time.Second, m1, m2)
		got := tagRows(t, tag, m1, m2)
		want := []string{strconv.Itoa(base), strconv.Itoa(base + 1), strconv.Itoa(base + 2), strconv.Itoa(base + 3)}
		if !st.committed {
			want = nil
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("%s: rows %v, want %v\n%s", st.fp, got, want, px.out.String())
		}
		// And through the proxy, the rows are readable (no lock left).
		db = px.db(t)
		if n := countWhere(t, db, "SELECT COUNT(*) FROM t_tx WHERE tag = '"+tag+"'"); n != strconv.Itoa(len(want)) {
			t.Fatalf("%s: %s rows through the proxy, want %d", st.fp, n, len(want))
		}
		db.Close()
		px.kill()
	}

	// A backend killed (SIGKILL) between the commit decision and its XA
	// COMMIT: the client's COMMIT succeeds (the decision is logged); the
	// branch stays prepared in the restarted server until the periodic
	// recovery commits it.
	px.start("after_decision=sleep:3s")
	db := px.db(t)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t_tx (id, tag) VALUES (900, 'bk'), (901, 'bk')"); err != nil {
		t.Fatal(err)
	}
	commitErr := make(chan error, 1)
	go func() { commitErr <- tx.Commit() }()
	time.Sleep(1 * time.Second)
	m2.Stop()
	if err := <-commitErr; err != nil {
		t.Fatalf("COMMIT after the decision with a backend down: %v", err)
	}
	m2.Start()
	waitNoPrepared(t, 15*time.Second, m1, m2)
	if got := tagRows(t, "bk", m1, m2); strings.Join(got, ",") != "900,901" {
		t.Fatalf("backend killed after the decision: rows %v\n%s", got, px.out.String())
	}
	if !strings.Contains(px.out.String(), "prepared branch resolved") {
		t.Errorf("recovery did not log its decision:\n%s", px.out.String())
	}
	db.Close()

	// A backend killed before the transaction prepares: COMMIT fails with
	// XA_RBROLLBACK and nothing is written anywhere.
	db = px.db(t)
	tx, err = db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO t_tx (id, tag) VALUES (910, 'bk2'), (911, 'bk2')"); err != nil {
		t.Fatal(err)
	}
	m2.Stop()
	if err := tx.Commit(); err == nil {
		t.Fatal("COMMIT with a branch's server dead succeeded")
	}
	m2.Start()
	waitNoPrepared(t, 15*time.Second, m1, m2)
	if got := tagRows(t, "bk2", m1, m2); len(got) != 0 {
		t.Fatalf("backend killed before prepare: rows %v", got)
	}
	db.Close()
}

// TestShardingXABank runs concurrent random transfers between accounts on
// the two shards through the proxy while the proxy is killed (SIGKILL, at
// random moments and at each two-phase commit step) and a backend is
// killed; after recovery the total balance is what it was.
func TestShardingXABank(t *testing.T) {
	m1 := testutil.StartMariaDB(t, "--innodb-lock-wait-timeout=3")
	m2 := testutil.StartMariaDB(t, "--innodb-lock-wait-timeout=3")
	const accounts, initial = 20, 1000
	for i, m := range []*testutil.MariaDB{m1, m2} {
		m.Exec(t, "CREATE TABLE t_acct (id BIGINT PRIMARY KEY, bal BIGINT NOT NULL)")
		m.Exec(t, "CREATE TABLE t_tx (id BIGINT PRIMARY KEY, tag VARCHAR(40))")
		for id := i; id < accounts; id += 2 {
			m.Exec(t, fmt.Sprintf("INSERT INTO t_acct VALUES (%d, %d)", id, initial))
		}
	}
	bin := buildProxyBinary(t)
	px := newXAProxyProc(t, bin, t.TempDir(), "bank", m1, m2)
	fps := []string{"", "after_prepare:1", "", "after_prepare:2", "", "after_decision", "", "after_commit:1"}
	px.start("")

	var stop atomic.Bool
	var committed, failed atomic.Int64
	var wg sync.WaitGroup
	addr := px.addr
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(seed))
			db, err := sql.Open("mysql", fmt.Sprintf("proxy:proxypass@tcp(%s)/test?timeout=2s&readTimeout=15s&writeTimeout=5s", addr))
			if err != nil {
				return
			}
			defer db.Close()
			db.SetMaxIdleConns(0)
			for !stop.Load() {
				a, b := rnd.Intn(accounts), rnd.Intn(accounts)
				if a == b {
					continue
				}
				amount := 1 + rnd.Intn(50)
				from, to, delta := a, b, amount
				if from > to { // lock rows in id order: no distributed deadlock
					from, to, delta = b, a, -amount
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := func() error {
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					if _, err := tx.Exec("UPDATE t_acct SET bal = bal - ? WHERE id = ?", delta, from); err != nil {
						tx.Rollback()
						return err
					}
					if _, err := tx.Exec("UPDATE t_acct SET bal = bal + ? WHERE id = ?", delta, to); err != nil {
						tx.Rollback()
						return err
					}
					return tx.Commit()
				}()
				cancel()
				if err != nil {
					failed.Add(1)
					time.Sleep(20 * time.Millisecond)
				} else {
					committed.Add(1)
				}
			}
		}(int64(w) + 1)
	}
	// Crash loop.
	for round := 0; round < 8; round++ {
		time.Sleep(1500 * time.Millisecond)
		if round == 4 {
			m2.Stop()
			time.Sleep(500 * time.Millisecond)
			m2.Start()
			continue
		}
		if !px.waitExit(0) {
			px.kill()
		}
		px.start(fps[round%len(fps)])
	}
	time.Sleep(1500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	px.kill()
	px.start("")
	waitNoPrepared(t, 20*time.Second, m1, m2)
	total := 0
	for _, m := range []*testutil.MariaDB{m1, m2} {
		n, _ := strconv.Atoi(rowsOf(t, m.Open(t, "test"), "SELECT COALESCE(SUM(bal), 0) FROM t_acct")[0])
		total += n
	}
	t.Logf("transfers committed %d, failed %d", committed.Load(), failed.Load())
	if total != accounts*initial {
		t.Fatalf("total balance %d, want %d (committed %d, failed %d)\n%s", total, accounts*initial, committed.Load(), failed.Load(), px.out.String())
	}
	if committed.Load() < 20 {
		t.Fatalf("only %d transfers committed", committed.Load())
	}
}
