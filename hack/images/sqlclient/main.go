// Command sqlclient is the e2e tests' application: it runs one SQL query in a loop against a
// MySQL server (in a pod: its pisa-proxy sidecar on 127.0.0.1) and prints one line per query,
//
//	ok seq=12 value=2
//	error seq=13 err=...
//
// so a test reads from the container's log what the application saw. Built static
// (CGO_ENABLED=0) into the image pisanix.local/sqlclient:1 by hack/cluster.sh.
//
// Environment: SQLCLIENT_DSN (go-sql-driver form, default
// root@tcp(127.0.0.1:3306)/test), SQLCLIENT_QUERY (default SELECT 1), SQLCLIENT_INTERVAL
// (default 500ms).
package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/signal"
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

func main() {
	dsn := env("SQLCLIENT_DSN", "root@tcp(127.0.0.1:3306)/test")
	query := env("SQLCLIENT_QUERY", "SELECT 1")
	interval, err := time.ParseDuration(env("SQLCLIENT_INTERVAL", "500ms"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "SQLCLIENT_INTERVAL:", err)
		os.Exit(2)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "SQLCLIENT_DSN:", err)
		os.Exit(2)
	}
	db.SetMaxOpenConns(1)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	fmt.Printf("start query=%q interval=%s\n", query, interval)
	t := time.NewTicker(interval)
	defer t.Stop()
	for seq := 1; ; seq++ {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var v sql.NullString
		err := db.QueryRowContext(qctx, query).Scan(&v)
		cancel()
		if err != nil {
			fmt.Printf("error seq=%d err=%v\n", seq, err)
		} else {
			fmt.Printf("ok seq=%d value=%s\n", seq, v.String)
		}
		select {
		case <-ctx.Done():
			fmt.Println("stop")
			return
		case <-t.C:
		}
	}
}
