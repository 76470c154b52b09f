// Command sqlclient is the e2e tests' application: it runs SQL in a loop against a MySQL server
// (in a pod: its pisa-proxy sidecar on 127.0.0.1) and prints one line per statement,
//
//	ok seq=12 q=0 value=2
//	error seq=13 q=1 err=Error 1047 (08S01): ...
//
// so a test reads from the container's log what the application saw. Built static
// (CGO_ENABLED=0) into the image pisanix.local/sqlclient:1 by hack/cluster.sh.
//
// Environment of the loop (no arguments):
//
//	SQLCLIENT_DSN       go-sql-driver form, default root@tcp(127.0.0.1:3306)/test
//	SQLCLIENT_QUERY     one statement per line (default SELECT 1), run in order each round;
//	                    {pod} is replaced by the host name (the pod's name), {seq} by the
//	                    round's number. A SELECT (or SHOW) prints its first column, anything
//	                    else the rows it affected.
//	SQLCLIENT_INTERVAL  between rounds, default 500ms
//	SQLCLIENT_DRAIN     after SIGTERM keep going this long (default 0): a pod that drains
//	SQLCLIENT_TIMEOUT   how long one statement may take before it counts as an error
//	                    (default 20s, as an application's would); a statement slower than 1 s
//	                    also prints "slow seq=… q=… took=…"
//
// Other modes, for the bandwidth checks (run with kubectl exec, or on the host):
//
//	sqlclient bench DSN BYTES CHUNK [CONNECTIONS]
//	                                  sends BYTES of SQL text in statements of CHUNK bytes
//	                                  (SELECT LENGTH('xxx…')) over CONNECTIONS (default 1) and
//	                                  prints the rate at which the server took them:
//	                                  bench bytes=… seconds=… mbit=…
//	sqlclient tcpsend ADDR BYTES      the same over a plain TCP connection to a sink
//	sqlclient sink ADDR               accepts connections, reads each to its end, answers "ok"
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"
)

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "sqlclient: "+format+"\n", a...)
	os.Exit(2)
}

func main() {
	if len(os.Args) > 1 {
		var err error
		switch a := os.Args[1:]; a[0] {
		case "bench":
			if len(a) != 4 && len(a) != 5 {
				fail("usage: sqlclient bench DSN BYTES CHUNK [CONNECTIONS]")
			}
			conns := 1
			if len(a) == 5 {
				conns = size(a[4])
			}
			err = bench(a[1], size(a[2]), size(a[3]), conns)
		case "tcpsend":
			if len(a) != 3 {
				fail("usage: sqlclient tcpsend ADDR BYTES")
			}
			err = tcpsend(a[1], size(a[2]))
		case "sink":
			if len(a) != 2 {
				fail("usage: sqlclient sink ADDR")
			}
			err = sink(a[1])
		default:
			fail("unknown mode %q (bench, tcpsend, sink; none: the query loop)", a[0])
		}
		if err != nil {
			fail("%s: %v", os.Args[1], err)
		}
		return
	}
	loop()
}

func size(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		fail("%q is not a positive byte count", s)
	}
	return n
}

