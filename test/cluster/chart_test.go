//go:build cluster

// Package cluster holds the end-to-end tests that need a real Kubernetes node: the one
// `hack/cluster.sh up` makes on this machine (etcd, kube-apiserver, controller-manager,
// scheduler, kubelet on containerd, kube-proxy, cluster DNS, a network namespace "outside the
// cluster" for the database) with the project's images imported.
//
// Build tag `cluster`: `go test ./...` (make test) never runs them. Run them with
//
//	make e2e                      # make images, hack/cluster.sh up, these tests, down
//
// or against a cluster that is already up (as root), with the PISANIX_* variables that
// `hack/cluster.sh e2e` sets (setup lists them; the test fails naming any that is missing).
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
	kubeconfig, helm, kubectl, chart, repo string
	// The cluster's facts, from hack/cluster.sh e2e: the node's address, the state directory,
	// the network namespace "outside the cluster" and its address, the node's egress device
	// towards it, the bpffs for the daemon, the second tag of the project's images.
	nodeIP, dir, extNS, extIP, extDev, bpffs, nextTag string
	cs                                                *kubernetes.Clientset
}

func setup(t *testing.T) *env {
	t.Helper()
	e := &env{
		kubeconfig: os.Getenv("PISANIX_KUBECONFIG"),
		helm:       os.Getenv("PISANIX_HELM"),
		kubectl:    os.Getenv("PISANIX_KUBECTL"),
		nodeIP:     os.Getenv("PISANIX_NODE_IP"),
		dir:        os.Getenv("PISANIX_CLUSTER_DIR"),
		extNS:      os.Getenv("PISANIX_EXT_NS"),
		extIP:      os.Getenv("PISANIX_EXT_IP"),
		extDev:     os.Getenv("PISANIX_EXT_DEV"),
		bpffs:      os.Getenv("PISANIX_BPFFS"),
		nextTag:    os.Getenv("PISANIX_NEXT_TAG"),
	}
	// Fail, never skip: the build tag already says the cluster is wanted.
	for k, v := range map[string]string{"PISANIX_KUBECONFIG": e.kubeconfig, "PISANIX_HELM": e.helm,
		"PISANIX_KUBECTL": e.kubectl, "PISANIX_NODE_IP": e.nodeIP, "PISANIX_CLUSTER_DIR": e.dir,
		"PISANIX_EXT_NS": e.extNS, "PISANIX_EXT_IP": e.extIP, "PISANIX_EXT_DEV": e.extDev,
		"PISANIX_BPFFS": e.bpffs, "PISANIX_NEXT_TAG": e.nextTag} {
		if v == "" {
			t.Fatalf("%s must be set (hack/cluster.sh e2e, make e2e, sets it)", k)
		}
	}
	_, file, _, _ := runtime.Caller(0)
	e.repo = filepath.Join(filepath.Dir(file), "..", "..")
	e.chart = filepath.Join(e.repo, "charts", "pisanix")
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

// dump prints what a person would look at when something failed: nodes, pods, Services,
// events, every pod described, every container's log (also the previous instance's), the
// status conditions the controller wrote on the Pisanix objects, the webhook configuration,
// the daemon's tc classes.
func (e *env) dump(t *testing.T) {
	t.Helper()
	cmds := [][]string{
		{"get", "nodes,pods,svc,endpointslices,deployments,daemonsets", "-A", "-o", "wide"},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
		{"get", "virtualdatabases,trafficstrategies,databaseendpoints,qosclaims", "-A", "-o",
			`custom-columns=KIND:.kind,NS:.metadata.namespace,NAME:.metadata.name,GEN:.metadata.generation,CONFIG:.status.configVersion,SIDECARS:.status.sidecars,CONDITIONS:.status.conditions`},
		{"get", "virtualdatabases,trafficstrategies,qosclaims", "-A", "-o", "yaml"},
		{"get", "mutatingwebhookconfigurations", "-o", "yaml"},
	}
	for _, ns := range []string{namespace, appNS} {
		cmds = append(cmds, []string{"-n", ns, "describe", "pods"})
		pods, err := e.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			continue
		}
		for _, p := range pods.Items {
			for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
				cmds = append(cmds, []string{"-n", ns, "logs", p.Name, "-c", c.Name, "--tail=60"},
					[]string{"-n", ns, "logs", p.Name, "-c", c.Name, "--tail=20", "--previous"})
			}
		}
	}
	for _, args := range cmds {
		out, _ := e.run(t, e.kubectl, args...)
		t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
	}
	out, _ := exec.Command("tc", "class", "show", "dev", e.extDev).CombinedOutput()
	t.Logf("tc class show dev %s:\n%s", e.extDev, out)
}

const appNS = "pisanix-e2e"

