package inject

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	sigsjson "sigs.k8s.io/json"
)

// FuzzHandler: whatever the body, the webhook answers 200 with an AdmissionReview and never
// panics; an answered review echoes the request's UID (decoded as the API machinery does:
// case-sensitive keys).
func FuzzHandler(f *testing.F) {
	pod, _ := json.Marshal(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "shop-1", Namespace: "demo",
		GenerateName: "shop-7d4b9c8f5-"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}})
	review, _ := json.Marshal(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u-1", Operation: admissionv1.Create, Namespace: "demo",
			Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Object: runtime.RawExtension{Raw: pod}},
	})
	f.Add(review)
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","object":{"spec":{"containers":null}}}}`))
	f.Add([]byte(`{"request":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte{})
	h := Handler(Options{Logger: slog.New(slog.DiscardHandler), Metrics: NewMetrics()})
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/mutate", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()
		out, _ := io.ReadAll(res.Body)
		switch {
		case res.StatusCode == http.StatusOK:
			var got admissionv1.AdmissionReview
			if err := json.Unmarshal(out, &got); err != nil || got.Response == nil {
				t.Fatalf("200 without a review: %v %q", err, out)
			}
			var in admissionv1.AdmissionReview
			if sigsjson.UnmarshalCaseSensitivePreserveInts(body, &in) == nil && in.Request != nil && got.Response.UID != in.Request.UID {
				t.Fatalf("response UID %q, request UID %q", got.Response.UID, in.Request.UID)
			}
		default:
			t.Fatalf("status %d: %q", res.StatusCode, out)
		}
	})
}
