package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/database-mesh/pisanix-go/internal/daemon"
	"github.com/database-mesh/pisanix-go/internal/daemon/handover"
	"github.com/database-mesh/pisanix-go/internal/daemonconfig"
)

type fakeDP struct {
	mu      sync.Mutex
	devices []string
	last    daemon.Desired
	syncs   int
	cleaned bool
	closed  bool
}

func (f *fakeDP) Inventory() (daemon.Inventory, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	owned := map[uint16]daemon.ClassKey{}
	for _, c := range f.last.Classes {
		owned[c.Minor] = c.Key
	}
	return daemon.Inventory{Owned: owned}, nil
}

func (f *fakeDP) Sync(d daemon.Desired) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last, f.syncs = d, f.syncs+1
	return nil
}

func (f *fakeDP) Stats() ([]daemon.ClassStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []daemon.ClassStats
	for _, c := range f.last.Classes {
		out = append(out, daemon.ClassStats{Key: c.Key, Minor: c.Minor, Device: f.devices[0], Bytes: 42})
	}
	return out, nil
}

func (f *fakeDP) Cleanup() error { f.mu.Lock(); f.cleaned = true; f.mu.Unlock(); return nil }
func (f *fakeDP) Close() error   { f.mu.Lock(); f.closed = true; f.mu.Unlock(); return nil }

func (f *fakeDP) rate() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.last.Classes) == 0 {
		return 0
	}
	return f.last.Classes[0].Rate
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func clearEnv(t *testing.T) {
	for _, k := range []string{"PISA_DAEMON_GLOBAL_EGRESS_DEVICE", "PISA_DAEMON_GLOBAL_BRIDGE_DEVICE", "PISA_CONTROLLER_SERVICE",
		"PISA_CONTROLLER_NAMESPACE", "PISA_CONTROLLER_HOST", "NODE_NAME", "PISA_DAEMON_CONFIG", "PISA_DAEMON_ADMIN_ADDR",
		"PISA_DAEMON_CLEANUP_ON_EXIT", "PISA_DAEMON_LOG_LEVEL", "PISA_DAEMON_BPFFS", "PISA_DAEMON_ATTACH", "PISA_DAEMON_RESYNC_INTERVAL",
		"POD_NAME", "POD_NAMESPACE"} {
		if v, ok := os.LookupEnv(k); ok {
			os.Unsetenv(k)
			t.Cleanup(func() { os.Setenv(k, v) })
		}
	}
}

// startDaemon runs the command in the background with args; it returns
// the fake dataplane and a stop function that returns the command's error.
func startDaemon(t *testing.T, args ...string) (*fakeDP, func() error) {
	t.Helper()
	dp := &fakeDP{}
	opened := make(chan struct{})
	open := func(devices []string, o *options, log *slog.Logger) (dataplaneCloser, error) {
		dp.devices = devices
		close(opened)
		return dp, nil
	}
	cmd := newRootCmd(open)
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	select {
	case <-opened:
	case err := <-done:
		cancel()
		t.Fatalf("command exited: %v", err)
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatal("dataplane not opened")
	}
	return dp, func() error { cancel(); return <-done }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// fakeAPI replaces the Kubernetes API calls of --cleanup-on-exit=auto; it records the pod asked
// about.
func fakeAPI(t *testing.T, res handover.Result, err error) *[]string {
	t.Helper()
	var mu sync.Mutex
	var asked []string
	saveS, saveO := checkSuccessor, checkOwner
	checkSuccessor = func(ctx context.Context, ns, pod string) (handover.Result, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("the exit check has no deadline")
		}
		mu.Lock()
		asked = append(asked, ns+"/"+pod)
		mu.Unlock()
		return res, err
	}
	checkOwner = func(context.Context, string, string) (string, error) { return res.DaemonSet, err }
	t.Cleanup(func() { checkSuccessor, checkOwner = saveS, saveO })
	return &asked
}

