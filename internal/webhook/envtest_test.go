package webhook

// TestInjectionThroughAPIServer runs the webhook behind a real kube-apiserver (controller-runtime
// envtest): the API server must reach it over TLS with the caBundle CertManager wrote, so this is
// the end-to-end proof that the certificate works. The binaries come from hack/envtest.sh:
//
//	KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./internal/webhook/
//
// `make test` sets KUBEBUILDER_ASSETS. Without it the test skips locally and fails in CI.

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/database-mesh/pisanix-go/internal/inject"
)

const (
	injectLabel = "pisanix.io/inject"
	nativeLabel = "pisanix-test/native" // routes a pod to the native-sidecar webhook
	proxyImage  = "pisanixio/proxy:envtest"
)

// needAPIServer skips (or fails in CI) without KUBEBUILDER_ASSETS.
func needAPIServer(t *testing.T) {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") != "" {
		return
	}
	msg := "KUBEBUILDER_ASSETS is not set: this test needs kube-apiserver and etcd; run `make test`, " +
		"or KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./internal/webhook/"
	if ci := os.Getenv("CI"); ci != "" && ci != "false" {
		t.Fatal("CI: " + msg)
	}
	t.Skip(msg)
}

func startAPIServer(t *testing.T) client.Client {
	t.Helper()
	ctrllog.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	env := &envtest.Environment{}
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		env.ControlPlaneStartTimeout = 60 * time.Second // a loaded 2-core machine is slow
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("envtest start: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("envtest stop: %v", err)
		}
	})
	c, err := client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func namespace(ctx context.Context, t *testing.T, c client.Client, name string, labels map[string]string) {
	t.Helper()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

// testWebhooks returns the MutatingWebhookConfiguration of the test: pods labelled
// pisanix.io/inject=enabled in namespaces labelled the same go to the standard webhook at url, or,
// when also labelled pisanix-test/native=true, to the native-sidecar webhook at nativeURL. No
// caBundle: CertManager writes it.
func testWebhooks(name, url, nativeURL string) *admissionregistrationv1.MutatingWebhookConfiguration {
	none := admissionregistrationv1.SideEffectClassNone
	fail := admissionregistrationv1.Fail
	timeout := int32(10)
	enabled := &metav1.LabelSelector{MatchLabels: map[string]string{injectLabel: "enabled"}}
	rules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"},
			Resources: []string{"pods"}},
	}}
	wh := func(name, url string, objects *metav1.LabelSelector) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{
			Name:                    name,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url},
			Rules:                   rules,
			NamespaceSelector:       enabled,
			ObjectSelector:          objects,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			FailurePolicy:           &fail,
			TimeoutSeconds:          &timeout,
		}
	}
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			wh("inject.pisanix.io", url, &metav1.LabelSelector{
				MatchLabels:      map[string]string{injectLabel: "enabled"},
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: nativeLabel, Operator: metav1.LabelSelectorOpDoesNotExist}},
			}),
			wh("native.inject.pisanix.io", nativeURL, &metav1.LabelSelector{
				MatchLabels: map[string]string{injectLabel: "enabled", nativeLabel: "true"},
			}),
		},
	}
}

// appPod is a ReplicaSet's pod of the Deployment "shop" (as the ReplicaSet controller creates
// them: generateName and an owner reference).
func appPod(ns string, labels map[string]string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "shop-7d4b9c8f5-", Namespace: ns, Labels: labels,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet",
			Name: "shop-7d4b9c8f5", UID: "6b1e0c1c-0000-4000-8000-000000000001"}},
	}}
	for _, name := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: name, Image: name + ":1"})
	}
	return p
}

