package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
	"github.com/database-mesh/pisanix-go/internal/backoff"
	"github.com/database-mesh/pisanix-go/internal/configserver"
	"github.com/database-mesh/pisanix-go/internal/controller/builder"
)

// DaemonRequest is the reconcile request that rebuilds pisa-daemon's cluster-wide
// configuration. Every other request names a namespace (Name empty): the proxy configurations
// of a namespace depend on all its objects, so a namespace is the unit of work.
var DaemonRequest = reconcile.Request{NamespacedName: types.NamespacedName{Name: "\x00daemonconfigs"}}

// InjectLabel marks the pods (and namespaces) that get the pisa-proxy sidecar.
const (
	InjectLabel      = "pisanix.io/inject"
	InjectLabelValue = "enabled"
)

// ReportGrace is how long the report of a sidecar whose Pod the controller does not see is
// kept: the Pod informer may lag behind a freshly started sidecar's first report.
const ReportGrace = 2 * time.Minute

// Reconciler builds every VirtualDatabase's proxy configuration and pisa-daemon's configuration
// from the informer cache into the config server's Store, and writes the status of every
// core.database-mesh.io object.
//
// It runs on every replica (the config server of each replica must serve), but only the leader
// writes status (IsLeader).
type Reconciler struct {
	// Client reads from the informer cache and writes status.
	Client client.Client
	// SecretReader reads the Secrets named by passwordSecretRef (uncached: the controller
	// watches Secrets' metadata only, so their data is not kept in memory).
	SecretReader client.Reader
	Store        *configserver.Store
	// IsLeader tells whether this replica writes status; nil means always.
	IsLeader func() bool
	Metrics  *Metrics
	Logger   *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time

	synced   atomic.Bool
	mu       sync.Mutex
	events   chan event.GenericEvent
	pending  map[string]bool
	kick     chan struct{}
	initOnce sync.Once
}

func (r *Reconciler) init() {
	r.initOnce.Do(func() {
		r.events = make(chan event.GenericEvent)
		r.pending = map[string]bool{}
		r.kick = make(chan struct{}, 1)
		if r.Now == nil {
			r.Now = time.Now
		}
		if r.Logger == nil {
			r.Logger = slog.Default()
		}
		if r.Metrics == nil {
			r.Metrics = NewMetrics()
		}
	})
}

func (r *Reconciler) leader() bool { return r.IsLeader == nil || r.IsLeader() }

// Enqueue asks for namespace ns to be reconciled soon. It never blocks: it is called from the
// config server's request goroutines when a sidecar reports.
func (r *Reconciler) Enqueue(ns string) {
	r.init()
	r.mu.Lock()
	r.pending[ns] = true
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// forward turns Enqueue calls into events of the controller's channel source; pending
// namespaces are coalesced, so a burst of reports costs one reconcile.
func (r *Reconciler) forward(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
		}
		r.mu.Lock()
		nss := make([]string, 0, len(r.pending))
		for ns := range r.pending {
			nss = append(nss, ns)
		}
		clear(r.pending)
		r.mu.Unlock()
		for _, ns := range nss {
			ev := event.GenericEvent{Object: &v1alpha1.VirtualDatabase{ObjectMeta: metav1.ObjectMeta{Namespace: ns}}}
			select {
			case r.events <- ev:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// runnable adapts a function to manager.Runnable with a leader-election choice.
type runnable struct {
	run    func(context.Context) error
	leader bool
}

func (f runnable) Start(ctx context.Context) error { return f.run(ctx) }
func (f runnable) NeedLeaderElection() bool        { return f.leader }

func namespaceRequests(_ context.Context, o client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace()}}, DaemonRequest}
}

// SetupWithManager registers the reconciler, its watches and its helpers with mgr.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.init()
	r.Store.OnReport(func(ns, _ string) { r.Enqueue(ns) })
	if err := mgr.Add(runnable{run: r.forward}); err != nil {
		return err
	}
	// On winning the election, write every namespace's status (the previous leader may have
	// left it stale).
	if err := mgr.Add(runnable{leader: true, run: func(ctx context.Context) error {
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return nil
		}
		var list v1alpha1.VirtualDatabaseList
		if err := r.Client.List(ctx, &list); err != nil {
			return fmt.Errorf("list virtualdatabases: %w", err)
		}
		for _, ns := range namespacesOf(&list) {
			r.Enqueue(ns)
		}
		return nil
	}}); err != nil {
		return err
	}
	// Build every configuration once before reporting ready, so that a sidecar starting with
	// the controller is not told 404 for an application that exists.
	if err := mgr.Add(runnable{run: func(ctx context.Context) error {
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return nil
		}
		return r.initialBuild(ctx)
	}}); err != nil {
		return err
	}
	mapNS := handler.EnqueueRequestsFromMapFunc(namespaceRequests)
	return ctrl.NewControllerManagedBy(mgr).
		Named("pisanix").
		Watches(&v1alpha1.VirtualDatabase{}, mapNS).
		Watches(&v1alpha1.TrafficStrategy{}, mapNS).
		Watches(&v1alpha1.DatabaseEndpoint{}, mapNS).
		Watches(&v1alpha1.DataShard{}, mapNS).
		Watches(&v1alpha1.QoSClaim{}, mapNS).
		Watches(&v1alpha1.SecurityClaim{}, mapNS).
		// Secrets: metadata only; a change matters when a passwordSecretRef names it.
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.secretRequests)).
		// Pods of injected applications: a gone pod leaves status.sidecars.
		WatchesMetadata(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(podRequests)).
		WatchesRawSource(source.Channel(r.events, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace()}}}
			}))).
		WithOptions(ctrlcontroller.Options{
			// Every replica builds configurations; status writes check IsLeader.
			NeedLeaderElection:      ptr.To(false),
			MaxConcurrentReconciles: 2,
		}).
		Complete(r)
}

