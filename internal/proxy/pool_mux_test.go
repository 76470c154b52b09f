package proxy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// cmdCounter is a TCP relay between the proxy and MariaDB that counts the
// commands the proxy sends (packets with sequence id 0 after the login),
// by command byte: each is one round trip, except COM_STMT_CLOSE and
// COM_STMT_SEND_LONG_DATA, which have no response.
type cmdCounter struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	counts map[byte]int
	wg     sync.WaitGroup
}

func newCmdCounter(t testing.TB, target string) *cmdCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cc := &cmdCounter{ln: ln, target: target, counts: map[byte]int{}}
	cc.wg.Add(1)
	go cc.accept()
	t.Cleanup(func() { ln.Close(); cc.wg.Wait() })
	return cc
}

func (cc *cmdCounter) accept() {
	defer cc.wg.Done()
	for {
		c, err := cc.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", cc.target)
		if err != nil {
			c.Close()
			continue
		}
		cc.wg.Add(2)
		go func() { defer cc.wg.Done(); _, _ = io.Copy(c, s); c.Close() }()
		go func() { defer cc.wg.Done(); cc.relay(c, s); s.Close() }()
	}
}

// relay copies the proxy's packets from c to the server s, counting
// commands. The login's packets have sequence ids from 1, commands 0.
func (cc *cmdCounter) relay(c, s net.Conn) {
	buf := make([]byte, 4, 1024)
	for {
		if _, err := io.ReadFull(c, buf[:4]); err != nil {
			return
		}
		n := int(buf[0]) | int(buf[1])<<8 | int(buf[2])<<16
		buf = append(buf[:4], make([]byte, n)...)
		if _, err := io.ReadFull(c, buf[4:]); err != nil {
			return
		}
		if buf[3] == 0 && n > 0 {
			cc.mu.Lock()
			cc.counts[buf[4]]++
			cc.mu.Unlock()
		}
		if _, err := s.Write(buf); err != nil {
			return
		}
	}
}

// take returns the counts since the last take and clears them.
func (cc *cmdCounter) take() map[byte]int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	m := cc.counts
	cc.counts = map[byte]int{}
	return m
}

func cmdNames(m map[byte]int) string {
	s := ""
	for b, n := range m {
		s += fmt.Sprintf(" %s=%d", mysql.CommandName(b), n)
	}
	return s
}

