package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricValue reads one sample of pisa-proxy's /metrics (0 when absent).
func metricValue(t *testing.T, admin, series string) float64 {
	t.Helper()
	code, body, err := httpGet(admin, "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// An empty or listener-less file (a truncating editor, `: > proxy.toml`, a
// half-written file) never closes the listeners: the reload is refused,
// counted, and the old configuration keeps serving the open session and new
// ones. Removing every listener on purpose takes allow_no_listeners.
func TestReloadNeverEmptiesTheProxy(t *testing.T) {
	c := newDaemonConfig(t)
	p, path := startDaemon(t, c, nil, "")
	admin := net.JoinHostPort(c.AdminHost, strconv.Itoa(c.AdminPort))
	db := openDB(t, c.proxyDSN("root", "rootpw"))
	sess, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if _, err := sess.ExecContext(context.Background(), "SET @kept = 1"); err != nil {
		t.Fatal(err)
	}
	const rejected = `pisa_proxy_config_reloads_total{result="rejected"}`
	waitRejected := func(n float64, what string) {
		t.Helper()
		eventually(t, 10*time.Second, what+" rejected", func() error {
			if v := metricValue(t, admin, rejected); v != n {
				return fmt.Errorf("%s = %v, want %v", rejected, v, n)
			}
			return nil
		})
	}
	stillServing := func(what string) {
		t.Helper()
		if v, err := queryInt(sess, "SELECT @kept"); err != nil || v != 1 {
			t.Fatalf("open session after %s: %d %v", what, v, err)
		}
		fresh := openDB(t, c.proxyDSN("root", "rootpw"))
		if v, err := queryInt(fresh, "SELECT 2"); err != nil || v != 2 {
			t.Fatalf("new session after %s: %d %v", what, v, err)
		}
		fresh.Close()
	}

	// Truncated in place, as `: > proxy.toml` does; picked up by the watcher.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	waitRejected(1, "empty file")
	if !strings.Contains(p.stderr.String(), "the file is empty") {
		t.Fatalf("no log line naming the empty file:\n%s", p.stderr.String())
	}
	stillServing("an empty file")

	// Only comments and an [admin] table: valid TOML without listeners.
	writeFile(t, path, []byte("# being edited\n[admin]\nport = "+strconv.Itoa(c.AdminPort)+"\n"))
	waitRejected(2, "no listeners")
	if !strings.Contains(p.stderr.String(), "allow_no_listeners") {
		t.Fatalf("the rejection does not say how to remove listeners on purpose:\n%s", p.stderr.String())
	}
	stillServing("a file without listeners")

	// The real file again: applied.
	c.write(t, path)
	eventually(t, 10*time.Second, "restored file applied", func() error {
		if v := metricValue(t, admin, `pisa_proxy_config_reloads_total{result="applied"}`); v < 1 {
			return fmt.Errorf("applied = %v", v)
		}
		return nil
	})
	stillServing("the restored file")

	// On purpose: the listener closes.
	writeFile(t, path, []byte("[admin]\nhost = \""+c.AdminHost+"\"\nport = "+strconv.Itoa(c.AdminPort)+"\n[proxy]\nallow_no_listeners = true\n"))
	eventually(t, 10*time.Second, "listener closed on purpose", func() error {
		nc, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.ListenPort), time.Second)
		if err == nil {
			nc.Close()
			return fmt.Errorf("listener still accepts")
		}
		return nil
	})
}
