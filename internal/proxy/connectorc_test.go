package proxy

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// connectorCScript drives MariaDB Connector/C (libmariadb.so.3) through
// ctypes: it prepares a statement and prints "prepare <rc> <errno>
// <error>", then runs a query and prints "query <rc> <errno> <error>".
const connectorCScript = `
import ctypes, sys
lib = ctypes.CDLL("libmariadb.so.3")
V, S, U = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint
lib.mysql_init.restype = V
lib.mysql_init.argtypes = [V]
lib.mysql_real_connect.restype = V
lib.mysql_real_connect.argtypes = [V, S, S, S, S, U, S, ctypes.c_ulong]
lib.mysql_error.restype = S
lib.mysql_error.argtypes = [V]
lib.mysql_errno.argtypes = [V]
lib.mysql_query.argtypes = [V, S]
lib.mysql_stmt_init.restype = V
lib.mysql_stmt_init.argtypes = [V]
lib.mysql_stmt_prepare.argtypes = [V, S, ctypes.c_ulong]
lib.mysql_stmt_errno.argtypes = [V]
lib.mysql_stmt_error.restype = S
lib.mysql_stmt_error.argtypes = [V]
host, port, user, pw, db = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
m = lib.mysql_init(None)
if not lib.mysql_real_connect(m, host.encode(), user.encode(), pw.encode(), db.encode(), port, None, 0):
    print("connect", lib.mysql_errno(m), lib.mysql_error(m).decode()); sys.exit(1)
st = lib.mysql_stmt_init(m)
text = (sys.argv[6] if len(sys.argv) > 6 else "SELECT 1").encode()
rc = lib.mysql_stmt_prepare(st, text, len(text))
print("prepare", rc, lib.mysql_stmt_errno(st), lib.mysql_stmt_error(st).decode())
rc = lib.mysql_query(m, b"SELECT 1")
print("query", rc, lib.mysql_errno(m), lib.mysql_error(m).decode())
`

