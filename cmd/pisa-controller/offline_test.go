package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/database-mesh/pisanix-go/internal/inject"
)

const testPod = `apiVersion: v1
kind: Pod
metadata:
  name: shop-7d4b9c8f5-x2x9k
  namespace: demo
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: shop-7d4b9c8f5, uid: "1"}
spec:
  initContainers:
  - {name: migrate, image: shop-migrate:1.0}
  containers:
  - {name: app, image: "shop:1.0"}
`

// runCmd runs pisa-controller with args (stdin from in) and returns stdout, stderr and the error.
func runCmd(t *testing.T, in string, args ...string) (string, string, error) {
	t.Helper()
	old := stdin
	stdin = strings.NewReader(in)
	defer func() { stdin = old }()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInjectCommand(t *testing.T) {
	t.Setenv("PISA_PROXY_IMAGE", "registry.local/pisa-proxy:offline")
	t.Setenv("PISA_CONTROLLER_NAMESPACE", "pisa-system")
	file := writeFile(t, "pod.yaml", testPod)

	out, _, err := runCmd(t, "", "inject", "-f", file)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict([]byte(out), &pod); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(pod.Spec.Containers) != 2 || pod.Spec.Containers[0].Name != "app" {
		t.Fatalf("containers: %+v", pod.Spec.Containers)
	}
	c := pod.Spec.Containers[1]
	if c.Name != inject.ContainerName || c.Image != "registry.local/pisa-proxy:offline" {
		t.Fatalf("sidecar %+v", c)
	}
	// The same container as the webhook's (the pure function's) for this application.
	want := inject.Container("shop", inject.Options{Image: "registry.local/pisa-proxy:offline",
		ControllerService: "default", ControllerNamespace: "pisa-system"})
	if got, _ := json.Marshal(c); !bytes.Equal(got, must(json.Marshal(want))) {
		t.Errorf("sidecar\n%s\nwant\n%s", got, must(json.Marshal(want)))
	}
	if !inject.Injected(&pod) {
		t.Error("printed pod not recognised as injected")
	}

	// Injecting the output again changes nothing (stdin, JSON out).
	again, stderr, err := runCmd(t, out, "inject", "-f", "-", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var pod2 corev1.Pod
	if err := json.Unmarshal([]byte(again), &pod2); err != nil {
		t.Fatalf("%v:\n%s", err, again)
	}
	if len(pod2.Spec.Containers) != 2 || !strings.Contains(stderr, "already has the pisa-proxy sidecar") {
		t.Errorf("re-injection: %d containers, stderr %q", len(pod2.Spec.Containers), stderr)
	}

	// Native sidecar: first init container, restartPolicy Always.
	out, _, err = runCmd(t, testPod, "inject", "-f", "-", "-native-sidecar")
	if err != nil {
		t.Fatal(err)
	}
	pod = corev1.Pod{}
	if err := yaml.Unmarshal([]byte(out), &pod); err != nil {
		t.Fatal(err)
	}
	if ic := pod.Spec.InitContainers; len(ic) != 2 || ic[0].Name != inject.ContainerName || ic[0].RestartPolicy == nil ||
		*ic[0].RestartPolicy != corev1.ContainerRestartPolicyAlways || len(pod.Spec.Containers) != 1 {
		t.Errorf("native sidecar: init %+v, containers %d", ic, len(pod.Spec.Containers))
	}

	for _, tc := range []struct {
		in   string
		args []string
		want string
	}{
		{"kind: Pod\nspec: {containers: [{name: a, image: a}]}\n", nil, "would refuse"}, // no name at all
		{"apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", nil, "want a Pod"},
		{testPod + "---\n" + testPod, nil, "want one Pod"},
		{"kind: Pod\nmetadata: {name: p}\nspec: {containerz: []}\n", nil, "unknown field"},
		{testPod, []string{"-o", "xml"}, "-o"},
		{testPod, []string{"extra"}, "unexpected arguments"},
	} {
		_, _, err := runCmd(t, tc.in, append([]string{"inject", "-f", "-"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %v: error %v, want %q", tc.in, tc.args, err, tc.want)
		}
	}
	if _, _, err := runCmd(t, "", "inject"); err == nil {
		t.Error("inject without -f: no error")
	}
	if _, _, err := runCmd(t, "", "inject", "-h"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("inject -h: %v", err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// normJSON re-encodes JSON so that equal documents compare equal.
func normJSON(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return string(must(json.Marshal(v)))
}

// build-config prints what the builder's golden files hold, for every VirtualDatabase of every
// input of internal/controller/builder/testdata, and the daemon's configuration with -daemon.
func TestBuildConfigMatchesBuilderGoldens(t *testing.T) {
	inputs, err := filepath.Glob("../../internal/controller/builder/testdata/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no builder testdata: %v", err)
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			var golden struct {
				Proxy map[string]struct {
					Config   json.RawMessage   `json:"config"`
					Problems []json.RawMessage `json:"problems"`
				} `json:"proxy"`
				Daemon struct {
					Config   json.RawMessage   `json:"config"`
					Problems []json.RawMessage `json:"problems"`
				} `json:"daemon"`
			}
			if err := json.Unmarshal(must(os.ReadFile(strings.TrimSuffix(in, ".yaml")+".json")), &golden); err != nil {
				t.Fatal(err)
			}
			for key, want := range golden.Proxy {
				ns, name, _ := strings.Cut(key, "/")
				out, stderr, err := runCmd(t, "", "build-config", "-f", in, "-n", ns, "-name", name)
				if (err != nil) != (len(want.Problems) > 0) {
					t.Errorf("%s: error %v with %d problems in the golden file; stderr:\n%s", key, err, len(want.Problems), stderr)
				}
				if strings.Count(stderr, "problem: ") != len(want.Problems) {
					t.Errorf("%s: stderr %q, want %d problems", key, stderr, len(want.Problems))
				}
				if string(want.Config) == "null" {
					continue
				}
				if got, w := normJSON(t, []byte(out)), normJSON(t, want.Config); got != w {
					t.Errorf("%s: build-config printed\n%s\nthe golden file has\n%s", key, got, w)
				}
			}
			out, _, err := runCmd(t, "", "build-config", "-daemon", "-f", in)
			if (err != nil) != (len(golden.Daemon.Problems) > 0) {
				t.Errorf("-daemon: error %v with %d problems in the golden file", err, len(golden.Daemon.Problems))
			}
			if string(golden.Daemon.Config) != "null" && len(golden.Daemon.Config) > 0 {
				if got, w := normJSON(t, []byte(out)), normJSON(t, golden.Daemon.Config); got != w {
					t.Errorf("-daemon printed\n%s\nthe golden file has\n%s", got, w)
				}
			}
		})
	}
}

func TestBuildConfigChoosesTheVirtualDatabase(t *testing.T) {
	objs := `apiVersion: core.database-mesh.io/v1alpha1
kind: VirtualDatabase
metadata: {name: shop}
spec:
  services:
  - name: main
    trafficStrategy: ts
    databaseMySQL: {user: app, password: app, db: app}
---
apiVersion: core.database-mesh.io/v1alpha1
kind: TrafficStrategy
metadata: {name: ts}
spec:
  loadBalance: {simpleLoadBalance: {kind: roundrobin}}
---
apiVersion: core.database-mesh.io/v1alpha1
kind: DatabaseEndpoint
metadata: {name: db}
spec:
  database:
    MySQL: {host: mariadb, port: 3306, user: root, password: pw, db: app}
---
apiVersion: v1
kind: Service
metadata: {name: ignored}
`
	out, stderr, err := runCmd(t, objs, "build-config", "-f", "-")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	var cfg struct {
		MySQL struct {
			Node []struct {
				Name string `json:"name"`
				Host string `json:"host"`
			} `json:"node"`
		} `json:"mysql"`
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil || len(cfg.MySQL.Node) != 1 || cfg.MySQL.Node[0].Host != "mariadb" {
		t.Fatalf("%v: %s", err, out)
	}
	for _, tc := range []struct {
		in   string
		args []string
		want string
	}{
		{objs, []string{"-name", "other"}, "no VirtualDatabase other"},
		{objs, []string{"-n", "prod"}, "in namespace prod"},
		{objs + "---\n" + strings.Replace(strings.SplitN(objs, "---", 2)[0], "name: shop", "name: cart", 1), nil, "several VirtualDatabases (default/cart, default/shop)"},
		{"kind: VirtualDatabase\nmetadata: {name: x}\nspec: {servicez: []}\n", nil, "unknown field"},
	} {
		_, _, err := runCmd(t, tc.in, append([]string{"build-config", "-f", "-"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, _, err := runCmd(t, "", "build-config"); err == nil || !strings.Contains(err.Error(), "-f") {
		t.Errorf("without -f: %v", err)
	}
}

// The feature pages' Kubernetes examples (docs/examples) build without problems.
func TestDocsExamplesBuild(t *testing.T) {
	files, err := filepath.Glob("../../docs/examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs/examples: %v", err)
	}
	for _, f := range files {
		args := []string{"build-config", "-f", f}
		if strings.HasSuffix(f, "qos.yaml") {
			args = append(args, "-daemon")
		}
		out, stderr, err := runCmd(t, "", args...)
		if err != nil || !json.Valid([]byte(out)) {
			t.Errorf("%s: %v\n%s", f, err, stderr)
		}
	}
}