// A prepared point select executed by sessions that share one backend
// connection costs exactly one backend round trip (the COM_STMT_EXECUTE)
// once the connection has the statement and the sessions' state matches:
// no state sync, no re-prepare, no extra command when the connection goes
// from one session to the other; in a transaction, only its BEGIN and
// COMMIT are added.
func TestPreparedExecuteOneRoundTrip(t *testing.T) {
	addr := testutil.MariaDBAddr(t)
	setup := openDB(t, "root:@tcp("+addr+")/test")
	if _, err := setup.Exec("CREATE TABLE IF NOT EXISTS h8_rtt (id INT PRIMARY KEY, c CHAR(20))"); err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Exec("INSERT IGNORE INTO h8_rtt SELECT seq, CONCAT('c', seq) FROM seq_1_to_100"); err != nil {
		t.Fatal(err)
	}
	cc := newCmdCounter(t, addr)
	cfg := baseConfig(cc.ln.Addr().String())
	cfg.Proxy.Config[0].Pool = proxyconfig.Pool{MaxOpen: 1, WaitTimeout: proxyconfig.Duration{Duration: 5 * time.Second}}
	tp := startProxy(t, cfg)

	const sessions = 3
	var stmts []*sql.Stmt
	var dbs []*sql.DB
	for i := 0; i < sessions; i++ {
		db := openDB(t, tp.dsn(""))
		db.SetMaxOpenConns(1)
		dbs = append(dbs, db)
		st, err := db.Prepare("SELECT c FROM h8_rtt WHERE id = ?")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		stmts = append(stmts, st)
	}
	var c string
	// Warm up: the backend connection has the statement (prepared once,
	// for every session: same text, same state).
	for _, st := range stmts {
		if err := st.QueryRow(1).Scan(&c); err != nil {
			t.Fatal(err)
		}
	}
	cc.take()
	const rounds = 20
	for i := 0; i < rounds; i++ {
		for j, st := range stmts {
			id := i*sessions + j + 1
			if err := st.QueryRow(id).Scan(&c); err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("c%d", id); c != want {
				t.Fatalf("got %q, want %q", c, want)
			}
		}
	}
	got := cc.take()
	want := rounds * sessions
	total := 0
	for _, n := range got {
		total += n
	}
	if got[mysql.ComStmtExecute] != want || total != want {
		t.Fatalf("backend commands for %d executes:%s; want exactly %d COM_STMT_EXECUTE and nothing else",
			want, cmdNames(got), want)
	}

	// sysbench's oltp_read_only shape: BEGIN, executes, COMMIT, each
	// session in turn on the one connection: the BEGIN and the COMMIT are
	// a round trip each, as straight to the server, and nothing is added.
	for i := 0; i < rounds; i++ {
		for j, db := range dbs {
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			txst := tx.Stmt(stmts[j])
			for k := 1; k <= 3; k++ {
				if err := txst.QueryRow(k).Scan(&c); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	got = cc.take()
	txs := rounds * sessions
	total = 0
	for _, n := range got {
		total += n
	}
	if got[mysql.ComStmtExecute] != 3*txs || got[mysql.ComQuery] != 2*txs || total != 5*txs {
		t.Fatalf("backend commands for %d transactions of 3 executes:%s; want %d COM_STMT_EXECUTE, %d COM_QUERY and nothing else",
			txs, cmdNames(got), 3*txs, 2*txs)
	}
}

// BenchmarkMultiplexPrepared runs a prepared point select from many client
// connections (each its own proxy session) through a listener whose pool
// has a few backend connections: the pool's handoff and the statement
// registry under contention, as sysbench --threads=256 through max_open 32.
func BenchmarkMultiplexPrepared(b *testing.B) {
	addr := testutil.MariaDBAddr(b)
	setup, err := sql.Open("mysql", "root:@tcp("+addr+")/test")
	if err != nil {
		b.Fatal(err)
	}
	defer setup.Close()
	setup.Exec("CREATE TABLE IF NOT EXISTS bench_point (id INT PRIMARY KEY, k INT, c CHAR(120))")
	setup.Exec("INSERT IGNORE INTO bench_point SELECT seq, seq, REPEAT('c', 120) FROM seq_1_to_1000")
	for _, tc := range []struct{ clients, pool int }{{8, 8}, {64, 8}} {
		b.Run(fmt.Sprintf("clients=%d/pool=%d", tc.clients, tc.pool), func(b *testing.B) {
			cfg := baseConfig(addr)
			cfg.Proxy.Config[0].Pool = proxyconfig.Pool{MaxOpen: tc.pool, WaitTimeout: proxyconfig.Duration{Duration: 10 * time.Second}}
			cfg.ApplyDefaults()
			tp := startProxy(b, cfg)
			stmts := make(chan *sql.Stmt, tc.clients)
			for i := 0; i < tc.clients; i++ {
				db, err := sql.Open("mysql", tp.dsn(""))
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				db.SetMaxOpenConns(1)
				db.SetMaxIdleConns(1)
				st, err := db.Prepare("SELECT c FROM bench_point WHERE id = ?")
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				stmts <- st
			}
			var next atomic.Int64
			var failed atomic.Pointer[error]
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			n := int64(b.N)
			for i := 0; i < tc.clients; i++ {
				st := <-stmts
				wg.Add(1)
				go func() {
					defer wg.Done()
					var c string
					for {
						k := next.Add(1)
						if k > n {
							return
						}
						if err := st.QueryRowContext(context.Background(), k%1000+1).Scan(&c); err != nil {
							failed.CompareAndSwap(nil, &err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			if e := failed.Load(); e != nil && !errors.Is(*e, context.Canceled) {
				b.Fatal(*e)
			}
		})
	}
}
