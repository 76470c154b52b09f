// Package testutil holds helpers for tests that need a real MariaDB: the shared server on
// 127.0.0.1:3306 (started by hack/ensure-mariadb.sh, which `make test` and CI run) and
// throwaway instances started with hack/mariadb.sh, which a test can kill and restart.
//
// Import it from _test.go files only: it panics at init in a binary that is not a test.
package testutil

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

func init() {
	if !testing.Testing() {
		panic("internal/testutil is imported by a non-test binary; import it from _test.go files only")
	}
}

// EnvMySQLAddr overrides the address of the shared server used by MariaDBDSN.
const EnvMySQLAddr = "PISA_TEST_MYSQL_ADDR"

// DefaultMySQLAddr is where hack/ensure-mariadb.sh makes a server answer.
const DefaultMySQLAddr = "127.0.0.1:3306"

var (
	sharedMu    sync.Mutex
	sharedCheck = map[string]error{} // addr -> result of the first reachability check
)

// SkipShort skips t under `go test -short` (`make test-unit`): it needs a MariaDB server. Every
// helper of this package that gives a test a server calls it.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: this test needs MariaDB (make test runs it)")
	}
}

// MariaDBAddr returns host:port of the shared test server: $PISA_TEST_MYSQL_ADDR or
// 127.0.0.1:3306. It fails the test if the server does not answer as root with an empty
// password on database test (checked once per process and address). Under -short it skips the
// test.
func MariaDBAddr(t testing.TB) string {
	t.Helper()
	SkipShort(t)
	addr := os.Getenv(EnvMySQLAddr)
	if addr == "" {
		addr = DefaultMySQLAddr
	}
	sharedMu.Lock()
	err, done := sharedCheck[addr]
	if !done {
		err = ping(dsn(addr, "test"), 10*time.Second)
		sharedCheck[addr] = err
	}
	sharedMu.Unlock()
	if err != nil {
		t.Fatalf("testutil: the shared MariaDB at %s is unreachable (root, empty password, database test): %v\n"+
			"start it with hack/ensure-mariadb.sh (make test does), or point %s at one",
			addr, err, EnvMySQLAddr)
	}
	return addr
}

// MariaDBDSN returns the go-sql-driver DSN of database test on the shared server, e.g.
// "root:@tcp(127.0.0.1:3306)/test". It fails the test if the server is unreachable.
func MariaDBDSN(t testing.TB) string {
	t.Helper()
	return dsn(MariaDBAddr(t), "test")
}

func dsn(addr, db string) string {
	return fmt.Sprintf("root:@tcp(%s)/%s", addr, db)
}

func ping(dsn string, timeout time.Duration) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return err
	}
	cfg.Timeout = 3 * time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return db.PingContext(ctx)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testutil: FreePort: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RepoRoot returns the directory holding go.mod, found by walking up from the working
// directory (go test runs in the package directory).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testutil: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testutil: no go.mod above the working directory")
		}
		dir = parent
	}
}

// MariaDB is a throwaway server started by StartMariaDB.
type MariaDB struct {
	Port    int
	Addr    string // 127.0.0.1:Port
	DataDir string // the instance directory of hack/mariadb.sh (data, socket, log)

	t      testing.TB
	script string
}

// StartMariaDB starts a MariaDB on a free port of 127.0.0.1, with root (empty password)
// and database test, and stops it and removes its files when the test ends. extraArgs
// are appended to the mariadbd command line (e.g. "--log-bin", "--max-connections=20").
// Under -short it skips the test.
func StartMariaDB(t testing.TB, extraArgs ...string) *MariaDB {
	t.Helper()
	SkipShort(t)
	m, err := launch(t, filepath.Join(RepoRoot(t), "hack", "mariadb.sh"), "start", withSep(extraArgs)...)
	if err != nil {
		t.Fatalf("testutil: StartMariaDB: %v", err)
	}
	return m
}

