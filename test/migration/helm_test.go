package migration

import (
	"bytes"
	"errors"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// helmBin returns $PISANIX_HELM (make test sets it from hack/tools.sh); the
// test is skipped without it, or fails in CI.
func helmBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("PISANIX_HELM")
	if p == "" {
		msg := "PISANIX_HELM is not set: run `make test`, or PISANIX_HELM=$(hack/tools.sh helm) go test ./test/migration/"
		if ci := os.Getenv("CI"); ci != "" && ci != "false" {
			t.Fatal("CI: " + msg)
		}
		t.Skip(msg)
	}
	return p
}

func helmTemplate(t *testing.T, args ...string) ([]byte, string, error) {
	t.Helper()
	chart := filepath.Join("..", "..", "charts", "pisanix")
	argv := append([]string{"template", "pisa-controller", chart, "-n", "pisa-system", "--kube-version", "1.30.0"}, args...)
	cmd := osexec.Command(helmBin(t), argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	return out, stderr.String(), err
}

// Pisanix's charts/pisa-controller values are honoured: the private
// controller and proxy images, replicas, pull secrets, resources and ports.
func TestHelmPisanixValues(t *testing.T) {
	out, stderr, err := helmTemplate(t, "-f", filepath.Join("testdata", "helm", "pisa-controller-values.yaml"))
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr)
	}
	var dep *appsv1.Deployment
	var svc *corev1.Service
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch u.GetKind() {
		case "Deployment":
			dep = &appsv1.Deployment{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, dep); err != nil {
				t.Fatal(err)
			}
		case "Service":
			svc = &corev1.Service{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, svc); err != nil {
				t.Fatal(err)
			}
		}
	}
	if dep == nil || svc == nil {
		t.Fatalf("no Deployment or Service in\n%s", out)
	}
	if *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2 (replicaCount)", *dep.Spec.Replicas)
	}
	pod := dep.Spec.Template.Spec
	if len(pod.ImagePullSecrets) != 1 || pod.ImagePullSecrets[0].Name != "regcred" {
		t.Errorf("imagePullSecrets %v, want regcred (image.imagePullSecrets)", pod.ImagePullSecrets)
	}
	c := pod.Containers[0]
	if c.Image != "registry.example.com/pisanixio/controller:v0.3.2" || c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("controller image %s %s (image.*)", c.Image, c.ImagePullPolicy)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["PISA_PROXY_PISANIX_METRICS"] != "true" {
		t.Errorf("PISA_PROXY_PISANIX_METRICS %q (proxy.pisanixMetrics)", env["PISA_PROXY_PISANIX_METRICS"])
	}
	if env["PISA_PROXY_IMAGE"] != "registry.example.com/pisanixio/proxy:v0.3.2" {
		t.Errorf("PISA_PROXY_IMAGE %q: the private proxy image is not used (proxyImage.*)", env["PISA_PROXY_IMAGE"])
	}
	if q := c.Resources.Requests[corev1.ResourceCPU]; q.String() != "100m" || c.Resources.Limits != nil {
		t.Errorf("resources %+v (resources)", c.Resources)
	}
	args := strings.Join(c.Args, " ")
	// The chart passes the kebab-case names (Pisanix's camelCase ones are aliases).
	if !strings.Contains(args, "--webhook-port=6443") || !strings.Contains(args, "--proxy-configs-port=8080") {
		t.Errorf("args %s (service.webhookPort, service.proxyConfigsPort)", args)
	}
	ports := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p.Port
	}
	if ports["basic"] != 80 || ports["proxy-configs"] != 8080 {
		t.Errorf("Service ports %v (service.corePort, service.proxyConfigsPort)", ports)
	}
}

// Values the chart does not know are refused, naming the key, instead of
// being accepted and ignored.
func TestHelmUnknownValueRefused(t *testing.T) {
	_, stderr, err := helmTemplate(t, "--set", "proxyImag.repository=x")
	if err == nil || !strings.Contains(stderr, "proxyImag") {
		t.Fatalf("a misspelt key: %v\n%s", err, stderr)
	}
	_, stderr, err = helmTemplate(t, "--set", "service.coreport=81")
	if err == nil || !strings.Contains(stderr, "coreport") {
		t.Fatalf("a misspelt service key: %v\n%s", err, stderr)
	}
}