// TestChart installs charts/pisanix with helm (the daemon DaemonSet included) into the cluster
// and proves, with real pods (numbered as in issue 15; 4 runs before 3):
//  1. the controller pod becomes Ready and registers its webhook, which the API server calls
//     through the Service;
//  2. a labelled app gets the native pisa-proxy sidecar, which finds the controller by its
//     Service name (cluster DNS), and the app's queries reach a MariaDB outside the cluster;
//  4. killing the controller pod does not stop the app's queries, and the new controller takes
//     over: the next step's change reaches the running sidecar through it;
//  3. a circuit-break rule added to the TrafficStrategy refuses the matching query inside the
//     running pod (1047) while the others go on, and the VirtualDatabase status shows the
//     sidecar on the new configuration version; removing the rule lets the query through again;
//  5. the daemon shapes the pod's database traffic to its QoSClaim, measured from inside the
//     pod, and leaves other traffic from the pod alone;
//  6. helm upgrade to a new image tag and a rolling restart of the app lose no query the app
//     did not see an error for, and the old pod sees no error while it drains;
//  7. helm uninstall removes every object of the release (the daemon its tc classes), CRDs kept.
//
// In 6 the daemon's pod is replaced too: with cleanupOnExit=auto its tc state survives the
// rolling update (the same root qdisc and class, counters going on); in 7 it is removed.
func TestChart(t *testing.T) {
	e := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
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
		"--set", "daemon.enabled=true",
		"--set", "daemon.image.pullPolicy=Never",
		"--set", "daemon.egressDevice="+e.extDev,
		"--set", "daemon.bpffsHostPath="+e.bpffs,
		// The host's network: a port of the cluster's own, on the node's address.
		"--set", "daemon.adminAddr="+e.nodeIP+":25592",
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

	// It registered its webhook: the controller writes the caBundle of its own
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

	// The API server calls it through the Service (kube-proxy's ClusterIP rules): an opted-in
	// pod comes back injected. Server-side dry run: admission runs, nothing is stored.
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

	// 2. A labelled application runs with its sidecar, and its queries reach a MariaDB outside
	// the cluster through it.
	a := e.app(ctx, t)

	// 4. Killing the controller pod does not stop the app's queries; a new controller takes over
	// (the next step needs it: the running sidecar's watch and the status come from it).
	a.mark(t, "controller pod deleted")
	e.killController(ctx, t, a)

	// 3. A circuit-break rule is enforced inside the running pod.
	a.mark(t, "circuit break")
	e.circuitBreak(ctx, t, a)

	// 5. The daemon shapes the pod's database traffic to its QoSClaim.
	a.mark(t, "QoS bench")
	e.qos(ctx, t, a)

	// 6. helm upgrade to a new image tag, then a rolling restart of the app.
	e.upgrade(ctx, t, a)

	// 7. helm uninstall removes everything the chart made; the CRDs stay, as Helm does.
	manifest, err := e.run(t, e.helm, "get", "manifest", release, "-n", namespace)
	if err != nil {
		t.Fatalf("helm get manifest: %v\n%s", err, manifest)
	}
	mf := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(mf, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := e.run(t, e.kubectl, "get", "-f", mf, "-o", "name")
	// The daemon's exit: with cleanupOnExit=auto (the chart's default) it finds its DaemonSet
	// gone and removes its classes.
	daemon := e.daemonPod(ctx, t, "")
	daemonLog := e.follow(t, namespace, daemon.Name, "pisa-daemon")
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
	// The daemon pod stopped with cleanupOnExit=auto (the chart's default) and saw its
	// DaemonSet go: its classes, root qdisc and pinned objects are gone.
	e.daemonCleanedUp(ctx, t, daemon.Name, daemonLog)
	t.Logf("helm uninstall removed the %d objects of the release and the daemon's tc classes; CRDs kept: %s",
		len(strings.Fields(before)), strings.Join(strings.Fields(crds), " "))
	failed = false
}

// killController deletes the controller pod while the app runs and checks that the app sees no
// error until a new controller pod is Ready and for a few seconds after.
func (e *env) killController(ctx context.Context, t *testing.T, a *app) {
	t.Helper()
	from := a.lastSeq(t)
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
	lines := a.since(t, from)
	if rounds(lines) < 3 {
		t.Fatalf("the app ran %d rounds in the %s without a controller (want it to keep querying)", rounds(lines), took)
	}
	ok, bad := count(lines)
	for _, l := range errorsIn(lines) {
		t.Errorf("app error while the controller was replaced: %s", l.text)
	}
	t.Logf("controller pod %s deleted, %s Ready %s later; the app meanwhile: %d statements answered, %d errors", oldName, newName, took, ok, bad)
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