// initialBuild reconciles every namespace that has a VirtualDatabase, then marks the
// reconciler ready (Checker).
func (r *Reconciler) initialBuild(ctx context.Context) error {
	b := backoff.New(100*time.Millisecond, 10*time.Second)
	for {
		err := r.buildAll(ctx)
		if err == nil {
			r.synced.Store(true)
			r.Logger.Info("initial configurations built")
			return nil
		}
		wait := b.Next()
		r.Logger.Error("initial build failed; retrying", "error", err, "retry_in", wait)
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
	}
}

func (r *Reconciler) buildAll(ctx context.Context) error {
	var list v1alpha1.VirtualDatabaseList
	if err := r.Client.List(ctx, &list); err != nil {
		return fmt.Errorf("list virtualdatabases: %w", err)
	}
	for _, ns := range namespacesOf(&list) {
		if _, err := r.reconcileNamespace(ctx, ns); err != nil {
			return err
		}
	}
	return r.reconcileDaemon(ctx)
}

// Checker is a readiness check: nil once every configuration was built after start.
func (r *Reconciler) Checker(*http.Request) error {
	if !r.synced.Load() {
		return errors.New("configurations not built yet")
	}
	return nil
}

func namespacesOf(list *v1alpha1.VirtualDatabaseList) []string {
	var nss []string
	for i := range list.Items {
		nss = append(nss, list.Items[i].Namespace)
	}
	slices.Sort(nss)
	return slices.Compact(nss)
}

func podRequests(_ context.Context, o client.Object) []reconcile.Request {
	if o.GetLabels()[InjectLabel] != InjectLabelValue {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace()}}}
}

// secretRequests enqueues a Secret's namespace when one of its objects refers to the Secret.
func (r *Reconciler) secretRequests(ctx context.Context, o client.Object) []reconcile.Request {
	objs, err := r.list(ctx, o.GetNamespace())
	if err != nil {
		// Rebuild anyway: a missed password change would be worse than a spare rebuild.
		return namespaceRequests(ctx, o)
	}
	if refs := secretRefs(&objs); refs[o.GetName()] {
		return namespaceRequests(ctx, o)
	}
	return nil
}

// list reads the custom resources of namespace ns ("" for all) from the cache.
func (r *Reconciler) list(ctx context.Context, ns string) (builder.Objects, error) {
	var (
		vdbs v1alpha1.VirtualDatabaseList
		tss  v1alpha1.TrafficStrategyList
		eps  v1alpha1.DatabaseEndpointList
		dss  v1alpha1.DataShardList
		qcs  v1alpha1.QoSClaimList
		scs  v1alpha1.SecurityClaimList
	)
	opts := []client.ListOption{}
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	for _, l := range []client.ObjectList{&vdbs, &tss, &eps, &dss, &qcs, &scs} {
		if err := r.Client.List(ctx, l, opts...); err != nil {
			return builder.Objects{}, fmt.Errorf("list %T in %q: %w", l, ns, err)
		}
	}
	return builder.Objects{VirtualDatabases: vdbs.Items, TrafficStrategies: tss.Items,
		DatabaseEndpoints: eps.Items, DataShards: dss.Items, QoSClaims: qcs.Items, SecurityClaims: scs.Items}, nil
}

