package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/database-mesh/pisanix-go/internal/testutil/kubetest"
)

// tool returns the path of a packaging tool from $PISANIX_<NAME> (make test sets them from
// hack/tools.sh); it skips without it, or fails in CI.
func tool(t *testing.T, name string) string {
	t.Helper()
	env := "PISANIX_" + strings.ToUpper(name)
	p := os.Getenv(env)
	if p == "" {
		msg := env + " is not set: run `make test`, or " + env + "=$(hack/tools.sh " + name + ") go test ./test/e2e/"
		if ci := os.Getenv("CI"); ci != "" && ci != "false" {
			t.Fatal("CI: " + msg)
		}
		t.Skip(msg)
	}
	return p
}

func output(t *testing.T, argv ...string) []byte {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	return out
}

// decode splits a multi-document YAML stream into objects.
func decode(t *testing.T, manifests []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifests), 4096)
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decode manifests: %v", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		objs = append(objs, u)
	}
	return objs
}

// applyDryRun sends every object to the API server as a server-side apply with dryRun=All, so
// the API server validates it against its schema (built-in kinds and our CRDs) and runs its
// admission, without creating anything that could affect other tests (a webhook
// configuration pointing at a Service that does not exist, say). Namespaces are created for
// real, since namespaced objects need theirs. It returns the kinds seen.
func applyDryRun(ctx context.Context, t *testing.T, objs []*unstructured.Unstructured) map[string]int {
	t.Helper()
	kinds := map[string]int{}
	defaultNS := ""
	for _, u := range objs {
		if u.GetNamespace() == "" && !clusterScoped[u.GetKind()] {
			// Manifests meant for `kubectl apply -n <ns>`.
			if defaultNS == "" {
				ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "manifests-"}}
				if err := k8s.Create(ctx, ns); err != nil {
					t.Fatal(err)
				}
				defaultNS = ns.Name
			}
			u.SetNamespace(defaultNS)
		}
		kinds[u.GetKind()]++
		if u.GetKind() == "Namespace" {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: u.GetName(), Labels: u.GetLabels()}}
			if err := k8s.Create(ctx, ns); err != nil && !strings.Contains(err.Error(), "already exists") {
				t.Fatalf("namespace %s: %v", u.GetName(), err)
			}
			continue
		}
		err := k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("pisanix-e2e"),
			client.ForceOwnership, client.DryRunAll)
		if err != nil {
			t.Errorf("%s %s/%s refused by the API server: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
	return kinds
}

var clusterScoped = map[string]bool{"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true, "CustomResourceDefinition": true,
	"PriorityClass": true}

func repoPath(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}

// TestHelmChartValidates renders charts/pisanix with helm and has the API server validate every
// object, for the default values and with the daemon and the dashboard on.
func TestHelmChartValidates(t *testing.T) {
	kubetest.NeedAPIServer(t, startErr)
	helm := tool(t, "helm")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	output(t, helm, "lint", "--strict", repoPath("charts", "pisanix"))
	for _, tc := range []struct {
		name string
		set  []string
		want []string
	}{
		{"defaults", nil, []string{"Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
			"Role", "RoleBinding", "MutatingWebhookConfiguration"}},
		{"daemon-and-dashboard", []string{"--set", "daemon.enabled=true", "--set", "grafana.dashboard.enabled=true",
			"--set", "controller.replicaCount=2", "--set", "controller.podDisruptionBudget.enabled=true"}, []string{"DaemonSet", "ConfigMap", "PodDisruptionBudget"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "helm-"}}
			if err := k8s.Create(ctx, ns); err != nil {
				t.Fatal(err)
			}
			args := append([]string{helm, "template", "pisanix", repoPath("charts", "pisanix"),
				"--namespace", ns.Name, "--kube-version", "1.37.0"}, tc.set...)
			kinds := applyDryRun(ctx, t, decode(t, output(t, args...)))
			for _, k := range tc.want {
				if kinds[k] == 0 {
					t.Errorf("no %s rendered (kinds: %v)", k, kinds)
				}
			}
		})
	}
}

// TestKustomizeManifestsValidate builds config/default, config/daemon and every example under
// examples/k8s with kustomize and has the API server validate every object.
func TestKustomizeManifestsValidate(t *testing.T) {
	kubetest.NeedAPIServer(t, startErr)
	kustomize := tool(t, "kustomize")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dirs := []string{repoPath("config", "default"), repoPath("config", "daemon")}
	examples, err := filepath.Glob(repoPath("examples", "k8s", "*", "kustomization.yaml"))
	if err != nil || len(examples) < 3 {
		t.Fatalf("examples/k8s: %v %v", examples, err)
	}
	for _, k := range examples {
		dirs = append(dirs, filepath.Dir(k))
	}
	for _, dir := range dirs {
		t.Run(strings.TrimPrefix(dir, repoPath()+"/"), func(t *testing.T) {
			objs := decode(t, output(t, kustomize, "build", dir))
			if len(objs) == 0 {
				t.Fatal("no objects")
			}
			applyDryRun(ctx, t, objs)
		})
	}
}

