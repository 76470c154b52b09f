package inject

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// MutatePath is the webhook path of Pisanix (served behind the APIService
// v1alpha1.admission.database-mesh.io).
const MutatePath = "/apis/admission.database-mesh.io/v1alpha1/mutate"

var podResource = metav1.GroupVersionResource{Group: "", Version: "v1", Resource: "pods"}

// answeredKey marks a request's context with a flag the admission handler sets: a request the
// codec refused before reaching it is counted as an error.
type answeredKey struct{}

// Handler returns the mutating admission webhook: controller-runtime's admission codec
// (admission.Webhook: AdmissionReview v1 or v1beta1 in, the same version out, bodies up to 7 MiB)
// around Review, which answers with the JSON patch of Inject.
//
//   - A request that is not a POST gets HTTP 405. Other malformed requests (no body, not
//     application/json, too large, not an AdmissionReview, no request in it) are answered by
//     a review with allowed=false and the HTTP-like code (400, 413) in response.status, as
//     controller-runtime does.
//   - A request for anything but the creation of a Pod (other resources, subresources, other
//     operations) and an already injected pod are allowed without a patch.
//   - A pod that cannot be decoded, or whose application name cannot be derived, is refused:
//     allowed=false with code 400 and the reason.
//
// Each request is counted in opts.Metrics when it is set.
func Handler(opts Options) http.Handler {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	m := opts.Metrics
	codec := &admission.Webhook{Handler: admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		if answered, ok := ctx.Value(answeredKey{}).(*bool); ok {
			*answered = true
		}
		if req.UID == "" { // no request, or one the API server could not match an answer to
			m.count(ResultError)
			return admission.Errored(http.StatusBadRequest, errors.New("AdmissionReview has no request (or no uid)"))
		}
		resp := Review(&req.AdmissionRequest, opts, logger)
		m.count(resultOf(resp))
		return admission.Response{AdmissionResponse: *resp}
	})}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			m.count(ResultError)
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "admission reviews are POSTed", http.StatusMethodNotAllowed)
			return
		}
		answered := new(bool)
		codec.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), answeredKey{}, answered)))
		if !*answered {
			m.count(ResultError) // refused by the codec (see above)
		}
	})
}

// Review answers one admission request; logger may not be nil.
func Review(req *admissionv1.AdmissionRequest, opts Options, logger *slog.Logger) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	if req.Resource != podResource || req.SubResource != "" || req.Operation != admissionv1.Create {
		return resp
	}
	deny := func(format string, args ...any) *admissionv1.AdmissionResponse {
		msg := fmt.Sprintf(format, args...)
		logger.Warn("pod not injected", "namespace", req.Namespace, "name", req.Name, "error", msg)
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusBadRequest,
			Reason: metav1.StatusReasonBadRequest, Message: "pisa-proxy injection: " + msg}
		return resp
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny("decode pod: %v", err)
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	if pod.Name == "" {
		pod.Name = req.Name
	}
	patch, changed, err := Inject(&pod, opts)
	if err != nil {
		return deny("%v", err)
	}
	if !changed {
		logger.Debug("pod already has the sidecar", "namespace", pod.Namespace, "name", pod.Name)
		return resp
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = patch, &pt
	logger.Info("pisa-proxy injected", "namespace", pod.Namespace, "pod", podName(&pod),
		"deployed_name", DeployedName(&pod), "dry_run", req.DryRun != nil && *req.DryRun)
	return resp
}

// resultOf classifies an answered review for the requests counter.
func resultOf(resp *admissionv1.AdmissionResponse) string {
	switch {
	case !resp.Allowed:
		return ResultError
	case len(resp.Patch) > 0:
		return ResultInjected
	default:
		return ResultSkipped
	}
}

func podName(p *corev1.Pod) string {
	if p.Name != "" {
		return p.Name
	}
	return p.GenerateName
}
