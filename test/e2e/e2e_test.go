// Package e2e runs the mesh end to end on real parts: a kube-apiserver and etcd (envtest), the
// pisa-controller binary, pisa-proxy in sidecar mode and MariaDB.
//
//	KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./test/e2e/
package e2e

import (
	"context"
	"database/sql"
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

	"github.com/go-sql-driver/mysql"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
	"github.com/database-mesh/pisanix-go/internal/testutil"
	"github.com/database-mesh/pisanix-go/internal/testutil/kubetest"
)

var (
	startErr   error
	apiServer  *kubetest.APIServer
	k8s        client.Client
	kubeconfig string
	binDir     string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	srv, err := kubetest.StartAPIServer()
	if err != nil {
		startErr = err
		return m.Run()
	}
	defer func() { _ = srv.Stop() }()
	apiServer = srv
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	c, err := client.New(srv.Config, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	k8s = client.WithFieldValidation(c, metav1.FieldValidationStrict)
	tmp, err := os.MkdirTemp("", "pisanix-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if kubeconfig, err = srv.Kubeconfig(tmp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir = filepath.Join(tmp, "bin")
	for _, cmd := range []string{"pisa-controller", "pisa-proxy", "pisa-daemon"} {
		b := exec.Command("go", "build", "-o", filepath.Join(binDir, cmd), "../../cmd/"+cmd)
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", cmd+":", err)
			return 1
		}
	}
	return m.Run()
}

// proc is a program started by a test.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // Wait's result, once done is closed
	out  *testutil.SyncBuffer
}

// stop sends SIGTERM and returns Wait's result (SIGKILL after 10 s).
func (p *proc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// start runs a binary of binDir until the test ends; its output is shown when the test fails.
func start(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	return startExec(t, name, env, append([]string{filepath.Join(binDir, name)}, args...)...)
}

// startExec runs argv until the test ends (SIGTERM, then SIGKILL after 10 s); its output is
// shown under label when the test fails.
func startExec(t *testing.T, name string, env []string, argv ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{}), out: &testutil.SyncBuffer{}}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.stop()
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", name, p.out.String())
		}
	})
	return p
}

func freePort(t *testing.T) int { return testutil.FreePort(t) }

// update reads obj, applies mutate and writes it, again on a conflict (the controller writes
// status, which changes the resourceVersion).
func update[T client.Object](ctx context.Context, t *testing.T, obj T, mutate func(T)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mutate(obj)
		return k8s.Update(ctx, obj)
	})
	if err != nil {
		t.Fatalf("update %T %s: %v", obj, obj.GetName(), err)
	}
}

// eventually polls cond every 20 ms until it returns "" or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if last = cond(); last == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: still not the case after %s: %s", what, timeout, last)
}

func httpStatus(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startController runs pisa-controller against the test API server and waits until it is
// ready; it returns the config API's address.
func startController(t *testing.T, extraArgs ...string) string {
	t.Helper()
	addr, _, _ := startControllerProc(t, extraArgs...)
	return addr
}

// startControllerProc is startController that also returns the process and the address of
// its metrics.
func startControllerProc(t *testing.T, extraArgs ...string) (cfgAddr string, cmd *proc, metricsAddr string) {
	t.Helper()
	cfgPort, probePort, metricsPort := freePort(t), freePort(t), freePort(t)
	cmd = start(t, "pisa-controller", []string{"PISA_CONTROLLER_NAMESPACE=pisa-system"},
		append([]string{"-kubeconfig=" + kubeconfig,
			"-proxyConfigsPort=" + strconv.Itoa(cfgPort),
			"-corePort=0", "-webhookPort=0",
			"-metrics-bind-address=127.0.0.1:" + strconv.Itoa(metricsPort),
			"-health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probePort),
			"-log-level=debug"}, extraArgs...)...)
	eventually(t, 60*time.Second, "pisa-controller ready", func() string {
		code, body := httpStatus(fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort))
		if code != http.StatusOK {
			return fmt.Sprintf("%d %s", code, body)
		}
		return ""
	})
	return "127.0.0.1:" + strconv.Itoa(cfgPort), cmd, "127.0.0.1:" + strconv.Itoa(metricsPort)
}