func loop() {
	dsn := env("SQLCLIENT_DSN", "root@tcp(127.0.0.1:3306)/test")
	var queries []string
	for _, q := range strings.Split(env("SQLCLIENT_QUERY", "SELECT 1"), "\n") {
		if q = strings.TrimSpace(q); q != "" {
			queries = append(queries, q)
		}
	}
	interval, err := time.ParseDuration(env("SQLCLIENT_INTERVAL", "500ms"))
	if err != nil {
		fail("SQLCLIENT_INTERVAL: %v", err)
	}
	drain, err := time.ParseDuration(env("SQLCLIENT_DRAIN", "0s"))
	if err != nil {
		fail("SQLCLIENT_DRAIN: %v", err)
	}
	timeout, err := time.ParseDuration(env("SQLCLIENT_TIMEOUT", "20s"))
	if err != nil || timeout <= 0 {
		fail("SQLCLIENT_TIMEOUT: %q is not a positive duration", env("SQLCLIENT_TIMEOUT", "20s"))
	}
	host, _ := os.Hostname()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		fail("SQLCLIENT_DSN: %v", err)
	}
	db.SetMaxOpenConns(1)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	fmt.Printf("start pod=%s queries=%d interval=%s drain=%s\n", host, len(queries), interval, drain)
	t := time.NewTicker(interval)
	defer t.Stop()
	var stopAt <-chan time.Time
	for seq := 1; ; seq++ {
		for i, q := range queries {
			q = strings.NewReplacer("{pod}", host, "{seq}", strconv.Itoa(seq)).Replace(q)
			start := time.Now()
			v, err := run(db, q, timeout)
			if took := time.Since(start); took > time.Second {
				fmt.Printf("slow seq=%d q=%d took=%s\n", seq, i, took.Round(time.Millisecond))
			}
			if err != nil {
				fmt.Printf("error seq=%d q=%d err=%v\n", seq, i, err)
			} else {
				fmt.Printf("ok seq=%d q=%d value=%s\n", seq, i, v)
			}
		}
		select {
		case s := <-sig:
			if drain == 0 {
				fmt.Printf("stop on %v\n", s)
				return
			}
			fmt.Printf("draining on %v for %s\n", s, drain)
			stopAt = time.After(drain)
		case <-stopAt:
			fmt.Println("stop after draining")
			return
		case <-t.C:
		}
	}
}

func run(db *sql.DB, q string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	verb := strings.ToUpper(strings.SplitN(q, " ", 2)[0])
	if verb == "SELECT" || verb == "SHOW" {
		var v sql.NullString
		err := db.QueryRowContext(ctx, q).Scan(&v)
		return v.String, err
	}
	r, err := db.ExecContext(ctx, q)
	if err != nil {
		return "", err
	}
	n, err := r.RowsAffected()
	return strconv.FormatInt(n, 10), err
}

// bench sends total bytes of statement text in statements of chunk bytes over conns
// connections at once (so the time between one statement's answer and the next statement, on a
// busy machine, does not leave the link idle), after one statement per connection that is not
// timed (connection set-up, TCP's slow start). A statement's answer comes once the server has
// read all of it, so the time is that of the bytes reaching it.
func bench(dsn string, total, chunk, conns int) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	q := "SELECT LENGTH('" + strings.Repeat("x", chunk) + "')"
	ctx := context.Background()
	cs := make([]*sql.Conn, conns)
	for i := range cs {
		if cs[i], err = db.Conn(ctx); err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		defer cs[i].Close()
		var n int
		if err := cs[i].QueryRowContext(ctx, q).Scan(&n); err != nil {
			return fmt.Errorf("first statement: %w", err)
		}
		if n != chunk {
			return fmt.Errorf("server counted %d bytes, sent %d", n, chunk)
		}
	}
	var (
		mu   sync.Mutex
		sent int
	)
	take := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if sent >= total {
			return false
		}
		sent += len(q)
		return true
	}
	errc := make(chan error, conns)
	t0 := time.Now()
	for _, c := range cs {
		go func() {
			var n int
			for take() {
				if err := c.QueryRowContext(ctx, q).Scan(&n); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range cs {
		if e := <-errc; e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		return err
	}
	report("bench", sent, time.Since(t0))
	return nil
}

func report(what string, n int, d time.Duration) {
	fmt.Printf("%s bytes=%d seconds=%.3f mbit=%.2f\n", what, n, d.Seconds(), float64(n)*8/d.Seconds()/1e6)
}

// tcpsend writes total bytes to a sink and waits for its answer, which comes after the sink
// read them all.
func tcpsend(addr string, total int) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	t0 := time.Now()
	for sent := 0; sent < total; {
		n := min(len(buf), total-sent)
		if _, err := c.Write(buf[:n]); err != nil {
			return err
		}
		sent += n
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	ack, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if want := "ok " + strconv.Itoa(total) + "\n"; string(ack) != want {
		return fmt.Errorf("sink answered %q, want %q", ack, want)
	}
	report("tcpsend", total, time.Since(t0))
	return nil
}

func sink(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Printf("sink on %s\n", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			n, err := io.Copy(io.Discard, c)
			if err != nil {
				fmt.Fprintf(os.Stderr, "sink: %v\n", err)
				return
			}
			fmt.Fprintf(c, "ok %d\n", n)
		}()
	}
}