// TestHelmDaemonCleanupOnExit renders the daemon with each daemon.cleanupOnExit: auto (the
// default) gets a Role that may get pods and its own DaemonSet, bound to its ServiceAccount, the
// service account token and POD_NAME/POD_NAMESPACE; true and false get neither the Role nor the
// token. No API server needed.
func TestHelmDaemonCleanupOnExit(t *testing.T) {
	helm := tool(t, "helm")
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{nil, "auto"},
		{[]string{"--set", "daemon.cleanupOnExit=auto"}, "auto"},
		{[]string{"--set", "daemon.cleanupOnExit=true"}, "true"},
		{[]string{"--set", "daemon.cleanupOnExit=false"}, "false"},
		{[]string{"--set-string", "daemon.cleanupOnExit=false"}, "false"},
	} {
		args := append([]string{helm, "template", "pisanix", repoPath("charts", "pisanix"), "--namespace", "pisa-system",
			"--kube-version", "1.37.0", "--set", "daemon.enabled=true"}, tc.set...)
		var role, binding, ds *unstructured.Unstructured
		for _, u := range decode(t, output(t, args...)) {
			if u.GetName() != "pisanix-daemon" {
				continue
			}
			switch u.GetKind() {
			case "Role":
				role = u
			case "RoleBinding":
				binding = u
			case "DaemonSet":
				ds = u
			}
		}
		if ds == nil {
			t.Fatalf("%v: no DaemonSet pisanix-daemon", tc.set)
		}
		env := map[string]string{}
		containers, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "containers")
		for _, e := range containers[0].(map[string]any)["env"].([]any) {
			m := e.(map[string]any)
			v, _ := m["value"].(string)
			if f, ok, _ := unstructured.NestedString(m, "valueFrom", "fieldRef", "fieldPath"); ok {
				v = "fieldRef:" + f
			}
			env[m["name"].(string)] = v
		}
		if env["PISA_DAEMON_CLEANUP_ON_EXIT"] != tc.want || env["POD_NAME"] != "fieldRef:metadata.name" ||
			env["POD_NAMESPACE"] != "fieldRef:metadata.namespace" {
			t.Errorf("%v: env %v", tc.set, env)
		}
		token, _, _ := unstructured.NestedBool(ds.Object, "spec", "template", "spec", "automountServiceAccountToken")
		if auto := tc.want == "auto"; token != auto || (role != nil) != auto || (binding != nil) != auto {
			t.Errorf("%v: token %v, Role %v, RoleBinding %v; want all %v", tc.set, token, role != nil, binding != nil, auto)
			continue
		}
		if role == nil {
			continue
		}
		rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
		got := fmt.Sprint(rules)
		if len(rules) != 2 || got != "[map[apiGroups:[] resources:[pods] verbs:[get]] map[apiGroups:[apps] resourceNames:[pisanix-daemon] resources:[daemonsets] verbs:[get]]]" {
			t.Errorf("daemon Role rules %s", got)
		}
		subjects, _, _ := unstructured.NestedSlice(binding.Object, "subjects")
		if s := fmt.Sprint(subjects); s != "[map[kind:ServiceAccount name:pisanix-daemon namespace:pisa-system]]" {
			t.Errorf("daemon RoleBinding subjects %s", s)
		}
	}
}

// TestDaemonManifestRBAC: deploy/daemon/daemonset.yaml (and its copy in config/daemon) runs the
// daemon with --cleanup-on-exit=auto, its token and POD_NAME/POD_NAMESPACE, and its
// ServiceAccount may get pods and that DaemonSet, by name.
func TestDaemonManifestRBAC(t *testing.T) {
	b, err := os.ReadFile(repoPath("deploy", "daemon", "daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string]*unstructured.Unstructured{}
	for _, u := range decode(t, b) {
		byKind[u.GetKind()] = u
	}
	ds, role, binding := byKind["DaemonSet"], byKind["Role"], byKind["RoleBinding"]
	if ds == nil || role == nil || binding == nil || byKind["ServiceAccount"] == nil {
		t.Fatalf("kinds %v", byKind)
	}
	sa, _, _ := unstructured.NestedString(ds.Object, "spec", "template", "spec", "serviceAccountName")
	token, _, _ := unstructured.NestedBool(ds.Object, "spec", "template", "spec", "automountServiceAccountToken")
	if sa != byKind["ServiceAccount"].GetName() || !token {
		t.Errorf("DaemonSet runs as %q (token %v), ServiceAccount %q", sa, token, byKind["ServiceAccount"].GetName())
	}
	containers, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "containers")
	env := fmt.Sprint(containers[0].(map[string]any)["env"])
	for _, want := range []string{"name:PISA_DAEMON_CLEANUP_ON_EXIT value:auto", "name:POD_NAME valueFrom:map[fieldRef:map[fieldPath:metadata.name]]",
		"name:POD_NAMESPACE valueFrom:map[fieldRef:map[fieldPath:metadata.namespace]]"} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %q: %s", want, env)
		}
	}
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	want := fmt.Sprintf("[map[apiGroups:[] resources:[pods] verbs:[get]] map[apiGroups:[apps] resourceNames:[%s] resources:[daemonsets] verbs:[get]]]", ds.GetName())
	if got := fmt.Sprint(rules); got != want {
		t.Errorf("Role rules %s, want %s", got, want)
	}
	subjects, _, _ := unstructured.NestedSlice(binding.Object, "subjects")
	ref, _, _ := unstructured.NestedString(binding.Object, "roleRef", "name")
	if s := fmt.Sprint(subjects); ref != role.GetName() || s != fmt.Sprintf("[map[kind:ServiceAccount name:%s namespace:%s]]", sa, ds.GetNamespace()) {
		t.Errorf("RoleBinding to %q, subjects %s", ref, s)
	}
}