// secretRefs returns the names of the Secrets the objects refer to (every passwordSecretRef,
// wherever it is in a spec).
func secretRefs(objs *builder.Objects) map[string]bool {
	refs := map[string]bool{}
	add := func(spec any) {
		b, err := json.Marshal(spec)
		if err != nil {
			return
		}
		var v any
		if json.Unmarshal(b, &v) == nil {
			collectRefs(v, refs)
		}
	}
	for i := range objs.VirtualDatabases {
		add(objs.VirtualDatabases[i].Spec)
	}
	for i := range objs.TrafficStrategies {
		add(objs.TrafficStrategies[i].Spec)
	}
	for i := range objs.DatabaseEndpoints {
		add(objs.DatabaseEndpoints[i].Spec)
	}
	// A SecurityClaim's keys come from Secrets (spec.keys[].secretRef).
	for i := range objs.SecurityClaims {
		for _, k := range objs.SecurityClaims[i].Spec.Keys {
			refs[k.SecretRef.Name] = true
		}
	}
	return refs
}

func collectRefs(v any, refs map[string]bool) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			if k == "passwordSecretRef" {
				if m, ok := e.(map[string]any); ok {
					if name, ok := m["name"].(string); ok && name != "" {
						refs[name] = true
					}
				}
				continue
			}
			collectRefs(e, refs)
		}
	case []any:
		for _, e := range t {
			collectRefs(e, refs)
		}
	}
}

// secrets reads the referenced Secrets of ns. A missing Secret is left out (the builder
// reports it as SecretNotFound); other errors fail the reconcile.
func (r *Reconciler) secrets(ctx context.Context, ns string, objs *builder.Objects) error {
	objs.Secrets = map[string]map[string][]byte{}
	for name := range secretRefs(objs) {
		var s corev1.Secret
		err := r.SecretReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read Secret %s/%s: %w", ns, name, err)
		}
		objs.Secrets[name] = s.Data
	}
	return nil
}

// Reconcile rebuilds namespace req.Namespace (or the daemon configuration).
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	r.init()
	if req == DaemonRequest {
		return reconcile.Result{}, r.reconcileDaemon(ctx)
	}
	return r.reconcileNamespace(ctx, req.Namespace)
}

func (r *Reconciler) reconcileDaemon(ctx context.Context) error {
	// Only namespaces with a VirtualDatabase can have an app in the daemon configuration.
	var vdbs v1alpha1.VirtualDatabaseList
	err := r.Client.List(ctx, &vdbs)
	if err != nil {
		return fmt.Errorf("list virtualdatabases: %w", err)
	}
	all := builder.AllNamespaces{}
	for _, ns := range namespacesOf(&v1alpha1.VirtualDatabaseList{Items: vdbs.Items}) {
		if all[ns], err = r.list(ctx, ns); err != nil {
			return err
		}
	}
	cfg, _ := builder.BuildDaemonConfig(all) // problems go to status in the namespace reconcile
	version, changed, err := r.Store.SetDaemon("", cfg)
	if err != nil {
		return fmt.Errorf("store daemon config: %w", err)
	}
	if changed {
		r.Logger.Info("daemon configuration changed", "version", version, "apps", len(cfg.App))
	}
	return nil
}

// result of one namespace's build, per object.
type nsBuild struct {
	objs     builder.Objects
	configs  map[string]*appBuild // VirtualDatabase name →
	problems map[objKey][]builder.Problem
}

type appBuild struct {
	version   int64
	endpoints []string
	problems  []builder.Problem
	held      bool // the build had problems; the previous configuration is still served

	// From the sidecars' reports (Reconciler.sidecars).
	sidecars v1alpha1.SidecarCounts
	rejected []v1alpha1.SidecarRejection
}

type objKey struct{ kind, name string }

