package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/testutil"
)

// controllerStub serves one application's config the way pisa-controller
// does: versioned, with long polling, and records status reports.
type controllerStub struct {
	mu      sync.Mutex
	version int
	body    string
	changed chan struct{}
	reports []string
}

func (c *controllerStub) set(body string) {
	c.mu.Lock()
	c.version++
	c.body = body
	if c.changed != nil {
		close(c.changed)
	}
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *controllerStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const prefix = "/apis/configs.database-mesh.io/v1alpha1/namespaces/shop/proxyconfigs/catalogue"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		http.Error(w, "virtualdatabase not found", http.StatusNotFound)
		return
	}
	if strings.HasSuffix(r.URL.Path, "/status") {
		var b strings.Builder
		buf := make([]byte, 512)
		n, _ := r.Body.Read(buf)
		b.Write(buf[:n])
		c.mu.Lock()
		c.reports = append(c.reports, b.String())
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	if c.body == "" {
		c.mu.Unlock()
		http.Error(w, "virtualdatabase not found", http.StatusNotFound)
		return
	}
	v, ch := c.version, c.changed
	c.mu.Unlock()
	if r.URL.Query().Get("watch") == "true" && r.URL.Query().Get("version") == strconv.Itoa(v) {
		select {
		case <-ch:
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
			return
		}
	}
	c.mu.Lock()
	body := strings.Replace(c.body, "{", fmt.Sprintf(`{"version":"%d",`, c.version), 1)
	c.mu.Unlock()
	w.Write([]byte(body))
}

func (c *controllerStub) reported(s string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.reports {
		if strings.Contains(r, s) {
			return true
		}
	}
	return false
}

func sidecarConfig(listenPort, backendPort int, extra string) string {
	return fmt.Sprintf(`{"admin":{"host":"0.0.0.0","port":5591,"log_level":"INFO"},
 "mysql":{"node":[{"name":"catalogue-db","db":"test","user":"root","password":"","host":"127.0.0.1","port":%d,"weight":1,"role":"readwrite"}]},
 "proxy":{"config":[{"backend_type":"mysql","name":"mysql","listen_addr":"127.0.0.1:%d","user":"catalogue_user","password":"default_password","db":"test",
   "simple_loadbalance":{"balance_type":"random","nodes":["catalogue-db"]}%s}]}}`, backendPort, listenPort, extra)
}

// Sidecar mode: never ready (and no listener) before a valid config; then
// serves it; follows changes within about a second; rejects an invalid one
// whole, reports it, and keeps serving the old one.
func TestSidecarMode(t *testing.T) {
	stub := &controllerStub{}
	srv := httptest.NewServer(stub)
	defer srv.Close()
	adminPort := testutil.FreePort(t)
	listen := testutil.FreePort(t)
	_, bp, _ := strings.Cut(testutil.MariaDBAddr(t), ":")
	backend, _ := strconv.Atoi(bp)
	admin := "127.0.0.1:" + strconv.Itoa(adminPort)
	p := start(t, []string{
		"PISA_CONTROLLER_HOST=" + strings.TrimPrefix(srv.URL, "http://"),
		"PISA_DEPLOYED_NAMESPACE=shop", "PISA_DEPLOYED_NAME=catalogue", "POD_NAME=catalogue-abc",
		"PISA_PROXY_ADMIN_LISTEN_HOST=127.0.0.1", "PISA_PROXY_ADMIN_LISTEN_PORT=" + strconv.Itoa(adminPort),
	}, "sidecar")
	eventually(t, 10*time.Second, "admin up", func() error {
		_, _, err := httpGet(admin, "/healthz")
		return err
	})
	time.Sleep(700 * time.Millisecond) // a few failed fetches (404)
	if code, body, _ := httpGet(admin, "/readyz"); code == http.StatusOK {
		t.Fatalf("ready without a config: %s", body)
	}
	if listening("127.0.0.1:" + strconv.Itoa(listen)) {
		t.Fatal("MySQL listener up without a config")
	}

	stub.set(sidecarConfig(listen, backend, ""))
	eventually(t, 15*time.Second, "ready after the config arrives", func() error {
		code, body, err := httpGet(admin, "/readyz")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("%d %s", code, body)
		}
		return err
	})
	dsn := fmt.Sprintf("catalogue_user:default_password@tcp(127.0.0.1:%d)/test?timeout=5s", listen)
	db := openDB(t, dsn)
	sess, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if v, err := queryInt(sess, "SELECT 41 + 1"); err != nil || v != 42 {
		t.Fatalf("query through the sidecar: %d %v", v, err)
	}
	eventually(t, 5*time.Second, "version 1 reported", func() error {
		if !stub.reported(`"version":"1"`) {
			return errors.New("not yet")
		}
		return nil
	})

	// A change (a new account) arrives by long poll.
	start := time.Now()
	stub.set(sidecarConfig(listen, backend, `,"users":[{"user":"bob","password":"bobpw"}]`))
	bob := openDB(t, fmt.Sprintf("bob:bobpw@tcp(127.0.0.1:%d)/test?timeout=5s", listen))
	bob.SetMaxIdleConns(0)
	eventually(t, 5*time.Second, "bob logs in", bob.Ping)
	t.Logf("change applied %v after the controller had it", time.Since(start).Round(time.Millisecond))
	if v, err := queryInt(sess, "SELECT 7"); err != nil || v != 7 {
		t.Fatalf("open session across the change: %d %v", v, err)
	}

	// An invalid config is refused whole and reported; the old one serves.
	stub.set(`{"proxy":{"config":[{"name":"mysql","listen_addr":"not-an-address"}]}}`)
	eventually(t, 5*time.Second, "rejection reported", func() error {
		if !stub.reported(`"version":"3","error"`) {
			return errors.New("not yet")
		}
		return nil
	})
	if err := bob.Ping(); err != nil {
		t.Fatalf("old config stopped serving after a rejected one: %v", err)
	}
	if code, _, _ := httpGet(admin, "/readyz"); code != http.StatusOK {
		t.Fatal("not ready after a rejected config")
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 5*time.Second); code != 0 {
		t.Fatalf("exit code %d\n%s", code, p.stderr.String())
	}
}

// Standalone mode reloads its file when it changes, without SIGHUP.
func TestDaemonReloadsOnFileChange(t *testing.T) {
	c := newDaemonConfig(t)
	_, path := startDaemon(t, c, nil, "")
	carol := openDB(t, c.proxyDSN("carol", "carolpw"))
	carol.SetMaxIdleConns(0)
	if err := carol.Ping(); err == nil {
		t.Fatal("carol logs in before the change")
	}
	c.Extra = "[[proxy.config.users]]\nuser = \"carol\"\npassword = \"carolpw\"\n"
	c.write(t, path)
	eventually(t, 10*time.Second, "carol logs in after the file changed", carol.Ping)
}
