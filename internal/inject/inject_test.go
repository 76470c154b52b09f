package inject

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

func owned(kind, owner, generateName string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: generateName}}
	if kind != "-" {
		p.OwnerReferences = []metav1.OwnerReference{{Kind: kind, Name: owner}}
	}
	return p
}

func TestDeployedName(t *testing.T) {
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"no owner: pod name", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "standalone"}}, "standalone"},
		{"no owner, generateName only", owned("-", "", "adhoc-"), "adhoc"},
		{"owner without kind", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p",
			OwnerReferences: []metav1.OwnerReference{{Name: "x"}}}}, "p"},
		{"ReplicaSet", owned("ReplicaSet", "a-b-c-6668ddbf55", "a-b-c-6668ddbf55-"), "a-b-c"},
		{"ReplicaSet without generateName", owned("ReplicaSet", "catalogue-7d4b9c8f5", ""), "catalogue"},
		{"StatefulSet", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0",
			OwnerReferences: []metav1.OwnerReference{{Kind: "StatefulSet", Name: "web"}}}}, "web"},
		{"StatefulSet with generateName", owned("StatefulSet", "a-b", "a-b-"), "a-b"},
		{"DaemonSet", owned("DaemonSet", "agent", "agent-"), "agent"},
		{"Job (Pisanix quirk: myjob- unchanged)", owned("Job", "myjob", "myjob-"), "myjob"},
		{"Job without owner name", owned("Job", "", "my-job-"), "my-job"},
		{"CronJob's Job", owned("Job", "backup-28934211", "backup-28934211-"), "backup"},
		{"Job with a short number", owned("Job", "migrate-2024", "migrate-2024-"), "migrate-2024"},
		{"other kind: owner name", owned("Rollout", "canary", "canary-xyz-"), "canary"},
		{"annotation wins", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p",
			Annotations:     map[string]string{DeployedNameAnnotation: "catalogue"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "x-1"}}}}, "catalogue"},
	} {
		if got := DeployedName(tc.pod); got != tc.want {
			t.Errorf("%s: DeployedName = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// The standard patch, byte for byte: Pisanix's single op with its seven variables in order,
// plus POD_NAME, POD_UID and the readiness probe.
func TestPatchShape(t *testing.T) {
	pod := owned("ReplicaSet", "catalogue-6668ddbf55", "catalogue-6668ddbf55-")
	pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "app"}}
	patch, changed, err := Inject(pod, Options{Image: "pisanixio/proxy:v0.3.2", ControllerService: "pisa-controller",
		ControllerNamespace: "pisa-system"})
	if err != nil || !changed {
		t.Fatalf("Inject: %v %v", changed, err)
	}
	want := `[{"op":"add","path":"/spec/containers/-","value":{"name":"pisa-proxy","image":"pisanixio/proxy:v0.3.2",` +
		`"args":["sidecar"],"ports":[{"name":"pisa-admin","containerPort":5591,"protocol":"TCP"}],"env":[` +
		`{"name":"PISA_CONTROLLER_SERVICE","value":"pisa-controller"},` +
		`{"name":"PISA_CONTROLLER_NAMESPACE","value":"pisa-system"},` +
		`{"name":"PISA_DEPLOYED_NAMESPACE","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}},` +
		`{"name":"PISA_DEPLOYED_NAME","value":"catalogue"},` +
		`{"name":"PISA_PROXY_ADMIN_LISTEN_HOST","value":"0.0.0.0"},` +
		`{"name":"PISA_PROXY_ADMIN_LISTEN_PORT","value":"5591"},` +
		`{"name":"PISA_PROXY_ADMIN_LOG_LEVEL","value":"INFO"},` +
		`{"name":"POD_NAME","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.name"}}},` +
		`{"name":"POD_UID","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.uid"}}}],` +
		`"resources":{},"volumeMounts":[{"name":"pisa-proxy-state","mountPath":"/var/lib/pisa-proxy"}],` +
		`"readinessProbe":{"httpGet":{"path":"/readyz","port":5591,"scheme":"HTTP"},"periodSeconds":5,"failureThreshold":3}}},` +
		`{"op":"add","path":"/spec/volumes","value":[{"name":"pisa-proxy-state","emptyDir":{}}]}]`
	if string(patch) != want {
		t.Fatalf("patch:\n%s\nwant:\n%s", patch, want)
	}
}

// apply applies patch to pod with a real RFC 6902 implementation.
func apply(t *testing.T, pod *corev1.Pod, patch []byte) *corev1.Pod {
	t.Helper()
	doc, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("decode patch: %v", err)
	}
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("apply patch %s to %s: %v", patch, doc, err)
	}
	var res corev1.Pod
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestInjectApplyAndIdempotency(t *testing.T) {
	app := corev1.Container{Name: "app", Image: "app"}
	initC := corev1.Container{Name: "migrate", Image: "migrate"}
	for _, tc := range []struct {
		name                     string
		spec                     corev1.PodSpec
		opts                     Options
		wantContainers, wantInit string
	}{
		{"containers", corev1.PodSpec{Containers: []corev1.Container{app}}, Options{}, "app,pisa-proxy", ""},
		{"no containers field", corev1.PodSpec{}, Options{}, "pisa-proxy", ""},
		{"native, no init containers", corev1.PodSpec{Containers: []corev1.Container{app}}, Options{NativeSidecar: true}, "app", "pisa-proxy"},
		{"native, before other init containers", corev1.PodSpec{Containers: []corev1.Container{app},
			InitContainers: []corev1.Container{initC}}, Options{NativeSidecar: true}, "app", "pisa-proxy,migrate"},
		{"init containers kept", corev1.PodSpec{Containers: []corev1.Container{app},
			InitContainers: []corev1.Container{initC}}, Options{}, "app,pisa-proxy", "migrate"},
		{"volumes kept", corev1.PodSpec{Containers: []corev1.Container{app},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}}, Options{}, "app,pisa-proxy", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "shop-0", Namespace: "demo",
				OwnerReferences: []metav1.OwnerReference{{Kind: "StatefulSet", Name: "shop"}}}, Spec: tc.spec}
			patch, changed, err := Inject(pod, tc.opts)
			if err != nil || !changed {
				t.Fatalf("Inject: %v %v", changed, err)
			}
			got := apply(t, pod, patch)
			if s := strings.Join(names(got.Spec.Containers), ","); s != tc.wantContainers {
				t.Errorf("containers %s, want %s", s, tc.wantContainers)
			}
			if s := strings.Join(names(got.Spec.InitContainers), ","); s != tc.wantInit {
				t.Errorf("init containers %s, want %s", s, tc.wantInit)
			}
			var sc *corev1.Container
			for _, cs := range [][]corev1.Container{got.Spec.Containers, got.Spec.InitContainers} {
				for i := range cs {
					if cs[i].Name == ContainerName {
						sc = &cs[i]
					}
				}
			}
			if sc.Image != DefaultImage || sc.Env[3].Value != "shop" || sc.ReadinessProbe == nil {
				t.Errorf("sidecar: %+v", sc)
			}
			// The XA decision log's directory is an emptyDir of the pod.
			if len(sc.VolumeMounts) != 1 || sc.VolumeMounts[0].MountPath != StateDir ||
				len(got.Spec.Volumes) == 0 || got.Spec.Volumes[len(got.Spec.Volumes)-1].EmptyDir == nil {
				t.Errorf("state volume: mounts %+v, volumes %+v", sc.VolumeMounts, got.Spec.Volumes)
			}
			if native := sc.RestartPolicy != nil && *sc.RestartPolicy == corev1.ContainerRestartPolicyAlways; native != tc.opts.NativeSidecar {
				t.Errorf("restartPolicy %v with NativeSidecar=%v", sc.RestartPolicy, tc.opts.NativeSidecar)
			}
			// A native sidecar holds the containers after it until /readyz passes.
			if sp := sc.StartupProbe; tc.opts.NativeSidecar != (sp != nil && sp.HTTPGet != nil && sp.HTTPGet.Path == "/readyz" && sp.PeriodSeconds == 1) {
				t.Errorf("startupProbe %+v with NativeSidecar=%v", sp, tc.opts.NativeSidecar)
			}
			// Injected once: a second call changes nothing, in either mode.
			for _, native := range []bool{false, true} {
				p2, changed, err := Inject(got, Options{NativeSidecar: native})
				if err != nil || changed || p2 != nil {
					t.Errorf("second Inject (native=%v): %s %v %v", native, p2, changed, err)
				}
			}
		})
	}
}

