package inject

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxReviewBytes bounds an AdmissionReview body (objects are at most ~1.5 MiB in etcd; a review
// may carry two).
const maxReviewBytes = 8 << 20

// MutatePath is the webhook path of Pisanix (served behind the APIService
// v1alpha1.admission.database-mesh.io).
const MutatePath = "/apis/admission.database-mesh.io/v1alpha1/mutate"

var podResource = metav1.GroupVersionResource{Group: "", Version: "v1", Resource: "pods"}

// Handler returns the mutating admission webhook: it reads an AdmissionReview v1 (POST), and
// answers an AdmissionReview v1 whose response carries the JSON patch of Inject.
//
//   - A malformed request (not POST, unreadable or not an AdmissionReview with a request) gets
//     HTTP 400/405/413 with a message.
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
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(msg string, code int) {
			m.count(ResultError)
			http.Error(w, msg, code)
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			fail("admission reviews are POSTed", http.StatusMethodNotAllowed)
			return
		}
		data, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
		if err != nil {
			fail("read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if len(data) > maxReviewBytes {
			fail(fmt.Sprintf("body larger than %d bytes", maxReviewBytes), http.StatusRequestEntityTooLarge)
			return
		}
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(data, &review); err != nil {
			fail("decode AdmissionReview: "+err.Error(), http.StatusBadRequest)
			return
		}
		if review.Request == nil {
			fail("AdmissionReview has no request", http.StatusBadRequest)
			return
		}
		review.Response = Review(review.Request, opts, logger)
		review.Request = nil // not echoed back: the API server only reads the response
		review.APIVersion, review.Kind = admissionv1.SchemeGroupVersion.String(), "AdmissionReview"
		out, err := json.Marshal(&review)
		if err != nil {
			fail("marshal AdmissionReview: "+err.Error(), http.StatusInternalServerError)
			return
		}
		m.count(resultOf(review.Response))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
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
