//go:build cluster

package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	dbPort   = "23306" // never 3306: the host's own test MariaDB lives there
	sinkPort = "23307" // a plain TCP sink next to it: traffic the daemon must leave alone
	// The QoSClaim of the catalogue's service.
	claimMbit = 16
	// The app's statements, each round: a row that proves the round reached the database,
	// the catalogue, and the one statement the circuit-break rule will match.
	queryInsert = "INSERT INTO seen (pod, seq) VALUES ('{pod}', {seq})"
	querySocks  = "SELECT GROUP_CONCAT(name ORDER BY id) FROM sock"
	queryBroken = "SELECT name FROM sock WHERE id = 2"
	breakRegex  = "WHERE id = 2"
	// /usr/local/bin/program is the entrypoint of every image hack/images builds.
	sqlclient = "/usr/local/bin/program"
)

// app is the catalogue application: its MariaDB outside the cluster and its current pod.
type app struct {
	e    *env
	pod  string
	mdir string
	// The first pod's rounds by step: a step began after round seq.
	marks []mark
}

type mark struct {
	seq  int
	step string
}

// mark records that a step begins now, after the app's last logged round.
func (a *app) mark(t *testing.T, step string) {
	t.Helper()
	a.marks = append(a.marks, mark{a.lastSeq(t), step})
}

// step names the step a round of the first pod fell in.
func (a *app) step(seq int) string {
	name := "start"
	for _, m := range a.marks {
		if seq > m.seq {
			name = m.step
		}
	}
	return name
}

// appLine is one line of the sqlclient's log: "ok seq=3 q=1 value=..." or "error seq=3 q=1 err=...".
type appLine struct {
	ok     bool
	seq, q int
	text   string
}

func parseLog(s string) []appLine {
	var out []appLine
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || (f[0] != "ok" && f[0] != "error") || !strings.HasPrefix(f[1], "seq=") || !strings.HasPrefix(f[2], "q=") {
			continue
		}
		seq, err1 := strconv.Atoi(strings.TrimPrefix(f[1], "seq="))
		q, err2 := strconv.Atoi(strings.TrimPrefix(f[2], "q="))
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, appLine{ok: f[0] == "ok", seq: seq, q: q, text: l})
	}
	return out
}

func rounds(ls []appLine) int {
	seen := map[int]bool{}
	for _, l := range ls {
		seen[l.seq] = true
	}
	return len(seen)
}

func count(ls []appLine) (ok, bad int) {
	for _, l := range ls {
		if l.ok {
			ok++
		} else {
			bad++
		}
	}
	return
}

func errorsIn(ls []appLine) []appLine {
	var out []appLine
	for _, l := range ls {
		if !l.ok {
			out = append(out, l)
		}
	}
	return out
}

func (a *app) log(t *testing.T) string {
	t.Helper()
	out, err := a.e.run(t, a.e.kubectl, "-n", appNS, "logs", a.pod, "-c", "app")
	if err != nil {
		t.Fatalf("kubectl logs %s: %v\n%s", a.pod, err, out)
	}
	return out
}

// lastSeq is the last round the app logged.
func (a *app) lastSeq(t *testing.T) int {
	t.Helper()
	n := 0
	for _, l := range parseLog(a.log(t)) {
		n = max(n, l.seq)
	}
	return n
}

// since returns the app's lines of the rounds after from.
func (a *app) since(t *testing.T, from int) []appLine {
	t.Helper()
	var out []appLine
	for _, l := range parseLog(a.log(t)) {
		if l.seq > from {
			out = append(out, l)
		}
	}
	return out
}

func (a *app) sql(t *testing.T, stmt string) string {
	t.Helper()
	out, err := exec.Command("mariadb", "--no-defaults", "-S", filepath.Join(a.mdir, "mysqld.sock"), "-uroot",
		"-N", "-B", "-e", stmt).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", stmt, err, out)
	}
	return string(out)
}

