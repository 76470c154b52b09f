package testutil

import (
	"context"
	"testing"
	"time"
)

func queryPort(t *testing.T, m *MariaDB) (int, error) {
	t.Helper()
	db := m.Open(t, "test")
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var port int
	err := db.QueryRowContext(ctx, "SELECT @@port").Scan(&port)
	return port, err
}

func TestStartMariaDBKillRestart(t *testing.T) {
	start := time.Now()
	m := StartMariaDB(t, "--max-allowed-packet=32M")
	t.Logf("started %s in %v (dir %s)", m.Addr, time.Since(start).Round(time.Millisecond), m.DataDir)

	port, err := queryPort(t, m)
	if err != nil || port != m.Port {
		t.Fatalf("SELECT @@port = %d, %v; want %d", port, err, m.Port)
	}
	m.Exec(t, "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)")

	// A connection open across the kill must see its connection drop.
	db := m.Open(t, "test")
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}

	m.Stop()
	if _, err := queryPort(t, m); err == nil {
		t.Fatal("query succeeded on a killed server")
	} else if !IsConnError(err) {
		t.Logf("error after kill (not classified as a connection error): %v", err)
	}

	start = time.Now()
	m.Start()
	t.Logf("restarted in %v", time.Since(start).Round(time.Millisecond))
	port, err = queryPort(t, m)
	if err != nil || port != m.Port {
		t.Fatalf("after restart: SELECT @@port = %d, %v; want %d", port, err, m.Port)
	}
	var n, maxPacket int
	if err := m.Open(t, "test").QueryRow("SELECT COUNT(*), @@max_allowed_packet FROM t").Scan(&n, &maxPacket); err != nil {
		t.Fatal(err)
	}
	if n != 2 || maxPacket != 32<<20 {
		t.Fatalf("after restart: %d rows, max_allowed_packet %d; want 2 rows and 32M (data and args kept)", n, maxPacket)
	}
}

func TestSharedMariaDB(t *testing.T) {
	db := Open(t, MariaDBDSN(t))
	var one int
	if err := db.QueryRow("SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
}

func TestFreePort(t *testing.T) {
	if p := FreePort(t); p <= 0 || p > 65535 {
		t.Fatalf("FreePort = %d", p)
	}
}
