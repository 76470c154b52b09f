//go:build cluster

// Package cluster holds the end-to-end tests that need a real Kubernetes node: the one
// `hack/cluster.sh up` makes on this machine (etcd, kube-apiserver, controller-manager,
// scheduler, kubelet on containerd, kube-proxy) with the project's images imported.
//
// Build tag `cluster`: `go test ./...` (make test) never runs them. Run them with
//
//	make e2e                      # make images, hack/cluster.sh up, these tests, down
//
// or against a cluster that is already up:
//
//	PISANIX_KUBECONFIG=$(hack/cluster.sh kubeconfig) PISANIX_HELM=$(hack/tools.sh helm) \
//	PISANIX_KUBECTL=... go test -tags cluster -v ./test/cluster/
package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	release   = "pisanix"
	namespace = "pisa-system"
	// webhook.configurationName's default in charts/pisanix.
	webhookConfig = "pisa-controller.database-mesh.io"
)

type env struct {
	kubeconfig, helm, kubectl, chart string
	cs                               *kubernetes.Clientset
}

func setup(t *testing.T) *env {
	t.Helper()
	e := &env{
		kubeconfig: os.Getenv("PISANIX_KUBECONFIG"),
		helm:       os.Getenv("PISANIX_HELM"),
		kubectl:    os.Getenv("PISANIX_KUBECTL"),
	}
	// Fail, never skip: the build tag already says the cluster is wanted.
	if e.kubeconfig == "" || e.helm == "" || e.kubectl == "" {
		t.Fatal("PISANIX_KUBECONFIG, PISANIX_HELM and PISANIX_KUBECTL must be set (make e2e sets them)")
	}
	_, file, _, _ := runtime.Caller(0)
	e.chart = filepath.Join(filepath.Dir(file), "..", "..", "charts", "pisanix")
	cfg, err := clientcmd.BuildConfigFromFlags("", e.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if e.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.kubeconfig)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// dump prints what a person would look at when something failed: pods, events, logs, the
// webhook configuration.
func (e *env) dump(t *testing.T) {
	t.Helper()
	for _, args := range [][]string{
		{"get", "nodes,pods,svc,endpointslices", "-A", "-o", "wide"},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
		{"-n", namespace, "describe", "pods"},
		{"-n", namespace, "logs", "-l", "app.kubernetes.io/name=pisanix", "--all-containers", "--tail=80"},
		{"get", "mutatingwebhookconfigurations", "-o", "yaml"},
	} {
		out, _ := e.run(t, e.kubectl, args...)
		t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
	}
}

// TestChart installs charts/pisanix with helm into the cluster, waits for the controller pod to
// become Ready, checks that it registered its webhook (the caBundle it writes in self
// certificate mode), and proves that the API server calls it through the Service: a pod
// created (server-side dry run) in an opted-in namespace comes back with the pisa-proxy sidecar.
// Then a labelled app runs with its native sidecar and queries a MariaDB on the host through
// it, keeps doing so while the controller pod is killed and replaced, and helm uninstall
// removes every object of the release but the CRDs.
func TestChart(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	failed := true
	defer func() {
		if failed || t.Failed() {
			e.dump(t)
		}
	}()

	t0 := time.Now()
	// pullPolicy Never: the images come from `make images` via ctr import; nothing is pulled.
	out, err := e.run(t, e.helm, "install", release, e.chart, "-n", namespace, "--create-namespace",
		"--set", "controller.image.pullPolicy=Never",
		"--set", "proxy.image.pullPolicy=Never",
		"--set", "controller.nativeSidecar=true",
		"--wait", "--timeout", "5m")
	if err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	t.Logf("helm install --wait: %s\n%s", time.Since(t0).Round(time.Second), out)
	uninstalled := false
	t.Cleanup(func() {
		if uninstalled {
			return
		}
		if out, err := e.run(t, e.helm, "uninstall", release, "-n", namespace, "--wait", "--timeout", "2m"); err != nil {
			t.Errorf("helm uninstall: %v\n%s", err, out)
		}
	})

	// 1. The controller pod is Ready.
	dep, err := e.cs.AppsV1().Deployments(namespace).Get(ctx, release, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Status.ReadyReplicas < 1 {
		t.Fatalf("deployment %s: %d ready replicas", release, dep.Status.ReadyReplicas)
	}
	pods, err := e.cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(dep.Spec.Selector)})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) == 0 || !podReady(&pods.Items[0]) {
		t.Fatalf("no Ready controller pod: %v", podSummary(pods.Items))
	}
	t.Logf("controller pod %s Ready on %s at %s", pods.Items[0].Name, pods.Items[0].Spec.NodeName, pods.Items[0].Status.PodIP)

	// 2. It registered its webhook: the controller writes the caBundle of its own
	// MutatingWebhookConfiguration (the chart leaves it out).
	var mwc *admissionv1.MutatingWebhookConfiguration
	if err := poll(ctx, 2*time.Minute, func() (bool, error) {
		var err error
		mwc, err = e.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, webhookConfig, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(mwc.Webhooks) > 0 && len(mwc.Webhooks[0].ClientConfig.CABundle) > 0, nil
	}); err != nil {
		t.Fatalf("webhook %s never got its caBundle: %v", webhookConfig, err)
	}
	t.Logf("webhook %s registered, caBundle %d bytes, service %s/%s", webhookConfig,
		len(mwc.Webhooks[0].ClientConfig.CABundle), mwc.Webhooks[0].ClientConfig.Service.Namespace, mwc.Webhooks[0].ClientConfig.Service.Name)

	// 3. The API server calls it through the Service (kube-proxy's ClusterIP rules): an opted-in
	// pod comes back injected. Server-side dry run: admission runs, nothing is stored.
	const appNS = "pisanix-e2e"
	if _, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: appNS, Labels: map[string]string{"pisanix.io/inject": "enabled"},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.cs.CoreV1().Namespaces().Delete(context.Background(), appNS, metav1.DeleteOptions{})
	})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "app",
			Labels:      map[string]string{"pisanix.io/inject": "enabled", "app": "catalogue"},
			Annotations: map[string]string{"pisanix.io/deployed-name": "catalogue"},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "ghcr.io/database-mesh/pisa-proxy:v0.1.0"}}},
	}
	var got *corev1.Pod
	// The webhook answers once the controller's serving certificate and endpoints are in place;
	// retry for a while (the failure policy is Fail, so an early call is refused, not skipped).
	if err := poll(ctx, time.Minute, func() (bool, error) {
		var err error
		got, err = e.cs.CoreV1().Pods(appNS).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Logf("dry-run create: %v", err)
			return false, nil
		}
		return true, nil
	}); err != nil {
		t.Fatalf("pod create through the webhook: %v", err)
	}
	if !hasSidecar(got) {
		t.Fatalf("pod came back without the pisa-proxy sidecar: init %v, containers %v",
			names(got.Spec.InitContainers), names(got.Spec.Containers))
	}
	t.Logf("pod injected through the webhook Service: init %v, containers %v", names(got.Spec.InitContainers), names(got.Spec.Containers))

	// 4. A labelled application runs with its sidecar, and its queries reach a MariaDB outside
	// the cluster (on this host, bound to the bridge address) through it.
	e.app(ctx, t, appNS)

	// 5. Killing the controller pod does not stop the app's queries; a new controller takes over.
	e.killController(ctx, t, appNS)

	// 6. helm uninstall removes everything the chart made; the CRDs stay, as Helm does.
	manifest, err := e.run(t, e.helm, "get", "manifest", release, "-n", namespace)
	if err != nil {
		t.Fatalf("helm get manifest: %v\n%s", err, manifest)
	}
	mf := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(mf, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := e.run(t, e.kubectl, "get", "-f", mf, "-o", "name")
	if out, err := e.run(t, e.helm, "uninstall", release, "-n", namespace, "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	uninstalled = true
	if left, err := e.run(t, e.kubectl, "get", "-f", mf, "-o", "name", "--ignore-not-found"); err != nil || strings.TrimSpace(left) != "" {
		t.Errorf("after helm uninstall these are left (err %v):\n%s", err, left)
	}
	crds, err := e.run(t, e.kubectl, "get", "crd", "-o", "name")
	if err != nil || !strings.Contains(crds, "virtualdatabases.core.database-mesh.io") {
		t.Errorf("CRDs after uninstall (want them kept): %v\n%s", err, crds)
	}
	t.Logf("helm uninstall removed the %d objects of the release; CRDs kept: %s", len(strings.Fields(before)), strings.Join(strings.Fields(crds), " "))
	failed = false
}

// killController deletes the controller pod while the app runs and checks that the app sees no
// error until a new controller pod is Ready and for a few seconds after. (Whether the sidecar's
// watch then follows the new controller is not checked yet.)
func (e *env) killController(ctx context.Context, t *testing.T, ns string) {
	t.Helper()
	appPods, err := e.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=catalogue"})
	if err != nil || len(appPods.Items) != 1 {
		t.Fatalf("app pod: %v", err)
	}
	app := appPods.Items[0].Name
	logLines := func() []string {
		out, _ := e.run(t, e.kubectl, "-n", ns, "logs", app, "-c", "app")
		return strings.Split(strings.TrimSpace(out), "\n")
	}
	n := len(logLines())
	dep, err := e.cs.AppsV1().Deployments(namespace).Get(ctx, release, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sel := metav1.FormatLabelSelector(dep.Spec.Selector)
	old, err := e.cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil || len(old.Items) != 1 {
		t.Fatalf("controller pods: %v %v", err, podSummary(old.Items))
	}
	oldName := old.Items[0].Name
	t0 := time.Now()
	if err := e.cs.CoreV1().Pods(namespace).Delete(ctx, oldName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var newName string
	if err := poll(ctx, 3*time.Minute, func() (bool, error) {
		ps, err := e.cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return false, err
		}
		for i := range ps.Items {
			if p := &ps.Items[i]; p.Name != oldName && podReady(p) {
				newName = p.Name
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("no new controller pod Ready after deleting %s: %v", oldName, err)
	}
	took := time.Since(t0).Round(time.Second)
	time.Sleep(3 * time.Second) // a few more of the app's queries, with the new controller
	lines := logLines()
	if len(lines) <= n+3 {
		t.Fatalf("the app logged %d lines in the %s without a controller (want it to keep querying)", len(lines)-n, took)
	}
	var ok, bad int
	for _, l := range lines[n:] {
		switch {
		case strings.HasPrefix(l, "ok seq="):
			ok++
		case strings.HasPrefix(l, "error seq="):
			bad++
			t.Errorf("app error while the controller was replaced: %s", l)
		}
	}
	t.Logf("controller pod %s deleted, %s Ready %s later; the app meanwhile: %d queries answered, %d errors", oldName, newName, took, ok, bad)
}

// app starts a MariaDB on the bridge address, points the sidecars at the controller's
// ClusterIP (no cluster DNS here), creates the catalogue's DatabaseEndpoint, TrafficStrategy and
// VirtualDatabase and a Deployment of the sqlclient image, and reads from the app's log that its
// queries, sent to the sidecar on 127.0.0.1:3306, are answered by that MariaDB.
func (e *env) app(ctx context.Context, t *testing.T, ns string) {
	t.Helper()
	nodeIP, dir := os.Getenv("PISANIX_NODE_IP"), os.Getenv("PISANIX_CLUSTER_DIR")
	if nodeIP == "" || dir == "" {
		t.Fatal("PISANIX_NODE_IP and PISANIX_CLUSTER_DIR must be set (hack/cluster.sh e2e sets them)")
	}
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")
	const port = "23306" // never 3306: the host's own test MariaDB lives there
	mdir := filepath.Join(dir, "mariadb")
	cmd := exec.Command(filepath.Join(repo, "hack", "mariadb.sh"), "start", port, mdir, "--", "--bind-address=127.0.0.1,"+nodeIP)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PISA_MARIADB_OWNER_PID=%d", os.Getpid()))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/mariadb.sh start: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(filepath.Join(repo, "hack", "mariadb.sh"), "stop", mdir).Run() })
	if out, err := exec.Command("mariadb", "--no-defaults", "-h127.0.0.1", "-P"+port, "-uroot", "-e",
		"CREATE DATABASE socksdb; CREATE TABLE socksdb.sock (id INT PRIMARY KEY, name VARCHAR(20)); "+
			"INSERT INTO socksdb.sock VALUES (1, 'holy'), (2, 'crossed')").CombinedOutput(); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}

	svc, err := e.cs.CoreV1().Services(namespace).Get(ctx, release, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if out, err := e.run(t, e.helm, "upgrade", release, e.chart, "-n", namespace, "--reuse-values",
		"--set", "controller.extraEnv[0].name=PISA_CONTROLLER_HOST",
		"--set", "controller.extraEnv[0].value="+svc.Spec.ClusterIP+":8080",
		"--wait", "--timeout", "3m"); err != nil {
		t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
	t.Logf("helm upgrade (PISA_CONTROLLER_HOST=%s:8080): %s", svc.Spec.ClusterIP, time.Since(t0).Round(time.Second))

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
kind: VirtualDatabase
metadata: {name: catalogue, namespace: %[1]s}
spec:
  services:
  - name: mysql
    databaseMySQL: {db: socksdb, host: 127.0.0.1, port: 3306, user: catalogue_user, password: default_password}
    trafficStrategy: catalogue
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
        - {name: SQLCLIENT_QUERY, value: "SELECT GROUP_CONCAT(name ORDER BY id) FROM sock"}
`, ns, nodeIP, port)
	f := filepath.Join(t.TempDir(), "app.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := e.run(t, e.kubectl, "apply", "-f", f); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	defer func() {
		if t.Failed() {
			for _, args := range [][]string{
				{"-n", ns, "describe", "pods"},
				{"-n", ns, "logs", "deploy/catalogue", "-c", "pisa-proxy", "--tail=40"},
				{"-n", ns, "logs", "deploy/catalogue", "-c", "app", "--tail=40"},
				{"-n", ns, "get", "virtualdatabases", "-o", "yaml"},
			} {
				out, _ := e.run(t, e.kubectl, args...)
				t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
			}
		}
	}()

	// The pod is Ready with its sidecar (native: an init container that keeps running).
	var pod corev1.Pod
	if err := poll(ctx, 3*time.Minute, func() (bool, error) {
		ps, err := e.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=catalogue"})
		if err != nil || len(ps.Items) != 1 {
			return false, err
		}
		pod = ps.Items[0]
		return podReady(&pod), nil
	}); err != nil {
		t.Fatalf("app pod not Ready: %v", err)
	}
	if len(pod.Spec.InitContainers) == 0 || pod.Spec.InitContainers[0].Name != "pisa-proxy" ||
		pod.Spec.InitContainers[0].RestartPolicy == nil || *pod.Spec.InitContainers[0].RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Fatalf("pisa-proxy is not a native sidecar: init %v", names(pod.Spec.InitContainers))
	}
	side, app := pod.Status.InitContainerStatuses[0].State.Running, pod.Status.ContainerStatuses[0].State.Running
	if side == nil || app == nil || app.StartedAt.Before(&side.StartedAt) {
		t.Fatalf("sidecar must run and start before the app: sidecar %+v, app %+v", side, app)
	}
	t.Logf("pod %s Ready at %s: sidecar started %s, app %s", pod.Name, pod.Status.PodIP, side.StartedAt.Format(time.RFC3339), app.StartedAt.Format(time.RFC3339))

	// The app's log: its queries through the sidecar return MariaDB's rows.
	var log string
	if err := poll(ctx, 2*time.Minute, func() (bool, error) {
		log, _ = e.run(t, e.kubectl, "-n", ns, "logs", pod.Name, "-c", "app")
		return strings.Count(log, "value=holy,crossed") >= 3, nil
	}); err != nil {
		t.Fatalf("the app never got MariaDB's rows through the sidecar; its log:\n%s", log)
	}
	t.Logf("app: %d queries answered through the sidecar, %d errors (before the sidecar had its configuration)",
		strings.Count(log, "ok seq="), strings.Count(log, "error seq="))

	// The VirtualDatabase shows the sidecar running the current configuration. Only the leader
	// writes status, and after the helm upgrade the new controller pod may still wait for the
	// old one's lease: give it time.
	var out string
	t1 := time.Now()
	if err := poll(ctx, 2*time.Minute, func() (bool, error) {
		out, _ = e.run(t, e.kubectl, "-n", ns, "get", "virtualdatabase", "catalogue", "-o", "jsonpath={.status.sidecars}")
		return strings.Contains(out, `"current":1`), nil
	}); err != nil {
		t.Errorf("VirtualDatabase status sidecars: %q: %v", out, err)
	}
	t.Logf("VirtualDatabase status sidecars: %s (after %s)", out, time.Since(t1).Round(time.Second))
}

func hasSidecar(p *corev1.Pod) bool {
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.Name == "pisa-proxy" {
			return true
		}
	}
	return false
}

func names(cs []corev1.Container) []string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return n
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podSummary(ps []corev1.Pod) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%s phase=%s ready=%v; ", p.Name, p.Status.Phase, podReady(&p))
	}
	return b.String()
}

func poll(ctx context.Context, d time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		ok, err := f()
		if ok {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	if last == nil {
		last = fmt.Errorf("timed out after %s", d)
	}
	return last
}
