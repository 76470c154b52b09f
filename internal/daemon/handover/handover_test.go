package handover

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/fake"
	"k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"
)

const (
	ns     = "pisa-system"
	podN   = "pisanix-daemon-x7k2p"
	dsName = "pisanix-daemon"
	dsUID  = "6b1c0c5e-0d7a-4d4e-9c51-2f3f8a1e0001"
)

func daemonPod(owners ...metav1.OwnerReference) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: podN, OwnerReferences: owners},
	}
}

func dsOwner() metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: "DaemonSet", Name: dsName, UID: dsUID, Controller: &yes}
}

func daemonSet(uid string, deleting bool) *metav1.PartialObjectMetadata {
	ds := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: dsName, UID: types.UID(uid)},
	}
	if deleting {
		now := metav1.Now()
		ds.DeletionTimestamp = &now
		ds.Finalizers = []string{"foregroundDeletion"}
	}
	return ds
}

func fakeClient(objs ...runtime.Object) *fake.FakeMetadataClient {
	scheme := fake.NewTestScheme()
	if err := metav1.AddMetaToScheme(scheme); err != nil {
		panic(err)
	}
	return fake.NewSimpleMetadataClient(scheme, objs...)
}

func TestCheck(t *testing.T) {
	forbidden := func(c *fake.FakeMetadataClient) {
		c.PrependReactor("get", "daemonsets", func(a clienttesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "daemonsets"}, dsName,
				errFake("RBAC: access denied"))
		})
	}
	for _, tc := range []struct {
		name   string
		objs   []runtime.Object
		react  func(*fake.FakeMetadataClient)
		pod    string
		keep   bool
		reason string // in Result.Reason, or in the error when wantErr
		err    bool
	}{
		{name: "exists", objs: []runtime.Object{daemonPod(dsOwner()), daemonSet(dsUID, false)}, keep: true,
			reason: "DaemonSet pisa-system/pisanix-daemon exists: leaving classes for the next daemon"},
		{name: "recreated under the same name", objs: []runtime.Object{daemonPod(dsOwner()), daemonSet("another-uid", false)}, keep: true,
			reason: "recreated"},
		{name: "gone (404)", objs: []runtime.Object{daemonPod(dsOwner())},
			reason: "DaemonSet pisa-system/pisanix-daemon is gone (uninstalled)"},
		{name: "being deleted", objs: []runtime.Object{daemonPod(dsOwner()), daemonSet(dsUID, true)},
			reason: "is being deleted"},
		{name: "forbidden (403)", objs: []runtime.Object{daemonPod(dsOwner()), daemonSet(dsUID, false)}, react: forbidden,
			err: true, reason: "forbidden"},
		{name: "no owner", objs: []runtime.Object{daemonPod(), daemonSet(dsUID, false)},
			err: true, reason: "not owned by a DaemonSet"},
		{name: "owned by a ReplicaSet", objs: []runtime.Object{daemonPod(metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "x"})},
			err: true, reason: "not owned by a DaemonSet"},
		{name: "own pod not found", objs: []runtime.Object{daemonSet(dsUID, false)},
			err: true, reason: "not found"},
		{name: "no POD_NAME", objs: []runtime.Object{daemonPod(dsOwner()), daemonSet(dsUID, false)}, pod: "-",
			err: true, reason: "POD_NAME and POD_NAMESPACE are not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeClient(tc.objs...)
			if tc.react != nil {
				tc.react(c)
			}
			pod := podN
			if tc.pod == "-" {
				pod = ""
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			res, err := Check(ctx, c, ns, pod)
			if tc.err {
				if err == nil || !strings.Contains(err.Error(), tc.reason) {
					t.Fatalf("Check = %+v, %v; want an error with %q", res, err, tc.reason)
				}
				if res.Keep {
					t.Fatal("an error must not keep the state")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Keep != tc.keep || res.DaemonSet != ns+"/"+dsName || !strings.Contains(res.Reason, tc.reason) {
				t.Fatalf("Check = %+v, want keep %v, reason with %q", res, tc.keep, tc.reason)
			}
		})
	}
}

type errFake string

func (e errFake) Error() string { return string(e) }

// apiServer answers GETs of the pod and the DaemonSet as the API server does (JSON
// PartialObjectMetadata, Status on errors); ds decides the DaemonSet's answer per call.
func apiServer(t *testing.T, ds func(n int) (int, any)) (metadata.Interface, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/namespaces/" + ns + "/pods/" + podN:
			p := daemonPod(dsOwner())
			p.APIVersion, p.Kind = "meta.k8s.io/v1", "PartialObjectMetadata"
			_ = json.NewEncoder(w).Encode(p)
		case "/apis/apps/v1/namespaces/" + ns + "/daemonsets/" + dsName:
			code, body := ds(int(calls.Add(1)))
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(body)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := metadata.NewForConfig(&rest.Config{Host: srv.URL, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c, &calls
}

func status(code int, reason metav1.StatusReason) metav1.Status {
	return metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
		Code: int32(code), Reason: reason, Message: string(reason)}
}

// Over HTTP, with the real metadata client: status codes map to the decision, a transient
// error is tried again within the deadline, and the deadline bounds the whole check.
func TestCheckOverHTTP(t *testing.T) {
	ctx := func() context.Context {
		c, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		t.Cleanup(cancel)
		return c
	}
	exists := daemonSet(dsUID, false)
	exists.APIVersion, exists.Kind = "meta.k8s.io/v1", "PartialObjectMetadata"

	c, _ := apiServer(t, func(int) (int, any) { return http.StatusOK, exists })
	if res, err := Check(ctx(), c, ns, podN); err != nil || !res.Keep {
		t.Errorf("exists: %+v %v", res, err)
	}

	c, _ = apiServer(t, func(int) (int, any) { return http.StatusNotFound, status(404, metav1.StatusReasonNotFound) })
	if res, err := Check(ctx(), c, ns, podN); err != nil || res.Keep || !strings.Contains(res.Reason, "gone") {
		t.Errorf("404: %+v %v", res, err)
	}

	c, calls := apiServer(t, func(int) (int, any) { return http.StatusForbidden, status(403, metav1.StatusReasonForbidden) })
	if res, err := Check(ctx(), c, ns, podN); err == nil || !AccessDenied(err) || res.Keep || calls.Load() != 1 {
		t.Errorf("403: %+v %v after %d calls; want an access denied error at once", res, err, calls.Load())
	}

	// 503 twice (an API server restarting), then the answer.
	c, calls = apiServer(t, func(n int) (int, any) {
		if n <= 2 {
			return http.StatusServiceUnavailable, status(503, metav1.StatusReasonServiceUnavailable)
		}
		return http.StatusOK, exists
	})
	if res, err := Check(ctx(), c, ns, podN); err != nil || !res.Keep || calls.Load() != 3 {
		t.Errorf("503, 503, 200: %+v %v after %d calls", res, err, calls.Load())
	}

	// Never an answer: the deadline ends the check, with an error.
	c, _ = apiServer(t, func(int) (int, any) {
		return http.StatusServiceUnavailable, status(503, metav1.StatusReasonServiceUnavailable)
	})
	short, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if res, err := Check(short, c, ns, podN); err == nil || res.Keep {
		t.Errorf("always 503: %+v %v", res, err)
	}
	if took := time.Since(t0); took > 2*time.Second {
		t.Errorf("the check took %s with a 500ms deadline", took)
	}
}