func TestSidecarFollowsTrafficStrategy(t *testing.T) {
	kubetest.NeedAPIServer(t, startErr)
	backend := testutil.MariaDBAddr(t)
	bhost, bportStr, _ := net.SplitHostPort(backend)
	bport, _ := strconv.Atoi(bportStr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	controllerAddr := startController(t)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-",
		Labels: map[string]string{"pisanix.io/inject": "enabled"}}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	const pod = "catalogue-6c9f7d8b5-x2x9q"
	listen := freePort(t)
	objs := []client.Object{
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: pod,
			Labels: map[string]string{"pisanix.io/inject": "enabled", "app": "catalogue"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "catalogue", Image: "weaveworksdemos/catalogue"}}}},
		&v1alpha1.DatabaseEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "catalogue-db",
			Labels: map[string]string{"source": "catalogue"}},
			Spec: v1alpha1.DatabaseEndpointSpec{Database: v1alpha1.Database{MySQL: &v1alpha1.MySQL{
				Host: bhost, Port: int32(bport), User: "root", DB: "test"}}}},
		&v1alpha1.TrafficStrategy{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "catalogue"},
			Spec: v1alpha1.TrafficStrategySpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"source": "catalogue"}},
				LoadBalance: &v1alpha1.LoadBalance{SimpleLoadBalance: &v1alpha1.SimpleLoadBalance{
					Kind: v1alpha1.LoadBalanceRandom}}}},
		&v1alpha1.VirtualDatabase{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "catalogue"},
			Spec: v1alpha1.VirtualDatabaseSpec{Services: []v1alpha1.VirtualDatabaseService{{
				Name: "mysql", TrafficStrategy: "catalogue",
				DatabaseService: v1alpha1.DatabaseService{DatabaseMySQL: &v1alpha1.DatabaseMySQL{
					Host: "127.0.0.1", Port: int32(listen), User: "catalogue_user", Password: "default_password", DB: "test"}},
			}}}},
	}
	for _, o := range objs {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}

	// The sidecar, with the environment the webhook injects.
	admin := freePort(t)
	start(t, "pisa-proxy", []string{
		"PISA_CONTROLLER_HOST=" + controllerAddr,
		"PISA_DEPLOYED_NAMESPACE=" + ns.Name,
		"PISA_DEPLOYED_NAME=catalogue",
		"PISA_PROXY_ADMIN_LISTEN_HOST=127.0.0.1",
		"PISA_PROXY_ADMIN_LISTEN_PORT=" + strconv.Itoa(admin),
		"PISA_PROXY_ADMIN_LOG_LEVEL=INFO",
		"POD_NAME=" + pod,
	}, "sidecar")
	eventually(t, 30*time.Second, "sidecar ready", func() string {
		code, body := httpStatus(fmt.Sprintf("http://127.0.0.1:%d/readyz", admin))
		if code != http.StatusOK {
			return fmt.Sprintf("%d %s", code, body)
		}
		return ""
	})

	// A query through the sidecar reaches MariaDB.
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = "catalogue_user", "default_password", "tcp",
		fmt.Sprintf("127.0.0.1:%d", listen), "test"
	cfg.Timeout = 5 * time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		t.Fatalf("query through the sidecar: %v", err)
	}
	if !strings.Contains(strings.ToLower(version), "mariadb") {
		t.Fatalf("VERSION() = %q: not answered by MariaDB", version)
	}
	table := "e2e_" + strings.ReplaceAll(ns.Name, "-", "_")
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+table+" (id INT PRIMARY KEY, name VARCHAR(32))"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if direct, err := sql.Open("mysql", testutil.MariaDBDSN(t)); err == nil {
			_, _ = direct.Exec("DROP TABLE IF EXISTS " + table)
			direct.Close()
		}
	})
	if _, err := db.ExecContext(ctx, "INSERT INTO "+table+" VALUES (1, 'sock'), (2, 'shoe')"); err != nil {
		t.Fatal(err)
	}

	// The VirtualDatabase status shows the sidecar on the served version.
	vdb := &v1alpha1.VirtualDatabase{}
	key := client.ObjectKey{Namespace: ns.Name, Name: "catalogue"}
	var firstVersion int64
	eventually(t, 15*time.Second, "status shows the sidecar current", func() string {
		if err := k8s.Get(ctx, key, vdb); err != nil {
			return err.Error()
		}
		s := vdb.Status
		if s.Sidecars == nil || s.Sidecars.Total != 1 || s.Sidecars.Current != 1 || s.ConfigVersion == 0 {
			return fmt.Sprintf("status %+v", s)
		}
		if c := meta.FindStatusCondition(s.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Sprintf("Ready %+v", c)
		}
		firstVersion = s.ConfigVersion
		return ""
	})

	// A client connection opened before the change.
	open, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	var n int
	if err := open.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil || n != 2 {
		t.Fatalf("count: %d %v", n, err)
	}

	// Add a circuit-break rule to the TrafficStrategy.
	blocked := "DELETE FROM " + table + " WHERE id = 2"
	ts := &v1alpha1.TrafficStrategy{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "catalogue"}}
	changed := time.Now()
	update(ctx, t, ts, func(ts *v1alpha1.TrafficStrategy) {
		ts.Spec.CircuitBreaks = []v1alpha1.CircuitBreak{{Name: "no-deletes", Regex: []string{`(?i)^\s*DELETE\b`}}}
	})
	var took time.Duration
	eventually(t, 2*time.Second, "the proxy rejects the matching SQL", func() string {
		_, err := db.ExecContext(ctx, blocked)
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == 1047 {
			took = time.Since(changed)
			return ""
		}
		if err == nil {
			// It ran: put the row back so that the next try is the same statement.
			_, _ = db.ExecContext(ctx, "INSERT IGNORE INTO "+table+" VALUES (2, 'shoe')")
		}
		return fmt.Sprintf("DELETE answered %v", err)
	})
	t.Logf("circuit-break rule enforced %s after the TrafficStrategy update", took.Round(time.Millisecond))

	// The connection opened before keeps working, under the new rule.
	if err := open.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil || n != 2 {
		t.Fatalf("open connection after the change: count %d, %v", n, err)
	}
	_, err = open.ExecContext(ctx, blocked)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1047 || !strings.Contains(me.Message, "no-deletes") {
		t.Fatalf("open connection: DELETE answered %v, want 1047 naming the rule", err)
	}

	// The status reports the sidecar on the new version.
	eventually(t, 15*time.Second, "status shows the sidecar on the new version", func() string {
		if err := k8s.Get(ctx, key, vdb); err != nil {
			return err.Error()
		}
		s := vdb.Status
		if s.ConfigVersion <= firstVersion || s.Sidecars == nil || s.Sidecars.Current != 1 || s.Sidecars.Total != 1 {
			return fmt.Sprintf("configVersion %d (was %d), sidecars %+v", s.ConfigVersion, firstVersion, s.Sidecars)
		}
		return ""
	})

	// A rule the proxy cannot compile is refused by the controller (status), and the sidecar
	// keeps its running configuration.
	update(ctx, t, ts, func(ts *v1alpha1.TrafficStrategy) {
		ts.Spec.CircuitBreaks = append(ts.Spec.CircuitBreaks, v1alpha1.CircuitBreak{Name: "broken", Regex: []string{"(unclosed"}})
	})
	eventually(t, 15*time.Second, "InvalidRule on the TrafficStrategy", func() string {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(ts), ts); err != nil {
			return err.Error()
		}
		c := meta.FindStatusCondition(ts.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Reason != v1alpha1.ReasonInvalidRule || c.ObservedGeneration != ts.Generation {
			return fmt.Sprintf("Ready %+v", c)
		}
		return ""
	})
	if err := open.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil || n != 2 {
		t.Fatalf("open connection after an invalid rule: count %d, %v", n, err)
	}
	// The listener stays: a new connection works, and the last good rules still apply.
	fresh := sql.OpenDB(connector)
	defer fresh.Close()
	if err := fresh.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil || n != 2 {
		t.Fatalf("new connection after an invalid rule: count %d, %v", n, err)
	}
	if _, err := fresh.ExecContext(ctx, blocked); !errors.As(err, &me) || me.Number != 1047 {
		t.Fatalf("new connection: DELETE answered %v, want 1047", err)
	}
	if err := k8s.Get(ctx, key, vdb); err != nil {
		t.Fatal(err)
	}
	c := meta.FindStatusCondition(vdb.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonInvalidRule ||
		!strings.Contains(c.Message, "still serving configuration") {
		t.Fatalf("VirtualDatabase Ready with an invalid rule: %+v", c)
	}
}
