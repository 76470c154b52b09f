package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/database-mesh/pisanix-go/internal/testutil/kubetest"
)

// TestControllerInjectsSidecar runs the pisa-controller binary with its webhook in self-managed
// certificate mode behind the API server: the controller creates its certificate Secret and
// patches the caBundle, and a pod created in a labelled namespace comes back with the sidecar.
func TestControllerInjectsSidecar(t *testing.T) {
	kubetest.NeedAPIServer(t, startErr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	system := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "pisa-system-"}}
	if err := k8s.Create(ctx, system); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	mwcName := "pisa-e2e-" + system.Name
	url := fmt.Sprintf("https://127.0.0.1:%d/apis/admission.database-mesh.io/v1alpha1/mutate", port)
	none, fail, timeout := admissionregistrationv1.SideEffectClassNone, admissionregistrationv1.Fail, int32(10)
	enabled := &metav1.LabelSelector{MatchLabels: map[string]string{"pisanix.io/inject": "enabled"}}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: mwcName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "inject.pisanix.io",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"},
					Resources: []string{"pods"}},
			}},
			NamespaceSelector:       enabled,
			ObjectSelector:          enabled,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			FailurePolicy:           &fail,
			TimeoutSeconds:          &timeout,
		}},
	}
	if err := k8s.Create(ctx, mwc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), mwc) })

	probe, metricsPort := freePort(t), freePort(t)
	start(t, "pisa-controller", []string{
		"PISA_CONTROLLER_NAMESPACE=" + system.Name,
		"PISA_CONTROLLER_SERVICE=pisa-controller",
		"PISA_PROXY_IMAGE=registry.local/pisa-proxy:e2e",
	},
		"-kubeconfig="+kubeconfig,
		"-proxyConfigsPort="+strconv.Itoa(freePort(t)),
		"-corePort=0",
		"-webhookPort="+strconv.Itoa(port),
		"-webhook-cert-mode=self",
		"-webhook-ip-sans=127.0.0.1",
		"-webhook-configuration="+mwcName,
		"-metrics-bind-address=127.0.0.1:"+strconv.Itoa(metricsPort),
		"-health-probe-bind-address=127.0.0.1:"+strconv.Itoa(probe))
	eventually(t, 60*time.Second, "controller ready (certificate loaded)", func() string {
		if code, body := httpStatus(fmt.Sprintf("http://127.0.0.1:%d/readyz", probe)); code != http.StatusOK {
			return fmt.Sprintf("%d %s", code, body)
		}
		return ""
	})
	// The certificate Secret and the caBundle.
	secret := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: system.Name, Name: "pisa-controller-webhook-cert"}, secret); err != nil {
		t.Fatalf("certificate Secret: %v", err)
	}
	eventually(t, 30*time.Second, "caBundle patched", func() string {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(mwc), mwc); err != nil {
			return err.Error()
		}
		if got := string(mwc.Webhooks[0].ClientConfig.CABundle); got != string(secret.Data["ca.crt"]) {
			return fmt.Sprintf("caBundle %q", got)
		}
		return ""
	})

	apps := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-apps-",
		Labels: map[string]string{"pisanix.io/inject": "enabled"}}}
	if err := k8s.Create(ctx, apps); err != nil {
		t.Fatal(err)
	}
	newPod := func() *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
			GenerateName: "catalogue-5d8f6b7c9-", Namespace: apps.Name,
			Labels: map[string]string{"pisanix.io/inject": "enabled"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet",
				Name: "catalogue-5d8f6b7c9", UID: "6b1e0c1c-0000-4000-8000-000000000002"}},
		}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "catalogue", Image: "weaveworksdemos/catalogue"}}}}
	}
	var pod *corev1.Pod
	// The API server picks up the patched caBundle within moments.
	eventually(t, 20*time.Second, "pod injected", func() string {
		pod = newPod()
		if err := k8s.Create(ctx, pod); err != nil {
			if apierrors.IsInternalError(err) || strings.Contains(err.Error(), "failed calling webhook") {
				return err.Error()
			}
			t.Fatalf("create pod: %v", err)
		}
		if len(pod.Spec.Containers) != 2 {
			_ = k8s.Delete(ctx, pod)
			return fmt.Sprintf("containers %d", len(pod.Spec.Containers))
		}
		return ""
	})
	side := pod.Spec.Containers[1]
	env := map[string]string{}
	for _, e := range side.Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
		}
	}
	if side.Name != "pisa-proxy" || side.Image != "registry.local/pisa-proxy:e2e" || len(side.Args) != 1 ||
		side.Args[0] != "sidecar" || env["PISA_DEPLOYED_NAME"] != "catalogue" || env["PISA_DEPLOYED_NAMESPACE"] != "fieldRef:metadata.namespace" ||
		env["PISA_CONTROLLER_SERVICE"] != "pisa-controller" || env["PISA_CONTROLLER_NAMESPACE"] != system.Name ||
		side.ReadinessProbe == nil {
		t.Fatalf("injected container: %+v", side)
	}

	// The webhook's counter.
	_, metrics := httpStatus(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if !strings.Contains(metrics, `pisa_controller_webhook_requests_total{result="injected"}`) ||
		!strings.Contains(metrics, "pisa_controller_config_watchers") {
		t.Fatalf("metrics lack the controller's series:\n%s", metrics)
	}
}
