package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// KeyWorkersConfigMap is the ConfigMap, in each namespace with sidecars that generate keys,
// holding the key generator worker ids allocated to its pods.
const KeyWorkersConfigMap = "pisanix-key-workers"

// keyWorkersNext is the table's entry naming the id the next allocation starts from (a pod UID
// is never "next").
const keyWorkersNext = "next"

// keyWorkersReserved starts the entries of the table that an operator adds to keep ids for
// proxies outside the namespace ("reserved.<anything>": "<id>"): never given, never taken back.
const keyWorkersReserved = "reserved."

// maxKnownKeyWorkers bounds the allocations remembered in memory.
const maxKnownKeyWorkers = 100000

// KeyWorkers gives each sidecar pod the snowflake worker id of its key generators
// (configserver.KeyWorkerAllocator): an id no other live pod of the namespace has, for the
// pod's whole life.
//
// The table of a namespace is the ConfigMap KeyWorkersConfigMap: it maps a pod UID to
// "<id> <pod name>", "next" to the id the next allocation starts from, and "reserved.*" keys
// to ids an operator keeps for proxies outside the namespace. Ids are handed out
// round-robin, so that the id of a deleted pod is the last one to be given again (its keys were
// made with earlier timestamps). The ids of pods that no longer exist are taken back when an
// id is allocated. Every controller replica serves the config API: the ConfigMap's
// resourceVersion makes their updates safe (a conflicting update is retried on the new table).
// A pod is keyed by UID, not name, so that a pod recreated under the same name (a StatefulSet's)
// never shares an id with a pod that took its predecessor's.
type KeyWorkers struct {
	// Reader reads uncached (the manager's API reader): a pod asking for its id may be newer
	// than the informer cache, and the table must be read at its latest version.
	Reader client.Reader
	// Writer creates and updates the table.
	Writer client.Writer
	Logger *slog.Logger
	// Recheck is DefaultKeyWorkerRecheck unless set.
	Recheck time.Duration

	allocations *prometheus.CounterVec

	allocMu sync.Mutex // serializes allocate

	mu    sync.Mutex
	known map[string]knownWorker // namespace/uid → its id
}

// knownWorker is an id this replica gave or found, and when it last read it in the table.
type knownWorker struct {
	id      int
	checked time.Time
}

// DefaultKeyWorkerRecheck is how often a pod's id, answered from memory in between, is read
// again in the table (and written back when the table lost it: the ConfigMap deleted by hand).
const DefaultKeyWorkerRecheck = 5 * time.Minute

// NewKeyWorkers returns an allocator reading with r and writing with w.
func NewKeyWorkers(r client.Reader, w client.Writer, logger *slog.Logger) *KeyWorkers {
	if logger == nil {
		logger = slog.Default()
	}
	return &KeyWorkers{Reader: r, Writer: w, Logger: logger, known: map[string]knownWorker{}, Recheck: DefaultKeyWorkerRecheck,
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pisa_controller_key_worker_allocations_total",
			Help: "Key generator worker ids allocated to sidecar pods (allocated), ids taken back from pods that no longer exist (reclaimed), and allocations that failed (error).",
		}, []string{"result"})}
}

// Register adds the allocator's metric to reg.
func (k *KeyWorkers) Register(reg prometheus.Registerer) error { return reg.Register(k.allocations) }

// KeyWorkerID returns the worker id of pod ns/pod, allocating one on its first request. uid,
// when given, must be the pod's.
func (k *KeyWorkers) KeyWorkerID(ctx context.Context, ns, pod, uid string) (int, error) {
	prefer := -1
	if uid != "" {
		k.mu.Lock()
		w, ok := k.known[ns+"/"+uid]
		k.mu.Unlock()
		if ok {
			if time.Since(w.checked) < k.Recheck {
				return w.id, nil
			}
			prefer = w.id // the id the pod runs with: kept when the table still has it free
		}
	}
	// The pod must exist (and be the one that asks): a request naming another pod or a made-up
	// UID gets nothing, so no one can use up the namespace's ids.
	var p corev1.Pod
	if err := k.Reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: pod}, &p); err != nil {
		k.allocations.WithLabelValues("error").Inc()
		return 0, fmt.Errorf("look up pod %s/%s: %w", ns, pod, err)
	}
	if uid != "" && string(p.UID) != uid {
		k.allocations.WithLabelValues("error").Inc()
		return 0, fmt.Errorf("pod %s/%s has UID %s, not %s", ns, pod, p.UID, uid)
	}
	uid = string(p.UID)
	// One allocation at a time in this replica (they are rare: once per pod), so that only
	// other replicas' updates can conflict with it.
	k.allocMu.Lock()
	defer k.allocMu.Unlock()
	for attempt := 0; ; attempt++ {
		id, err := k.allocate(ctx, ns, pod, uid, prefer)
		if err == nil {
			k.mu.Lock()
			if len(k.known) >= maxKnownKeyWorkers {
				clear(k.known)
			}
			k.known[ns+"/"+uid] = knownWorker{id: id, checked: time.Now()}
			k.mu.Unlock()
			return id, nil
		}
		if attempt < 20 && (apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) {
			// Another replica changed the table: again on its new version, after a random
			// pause so that two replicas do not collide again.
			select {
			case <-time.After(time.Duration(1+rand.IntN(10*(attempt+1))) * time.Millisecond):
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			continue
		}
		k.allocations.WithLabelValues("error").Inc()
		return 0, fmt.Errorf("key worker table %s/%s: %w", ns, KeyWorkersConfigMap, err)
	}
}