// launch runs `script cmd <free port> args...` (hack/mariadb.sh or hack/replication.sh), whose
// last output line is the instance directory, retrying when the port was taken meanwhile. The
// instance is stopped and removed by hack/mariadb.sh when the test ends.
func launch(t testing.TB, script, cmd string, args ...string) (*MariaDB, error) {
	t.Helper()
	mariadbSh := filepath.Join(filepath.Dir(script), "mariadb.sh")
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := FreePort(t)
		out, err := runScript(script, append([]string{cmd, strconv.Itoa(port)}, args...)...)
		if err != nil {
			lastErr = err
			if strings.Contains(err.Error(), "already in use") {
				continue
			}
			break
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		m := &MariaDB{
			Port:    port,
			Addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			DataDir: strings.TrimSpace(lines[len(lines)-1]),
			t:       t,
			script:  mariadbSh,
		}
		t.Cleanup(func() {
			if _, err := runScript(mariadbSh, "stop", m.DataDir); err != nil {
				t.Errorf("testutil: stopping MariaDB on port %d: %v", port, err)
			}
		})
		return m, nil
	}
	return nil, lastErr
}

func withSep(extra []string) []string {
	if len(extra) == 0 {
		return nil
	}
	return append([]string{"--"}, extra...)
}

func runScript(script string, args ...string) (string, error) {
	cmd := exec.Command(script, args...)
	cmd.Env = append(os.Environ(), "PISA_MARIADB_OWNER_PID="+strconv.Itoa(os.Getpid()))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v\n%s", filepath.Base(script), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// DSN returns the go-sql-driver DSN of database db on this server, as root.
func (m *MariaDB) DSN(db string) string { return dsn(m.Addr, db) }

// Stop kills the server (SIGKILL, like a crash: clients see their connections drop) and
// keeps its data; Start brings it back on the same port.
func (m *MariaDB) Stop() {
	m.t.Helper()
	if _, err := runScript(m.script, "kill", m.DataDir); err != nil {
		m.t.Fatalf("testutil: MariaDB.Stop: %v", err)
	}
}

// Shutdown stops the server gracefully and keeps its data.
func (m *MariaDB) Shutdown() {
	m.t.Helper()
	if _, err := runScript(m.script, "shutdown", m.DataDir); err != nil {
		m.t.Fatalf("testutil: MariaDB.Shutdown: %v", err)
	}
}

// Start restarts a server stopped by Stop or Shutdown, with the same port, data and args,
// and returns when it accepts connections.
func (m *MariaDB) Start() {
	m.t.Helper()
	if _, err := runScript(m.script, "restart", m.DataDir); err != nil {
		m.t.Fatalf("testutil: MariaDB.Start: %v", err)
	}
}

// Exec runs one or more statements (separated by ';') on database test as root.
func (m *MariaDB) Exec(t testing.TB, query string, args ...any) {
	t.Helper()
	Exec(t, m.DSN("test"), query, args...)
}

// Open returns a *sql.DB on database db of this server, closed when the test ends.
func (m *MariaDB) Open(t testing.TB, db string) *sql.DB {
	t.Helper()
	return Open(t, m.DSN(db))
}

// Open returns a *sql.DB for dsn (multiStatements enabled), closed when the test ends.
func Open(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("testutil: bad DSN %q: %v", dsn, err)
	}
	cfg.MultiStatements = true
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatalf("testutil: %v", err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	return db
}

// Exec runs query on dsn with a fresh connection and fails the test on error.
func Exec(t testing.TB, dsn, query string, args ...any) {
	t.Helper()
	db := Open(t, dsn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, query, args...); err != nil {
		t.Fatalf("testutil: exec %q: %v", query, err)
	}
	db.Close()
}

// IsConnError reports whether err looks like a lost or refused connection (useful after
// Stop).
func IsConnError(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, mysql.ErrInvalidConn) ||
		strings.Contains(err.Error(), "connection refused") || errors.Is(err, sql.ErrConnDone)
}

// SyncBuffer is a bytes.Buffer safe for one writer (a process's output) and concurrent readers.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