// app starts a MariaDB outside the cluster (in the network namespace hack/cluster.sh made for
// it), creates the catalogue's DatabaseEndpoint, TrafficStrategy, QoSClaim and VirtualDatabase
// and a Deployment of the sqlclient image, and reads from the app's log that its statements,
// sent to the sidecar on 127.0.0.1:3306, are answered by that MariaDB. The sidecars find the
// controller by its Service name through the cluster DNS.
func (e *env) app(ctx context.Context, t *testing.T) *app {
	t.Helper()
	a := &app{e: e, mdir: filepath.Join(e.dir, "mariadb")}
	cmd := exec.Command("ip", "netns", "exec", e.extNS, filepath.Join(e.repo, "hack", "mariadb.sh"), "start", dbPort, a.mdir,
		"--", "--bind-address=127.0.0.1,"+e.extIP, "--max-allowed-packet=16M")
	cmd.Env = append(os.Environ(), fmt.Sprintf("PISA_MARIADB_OWNER_PID=%d", os.Getpid()))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/mariadb.sh start in %s: %v\n%s", e.extNS, err, out)
	}
	t.Cleanup(func() { _ = exec.Command(filepath.Join(e.repo, "hack", "mariadb.sh"), "stop", a.mdir).Run() })
	a.sql(t, "CREATE DATABASE socksdb; CREATE TABLE socksdb.sock (id INT PRIMARY KEY, name VARCHAR(20)); "+
		"INSERT INTO socksdb.sock VALUES (1, 'holy'), (2, 'crossed'); "+
		"CREATE TABLE socksdb.seen (pod VARCHAR(100), seq INT, PRIMARY KEY (pod, seq))")

	manifest := fmt.Sprintf(`apiVersion: core.database-mesh.io/v1alpha1
kind: DatabaseEndpoint
metadata: {name: catalogue-db, namespace: %[1]s, labels: {source: catalogue}}
spec:
  database:
    MySQL: {db: socksdb, host: "%[2]s", port: %[3]s, user: root, password: ""}
---
apiVersion: core.database-mesh.io/v1alpha1
kind: TrafficStrategy
metadata: {name: catalogue, namespace: %[1]s}
spec:
  loadBalance: {simpleLoadBalance: {kind: random}}
  selector: {matchLabels: {source: catalogue}}
---
apiVersion: core.database-mesh.io/v1alpha1
kind: QoSClaim
metadata: {name: catalogue-qos, namespace: %[1]s}
spec:
  trafficQoS:
    name: catalogue-qos
    qos_group: {rate: %[4]dmbit}
---
apiVersion: core.database-mesh.io/v1alpha1
kind: VirtualDatabase
metadata: {name: catalogue, namespace: %[1]s}
spec:
  services:
  - name: mysql
    databaseMySQL: {db: socksdb, host: 127.0.0.1, port: 3306, user: catalogue_user, password: default_password}
    trafficStrategy: catalogue
    qosClaim: catalogue-qos
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: catalogue, namespace: %[1]s}
spec:
  selector: {matchLabels: {app: catalogue}}
  template:
    metadata: {labels: {app: catalogue, pisanix.io/inject: enabled}}
    spec:
      containers:
      - name: app
        image: pisanix.local/sqlclient:1
        imagePullPolicy: Never
        env:
        - {name: SQLCLIENT_DSN, value: "catalogue_user:default_password@tcp(127.0.0.1:3306)/socksdb"}
        - {name: SQLCLIENT_QUERY, value: "%[5]s\n%[6]s\n%[7]s"}
        - {name: SQLCLIENT_INTERVAL, value: 300ms}
        # On SIGTERM the app goes on for 3 s, as one that drains its work would; the kubelet
        # stops the native sidecar only after the app has exited.
        - {name: SQLCLIENT_DRAIN, value: 3s}
`, appNS, e.extIP, dbPort, claimMbit, queryInsert, querySocks, queryBroken)
	f := filepath.Join(t.TempDir(), "app.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := e.run(t, e.kubectl, "apply", "-f", f); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}

	pod := e.appPod(ctx, t, "")
	a.pod = pod.Name
	if len(pod.Spec.InitContainers) == 0 || pod.Spec.InitContainers[0].Name != "pisa-proxy" ||
		pod.Spec.InitContainers[0].RestartPolicy == nil || *pod.Spec.InitContainers[0].RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Fatalf("pisa-proxy is not a native sidecar: init %v", names(pod.Spec.InitContainers))
	}
	side, run := pod.Status.InitContainerStatuses[0].State.Running, pod.Status.ContainerStatuses[0].State.Running
	if side == nil || run == nil || run.StartedAt.Before(&side.StartedAt) {
		t.Fatalf("sidecar must run and start before the app: sidecar %+v, app %+v", side, run)
	}
	t.Logf("pod %s Ready at %s: sidecar started %s, app %s", pod.Name, pod.Status.PodIP, side.StartedAt.Format(time.RFC3339), run.StartedAt.Format(time.RFC3339))

	// The app's log: its statements through the sidecar return MariaDB's rows.
	var lines []appLine
	if err := poll(ctx, 2*time.Minute, func() (bool, error) {
		lines = a.since(t, 0)
		n := 0
		for _, l := range lines {
			if l.ok && l.q == 1 && strings.HasSuffix(l.text, "value=holy,crossed") {
				n++
			}
		}
		return n >= 3, nil
	}); err != nil {
		t.Fatalf("the app never got MariaDB's rows through the sidecar; its log:\n%s", a.log(t))
	}
	ok, bad := count(lines)
	t.Logf("app: %d statements answered through the sidecar, %d errors", ok, bad)
	// The sidecar's startup probe held the app until the proxy could serve: no error at all.
	for _, l := range errorsIn(lines) {
		t.Errorf("app error at start: %s", l.text)
	}

	// The VirtualDatabase shows the sidecar running the current configuration.
	v := e.waitSidecarCurrent(ctx, t, 0)
	t.Logf("VirtualDatabase catalogue: configuration version %d, the sidecar on it", v)
	return a
}