func TestInjectOptions(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
	patch, _, err := Inject(pod, Options{AdminPort: 6000, LogLevel: "DEBUG", ControllerHost: "ctl:8080",
		ImagePullPolicy: corev1.PullIfNotPresent, PisanixMetrics: true})
	if err != nil {
		t.Fatal(err)
	}
	c := apply(t, pod, patch).Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if c.Ports[0].ContainerPort != 6000 || c.ReadinessProbe.HTTPGet.Port.IntValue() != 6000 ||
		env["PISA_PROXY_ADMIN_LISTEN_PORT"] != "6000" || env["PISA_PROXY_ADMIN_LOG_LEVEL"] != "DEBUG" ||
		env["PISA_CONTROLLER_HOST"] != "ctl:8080" || c.ImagePullPolicy != corev1.PullIfNotPresent ||
		env["PISA_PROXY_PISANIX_METRICS"] != "true" {
		t.Errorf("container: %+v", c)
	}
	if _, _, err := Inject(&corev1.Pod{}, Options{}); err == nil {
		t.Error("a pod without any name must be an error")
	}
}

func review(t *testing.T, h http.Handler, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, int) {
	t.Helper()
	body, _ := json.Marshal(admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1",
		Kind: "AdmissionReview"}, Request: req})
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Post(srv.URL+MutatePath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil {
		t.Fatalf("review: %s", data)
	}
	if out.Response.UID != req.UID {
		t.Errorf("uid %q, want %q", out.Response.UID, req.UID)
	}
	return out.Response, resp.StatusCode
}