// A COM_STMT_PREPARE (or any command) that fails in the proxy for want of
// a backend connection reaches a MariaDB Connector/C client as an error it
// can read (1040 with the proxy's message), not as "2027 Received
// malformed packet" (which it makes of an ERR carrying its own 2002).
func TestConnectorCReadsProxyErrors(t *testing.T) {
	testutil.SkipShort(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	if out, err := exec.Command("python3", "-c", `import ctypes; ctypes.CDLL("libmariadb.so.3")`).CombinedOutput(); err != nil {
		t.Skipf("libmariadb.so.3 not loadable: %s", out)
	}
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.Config[0].Pool = proxyconfig.Pool{MaxOpen: 1, WaitTimeout: proxyconfig.Duration{Duration: 500 * time.Millisecond}}
	tp := startProxy(t, cfg)
	host, port, _ := strings.Cut(tp.addr, ":")
	run := func(prepare string) string {
		t.Helper()
		out, err := exec.Command("python3", "-c", connectorCScript, host, port, "proxy", "proxypass", "test", prepare).CombinedOutput()
		if err != nil {
			t.Fatalf("libmariadb client: %v: %s", err, out)
		}
		return string(out)
	}
	if out := run("SELECT 1"); !strings.Contains(out, "prepare 0 0") || !strings.Contains(out, "query 0 0") {
		t.Fatalf("libmariadb through a free pool:\n%s", out)
	}
	// The pool's only connection is held by a transaction.
	db := openDB(t, tp.dsn(""))
	c := sqlConn(t, db)
	if _, err := c.ExecContext(context.Background(), "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	// Logging in with another database than the listener's checks it on a
	// backend connection: the exhausted pool's error, readable.
	out, _ := exec.Command("python3", "-c", connectorCScript, host, port, "proxy", "proxypass", "mysql").CombinedOutput()
	if !regexp.MustCompile(`(?m)^connect 1040 .*pool wait timeout`).Match(out) {
		t.Fatalf("login with a database on an exhausted pool:\n%s", out)
	}
	// A text prepared before is answered from the listener's metadata
	// cache, without a backend connection; a new one needs a backend.
	if out := run("SELECT 1"); !strings.Contains(out, "prepare 0 0") {
		t.Fatalf("a cached prepare on an exhausted pool:\n%s", out)
	}
	out = []byte(run("SELECT 2"))
	for _, cmd := range []string{"prepare", "query"} {
		m := regexp.MustCompile(`(?m)^` + cmd + ` 1 (\d+) (.*)$`).FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("%s did not fail on an exhausted pool:\n%s", cmd, out)
		}
		if code, _ := strconv.Atoi(m[1]); code != 1040 || !strings.Contains(m[2], "pool wait timeout") {
			t.Fatalf("%s on an exhausted pool: libmariadb reports %s %q, want 1040 and the proxy's message", cmd, m[1], m[2])
		}
	}
	if _, err := c.ExecContext(context.Background(), "COMMIT"); err != nil {
		t.Fatal(err)
	}
}

// sysbench (libmariadb, server-side prepared statements bound once)
// through a pool of 2 with 16 threads: no errors, every statement
// multiplexed.
func TestSysbenchPreparedThroughSmallPool(t *testing.T) {
	testutil.SkipShort(t)
	if _, err := exec.LookPath("sysbench"); err != nil {
		t.Skip("sysbench not installed")
	}
	const dbName = "pisa_sb_multiplex"
	direct := openDB(t, "root:@tcp("+testutil.MariaDBAddr(t)+")/")
	if _, err := direct.Exec("DROP DATABASE IF EXISTS " + dbName); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Exec("CREATE DATABASE " + dbName); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = direct.Exec("DROP DATABASE IF EXISTS " + dbName) })
	mhost, mport, _ := strings.Cut(testutil.MariaDBAddr(t), ":")
	common := []string{"--mysql-db=" + dbName, "--tables=2", "--table-size=1000"}
	if out, err := exec.Command("sysbench", append([]string{"oltp_read_only", "--mysql-host=" + mhost, "--mysql-port=" + mport,
		"--mysql-user=root", "prepare"}, common...)...).CombinedOutput(); err != nil {
		t.Fatalf("sysbench prepare: %v: %s", err, out)
	}
	cfg := baseConfig(testutil.MariaDBAddr(t))
	cfg.Proxy.Config[0].Pool = proxyconfig.Pool{MaxOpen: 2, WaitTimeout: proxyconfig.Duration{Duration: 10 * time.Second}}
	tp, reg, _ := startProxyMetrics(t, cfg)
	host, port, _ := strings.Cut(tp.addr, ":")
	for _, test := range []string{"oltp_point_select", "oltp_read_only"} {
		args := append([]string{test, "--mysql-host=" + host, "--mysql-port=" + port, "--mysql-user=proxy",
			"--mysql-password=proxypass", "--db-ps-mode=auto",
			"--threads=16", "--time=3", "--report-interval=0", "run"}, common...)
		out, err := exec.Command("sysbench", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("sysbench %s: %v:\n%s", test, err, out)
		}
		m := regexp.MustCompile(`queries:\s+(\d+)`).FindSubmatch(out)
		e := regexp.MustCompile(`ignored errors:\s+(\d+)`).FindSubmatch(out)
		if m == nil || e == nil || string(e[1]) != "0" || string(m[1]) == "0" {
			t.Fatalf("sysbench %s through max_open 2:\n%s", test, out)
		}
		t.Logf("sysbench %s, 16 threads through max_open 2: %s queries", test, m[1])
	}
	if n := openBackends(tp); n > 2 {
		t.Fatalf("%d backend connections", n)
	}
	if n := pins(t, reg, "prepared_statement"); n != 0 {
		t.Fatalf("prepared statements pinned %v times", n)
	}
}
