package proxy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The mariadb command-line client (Connector/C: CLIENT_DEPRECATE_EOF,
// session tracking, connection attributes) against the proxy.

func mariadbCLI(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("mariadb")
	if err != nil {
		t.Skip("mariadb client not installed")
	}
	return path
}

// runCLI runs the mariadb client against the proxy and returns stdout,
// stderr and the error of the run.
func runCLI(t *testing.T, tp *testProxy, args ...string) (string, string, error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(tp.addr)
	base := []string{"--no-defaults", "-h" + host, "-P" + port, "--protocol=TCP", "-N", "-B"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mariadbCLI(t), append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func mustCLI(t *testing.T, tp *testProxy, args ...string) string {
	t.Helper()
	out, errOut, err := runCLI(t, tp, append([]string{"-uproxy", "-pproxypass", "test"}, args...)...)
	if err != nil {
		t.Fatalf("mariadb %v: %v\n%s", args, err, errOut)
	}
	return out
}

func TestCLIQueries(t *testing.T) {
	tp := defaultProxy(t)
	out := mustCLI(t, tp, "-e", "SELECT CONNECTION_ID(), @@version")
	f := strings.Fields(out)
	if len(f) != 2 {
		t.Fatalf("output %q", out)
	}
	if id, err := strconv.Atoi(f[0]); err != nil || id <= 0 {
		t.Fatalf("CONNECTION_ID() = %q", f[0])
	}
	if !strings.Contains(f[1], "MariaDB") {
		t.Fatalf("@@version = %q", f[1])
	}

	// A batch: several statements, result sets, session state and a
	// temporary table on one connection.
	out = mustCLI(t, tp, "-e", "SELECT 1; SELECT 2, 'two'; SET @v = 5; CREATE TEMPORARY TABLE cli_tmp (a INT); "+
		"INSERT INTO cli_tmp VALUES (1), (2), (@v); SELECT SUM(a) FROM cli_tmp; SELECT seq FROM seq_1_to_1000")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3+1000 || lines[0] != "1" || lines[1] != "2\ttwo" || lines[2] != "8" || lines[1002] != "1000" {
		t.Fatalf("batch output (%d lines): %q", len(lines), out[:min(len(out), 200)])
	}

	// A procedure returning several result sets.
	rootExec(t, "DROP PROCEDURE IF EXISTS pisa_cli_call",
		"CREATE PROCEDURE pisa_cli_call() BEGIN SELECT 'a'; SELECT 'b'; END")
	t.Cleanup(func() { rootExec(t, "DROP PROCEDURE IF EXISTS pisa_cli_call") })
	if out := mustCLI(t, tp, "-e", "CALL pisa_cli_call(); SELECT 'c'"); strings.Fields(out)[2] != "c" || len(strings.Fields(out)) != 3 {
		t.Fatalf("CALL output %q", out)
	}

	// Errors are reported with the server's code; the batch stops there.
	out, errOut, err := runCLI(t, tp, "-uproxy", "-pproxypass", "test", "-e", "SELECT 'before'; SELECT * FROM no_such_cli; SELECT 'after'")
	if err == nil || !strings.Contains(errOut, "ERROR 1146 (42S02)") || out != "before\n" {
		t.Fatalf("error in batch: %v %q %q", err, out, errOut)
	}
}

func TestCLIWrongPassword(t *testing.T) {
	tp := defaultProxy(t)
	_, errOut, err := runCLI(t, tp, "-uproxy", "-pwrong", "test", "-e", "SELECT 1")
	if err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	if !strings.Contains(errOut, "Access denied") || !strings.Contains(errOut, "1045") {
		t.Fatalf("stderr %q", errOut)
	}
	_, errOut, err = runCLI(t, tp, "-unobody", "test", "-e", "SELECT 1")
	if err == nil || !strings.Contains(errOut, "Access denied") {
		t.Fatalf("unknown user: %v %q", err, errOut)
	}
}

func TestCLITLS(t *testing.T) {
	tp := defaultProxy(t)
	out := mustCLI(t, tp, "--ssl", "--skip-ssl-verify-server-cert", "-e", "status")
	if !strings.Contains(out, "Cipher in use") {
		t.Fatalf("no TLS in status:\n%s", out)
	}
	out = mustCLI(t, tp, "--ssl", "--skip-ssl-verify-server-cert", "-e", "SELECT seq FROM seq_1_to_20000")
	if n := strings.Count(out, "\n"); n != 20000 {
		t.Fatalf("%d rows over TLS", n)
	}
}

func TestCLICompress(t *testing.T) {
	tp := defaultProxy(t)
	out := mustCLI(t, tp, "--compress", "-e", "status")
	if !strings.Contains(out, "Compressed") {
		t.Fatalf("not compressed:\n%s", out)
	}
	out = mustCLI(t, tp, "--compress", "-e", "SELECT seq, REPEAT('z', 100) FROM seq_1_to_20000; SELECT LENGTH(REPEAT('y', 5000000))")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 20001 || lines[20000] != "5000000" {
		t.Fatalf("compressed output: %d lines, last %q", len(lines), lines[len(lines)-1])
	}
}

func TestCLILoadDataLocalInfile(t *testing.T) {
	tp := defaultProxy(t)
	rootExec(t, "DROP TABLE IF EXISTS pisa_cli_load", "CREATE TABLE pisa_cli_load (id INT, v VARCHAR(10))")
	t.Cleanup(func() { rootExec(t, "DROP TABLE IF EXISTS pisa_cli_load") })
	var data strings.Builder
	const n = 50000
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&data, "%d,v%d\n", i, i)
	}
	file := filepath.Join(t.TempDir(), "rows.csv")
	if err := os.WriteFile(file, []byte(data.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, tp, "--local-infile=1", "-e",
		fmt.Sprintf("LOAD DATA LOCAL INFILE '%s' INTO TABLE pisa_cli_load FIELDS TERMINATED BY ','; SELECT COUNT(*), SUM(id), MAX(v) FROM pisa_cli_load", file))
	if got := strings.TrimSpace(out); got != fmt.Sprintf("%d\t%d\tv9999", n, n*(n+1)/2) {
		t.Fatalf("after LOAD DATA: %q", got)
	}
	// Without --local-infile the client does not offer CLIENT_LOCAL_FILES:
	// the statement fails as it does against MariaDB directly.
	out, errOut, err := runCLI(t, tp, "-uproxy", "-pproxypass", "test", "--local-infile=0", "-e",
		fmt.Sprintf("LOAD DATA LOCAL INFILE '%s' INTO TABLE pisa_cli_load; SELECT 'not reached'", file))
	if err == nil || !strings.Contains(errOut, "ERROR 4166") || out != "" {
		t.Fatalf("LOAD DATA without local-infile: %v %q %q", err, out, errOut)
	}
}