// appPod waits for the one Ready pod of the app that is not `not`.
func (e *env) appPod(ctx context.Context, t *testing.T, not string) corev1.Pod {
	t.Helper()
	return e.readyPod(ctx, t, appNS, "app=catalogue", not, "app")
}

// readyPod waits for a Ready pod in namespace ns matching the label selector sel that is not
// `not` and not being deleted; what names it in errors.
func (e *env) readyPod(ctx context.Context, t *testing.T, ns, sel, not, what string) corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	if err := poll(ctx, 3*time.Minute, func() (bool, error) {
		ps, err := e.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return false, err
		}
		for _, p := range ps.Items {
			if p.Name != not && p.DeletionTimestamp == nil && podReady(&p) {
				pod = p
				return true, nil
			}
		}
		return false, fmt.Errorf("no Ready %s pod but %q: %s", what, not, podSummary(ps.Items))
	}); err != nil {
		t.Fatalf("%s pod: %v", what, err)
	}
	return pod
}

// waitSidecarCurrent waits until the VirtualDatabase's status has a configuration version
// above after and counts its one sidecar as running it; it returns that version.
func (e *env) waitSidecarCurrent(ctx context.Context, t *testing.T, after int64) int64 {
	t.Helper()
	var out string
	var v int64
	t0 := time.Now()
	// Only the leader writes status, and after a controller restart the new pod may still
	// wait for the old one's lease: give it time.
	if err := poll(ctx, 2*time.Minute, func() (bool, error) {
		out, _ = e.run(t, e.kubectl, "-n", appNS, "get", "virtualdatabase", "catalogue", "-o",
			"jsonpath={.status.configVersion} {.status.sidecars.total} {.status.sidecars.current}")
		f := strings.Fields(out)
		if len(f) != 3 {
			return false, nil
		}
		v, _ = strconv.ParseInt(f[0], 10, 64)
		return v > after && f[1] == "1" && f[2] == "1", nil
	}); err != nil {
		t.Fatalf("VirtualDatabase status (configVersion, sidecars total, current) %q, want a version above %d with the sidecar current: %v", out, after, err)
	}
	t.Logf("VirtualDatabase status: configVersion %d, sidecars total 1 current 1 (after %s)", v, time.Since(t0).Round(time.Second))
	return v
}

func (e *env) configVersion(t *testing.T) int64 {
	t.Helper()
	out, err := e.run(t, e.kubectl, "-n", appNS, "get", "virtualdatabase", "catalogue", "-o", "jsonpath={.status.configVersion}")
	v, perr := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil || perr != nil {
		t.Fatalf("VirtualDatabase configVersion: %v %v %q", err, perr, out)
	}
	return v
}