func TestControllerMode(t *testing.T) {
	clearEnv(t)
	// Default mode auto; the API says the DaemonSet is gone: clean up.
	t.Setenv("POD_NAME", "pisa-daemon-abcde")
	t.Setenv("POD_NAMESPACE", "pisa-system")
	asked := fakeAPI(t, handover.Result{DaemonSet: "pisa-system/pisa-daemon", Reason: "gone"}, nil)
	var mu sync.Mutex
	rate, version := "10mbit", 1
	var gotNode, gotPath string
	ctl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotNode, gotPath = r.URL.Query().Get("node"), r.URL.Path
		v, rt := version, rate
		mu.Unlock()
		if r.URL.Query().Get("watch") == "true" && r.URL.Query().Get("version") == fmt.Sprint(v) {
			time.Sleep(50 * time.Millisecond)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		// No "global" section: devices come from the flags.
		fmt.Fprintf(w, `{"version": %d, "app": [{"name": "shop", "service": [{"name": "db",
			"qos_group": {"rate": %q}, "endpoints": [{"ip": "10.0.0.1", "port": 3306}]}]}]}`, v, rt)
	}))
	defer ctl.Close()
	admin := freeAddr(t)
	t.Setenv("NODE_NAME", "node-a")
	t.Setenv("PISA_DAEMON_GLOBAL_BRIDGE_DEVICE", "cni0")
	dp, stop := startDaemon(t, "--pisa-controller-host", strings.TrimPrefix(ctl.URL, "http://"),
		"--global-egress-device", "ens5", "--admin-addr", admin, "--log-level", "error")
	if !slices.Equal(dp.devices, []string{"ens5", "cni0"}) {
		t.Errorf("devices %v", dp.devices)
	}
	waitFor(t, "first config", func() bool { return dp.rate() == 10e6 })
	mu.Lock()
	if gotNode != "node-a" || gotPath != daemon.DaemonConfigsPath {
		t.Errorf("request node %q path %q", gotNode, gotPath)
	}
	rate, version = "20mbit", 2
	mu.Unlock()
	waitFor(t, "changed config", func() bool { return dp.rate() == 20e6 })

	base := "http://" + admin
	if code, body := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz %d %s", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz %d %s", code, body)
	}
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{
		`pisa_daemon_class_bytes_total{app="shop",device="ens5",service="db"} 42`,
		"pisa_daemon_config_version 2",
		"pisa_daemon_reconciles_total",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if _, body := get(t, base+"/version"); !strings.HasPrefix(body, "Pisa-Daemon Release:") {
		t.Errorf("/version %q", body)
	}
	if _, body := get(t, base+"/config"); !strings.Contains(body, `"rate": "20Mbit"`) {
		t.Errorf("/config %s", body)
	}
	if err := stop(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if !dp.cleaned {
		t.Error("not cleaned up on exit")
	}
	if !slices.Equal(*asked, []string{"pisa-system/pisa-daemon-abcde"}) {
		t.Errorf("asked the API about %v", *asked)
	}
}

// The three modes at exit, in controller mode.
func TestCleanupOnExit(t *testing.T) {
	ctl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"app": []}`)
	}))
	defer ctl.Close()
	keep := handover.Result{Keep: true, DaemonSet: "pisa-system/pisa-daemon", Reason: "DaemonSet pisa-system/pisa-daemon exists: leaving classes for the next daemon"}
	gone := handover.Result{DaemonSet: "pisa-system/pisa-daemon", Reason: "DaemonSet pisa-system/pisa-daemon is gone (uninstalled): removing classes"}
	for _, c := range []struct {
		name    string
		args    []string
		env     string
		res     handover.Result
		err     error
		cleaned bool
		asked   int
	}{
		{"auto, DaemonSet exists", nil, "", keep, nil, false, 1},
		{"auto, DaemonSet gone", []string{"--cleanup-on-exit=auto"}, "", gone, nil, true, 1},
		{"auto, API error", nil, "auto", handover.Result{}, fmt.Errorf("get pod: forbidden"), true, 1},
		{"true", []string{"--cleanup-on-exit"}, "false", keep, nil, true, 0},
		{"false", nil, "false", gone, nil, false, 0},
		{"false by flag over env", []string{"--cleanup-on-exit=0"}, "auto", gone, nil, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("POD_NAME", "p")
			t.Setenv("POD_NAMESPACE", "ns")
			if c.env != "" {
				t.Setenv("PISA_DAEMON_CLEANUP_ON_EXIT", c.env)
			}
			asked := fakeAPI(t, c.res, c.err)
			args := append([]string{"--pisa-controller-host", strings.TrimPrefix(ctl.URL, "http://"),
				"--admin-addr", freeAddr(t), "--log-level", "error"}, c.args...)
			dp, stop := startDaemon(t, args...)
			waitFor(t, "first config", func() bool { dp.mu.Lock(); defer dp.mu.Unlock(); return dp.syncs > 0 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if dp.cleaned != c.cleaned || (!c.cleaned && !dp.closed) {
				t.Errorf("cleaned %v closed %v, want cleaned %v (or else closed)", dp.cleaned, dp.closed, c.cleaned)
			}
			if len(*asked) != c.asked {
				t.Errorf("asked the API %d times, want %d", len(*asked), c.asked)
			}
		})
	}
}

// Standalone (--config) with auto: there is no DaemonSet; the API is not asked and the
// classes are removed.
func TestStandaloneAutoCleansUp(t *testing.T) {
	clearEnv(t)
	p := filepath.Join(t.TempDir(), "daemon.toml")
	if err := os.WriteFile(p, []byte("app = []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	asked := fakeAPI(t, handover.Result{Keep: true}, nil)
	dp, stop := startDaemon(t, "--config", p, "--admin-addr", freeAddr(t), "--log-level", "error")
	waitFor(t, "config", func() bool { dp.mu.Lock(); defer dp.mu.Unlock(); return dp.syncs > 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !dp.cleaned || len(*asked) != 0 {
		t.Errorf("cleaned %v, asked %v; want cleaned without asking", dp.cleaned, *asked)
	}
}

// --cleanup-on-exit and PISA_DAEMON_CLEANUP_ON_EXIT take true, false (the booleans as before)
// and auto; anything else is a usage error naming the flag or the variable.
func TestCleanupOnExitValues(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  string
		want cleanupMode
		err  string
	}{
		{nil, "", cleanupAuto, ""},
		{[]string{"--cleanup-on-exit"}, "", cleanupAlways, ""},
		{[]string{"--cleanup-on-exit=false"}, "", cleanupNever, ""},
		{[]string{"--cleanup-on-exit=AUTO"}, "false", cleanupAuto, ""},
		{[]string{"--cleanup-on-exit=T"}, "", cleanupAlways, ""},
		{nil, "FALSE", cleanupNever, ""},
		{nil, "0", cleanupNever, ""},
		{nil, "auto", cleanupAuto, ""},
		{[]string{"--cleanup-on-exit=maybe"}, "", "", `invalid argument "maybe" for "--cleanup-on-exit" flag: want true, false or auto`},
		{nil, "yes", "", `PISA_DAEMON_CLEANUP_ON_EXIT="yes": want true, false or auto`},
	} {
		clearEnv(t)
		if c.env != "" {
			t.Setenv("PISA_DAEMON_CLEANUP_ON_EXIT", c.env)
		}
		var got cleanupMode
		open := func(_ []string, o *options, _ *slog.Logger) (dataplaneCloser, error) {
			got = o.cleanupOnExit
			return nil, fmt.Errorf("stop here")
		}
		cmd := newRootCmd(open)
		cmd.SetArgs(append(c.args, "--log-level", "error", "--admin-addr", freeAddr(t)))
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		err := cmd.Execute()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v env %q: %v, want %q", c.args, c.env, err, c.err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "stop here") || got != c.want {
			t.Errorf("%v env %q: mode %q (%v), want %q", c.args, c.env, got, err, c.want)
		}
	}
}

func TestStandaloneMode(t *testing.T) {
	clearEnv(t)
	p := filepath.Join(t.TempDir(), "daemon.toml")
	cfg := "[global]\negress_device = \"eth9\"\nbridge_device = \"br9\"\n[[app]]\nname = \"a\"\n[[app.service]]\nname = \"s\"\n" +
		"[app.service.qos_group]\nrate = \"1mbps\"\n[[app.service.endpoints]]\nip = \"fd00::1\"\nport = 3306\n"
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The flag wins over [global] for the egress device; the bridge comes
	// from the file.
	dp, stop := startDaemon(t, "--config", p, "--global-egress-device", "eth1", "--admin-addr", freeAddr(t),
		"--cleanup-on-exit=false", "--log-level", "error")
	if !slices.Equal(dp.devices, []string{"eth1", "br9"}) {
		t.Errorf("devices %v", dp.devices)
	}
	waitFor(t, "config", func() bool { return dp.rate() == 8e6 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if dp.cleaned || !dp.closed {
		t.Errorf("cleaned %v closed %v; want closed and kept", dp.cleaned, dp.closed)
	}
}

func TestStartupErrors(t *testing.T) {
	clearEnv(t)
	open := func([]string, *options, *slog.Logger) (dataplaneCloser, error) { return &fakeDP{}, nil }
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[[app]]\nnmae = 1\n"), 0o600)
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--config", bad}, `unknown key "app.nmae"`},
		{[]string{"--config", bad + ".missing"}, "no such file"},
		{[]string{"--log-level", "loud"}, "unknown log level"},
		{[]string{"--global-egress-device", ""}, "no device"},
		{[]string{"extra"}, "unknown command"},
	} {
		cmd := newRootCmd(open)
		cmd.SetArgs(c.args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%v: %v, want %q", c.args, err, c.msg)
		}
	}
}

func TestDefaults(t *testing.T) {
	clearEnv(t)
	o := &options{}
	cmd := newRootCmd(nil)
	if err := cmd.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	fs := cmd.Flags()
	for name, want := range map[string]string{
		"global-egress-device": "eth0", "global-bridge-device": "", "pisa-controller-service": "pisa-controller",
		"pisa-controller-namespace": "pisa-system", "pisa-controller-host": "", "admin-addr": ":5592",
		"cleanup-on-exit": "auto", "bpffs": "/sys/fs/bpf", "attach": "auto", "resync-interval": "30s",
	} {
		if got := fs.Lookup(name).DefValue; got != want {
			t.Errorf("--%s default %q, want %q", name, got, want)
		}
	}
	o.controllerService, o.controllerNamespace = "pisa-controller", "pisa-system"
	if got := o.controllerAddr(); got != "pisa-controller.pisa-system:8080" {
		t.Errorf("controller addr %q", got)
	}
	o.controllerHost = "10.0.0.1:9000"
	if got := o.controllerAddr(); got != "10.0.0.1:9000" {
		t.Errorf("controller addr %q", got)
	}

	t.Setenv("PISA_DAEMON_GLOBAL_EGRESS_DEVICE", "bond0")
	t.Setenv("PISA_DAEMON_CLEANUP_ON_EXIT", "false")
	t.Setenv("PISA_CONTROLLER_HOST", "ctl:1")
	cmd = newRootCmd(nil)
	fs = cmd.Flags()
	if fs.Lookup("global-egress-device").DefValue != "bond0" || fs.Lookup("cleanup-on-exit").DefValue != "false" ||
		fs.Lookup("pisa-controller-host").DefValue != "ctl:1" {
		t.Error("environment not applied to defaults")
	}
}

func TestDevices(t *testing.T) {
	file := &daemonconfig.Config{Global: &daemonconfig.Global{EgressDevice: "eth9", BridgeDevice: "br9"}}
	for _, c := range []struct {
		o    options
		file *daemonconfig.Config
		want []string
	}{
		{options{egressDevice: "eth0"}, nil, []string{"eth0"}},
		{options{egressDevice: "eth0"}, file, []string{"eth9", "br9"}},
		{options{egressDevice: "eth1", egressExplicit: true}, file, []string{"eth1", "br9"}},
		{options{egressDevice: "eth1", egressExplicit: true, bridgeDevice: "", bridgeExplicit: true}, file, []string{"eth1"}},
		{options{egressDevice: "eth0", bridgeDevice: "eth0"}, nil, []string{"eth0"}},
	} {
		if got := c.o.devices(c.file); !slices.Equal(got, c.want) {
			t.Errorf("%+v: %v, want %v", c.o, got, c.want)
		}
	}
}
