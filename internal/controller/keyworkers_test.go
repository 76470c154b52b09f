package controller_test

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/database-mesh/pisanix-go/internal/controller"
)

// Two allocators (two controller replicas) give 40 pods, asking at once, 40 different worker
// ids through the namespace's ConfigMap; a pod asking again gets its id back; a wrong UID or a
// pod that does not exist gets none; the ids of deleted pods are taken back, the most recently
// freed last.
func TestKeyWorkersAllocation(t *testing.T) {
	ctx, ns := setup(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	replicas := []*controller.KeyWorkers{
		controller.NewKeyWorkers(k8s, k8s, quiet),
		controller.NewKeyWorkers(k8s, k8s, quiet),
	}
	const n = 40
	pods := make([]*corev1.Pod, n)
	for i := range pods {
		pods[i] = pod(ns, fmt.Sprintf("shop-%d", i))
		create(ctx, t, pods[i])
	}
	ids := make([]int, n)
	var wg sync.WaitGroup
	for i := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uid := string(pods[i].UID)
			if i%3 == 0 {
				uid = "" // a sidecar injected before POD_UID: looked up
			}
			id, err := replicas[i%2].KeyWorkerID(ctx, ns, pods[i].Name, uid)
			if err != nil {
				t.Errorf("pod %d: %v", i, err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	seen := map[int]int{}
	for i, id := range ids {
		if j, dup := seen[id]; dup {
			t.Fatalf("pods %d and %d both got worker id %d", j, i, id)
		}
		seen[id] = i
	}
	var cm corev1.ConfigMap
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: controller.KeyWorkersConfigMap}, &cm); err != nil {
		t.Fatal(err)
	}
	if len(cm.Data) != n+1 || cm.Data[string(pods[5].UID)] != fmt.Sprintf("%d shop-5", ids[5]) {
		t.Fatalf("table has %d entries, pod 5's is %q (id %d)", len(cm.Data), cm.Data[string(pods[5].UID)], ids[5])
	}

	// Asked again, of the other replica (nothing cached there for pods asking the first).
	for i := range 4 {
		id, err := replicas[(i+1)%2].KeyWorkerID(ctx, ns, pods[i].Name, string(pods[i].UID))
		if err != nil || id != ids[i] {
			t.Fatalf("pod %d asked again: %d %v, want %d", i, id, err, ids[i])
		}
	}
	if _, err := replicas[0].KeyWorkerID(ctx, ns, "shop-1", "not-its-uid"); err == nil || !strings.Contains(err.Error(), "has UID") {
		t.Fatalf("a wrong UID: %v", err)
	}
	if _, err := replicas[0].KeyWorkerID(ctx, ns, "no-such-pod", ""); err == nil {
		t.Fatal("a pod that does not exist got a worker id")
	}

	// An operator reserves the next id for a proxy outside the namespace.
	cm.Data["reserved.batch-host"] = fmt.Sprint(n)
	if err := k8s.Update(ctx, &cm); err != nil {
		t.Fatal(err)
	}

	// Delete two pods: a new pod takes the ids that were never given first (skipping the
	// reserved one), and the freed ids are taken back (the table does not keep them); the
	// reservation stays.
	for _, i := range []int{7, 8} {
		if err := k8s.Delete(ctx, pods[i]); err != nil {
			t.Fatal(err)
		}
	}
	fresh := pod(ns, "shop-new")
	create(ctx, t, fresh)
	id, err := replicas[1].KeyWorkerID(ctx, ns, fresh.Name, string(fresh.UID))
	if err != nil {
		t.Fatal(err)
	}
	if id != n+1 {
		t.Fatalf("the new pod got id %d, want %d (the next never given nor reserved)", id, n+1)
	}
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: controller.KeyWorkersConfigMap}, &cm); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{7, 8} {
		if v, ok := cm.Data[string(pods[i].UID)]; ok {
			t.Fatalf("deleted pod %d still holds %q", i, v)
		}
	}
	if len(cm.Data) != n-2+1+1+1 || cm.Data["reserved.batch-host"] != fmt.Sprint(n) {
		t.Fatalf("table has %d entries, want %d, with the reservation: %v", len(cm.Data), n+1, cm.Data)
	}

	// The table deleted by hand: a replica that gave pod 0 its id writes it back when it reads
	// the table again (Recheck), and another pod cannot get it meanwhile from that table.
	if err := k8s.Delete(ctx, &cm); err != nil {
		t.Fatal(err)
	}
	replicas[0].Recheck = time.Nanosecond
	id0, err := replicas[0].KeyWorkerID(ctx, ns, pods[0].Name, string(pods[0].UID))
	if err != nil || id0 != ids[0] {
		t.Fatalf("pod 0 after the table was deleted: %d %v, want %d", id0, err, ids[0])
	}
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: controller.KeyWorkersConfigMap}, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data[string(pods[0].UID)] != fmt.Sprintf("%d shop-0", ids[0]) {
		t.Fatalf("pod 0's id not written back: %v", cm.Data)
	}
}
