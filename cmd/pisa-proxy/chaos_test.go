//go:build chaos

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// Drill (make chaos): the configuration file is emptied in place while a
// session is open, as `: > proxy.toml` or a truncating editor does.
func TestChaosEmptyConfigFile(t *testing.T) {
	c := newDaemonConfig(t)
	_, path := startDaemon(t, c, nil, "")
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
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "empty file rejected", func() error {
		if v := metricValue(t, admin, `pisa_proxy_config_reloads_total{result="rejected"}`); v != 1 {
			return fmt.Errorf("rejected = %v", v)
		}
		return nil
	})
	kept, err1 := queryInt(sess, "SELECT @kept")
	fresh := openDB(t, c.proxyDSN("root", "rootpw"))
	two, err2 := queryInt(fresh, "SELECT 2")
	saw := fmt.Sprintf("open session: @kept=%d (%v); new session: %d (%v); reload counted as rejected", kept, errStr(err1), two, errStr(err2))
	lost := "nothing (the listener and the open session's state survive)"
	if kept != 1 || two != 2 {
		lost = "the listener or the session"
		t.Errorf("empty config file: %s", saw)
	}
	fmt.Printf("CHAOS\t%s\t%s\t%s\t%s\n", "empty-config-file", ": > proxy.toml under a live session (file watcher)", saw, lost)
}

func errStr(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
