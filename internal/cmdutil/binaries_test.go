package cmdutil_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// buildAll builds the three programs once for the tests here.
func buildAll(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/pisa-proxy", "./cmd/pisa-controller", "./cmd/pisa-daemon")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// jsonLines checks that every log line is one JSON object with time, level and msg, and
// returns the messages; the last line may be the program's "name: error" report.
func jsonLines(t *testing.T, prog, stderr string) []string {
	t.Helper()
	var msgs []string
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for i, line := range lines {
		if i == len(lines)-1 && strings.HasPrefix(line, prog+": ") {
			break
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%s: log line %d is not JSON: %q\n%s", prog, i, line, stderr)
		}
		if rec["time"] == nil || rec["level"] == nil || rec["msg"] == nil {
			t.Fatalf("%s: log line without time, level or msg: %q", prog, line)
		}
		msgs = append(msgs, rec["msg"].(string))
	}
	return msgs
}

// Every program refuses a bad flag, a bad flag value and a bad log format with exit 2 and a
// message naming it, prints its version, and logs JSON with --log-format json.
func TestPrograms(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the three programs (about a minute): not under -short")
	}
	bin := buildAll(t)
	env := append(os.Environ(), "PISA_PROXY_LOG_FORMAT=", "PISA_DAEMON_LOG_FORMAT=", "PISA_CONTROLLER_LOG_FORMAT=")
	run := func(prog string, extraEnv []string, args ...string) (int, string, string) {
		cmd := exec.Command(filepath.Join(bin, prog), args...)
		cmd.Env = append(append([]string(nil), env...), extraEnv...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return exitCode(err), stdout.String(), stderr.String()
	}
	for _, c := range []struct {
		prog string
		env  []string
		args []string
		want string
	}{
		{"pisa-proxy", nil, []string{"--no-such-flag"}, "--no-such-flag"},
		{"pisa-proxy", nil, []string{"daemon", "--no-such-flag"}, "--no-such-flag"},
		{"pisa-proxy", nil, []string{"--log-format", "xml", "daemon"}, "--log-format"},
		{"pisa-proxy", nil, []string{"daemon", "extra"}, "extra"},
		{"pisa-proxy", []string{"PISA_PROXY_PISANIX_METRICS=maybe"}, []string{"daemon"}, "PISA_PROXY_PISANIX_METRICS"},
		{"pisa-proxy", nil, []string{"-p", "notaport", "sidecar"}, "--port"},
		{"pisa-proxy", nil, nil, "subcommand is required"},
		{"pisa-daemon", nil, []string{"--no-such-flag"}, "--no-such-flag"},
		{"pisa-daemon", nil, []string{"--resync-interval", "often"}, "--resync-interval"},
		{"pisa-daemon", nil, []string{"--log-level", "loud"}, "--log-level"},
		{"pisa-daemon", []string{"PISA_DAEMON_RESYNC_INTERVAL=5"}, nil, "PISA_DAEMON_RESYNC_INTERVAL"},
		{"pisa-controller", nil, []string{"-no-such-flag"}, "no-such-flag"},
		{"pisa-controller", nil, []string{"--core-port=x"}, "core-port"},
		{"pisa-controller", nil, []string{"-corePort=70000"}, "core-port"},
		{"pisa-controller", nil, []string{"--log-format=xml"}, "--log-format"},
		{"pisa-controller", nil, []string{"inject", "-nope"}, "-nope"},
		{"pisa-controller", nil, []string{"build-config", "extra"}, "extra"},
	} {
		code, _, stderr := run(c.prog, c.env, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, c.prog+": ") {
			t.Errorf("%s %v: exit %d, want 2 and a message naming %q:\n%s", c.prog, c.args, code, c.want, stderr)
		}
	}
	for _, prog := range []string{"pisa-proxy", "pisa-daemon", "pisa-controller"} {
		for _, args := range [][]string{{"version"}, {"--version"}} {
			code, stdout, stderr := run(prog, nil, args...)
			if code != 0 || !strings.HasPrefix(stdout, "Pisa-") || !strings.Contains(stdout, "Release:") {
				t.Errorf("%s %v: exit %d %q %s", prog, args, code, stdout, stderr)
			}
		}
		if code, stdout, stderr := run(prog, nil, "--help"); code != 0 || !strings.Contains(stdout+stderr, "--log-format") {
			t.Errorf("%s --help: exit %d\n%s%s", prog, code, stdout, stderr)
		}
	}

	t.Run("json", func(t *testing.T) {
		// pisa-controller: starts, logs, fails on the missing kubeconfig (exit 1).
		code, _, stderr := run("pisa-controller", nil, "--log-format=json", "--kubeconfig=/nonexistent/kubeconfig")
		if msgs := jsonLines(t, "pisa-controller", stderr); code != 1 || len(msgs) == 0 || msgs[0] != "starting pisa-controller" {
			t.Errorf("pisa-controller: exit %d, messages %q", code, msgs)
		}
		// pisa-daemon: from the environment this time; starts, logs, and fails opening the
		// dataplane with an attach mode it does not know (before touching the kernel).
		code, _, stderr = run("pisa-daemon", []string{"PISA_DAEMON_LOG_FORMAT=json"}, "--attach=bogus",
			"--global-egress-device=nosuchdev0", "--admin-addr=127.0.0.1:0")
		if msgs := jsonLines(t, "pisa-daemon", stderr); code != 1 || len(msgs) == 0 || msgs[0] != "starting pisa-daemon" {
			t.Errorf("pisa-daemon: exit %d, messages %q", code, msgs)
		}
		// pisa-proxy sidecar: no controller answers; it logs its retries until SIGTERM (exit 0).
		cmd := exec.Command(filepath.Join(bin, "pisa-proxy"), "--log-format", "json", "-h", "127.0.0.1",
			"-p", strconv.Itoa(testutil.FreePort(t)), "sidecar", "--pisa-controller-host", "127.0.0.1:"+strconv.Itoa(testutil.FreePort(t)))
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stderr = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		msgs := jsonLines(t, "pisa-proxy", out.String())
		joined := strings.Join(msgs, "|")
		if exitCode(err) != 0 || !strings.Contains(joined, "starting pisa-proxy") ||
			!strings.Contains(joined, "cannot get the proxy config") || !strings.Contains(joined, "stopped") {
			t.Errorf("pisa-proxy: exit %v, messages %q", err, msgs)
		}
	})
}
