// Package handover decides, when a pisa-daemon pod stops with --cleanup-on-exit=auto, whether a
// new daemon will take over its node's QoS state: it reads its own pod to find the DaemonSet that
// owns it, then that DaemonSet. A DaemonSet that exists and is not being deleted means a rolling
// update (or a deleted pod) and a successor on this node, which adopts the pinned classes and
// classifier; a DaemonSet that is gone or being deleted means an uninstall, and the daemon removes
// what it created.
//
// It reads object metadata only (k8s.io/client-go/metadata: ownerReferences, deletionTimestamp),
// which needs `get` on pods and on daemonsets.apps in the daemon's namespace.
package handover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"

	"github.com/database-mesh/pisanix-go/internal/backoff"
)

var (
	// PodsResource and DaemonSetsResource are the two resources Check reads.
	PodsResource       = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	DaemonSetsResource = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
)

// InCluster returns a metadata client authenticated with the pod's service account
// (rest.InClusterConfig: KUBERNETES_SERVICE_HOST/PORT and the mounted token). Every request is
// bounded by timeout.
func InCluster(timeout time.Duration, userAgent string) (metadata.Interface, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("no in-cluster Kubernetes configuration: %w", err)
	}
	cfg.Timeout = timeout
	cfg.UserAgent = userAgent
	return metadata.NewForConfig(cfg)
}

// Result is what Check found.
type Result struct {
	// Keep is true when a new daemon will take over: the state is left pinned.
	Keep bool
	// DaemonSet is "<namespace>/<name>" of the pod's owner.
	DaemonSet string
	// Reason says why, for the log.
	Reason string
}

// Owner returns the name of the DaemonSet that owns the pod, and its uid. A pod without a
// DaemonSet owner, or one that cannot be read, is an error.
func Owner(ctx context.Context, c metadata.Interface, namespace, pod string) (name, uid string, err error) {
	if namespace == "" || pod == "" {
		return "", "", errors.New("POD_NAME and POD_NAMESPACE are not set (downward API)")
	}
	var p *metav1.PartialObjectMetadata
	err = retry(ctx, func() error {
		var err error
		p, err = c.Resource(PodsResource).Namespace(namespace).Get(ctx, pod, metav1.GetOptions{})
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("get pod %s/%s: %w", namespace, pod, err)
	}
	var found *metav1.OwnerReference
	for i := range p.OwnerReferences {
		ref := &p.OwnerReferences[i]
		if ref.Kind != "DaemonSet" || !strings.HasPrefix(ref.APIVersion, "apps/") {
			continue
		}
		if found == nil || (ref.Controller != nil && *ref.Controller) {
			found = ref
		}
	}
	if found == nil {
		return "", "", fmt.Errorf("pod %s/%s is not owned by a DaemonSet", namespace, pod)
	}
	return found.Name, string(found.UID), nil
}

// Check reads the pod namespace/pod and the DaemonSet that owns it. It returns an error when it
// cannot tell (no owner, the API refuses or does not answer before ctx ends): the caller then
// cleans up, as it did before auto existed.
func Check(ctx context.Context, c metadata.Interface, namespace, pod string) (Result, error) {
	name, uid, err := Owner(ctx, c, namespace, pod)
	if err != nil {
		return Result{}, err
	}
	res := Result{DaemonSet: namespace + "/" + name}
	var ds *metav1.PartialObjectMetadata
	err = retry(ctx, func() error {
		var err error
		ds, err = c.Resource(DaemonSetsResource).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
		return err
	})
	switch {
	case apierrors.IsNotFound(err):
		res.Reason = fmt.Sprintf("DaemonSet %s is gone (uninstalled): removing classes", res.DaemonSet)
		return res, nil
	case err != nil:
		return Result{}, fmt.Errorf("get DaemonSet %s: %w", res.DaemonSet, err)
	case ds.DeletionTimestamp != nil:
		res.Reason = fmt.Sprintf("DaemonSet %s is being deleted: removing classes", res.DaemonSet)
		return res, nil
	}
	res.Keep = true
	res.Reason = fmt.Sprintf("DaemonSet %s exists: leaving classes for the next daemon", res.DaemonSet)
	if string(ds.UID) != uid {
		// Deleted and created again under the same name (an uninstall and install, kubectl
		// replace): its pod on this node takes over all the same.
		res.Reason = fmt.Sprintf("DaemonSet %s exists (recreated, uid %s, this pod's owner was %s): leaving classes for the next daemon",
			res.DaemonSet, ds.UID, uid)
	}
	return res, nil
}

// AccessDenied reports whether the API refused the daemon (401, 403): its ServiceAccount, Role
// or RoleBinding is missing. helm uninstall deletes them right after the DaemonSet, usually
// before the daemon's pod is stopped, so an uninstall mostly ends up here.
func AccessDenied(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err)
}

// retry calls f until it succeeds, returns an answer that another try would not change (found,
// not found, forbidden, unauthorized, invalid), or ctx ends. Connection errors, timeouts and
// 5xx/429 answers are tried again after a short pause: an API server restarting during an
// upgrade of the control plane should not make a rolling update of the daemon drop the classes.
func retry(ctx context.Context, f func() error) error {
	b := backoff.New(100*time.Millisecond, time.Second)
	for {
		err := f()
		if err == nil || !transient(err) {
			return err
		}
		if !backoff.Sleep(ctx, b.Next()) {
			return err
		}
	}
}

func transient(err error) bool {
	switch {
	case apierrors.IsNotFound(err), apierrors.IsForbidden(err), apierrors.IsUnauthorized(err),
		apierrors.IsBadRequest(err), apierrors.IsInvalid(err), apierrors.IsMethodNotSupported(err),
		apierrors.IsNotAcceptable(err):
		return false
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}
