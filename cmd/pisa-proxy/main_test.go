package main

// End-to-end tests of the pisa-proxy binary: built once in TestMain and run
// as a real process (flags, environment, admin HTTP, signals, exit codes).

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/database-mesh/pisanix-go/internal/testutil"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pisa-proxy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pisa-proxy")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building pisa-proxy:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running pisa-proxy.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr testutil.SyncBuffer
	done           chan struct{}
	err            error // of Wait, valid after done
}

// start runs the binary with args and extra environment; it is killed when
// the test ends if still running.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), done: make(chan struct{})}
	p.cmd.Env = append(cleanEnv(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("pisa-proxy %s stderr:\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

// cleanEnv is the test's environment without the PISA_PROXY_* overrides.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PISA_PROXY_") {
			out = append(out, kv)
		}
	}
	return out
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("pisa-proxy still running after %v", d)
	}
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", p.err)
	return -1
}

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// run runs the binary to completion (up to 10s).
func run(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := start(t, env, args...)
	code = p.wait(t, 10*time.Second)
	return code, p.stdout.String(), p.stderr.String()
}

// eventually polls f every 50ms until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// daemonConfig is the parameters of testdata/proxy.toml.tmpl.
type daemonConfig struct {
	AdminHost  string
	AdminPort  int
	LogLevel   string
	ListenPort int
	Backend    int
	Extra      string // TOML inserted in the [[proxy.config]] entry
}

func newDaemonConfig(t *testing.T) *daemonConfig {
	backend := testutil.MariaDBAddr(t)
	_, bp, _ := net.SplitHostPort(backend)
	port, _ := strconv.Atoi(bp)
	return &daemonConfig{
		AdminHost:  "127.0.0.1",
		AdminPort:  testutil.FreePort(t),
		LogLevel:   "info",
		ListenPort: testutil.FreePort(t),
		Backend:    port,
	}
}

func (c *daemonConfig) render(t *testing.T) []byte {
	t.Helper()
	tmpl, err := os.ReadFile(filepath.Join("testdata", "proxy.toml.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer(
		"{{ADMIN_HOST}}", c.AdminHost,
		"{{ADMIN_PORT}}", strconv.Itoa(c.AdminPort),
		"{{LOG_LEVEL}}", c.LogLevel,
		"{{LISTEN_PORT}}", strconv.Itoa(c.ListenPort),
		"{{BACKEND_PORT}}", strconv.Itoa(c.Backend),
		"{{EXTRA}}", c.Extra,
	)
	return []byte(r.Replace(string(tmpl)))
}

// write renders the config into path (atomically: a reload never sees a
// half-written file).
func (c *daemonConfig) write(t *testing.T, path string) {
	t.Helper()
	writeFile(t, path, c.render(t))
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func (c *daemonConfig) proxyDSN(user, password string) string {
	return fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/test?timeout=5s", user, password, c.ListenPort)
}

// startDaemon writes c to a file and starts `pisa-proxy [pre...] daemon -c
// file`, waiting until /readyz answers 200 at readyAddr.
func startDaemon(t *testing.T, c *daemonConfig, env []string, readyAddr string, pre ...string) (*proc, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "proxy.toml")
	c.write(t, path)
	args := append(append([]string{}, pre...), "daemon", "-c", path)
	p := start(t, env, args...)
	if readyAddr == "" {
		readyAddr = net.JoinHostPort(c.AdminHost, strconv.Itoa(c.AdminPort))
	}
	eventually(t, 15*time.Second, "GET /readyz", func() error {
		select {
		case <-p.done:
			return fmt.Errorf("pisa-proxy exited: %v\n%s", p.err, p.stderr.String())
		default:
		}
		code, body, err := httpGet(readyAddr, "/readyz")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d: %s", code, body)
		}
		return err
	})
	return p, path
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func httpGet(addr, path string) (int, string, error) {
	resp, err := httpClient.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func mustGet(t *testing.T, addr, path string) string {
	t.Helper()
	code, body, err := httpGet(addr, path)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", path, code, err, body)
	}
	return body
}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func queryInt(db interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, q string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var v int
	err := db.QueryRowContext(ctx, q).Scan(&v)
	return v, err
}

func TestVersionFlag(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-V"}, {"-h", "127.0.0.1", "--version"}} {
		code, stdout, stderr := run(t, nil, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, stderr)
		}
		if !strings.Contains(stdout, "Pisa-Proxy") || strings.Count(strings.TrimSpace(stdout), "\n") != 0 {
			t.Fatalf("%v: want one version line with Pisa-Proxy, got %q", args, stdout)
		}
	}
}