// allocate reads the table of ns and returns uid's id, writing a new one when it has none:
// prefer when it is free (the id the pod had when the table lost its entry), else the next.
func (k *KeyWorkers) allocate(ctx context.Context, ns, pod, uid string, prefer int) (int, error) {
	var cm corev1.ConfigMap
	err := k.Reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: KeyWorkersConfigMap}, &cm)
	create := apierrors.IsNotFound(err)
	switch {
	case create:
		cm = corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: KeyWorkersConfigMap,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "pisa-controller"}}}
	case err != nil:
		return 0, err
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	if v, ok := cm.Data[uid]; ok {
		id, err := parseKeyWorker(v)
		if err != nil {
			return 0, fmt.Errorf("entry %s: %w", uid, err)
		}
		return id, nil
	}
	used := map[int]string{} // id → uid
	for key, v := range cm.Data {
		if key == keyWorkersNext {
			continue
		}
		id, err := parseKeyWorker(v)
		if err != nil {
			// An entry edited by hand: dropped rather than trusted.
			k.Logger.Warn("key worker table: dropping a malformed entry", "namespace", ns, "uid", key, "value", v, "error", err)
			delete(cm.Data, key)
			continue
		}
		used[id] = key
	}
	reclaimed := 0
	if len(used) > 0 {
		var pods corev1.PodList
		if err := k.Reader.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return 0, fmt.Errorf("list pods: %w", err)
		}
		live := make(map[string]bool, len(pods.Items))
		for i := range pods.Items {
			live[string(pods.Items[i].UID)] = true
		}
		for id, u := range used {
			if !live[u] && !strings.HasPrefix(u, keyWorkersReserved) {
				delete(cm.Data, u)
				delete(used, id)
				reclaimed++
			}
		}
	}
	next, _ := strconv.Atoi(cm.Data[keyWorkersNext])
	id := -1
	if _, taken := used[prefer]; prefer >= 0 && !taken {
		id = prefer
	}
	for i := 0; id < 0 && i <= proxyconfig.MaxKeyWorkerID; i++ {
		c := (next + i) % (proxyconfig.MaxKeyWorkerID + 1)
		if _, taken := used[c]; !taken {
			id = c
			break
		}
	}
	if id < 0 {
		return 0, errors.New("all 1024 worker ids are held by live pods")
	}
	cm.Data[uid] = strconv.Itoa(id) + " " + pod
	if id != prefer {
		cm.Data[keyWorkersNext] = strconv.Itoa((id + 1) % (proxyconfig.MaxKeyWorkerID + 1))
	}
	if create {
		err = k.Writer.Create(ctx, &cm)
	} else {
		err = k.Writer.Update(ctx, &cm) // fails with a conflict when the table changed since the read
	}
	if err != nil {
		return 0, err
	}
	k.allocations.WithLabelValues("allocated").Inc()
	k.allocations.WithLabelValues("reclaimed").Add(float64(reclaimed))
	k.Logger.Info("allocated a key generator worker id", "namespace", ns, "pod", pod, "uid", uid,
		"worker_id", id, "reclaimed", reclaimed)
	return id, nil
}

// parseKeyWorker reads "<id> <pod name>".
func parseKeyWorker(v string) (int, error) {
	s, _, _ := strings.Cut(v, " ")
	id, err := strconv.Atoi(s)
	if err != nil || id < 0 || id > proxyconfig.MaxKeyWorkerID {
		return 0, fmt.Errorf("not \"<id 0..%d> <pod>\": %q", proxyconfig.MaxKeyWorkerID, v)
	}
	return id, nil
}