// circuitBreak adds a circuit-break rule to the running app's TrafficStrategy: the sidecar
// refuses the statement it matches with error 1047 while the app's other statements go on,
// and the VirtualDatabase status shows the sidecar on the new version. Then the rule goes and
// the statement is answered again.
func (e *env) circuitBreak(ctx context.Context, t *testing.T, a *app) {
	t.Helper()
	v0 := e.configVersion(t)
	from := a.lastSeq(t)
	t0 := time.Now()
	patch := fmt.Sprintf(`{"spec":{"circuitBreaks":[{"regex":[%q]}]}}`, breakRegex)
	if out, err := e.run(t, e.kubectl, "-n", appNS, "patch", "trafficstrategy", "catalogue", "--type", "merge", "-p", patch); err != nil {
		t.Fatalf("kubectl patch: %v\n%s", err, out)
	}
	isBreak := func(l appLine) bool {
		return !l.ok && l.q == 2 && strings.Contains(l.text, "Error 1047")
	}
	first := -1
	var lines []appLine
	if err := poll(ctx, 2*time.Minute, func() (bool, error) {
		lines = a.since(t, from)
		for _, l := range lines {
			if first < 0 && isBreak(l) {
				first = l.seq
			}
		}
		return first >= 0 && rounds(lines) > first-from+4, nil
	}); err != nil {
		t.Fatalf("the app never saw statement %q refused with 1047 after the rule: %v\n%s", queryBroken, err, a.log(t))
	}
	t.Logf("circuit break enforced in the pod %s after the patch (round %d)", time.Since(t0).Round(time.Second), first)
	var refused int
	for _, l := range lines {
		switch {
		case isBreak(l):
			refused++
		case l.seq >= first && l.q == 2:
			t.Errorf("after the rule took effect, %q was not refused: %s", queryBroken, l.text)
		case !l.ok:
			t.Errorf("the app's other statements must go on: %s", l.text)
		}
	}
	if refused == 0 {
		t.Errorf("no refusal counted")
	}
	for _, l := range lines {
		if isBreak(l) {
			t.Logf("  %s", l.text)
			break
		}
	}
	v1 := e.waitSidecarCurrent(ctx, t, v0)

	// The rule removed: the statement is answered again.
	from = a.lastSeq(t)
	if out, err := e.run(t, e.kubectl, "-n", appNS, "patch", "trafficstrategy", "catalogue", "--type", "merge",
		"-p", `{"spec":{"circuitBreaks":null}}`); err != nil {
		t.Fatalf("kubectl patch: %v\n%s", err, out)
	}
	if err := poll(ctx, 2*time.Minute, func() (bool, error) {
		for _, l := range a.since(t, from) {
			if l.ok && l.q == 2 {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("%q still refused after the rule was removed:\n%s", queryBroken, a.log(t))
	}
	for _, l := range a.since(t, from) {
		if !l.ok && !isBreak(l) {
			t.Errorf("while the rule was removed: %s", l.text)
		}
	}
	e.waitSidecarCurrent(ctx, t, v1)
	t.Logf("circuit break: %d refusals with 1047, the other statements answered; rule removed, %q answered again", refused, queryBroken)
}

var mbitRE = regexp.MustCompile(`mbit=([0-9.]+)`)

// inPod runs the sqlclient binary inside the app container and returns the rate it printed.
func (e *env) inPod(t *testing.T, a *app, args ...string) float64 {
	t.Helper()
	out, err := e.run(t, e.kubectl, append([]string{"-n", appNS, "exec", a.pod, "-c", "app", "--", sqlclient}, args...)...)
	if err != nil {
		t.Fatalf("kubectl exec %s %v: %v\n%s", sqlclient, args, err, out)
	}
	m := mbitRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no rate in %q", out)
	}
	r, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("in pod %s: %s %s", a.pod, strings.Join(args[:1], " "), strings.TrimSpace(out))
	return r
}

// qos measures from inside the app's pod: statements through the sidecar to the database (its
// endpoint is the QoSClaim's: the daemon's class) run at the claimed rate, and a plain TCP flow
// from the same pod to another port of the same host is not limited.
func (e *env) qos(ctx context.Context, t *testing.T, a *app) {
	t.Helper()
	sink := exec.Command("ip", "netns", "exec", e.extNS, filepath.Join(e.dir, "images", "sqlclient"), "sink", e.extIP+":"+sinkPort)
	var sinkOut bytes.Buffer
	sink.Stdout, sink.Stderr = &sinkOut, &sinkOut
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = sink.Process.Kill()
		_ = sink.Wait()
	}()
	// The daemon applied the claim: an HTB class at the claimed rate on the egress device.
	want := fmt.Sprintf("rate %dMbit", claimMbit)
	var classes string
	if err := poll(ctx, 2*time.Minute, func() (bool, error) {
		out, err := exec.Command("tc", "class", "show", "dev", e.extDev).CombinedOutput()
		classes = string(out)
		return err == nil && strings.Contains(classes, want), nil
	}); err != nil {
		t.Fatalf("no class %q on %s: %v\n%s", want, e.extDev, err, classes)
	}
	t.Logf("tc class show dev %s: %s", e.extDev, strings.TrimSpace(classes))

	from := a.lastSeq(t)
	dsn := "catalogue_user:default_password@tcp(127.0.0.1:3306)/socksdb"
	// 4 s of the claimed rate, in statements of 128 KiB, four at a time: on a busy machine one
	// connection's round trips alone (app, sidecar, MariaDB each waiting for a CPU) would leave
	// the link idle and measure the scheduler rather than the shaping.
	total := claimMbit * 1000000 / 8 * 4
	got := e.inPod(t, a, "bench", dsn, strconv.Itoa(total), strconv.Itoa(128<<10), "4")
	if got < 0.5*claimMbit || got > 1.2*claimMbit {
		t.Errorf("database traffic from the pod: %.2f Mbit/s, want within [0.5, 1.2] × the claimed %d Mbit/s", got, claimMbit)
	}
	other := e.inPod(t, a, "tcpsend", e.extIP+":"+sinkPort, strconv.Itoa(64<<20))
	if other < 10*claimMbit {
		t.Errorf("other traffic from the pod (to %s:%s): %.2f Mbit/s, want it unlimited (> %d Mbit/s)", e.extIP, sinkPort, other, 10*claimMbit)
	}
	for _, l := range errorsIn(a.since(t, from)) {
		t.Errorf("the app while its traffic was shaped: %s", l.text)
	}
	out, _ := exec.Command("tc", "-s", "class", "show", "dev", e.extDev).CombinedOutput()
	t.Logf("QoS: database traffic %.2f Mbit/s (claim %d Mbit/s, %.2f×), other traffic %.0f Mbit/s; tc -s:\n%s",
		got, claimMbit, got/claimMbit, other, out)
}

// sidecarVersion asks the pod's pisa-proxy for its version (GET /version on its admin port).
func sidecarVersion(t *testing.T, p *corev1.Pod) string {
	t.Helper()
	var port int32
	for _, c := range p.Spec.InitContainers {
		if c.Name == "pisa-proxy" && len(c.Ports) > 0 {
			port = c.Ports[0].ContainerPort
		}
	}
	if port == 0 || p.Status.PodIP == "" {
		t.Fatalf("pod %s: no sidecar admin port or pod IP", p.Name)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s:%d/version", p.Status.PodIP, port))
	if err != nil {
		t.Fatalf("sidecar version of %s: %v", p.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("sidecar version of %s: %s %v %q", p.Name, resp.Status, err, b)
	}
	return strings.TrimSpace(string(b))
}

// controllerImageID is the image (by digest) the Ready controller pod runs.
func (e *env) controllerImageID(ctx context.Context, t *testing.T) string {
	t.Helper()
	dep, err := e.cs.AppsV1().Deployments(namespace).Get(ctx, release, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := e.cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(dep.Spec.Selector)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range ps.Items {
		if p.DeletionTimestamp == nil && podReady(&p) && len(p.Status.ContainerStatuses) > 0 {
			ids = append(ids, p.Status.ContainerStatuses[0].ImageID)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("want one Ready controller pod, image ids %v: %s", ids, podSummary(ps.Items))
	}
	return ids[0]
}

// logStream follows a container's log until the container ends.
type logStream struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan error
}

func (s *logStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logStream) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (e *env) follow(t *testing.T, ns, pod, container string) *logStream {
	t.Helper()
	s := &logStream{done: make(chan error, 1)}
	s.cmd = exec.Command(e.kubectl, "--kubeconfig", e.kubeconfig, "-n", ns, "logs", "-f", pod, "-c", container)
	s.cmd.Stdout, s.cmd.Stderr = s, s
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
	})
	return s
}

// upgrade: helm upgrade to a new image tag (the controller and daemon pods are replaced) and a
// rolling restart of the app (a new pod with the new sidecar image; the old one drains). Every
// INSERT the app saw succeed is in the database, and the old pod saw no error, draining included.
func (e *env) upgrade(ctx context.Context, t *testing.T, a *app) {
	t.Helper()
	a.mark(t, "helm upgrade (controller and daemon pods replaced)")
	from := a.lastSeq(t)
	oldPod := a.pod
	op, err := e.cs.CoreV1().Pods(appNS).Get(ctx, oldPod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldVersion := sidecarVersion(t, op)
	oldController := e.controllerImageID(ctx, t)
	old := e.follow(t, appNS, oldPod, "app")
	// The daemon's state before its pod is replaced: the rolling update must leave it alone.
	oldDaemon := e.daemonPod(ctx, t, "")
	oldDaemonLog := e.follow(t, namespace, oldDaemon.Name, "pisa-daemon")
	htbBefore := e.htb(t)
	t0 := time.Now()
	if out, err := e.run(t, e.helm, "upgrade", release, e.chart, "-n", namespace, "--reuse-values",
		"--set", "controller.image.tag="+e.nextTag, "--set", "proxy.image.tag="+e.nextTag, "--set", "daemon.image.tag="+e.nextTag,
		"--wait", "--timeout", "5m"); err != nil {
		t.Fatalf("helm upgrade to tag %s: %v\n%s", e.nextTag, err, out)
	}
	a.mark(t, "after helm upgrade")
	upgraded := a.lastSeq(t)
	dep, err := e.cs.AppsV1().Deployments(namespace).Get(ctx, release, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := dep.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(img, ":"+e.nextTag) || dep.Status.UpdatedReplicas != dep.Status.ReadyReplicas {
		t.Fatalf("controller after helm upgrade: image %s, updated %d ready %d", img, dep.Status.UpdatedReplicas, dep.Status.ReadyReplicas)
	}
	if id := e.controllerImageID(ctx, t); id == oldController {
		t.Errorf("the controller runs the same image after the upgrade: %s", id)
	} else {
		t.Logf("controller image %s -> %s", oldController, id)
	}
	t.Logf("helm upgrade to tag %s: %s", e.nextTag, time.Since(t0).Round(time.Second))
	e.daemonKeptState(ctx, t, oldDaemon.Name, oldDaemonLog, htbBefore)
	// The old controller pod may still answer the webhook while it terminates (and the API
	// server's ClientIP affinity may keep it there until its endpoint goes): a pod created now
	// could still get the old sidecar. Wait until the webhook injects the new image, as a
	// server-side dry run shows, then restart the app.
	t2 := time.Now()
	dry := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Labels: map[string]string{"pisanix.io/inject": "enabled", "app": "catalogue"},
			Annotations: map[string]string{"pisanix.io/deployed-name": "catalogue"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "pisanix.local/sqlclient:1"}}},
	}
	var injected string
	if err := poll(ctx, 2*time.Minute, func() (bool, error) {
		got, err := e.cs.CoreV1().Pods(appNS).Create(ctx, dry, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, err
		}
		for _, c := range got.Spec.InitContainers {
			if c.Name == "pisa-proxy" {
				injected = c.Image
			}
		}
		return strings.HasSuffix(injected, ":"+e.nextTag), nil
	}); err != nil {
		t.Fatalf("the webhook still injects %q after the helm upgrade: %v", injected, err)
	}
	t.Logf("the webhook injects %s (%s after helm upgrade --wait returned)", injected, time.Since(t2).Round(time.Second))

	a.mark(t, "rollout restart of the app, drain")
	t1 := time.Now()
	if out, err := e.run(t, e.kubectl, "-n", appNS, "rollout", "restart", "deployment/catalogue"); err != nil {
		t.Fatalf("rollout restart: %v\n%s", err, out)
	}
	if out, err := e.run(t, e.kubectl, "-n", appNS, "rollout", "status", "deployment/catalogue", "--timeout=3m"); err != nil {
		t.Fatalf("rollout status: %v\n%s", err, out)
	}
	pod := e.appPod(ctx, t, oldPod)
	a.pod = pod.Name
	if img := pod.Spec.InitContainers[0].Image; !strings.HasSuffix(img, ":"+e.nextTag) {
		t.Errorf("the new pod's sidecar image is %s, want tag %s", img, e.nextTag)
	}
	// make e2e built the e2e-next images as a new version of the programs.
	if v := sidecarVersion(t, &pod); v == oldVersion || !strings.Contains(v, "-e2e-next") {
		t.Errorf("the new pod's sidecar is %q, the old one's %q: want the new build (-e2e-next)", v, oldVersion)
	} else {
		t.Logf("sidecar /version: old pod %q, new pod %q", oldVersion, v)
	}
	// The old pod drains: its app goes on for SQLCLIENT_DRAIN after SIGTERM, then exits.
	select {
	case <-old.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the old pod %s's app did not exit within 2 min of the rollout", oldPod)
	}
	t.Logf("rollout restart: new pod %s Ready, old pod %s's app exited, %s", pod.Name, oldPod, time.Since(t1).Round(time.Second))
	if err := poll(ctx, time.Minute, func() (bool, error) {
		ok, _ := count(a.since(t, 0))
		return ok >= 9, nil
	}); err != nil {
		t.Fatalf("the new pod's app is not answered:\n%s", a.log(t))
	}

	// The old pod: no error from before the helm upgrade to its end, draining included.
	oldLog := old.String()
	if !strings.Contains(oldLog, "draining on") || !strings.Contains(oldLog, "stop after draining") {
		t.Errorf("the old pod's app did not drain (no SIGTERM seen?):\n%s", oldLog)
	}
	var drained, oldAfter []appLine
	draining := false
	for _, l := range strings.Split(oldLog, "\n") {
		if strings.HasPrefix(l, "draining on") {
			draining = true
		}
		for _, p := range parseLog(l) {
			if p.seq > from {
				oldAfter = append(oldAfter, p)
				if draining {
					drained = append(drained, p)
				}
			}
		}
	}
	for _, l := range errorsIn(oldAfter) {
		t.Errorf("old pod %s, during the upgrade or the drain: %s", oldPod, l.text)
	}
	for _, l := range strings.Split(oldLog, "\n") {
		if strings.HasPrefix(l, "slow ") {
			// Not an error (the app waited), but worth a look: a stall. The log covers the pod's
			// life: the step comes from the round's number (the QoS step's bench, for one,
			// shares the app's class).
			var seq int
			_, _ = fmt.Sscanf(l, "slow seq=%d", &seq)
			t.Logf("old pod %s: %s (step: %s; helm upgrade rounds %d-%d)", oldPod, l, a.step(seq), from+1, upgraded)
		}
	}
	if ok, _ := count(drained); ok == 0 {
		t.Errorf("the old pod's app had no statement answered while it drained")
	}

	// No INSERT the app saw succeed is missing from the database (in either pod). The new
	// pod's log first: what it logged before the SELECT must be there.
	newLines := a.since(t, 0)
	rows := map[string]bool{}
	for _, r := range strings.Split(strings.TrimSpace(a.sql(t, "SELECT CONCAT(pod, ' ', seq) FROM socksdb.seen")), "\n") {
		rows[r] = true
	}
	var checked, lost int
	for _, pl := range []struct {
		pod   string
		lines []appLine
	}{{oldPod, parseLog(oldLog)}, {pod.Name, newLines}} {
		for _, l := range pl.lines {
			if l.q != 0 || !l.ok {
				continue
			}
			checked++
			if !rows[fmt.Sprintf("%s %d", pl.pod, l.seq)] {
				lost++
				t.Errorf("lost: the app saw this INSERT succeed, the row is not in the database: pod %s %s", pl.pod, l.text)
			}
		}
	}
	newOK, newBad := count(newLines)
	for _, l := range errorsIn(newLines) {
		t.Errorf("new pod %s (its sidecar's startup probe should hold the app until it serves): %s", pod.Name, l.text)
	}
	_, oldBad := count(oldAfter)
	t.Logf("upgrade and rolling restart: %d INSERTs the app saw succeed, %d missing; old pod %d statements after the upgrade began (%d while draining), %d errors; new pod %d answered, %d errors",
		checked, lost, len(oldAfter), len(drained), oldBad, newOK, newBad)
}