func TestHelpFlag(t *testing.T) {
	code, stdout, stderr := run(t, nil, "--help")
	if code != 0 {
		t.Fatalf("--help: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"daemon", "--host", "--port", "--log-level", "--version"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("--help output lacks %q:\n%s", want, stdout)
		}
	}
	code, stdout, _ = run(t, nil, "daemon", "--help")
	if code != 0 || !strings.Contains(stdout, "--config") {
		t.Fatalf("daemon --help: exit %d\n%s", code, stdout)
	}
	// -h takes a value (the admin host): alone it is an error, not help.
	code, _, stderr = run(t, nil, "-h")
	if code == 0 || !strings.Contains(stderr, "needs an argument") {
		t.Fatalf("-h without a value: exit %d\n%s", code, stderr)
	}
}

// The daemon serves MySQL and the admin endpoints, and stops cleanly on
// SIGTERM.
func TestDaemonServes(t *testing.T) {
	c := newDaemonConfig(t)
	p, _ := startDaemon(t, c, nil, "")
	admin := net.JoinHostPort(c.AdminHost, strconv.Itoa(c.AdminPort))

	if body := mustGet(t, admin, "/healthz"); !strings.Contains(body, "ok") {
		t.Fatalf("/healthz: %q", body)
	}
	if body := mustGet(t, admin, "/version"); !strings.Contains(body, "Pisa-Proxy") {
		t.Fatalf("/version: %q", body)
	}
	db := openDB(t, c.proxyDSN("root", "rootpw"))
	if v, err := queryInt(db, "SELECT 40+2"); err != nil || v != 42 {
		t.Fatalf("query through the proxy: %d %v", v, err)
	}
	metrics := mustGet(t, admin, "/metrics")
	for _, want := range []string{
		`pisa_proxy_sql_processed_total{`,
		`pisa_proxy_backend_pool_open_connections{`,
		`domain="main"`,
		`pisa_proxy_sqlparse_cache_entries `,
		`pisa_proxy_stmt_metadata_cache_entries{domain="main"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}
	var cfg struct {
		Admin struct {
			Port int `json:"port"`
		} `json:"admin"`
	}
	if err := json.Unmarshal([]byte(mustGet(t, admin, "/config")), &cfg); err != nil || cfg.Admin.Port != c.AdminPort {
		t.Fatalf("/config: %+v %v", cfg, err)
	}
	if body := mustGet(t, admin, "/config"); strings.Contains(body, "rootpw") {
		t.Fatal("/config shows a password")
	}
	db.Close()
	// The admin server's address is logged once (issue 14 item 8).
	if n := strings.Count(p.stderr.String(), "admin server listening"); n != 1 {
		t.Fatalf("%q logged %d times, want once:\n%s", "admin server listening", n, p.stderr.String())
	}

	start := time.Now()
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 5*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM\n%s", code, p.stderr.String())
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
}

// SIGTERM with a client connected but idle: the process still stops
// promptly.
func TestSIGTERMWithIdleClient(t *testing.T) {
	c := newDaemonConfig(t)
	p, _ := startDaemon(t, c, nil, "")
	db := openDB(t, c.proxyDSN("root", "rootpw"))
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := queryInt(conn, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM\n%s", code, p.stderr.String())
	}
	took := time.Since(start)
	t.Logf("stopped %v after SIGTERM with an idle client", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Fatalf("SIGTERM with an idle client took %v", took)
	}
}

// listening reports whether something accepts TCP connections at addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func runningLogLevel(t *testing.T, admin string) string {
	t.Helper()
	var cfg struct {
		Admin struct {
			LogLevel string `json:"log_level"`
		} `json:"admin"`
	}
	if err := json.Unmarshal([]byte(mustGet(t, admin, "/config")), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Admin.LogLevel
}

// Admin host, port and log level come from the file, are overridden by the
// PISA_PROXY_ADMIN_* environment, which flags override in turn.
func TestAdminOverrides(t *testing.T) {
	t.Run("env", func(t *testing.T) {
		c := newDaemonConfig(t)
		c.AdminHost, c.LogLevel = "127.0.0.2", "error"
		envPort := testutil.FreePort(t)
		env := []string{
			"PISA_PROXY_ADMIN_LISTEN_HOST=127.0.0.1",
			"PISA_PROXY_ADMIN_LISTEN_PORT=" + strconv.Itoa(envPort),
			"PISA_PROXY_ADMIN_LOG_LEVEL=debug",
		}
		admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(envPort))
		p, _ := startDaemon(t, c, env, admin)
		if listening(net.JoinHostPort("127.0.0.2", strconv.Itoa(c.AdminPort))) {
			t.Fatal("admin listens on the file's host:port despite the environment")
		}
		if lvl := runningLogLevel(t, admin); lvl != "DEBUG" {
			t.Fatalf("log level %q, want DEBUG from the environment", lvl)
		}
		if !strings.Contains(p.stderr.String(), "level=INFO") {
			t.Fatalf("no INFO log lines at level DEBUG:\n%s", p.stderr.String())
		}
	})
	t.Run("flags-over-env", func(t *testing.T) {
		c := newDaemonConfig(t)
		c.LogLevel = "info"
		envPort, flagPort := testutil.FreePort(t), testutil.FreePort(t)
		env := []string{
			"PISA_PROXY_ADMIN_LISTEN_HOST=127.0.0.2",
			"PISA_PROXY_ADMIN_LISTEN_PORT=" + strconv.Itoa(envPort),
			"PISA_PROXY_ADMIN_LOG_LEVEL=debug",
		}
		admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(flagPort))
		p, _ := startDaemon(t, c, env, admin, "-h", "127.0.0.1", "-p", strconv.Itoa(flagPort), "-l", "error")
		if listening(net.JoinHostPort("127.0.0.2", strconv.Itoa(envPort))) {
			t.Fatal("admin listens on the environment's host:port despite the flags")
		}
		if lvl := runningLogLevel(t, admin); lvl != "ERROR" {
			t.Fatalf("log level %q, want ERROR from the flag", lvl)
		}
		if s := p.stderr.String(); strings.Contains(s, "level=INFO") || strings.Contains(s, "level=DEBUG") {
			t.Fatalf("INFO/DEBUG lines at level ERROR:\n%s", s)
		}
	})
	t.Run("file", func(t *testing.T) {
		c := newDaemonConfig(t)
		c.LogLevel = "warn"
		admin := net.JoinHostPort(c.AdminHost, strconv.Itoa(c.AdminPort))
		startDaemon(t, c, nil, admin)
		if lvl := runningLogLevel(t, admin); lvl != "WARN" {
			t.Fatalf("log level %q, want WARN from the file", lvl)
		}
	})
	t.Run("bad-port", func(t *testing.T) {
		c := newDaemonConfig(t)
		path := filepath.Join(t.TempDir(), "proxy.toml")
		c.write(t, path)
		code, _, stderr := run(t, []string{"PISA_PROXY_ADMIN_LISTEN_PORT=notaport"}, "daemon", "-c", path)
		if code == 0 || !strings.Contains(stderr, "notaport") {
			t.Fatalf("bad env port: exit %d\n%s", code, stderr)
		}
	})
}

// Bad configurations stop the process with a non-zero exit and a message
// naming the file, the line or key, and the problem.
func TestBadConfig(t *testing.T) {
	cases := []struct {
		file string
		want []string
	}{
		{"unknown_key.toml", []string{"unknown_key.toml", "line 11", "pool_sise", "unknown key"}},
		{"type_mismatch.toml", []string{"type_mismatch.toml", "line 3", "admin.port", "string"}},
		{"invalid.toml", []string{"invalid.toml", "balance_type", "leastconn"}},
		{"syntax_error.toml", []string{"syntax_error.toml", "line 2"}},
		{"does_not_exist.toml", []string{"does_not_exist.toml", "no such file"}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			code, _, stderr := run(t, nil, "daemon", "-c", filepath.Join("testdata", tc.file))
			if code == 0 {
				t.Fatalf("exit 0 with %s", tc.file)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Fatalf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
	// A listener address in use is a startup error too.
	t.Run("listen-in-use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		c := newDaemonConfig(t)
		c.ListenPort = ln.Addr().(*net.TCPAddr).Port
		path := filepath.Join(t.TempDir(), "proxy.toml")
		c.write(t, path)
		code, _, stderr := run(t, nil, "daemon", "-c", path)
		if code == 0 || !strings.Contains(stderr, "address already in use") {
			t.Fatalf("listen address in use: exit %d\n%s", code, stderr)
		}
	})
}

// SIGHUP reloads the file: a new account can log in and open sessions keep
// working; a broken file is rejected and the old config keeps serving.
func TestSIGHUPReload(t *testing.T) {
	c := newDaemonConfig(t)
	p, path := startDaemon(t, c, nil, "")
	rootDB := openDB(t, c.proxyDSN("root", "rootpw"))
	sess, err := rootDB.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if _, err := sess.ExecContext(context.Background(), "SET @before_reload = 7"); err != nil {
		t.Fatal(err)
	}
	newUser := openDB(t, c.proxyDSN("alice", "alicepw"))
	newUser.SetMaxIdleConns(0)
	if err := newUser.Ping(); err == nil {
		t.Fatal("alice can log in before the reload")
	}

	c.Extra = "[[proxy.config.users]]\nuser = \"alice\"\npassword = \"alicepw\"\n"
	c.write(t, path)
	p.signal(t, syscall.SIGHUP)
	eventually(t, 10*time.Second, "alice logs in after SIGHUP", newUser.Ping)
	if !strings.Contains(p.stderr.String(), "config reloaded") {
		t.Fatalf("no reload log line:\n%s", p.stderr.String())
	}
	if v, err := queryInt(sess, "SELECT @before_reload"); err != nil || v != 7 {
		t.Fatalf("open session after reload: %d %v", v, err)
	}
	if v, err := queryInt(newUser, "SELECT 5"); err != nil || v != 5 {
		t.Fatalf("alice's query: %d %v", v, err)
	}

	// A broken file: rejected, logged, the running config stays.
	writeFile(t, path, append(c.render(t), []byte("\n[admin]\nbogus = 1\n")...))
	p.signal(t, syscall.SIGHUP)
	eventually(t, 10*time.Second, "reload rejection logged", func() error {
		if !strings.Contains(p.stderr.String(), "config reload rejected") {
			return errors.New("not yet")
		}
		return nil
	})
	if err := newUser.Ping(); err != nil {
		t.Fatalf("alice (old config) after a rejected reload: %v", err)
	}
	fresh := openDB(t, c.proxyDSN("root", "rootpw"))
	if _, err := queryInt(fresh, "SELECT 1"); err != nil {
		t.Fatalf("new root session after a rejected reload: %v", err)
	}
	if v, err := queryInt(sess, "SELECT @before_reload"); err != nil || v != 7 {
		t.Fatalf("open session after a rejected reload: %d %v", v, err)
	}
	select {
	case <-p.done:
		t.Fatalf("pisa-proxy exited after a rejected reload: %v", p.err)
	default:
	}
	admin := net.JoinHostPort(c.AdminHost, strconv.Itoa(c.AdminPort))
	if code, body, err := httpGet(admin, "/readyz"); err != nil || code != http.StatusOK {
		t.Fatalf("/readyz after a rejected reload: %d %s %v", code, body, err)
	}
	// Clients leave, so the shutdown need not wait for them.
	sess.Close()
	for _, db := range []*sql.DB{rootDB, newUser, fresh} {
		db.Close()
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

// --pisanix-metrics (or PISA_PROXY_PISANIX_METRICS=true) exports Pisanix's
// series too, with its label values; without it they are absent.
func TestPisanixMetrics(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		pre  []string
		want bool
	}{
		{"off", nil, nil, false},
		{"flag", nil, []string{"--pisanix-metrics"}, true},
		{"env", []string{"PISA_PROXY_PISANIX_METRICS=true"}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newDaemonConfig(t)
			_, _ = startDaemon(t, c, tc.env, "", tc.pre...)
			admin := net.JoinHostPort(c.AdminHost, strconv.Itoa(c.AdminPort))
			db := openDB(t, c.proxyDSN("root", "rootpw"))
			stmt, err := db.Prepare("SELECT ?")
			if err != nil {
				t.Fatal(err)
			}
			var v int
			if err := stmt.QueryRow(7).Scan(&v); err != nil || v != 7 {
				t.Fatalf("prepared query: %d %v", v, err)
			}
			stmt.Close()
			m := mustGet(t, admin, "/metrics")
			for _, want := range []string{
				`sql_processed_total{domain="main",server="`,
				`sql_processed_duration_bucket{domain="main",server="`,
				`sql_under_processing{domain="main",server="`,
				`pisa_proxy_sql_processed_duration_bucket{domain="main",server="`,
				`type="COM_EXECUTE"`,
				`type="COM_PREPARE"`,
				`le="0.005"`,
			} {
				found := false
				for _, line := range strings.Split(m, "\n") {
					if strings.HasPrefix(line, want) || (strings.HasPrefix(want, "type=") || strings.HasPrefix(want, "le=")) && strings.HasPrefix(line, "sql_processed") && strings.Contains(line, want) {
						found = true
						break
					}
				}
				if found != tc.want {
					t.Errorf("%s in /metrics: %v, want %v", want, found, tc.want)
				}
			}
			if !strings.Contains(m, `pisa_proxy_sql_processed_total{domain="main",server=`) {
				t.Error("the native series are gone")
			}
		})
	}
	code, _, stderr := run(t, []string{"PISA_PROXY_PISANIX_METRICS=maybe"}, "daemon", "-c", "/nonexistent")
	if code == 0 || !strings.Contains(stderr, "PISA_PROXY_PISANIX_METRICS") {
		t.Fatalf("a bad PISA_PROXY_PISANIX_METRICS: exit %d\n%s", code, stderr)
	}
}