func podRequest(pod *corev1.Pod) *admissionv1.AdmissionRequest {
	raw, _ := json.Marshal(pod)
	return &admissionv1.AdmissionRequest{UID: types.UID("uid-1"), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource: podResource, Namespace: "demo", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}}
}

func TestHandler(t *testing.T) {
	m := NewMetrics()
	h := Handler(Options{Image: "img", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m})
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "shop-7d4b9c8f5-",
		OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "shop-7d4b9c8f5"}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}

	resp, _ := review(t, h, podRequest(pod))
	if !resp.Allowed || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("response: %+v", resp)
	}
	got := apply(t, pod, resp.Patch)
	if names(got.Spec.Containers)[1] != ContainerName || got.Spec.Containers[1].Env[3].Value != "shop" {
		t.Fatalf("patched pod: %+v", got.Spec.Containers)
	}

	// Already injected: allowed, no patch (Pisanix answered 500 and the pod was rejected).
	resp, _ = review(t, h, podRequest(got))
	if !resp.Allowed || resp.Patch != nil || resp.PatchType != nil {
		t.Fatalf("re-injection: %+v", resp)
	}

	// Not a pod creation: allowed untouched.
	other := podRequest(pod)
	other.Resource = metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	if resp, _ := review(t, h, other); !resp.Allowed || resp.Patch != nil {
		t.Fatalf("deployment: %+v", resp)
	}
	update := podRequest(pod)
	update.Operation = admissionv1.Update
	if resp, _ := review(t, h, update); !resp.Allowed || resp.Patch != nil {
		t.Fatalf("update: %+v", resp)
	}
	sub := podRequest(pod)
	sub.SubResource = "status"
	if resp, _ := review(t, h, sub); !resp.Allowed || resp.Patch != nil {
		t.Fatalf("subresource: %+v", resp)
	}

	// A pod that does not decode: refused with a reason.
	bad := podRequest(pod)
	bad.Object.Raw = []byte(`{"spec":{"containers":"nope"}}`)
	if resp, _ := review(t, h, bad); resp.Allowed || resp.Result == nil || resp.Result.Code != 400 ||
		!strings.Contains(resp.Result.Message, "decode pod") {
		t.Fatalf("bad pod: %+v", resp)
	}
	// A pod without any name: refused.
	if resp, _ := review(t, h, podRequest(&corev1.Pod{})); resp.Allowed || !strings.Contains(resp.Result.Message, DeployedNameAnnotation) {
		t.Fatalf("nameless pod: %+v", resp)
	}
	// The request's name fills an empty pod name.
	named := podRequest(&corev1.Pod{})
	named.Name = "solo"
	if resp, _ := review(t, h, named); !resp.Allowed || !bytes.Contains(resp.Patch, []byte(`"value":"solo"`)) {
		t.Fatalf("named by request: %+v", resp)
	}

	// Two injected, four admitted unchanged (re-injection, deployment, update, subresource),
	// two refused.
	wantCounts(t, m, 2, 4, 2)
}