func (r *Reconciler) reconcileNamespace(ctx context.Context, ns string) (reconcile.Result, error) {
	log := r.Logger.With("namespace", ns)
	objs, err := r.list(ctx, ns)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := r.secrets(ctx, ns, &objs); err != nil {
		return reconcile.Result{}, err
	}
	b := nsBuild{objs: objs, configs: map[string]*appBuild{}, problems: map[objKey][]builder.Problem{}}
	addProblems := func(ps []builder.Problem) {
		for _, p := range ps {
			k := objKey{p.Kind, p.Name}
			if !slices.Contains(b.problems[k], p) {
				b.problems[k] = append(b.problems[k], p)
			}
		}
	}
	apps := map[string]bool{}
	for i := range objs.VirtualDatabases {
		vdb := &objs.VirtualDatabases[i]
		if !vdb.DeletionTimestamp.IsZero() {
			continue
		}
		cfg, ps, err := builder.BuildProxyConfig(ns, vdb.Name, objs)
		if err != nil {
			r.Metrics.builds.WithLabelValues(ns, vdb.Name, "error").Inc()
			return reconcile.Result{}, fmt.Errorf("build %s/%s: %w", ns, vdb.Name, err)
		}
		// A service left out because of a problem (a bad rule, a missing strategy...) would
		// close its listener in every sidecar. Keep serving the last configuration built instead,
		// and say so in the status; only a VirtualDatabase never built is served without it.
		version, held := r.Store.Version(ns, vdb.Name)
		held = held && len(cfg.Proxy.Config) < len(vdb.Spec.Services)
		result := "held"
		if held {
			log.Warn("proxy configuration not updated: a service cannot be built; the last configuration keeps serving",
				"app", vdb.Name, "version", version, "problems", len(ps))
		} else {
			var changed bool
			if version, changed, err = r.Store.Set(ns, vdb.Name, cfg); err != nil {
				r.Metrics.builds.WithLabelValues(ns, vdb.Name, "error").Inc()
				return reconcile.Result{}, fmt.Errorf("store %s/%s: %w", ns, vdb.Name, err)
			}
			result = "unchanged"
			if changed {
				result = "changed"
				log.Info("proxy configuration changed", "app", vdb.Name, "version", version,
					"listeners", len(cfg.Proxy.Config), "problems", len(ps))
				for _, p := range ps {
					log.Warn("proxy configuration problem", "app", vdb.Name, "problem", p.String())
				}
			}
		}
		r.Metrics.builds.WithLabelValues(ns, vdb.Name, result).Inc()
		r.Metrics.version.WithLabelValues(ns, vdb.Name).Set(float64(version))
		eps := vdb.Status.Endpoints // what a held configuration uses
		if !held {
			eps = make([]string, 0, len(cfg.MySQL.Nodes))
			for _, n := range cfg.MySQL.Nodes {
				eps = append(eps, n.Name)
			}
		}
		b.configs[vdb.Name] = &appBuild{version: version, endpoints: eps, problems: ps, held: held}
		addProblems(ps)
		apps[vdb.Name] = true
	}
	// The daemon's problems of this namespace (rates, QoSClaims) belong in its statuses.
	_, dps := builder.BuildDaemonConfig(builder.AllNamespaces{ns: objs})
	addProblems(dps)
	for _, p := range dps {
		if p.Kind == builder.KindVirtualDatabase {
			if a, ok := b.configs[p.Name]; ok && !slices.Contains(a.problems, p) {
				a.problems = append(a.problems, p)
			}
		}
	}

	// Forget the configurations of deleted VirtualDatabases: their sidecars get 404.
	for _, app := range r.Store.Apps(ns) {
		if !apps[app] {
			log.Info("proxy configuration removed", "app", app)
			r.Store.Delete(ns, app)
			r.Metrics.forget(ns, app)
		}
	}

	requeue, err := r.sidecars(ctx, ns, &b)
	if err != nil {
		return reconcile.Result{}, err
	}
	if !r.leader() {
		return reconcile.Result{RequeueAfter: requeue}, nil
	}
	if err := r.writeStatus(ctx, &b); err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: requeue}, nil
}

// sidecars prunes the reports of pods that are gone and updates the sidecar gauges. It returns
// when to look again (a report kept only by ReportGrace).
func (r *Reconciler) sidecars(ctx context.Context, ns string, b *nsBuild) (time.Duration, error) {
	pods := &metav1.PartialObjectMetadataList{}
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := r.Client.List(ctx, pods, client.InNamespace(ns),
		client.MatchingLabels{InjectLabel: InjectLabelValue}); err != nil {
		return 0, fmt.Errorf("list pods in %q: %w", ns, err)
	}
	live := map[string]bool{}
	for i := range pods.Items {
		if pods.Items[i].DeletionTimestamp.IsZero() {
			live[pods.Items[i].Name] = true
		}
	}
	now := r.Now()
	var requeue time.Duration
	for app, a := range b.configs {
		r.Store.PruneReports(ns, app, func(rep configserver.Report) bool {
			if live[rep.Pod] {
				return true
			}
			left := ReportGrace - now.Sub(rep.Time)
			if left <= 0 {
				return false
			}
			if requeue == 0 || left < requeue {
				requeue = left
			}
			return true
		})
		cur := strconv.FormatInt(a.version, 10)
		for _, rep := range r.Store.Reports(ns, app) {
			a.sidecars.Total++
			switch {
			case rep.Error != "":
				v, _ := strconv.ParseInt(rep.Version, 10, 64)
				a.rejected = append(a.rejected, v1alpha1.SidecarRejection{Pod: rep.Pod, Version: v,
					Error: truncate(rep.Error, 1024)})
			case rep.Version == cur:
				a.sidecars.Current++
			}
		}
		current, rejected := a.sidecars.Current, int32(len(a.rejected))
		r.Metrics.sidecars.WithLabelValues(ns, app, "current").Set(float64(current))
		r.Metrics.sidecars.WithLabelValues(ns, app, "stale").Set(float64(a.sidecars.Total - current - rejected))
		r.Metrics.sidecars.WithLabelValues(ns, app, "rejected").Set(float64(rejected))
	}
	if requeue > 0 {
		requeue += time.Second
	}
	return requeue, nil
}