func containerNames(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// total is the number of requests a webhook answered.
func total(m *inject.Metrics) float64 {
	var n float64
	for _, r := range []string{inject.ResultInjected, inject.ResultSkipped, inject.ResultError} {
		n += testutil.ToFloat64(m.Requests(r))
	}
	return n
}

// checkSidecar checks the injected pisa-proxy container.
func checkSidecar(t *testing.T, c *corev1.Container, ns string, native bool) {
	t.Helper()
	if c.Name != inject.ContainerName || c.Image != proxyImage || !slices.Equal(c.Args, []string{"sidecar"}) {
		t.Errorf("sidecar %s image %s args %v", c.Name, c.Image, c.Args)
	}
	env := map[string]corev1.EnvVar{}
	var names []string
	for _, e := range c.Env {
		env[e.Name] = e
		names = append(names, e.Name)
	}
	wantNames := []string{"PISA_CONTROLLER_SERVICE", "PISA_CONTROLLER_NAMESPACE", "PISA_DEPLOYED_NAMESPACE",
		"PISA_DEPLOYED_NAME", "PISA_PROXY_ADMIN_LISTEN_HOST", "PISA_PROXY_ADMIN_LISTEN_PORT",
		"PISA_PROXY_ADMIN_LOG_LEVEL", "POD_NAME", "POD_UID"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("env %v, want %v", names, wantNames)
	}
	for name, want := range map[string]string{
		"PISA_CONTROLLER_SERVICE": inject.DefaultControllerService, "PISA_CONTROLLER_NAMESPACE": ns,
		"PISA_DEPLOYED_NAME": "shop", "PISA_PROXY_ADMIN_LISTEN_HOST": "0.0.0.0",
		"PISA_PROXY_ADMIN_LISTEN_PORT": "5591", "PISA_PROXY_ADMIN_LOG_LEVEL": "INFO",
	} {
		if env[name].Value != want {
			t.Errorf("%s = %q, want %q", name, env[name].Value, want)
		}
	}
	for name, path := range map[string]string{"PISA_DEPLOYED_NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name",
		"POD_UID": "metadata.uid"} {
		if vf := env[name].ValueFrom; vf == nil || vf.FieldRef == nil || vf.FieldRef.FieldPath != path {
			t.Errorf("%s valueFrom %+v, want fieldRef %s", name, vf, path)
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != inject.AdminPortName || c.Ports[0].ContainerPort != 5591 ||
		c.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("ports %+v", c.Ports)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" ||
		p.HTTPGet.Port.IntValue() != 5591 || p.PeriodSeconds != 5 {
		t.Errorf("readiness probe %+v", p)
	}
	if isNative := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways; isNative != native {
		t.Errorf("restartPolicy %v, native %v", c.RestartPolicy, native)
	}
}

func TestInjectionThroughAPIServer(t *testing.T) {
	needAPIServer(t)
	c := startAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const ctlNS, appNS, plainNS, mwcName = "pisa-system", "shop", "plain", "pisa-controller-envtest"
	namespace(ctx, t, c, ctlNS, nil)
	namespace(ctx, t, c, appNS, map[string]string{injectLabel: "enabled"})
	namespace(ctx, t, c, plainNS, nil)

	// Two servers share one CertManager: the standard sidecar and the native one.
	cm := &CertManager{Client: c, Namespace: ctlNS, DNSNames: ServiceDNSNames("pisa-controller", ctlNS),
		IPAddresses: localhost, WebhookConfigName: mwcName, Logger: quiet}
	std, native := inject.NewMetrics(), inject.NewMetrics()
	stdAddr, _ := startServer(t, Options{Certs: cm,
		Inject: inject.Options{Image: proxyImage, ControllerNamespace: ctlNS, Metrics: std}})
	nativeAddr, _ := startServer(t, Options{Certs: cm,
		Inject: inject.Options{Image: proxyImage, ControllerNamespace: ctlNS, NativeSidecar: true, Metrics: native}})
	stdURL, nativeURL := "https://"+stdAddr, "https://"+nativeAddr

	mwc := testWebhooks(mwcName, stdURL+MutatePath, nativeURL+MutatePath)
	if err := c.Create(ctx, mwc); err != nil {
		t.Fatalf("create MutatingWebhookConfiguration: %v", err)
	}
	if err := cm.Ensure(ctx); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	var secret corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ctlNS, Name: DefaultSecretName}, &secret); err != nil {
		t.Fatalf("Secret: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(mwc), mwc); err != nil {
		t.Fatal(err)
	}
	for _, wh := range mwc.Webhooks {
		if len(wh.ClientConfig.CABundle) == 0 || !bytes.Equal(wh.ClientConfig.CABundle, secret.Data[KeyCA]) {
			t.Fatalf("webhook %s: caBundle not the Secret's ca.crt", wh.Name)
		}
	}
	verifySecret(t, &secret, "127.0.0.1", time.Now())
	verifySecret(t, &secret, "pisa-controller.pisa-system.svc", time.Now())

	// CertManager as a Runnable, and a second replica: both take the same Secret.
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- cm.Start(runCtx) }()
	defer func() {
		stopRun()
		if err := <-runDone; err != nil {
			t.Errorf("CertManager.Start: %v", err)
		}
	}()
	replica := &CertManager{Client: c, Namespace: ctlNS, DNSNames: cm.DNSNames, IPAddresses: localhost,
		WebhookConfigName: mwcName, Logger: quiet}
	if err := replica.Ensure(ctx); err != nil {
		t.Fatalf("replica Ensure: %v", err)
	}
	var again corev1.Secret
	if err := c.Get(ctx, client.ObjectKeyFromObject(&secret), &again); err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != secret.ResourceVersion || !loaded(t, replica).Equal(loaded(t, cm)) {
		t.Fatal("the second replica did not reuse the Secret")
	}

	create := func(pod *corev1.Pod) (*corev1.Pod, error) {
		err := c.Create(ctx, pod)
		return pod, err
	}

	// 1. Injected. The API server picks the webhook configuration up asynchronously: retry
	// until the pod comes back injected, for at most 10 s.
	labels := map[string]string{injectLabel: "enabled"}
	var pod *corev1.Pod
	deadline := time.Now().Add(10 * time.Second)
	for attempt := 1; ; attempt++ {
		var err error
		pod, err = create(appPod(appNS, labels, "app"))
		if err == nil && len(pod.Spec.Containers) == 2 {
			break
		}
		state := fmt.Sprintf("create error: %v", err)
		if err == nil {
			state = fmt.Sprintf("pod created with containers %v (webhook not called yet?)", containerNames(pod.Spec.Containers))
			_ = c.Delete(ctx, pod)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no injected pod after %d attempts in 10 s; last: %s; webhook requests: %v",
				attempt, state, total(std))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if names := containerNames(pod.Spec.Containers); !slices.Equal(names, []string{"app", inject.ContainerName}) {
		t.Fatalf("containers %v", names)
	}
	checkSidecar(t, &pod.Spec.Containers[1], ctlNS, false)
	if len(pod.Spec.InitContainers) != 0 {
		t.Errorf("init containers %v", containerNames(pod.Spec.InitContainers))
	}
	if testutil.ToFloat64(std.Requests(inject.ResultInjected)) < 1 {
		t.Error("injected counter not incremented")
	}

	// 2. A labelled pod in a namespace without the label: the webhook is not called.
	before := total(std) + total(native)
	pod, err := create(appPod(plainNS, labels, "app"))
	if err != nil {
		t.Fatalf("pod in %s: %v", plainNS, err)
	}
	if names := containerNames(pod.Spec.Containers); !slices.Equal(names, []string{"app"}) || len(pod.Spec.InitContainers) != 0 {
		t.Errorf("pod in an unlabelled namespace changed: %v", names)
	}
	// 3. An unlabelled pod in the labelled namespace: not called either.
	pod, err = create(appPod(appNS, nil, "app"))
	if err != nil {
		t.Fatalf("unlabelled pod: %v", err)
	}
	if names := containerNames(pod.Spec.Containers); !slices.Equal(names, []string{"app"}) {
		t.Errorf("unlabelled pod changed: %v", names)
	}
	if after := total(std) + total(native); after != before {
		t.Errorf("webhook called %v times for pods outside its selectors", after-before)
	}

	// 4. A pod that already has the sidecar: the webhook is called and admits it unchanged.
	skipped := testutil.ToFloat64(std.Requests(inject.ResultSkipped))
	pod, err = create(appPod(appNS, labels, inject.ContainerName))
	if err != nil {
		t.Fatalf("pod with the sidecar: %v", err)
	}
	if names := containerNames(pod.Spec.Containers); !slices.Equal(names, []string{inject.ContainerName}) {
		t.Errorf("pod with the sidecar: containers %v", names)
	}
	if got := testutil.ToFloat64(std.Requests(inject.ResultSkipped)); got != skipped+1 {
		t.Errorf("skipped counter %v, want %v", got, skipped+1)
	}

	// 5. Native sidecar: first of the init containers, restartPolicy Always.
	nl := map[string]string{injectLabel: "enabled", nativeLabel: "true"}
	np := appPod(appNS, nl, "app")
	np.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "migrate:1"}}
	pod, err = create(np)
	if err != nil {
		t.Fatalf("native pod: %v", err)
	}
	if names := containerNames(pod.Spec.InitContainers); !slices.Equal(names, []string{inject.ContainerName, "migrate"}) {
		t.Fatalf("native pod init containers %v", names)
	}
	if names := containerNames(pod.Spec.Containers); !slices.Equal(names, []string{"app"}) {
		t.Errorf("native pod containers %v", names)
	}
	checkSidecar(t, &pod.Spec.InitContainers[0], ctlNS, true)
	if testutil.ToFloat64(native.Requests(inject.ResultInjected)) != 1 {
		t.Errorf("native webhook injected %v pods, want 1", testutil.ToFloat64(native.Requests(inject.ResultInjected)))
	}

	// The API server stored what it returned.
	var stored corev1.Pod
	if err := c.Get(ctx, client.ObjectKeyFromObject(pod), &stored); err != nil {
		t.Fatal(err)
	}
	if names := containerNames(stored.Spec.InitContainers); !slices.Equal(names, []string{inject.ContainerName, "migrate"}) {
		t.Errorf("stored native pod init containers %v", names)
	}
	if errs := testutil.ToFloat64(std.Requests(inject.ResultError)) + testutil.ToFloat64(native.Requests(inject.ResultError)); errs != 0 {
		t.Errorf("%v webhook errors", errs)
	}
}