// wantCounts checks pisa_controller_webhook_requests_total by result.
func wantCounts(t *testing.T, m *Metrics, injected, skipped, errors float64) {
	t.Helper()
	for r, want := range map[string]float64{ResultInjected: injected, ResultSkipped: skipped, ResultError: errors} {
		if got := testutil.ToFloat64(m.Requests(r)); got != want {
			t.Errorf("pisa_controller_webhook_requests_total{result=%q} = %v, want %v", r, got, want)
		}
	}
}

func TestMetrics(t *testing.T) {
	m := NewMetrics()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(m); err != nil {
		t.Fatal(err)
	}
	// Every result is exported from the start, at 0.
	want := `
# HELP pisa_controller_webhook_requests_total Admission requests answered by the sidecar injection webhook, by result: injected (patched), skipped (admitted unchanged) or error (refused or malformed).
# TYPE pisa_controller_webhook_requests_total counter
pisa_controller_webhook_requests_total{result="error"} 0
pisa_controller_webhook_requests_total{result="injected"} 0
pisa_controller_webhook_requests_total{result="skipped"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(m); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	// Without Metrics nothing is counted and nothing panics.
	h := Handler(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if resp, _ := review(t, h, podRequest(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}})); !resp.Allowed {
		t.Fatalf("response: %+v", resp)
	}
}

// Malformed requests: 405 for a method other than POST; otherwise controller-runtime's codec
// answers HTTP 200 with a refusing review whose status carries the code.
func TestHandlerBadRequests(t *testing.T) {
	m := NewMetrics()
	srv := httptest.NewServer(Handler(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m}))
	defer srv.Close()
	for _, tc := range []struct {
		method, contentType, body string
		want                      int // HTTP status for 405, else response.status.code
	}{
		{http.MethodGet, "", "", http.StatusMethodNotAllowed},
		{http.MethodPost, "application/json", "", http.StatusBadRequest},
		{http.MethodPost, "application/json", "not json", http.StatusBadRequest},
		{http.MethodPost, "text/plain", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u"}}`, http.StatusBadRequest},
		{http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, http.StatusBadRequest},
		{http.MethodPost, "application/json", strings.Repeat(" ", 8<<20), http.StatusRequestEntityTooLarge},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL, strings.NewReader(tc.body))
		if tc.contentType != "" {
			req.Header.Set("Content-Type", tc.contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		code := resp.StatusCode
		if code == http.StatusOK {
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(data, &out); err != nil || out.Response == nil || out.Response.Allowed || out.Response.Result == nil {
				t.Errorf("%s %.20q: not a refusing review: %v %s", tc.method, tc.body, err, data)
				continue
			}
			code = int(out.Response.Result.Code)
		}
		if code != tc.want {
			t.Errorf("%s %.20q: %d, want %d (%s)", tc.method, tc.body, code, tc.want, data)
		}
	}
	wantCounts(t, m, 0, 0, 6)
}
