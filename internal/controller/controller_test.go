package controller_test

// These tests run the reconciler in a controller-runtime manager against a real kube-apiserver
// and etcd (internal/testutil/kubetest): objects are created through the API server, and the
// tests check the configurations in the config server's Store and the objects' status.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
	"github.com/database-mesh/pisanix-go/internal/configserver"
	"github.com/database-mesh/pisanix-go/internal/controller"
	"github.com/database-mesh/pisanix-go/internal/testutil/kubetest"
)

var (
	startErr error
	k8s      client.Client
	store    *configserver.Store
	api      *httptest.Server
	clock    atomic.Int64 // offset added to time.Now, in nanoseconds
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	srv, err := kubetest.StartAPIServer()
	if err != nil {
		startErr = err
		return m.Run()
	}
	defer func() { _ = srv.Stop() }()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	mgr, err := ctrl.NewManager(srv.Config, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	store = configserver.NewStore()
	rec := &controller.Reconciler{
		Client: mgr.GetClient(), SecretReader: mgr.GetAPIReader(), Store: store,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Now:    func() time.Time { return time.Now().Add(time.Duration(clock.Load())) },
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		return 1
	}
	api = httptest.NewServer((&configserver.Server{Store: store}).Handler())
	defer api.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	c, err := client.New(srv.Config, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	k8s = client.WithFieldValidation(c, metav1.FieldValidationStrict)
	return m.Run()
}

func setup(t *testing.T) (context.Context, string) {
	t.Helper()
	kubetest.NeedAPIServer(t, startErr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ctl-test-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ctx, ns.Name
}

// eventually polls cond every 20 ms until it returns "" or 15 s pass.
func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		if last = cond(); last == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: still not the case after 15 s: %s", what, last)
}

func create(ctx context.Context, t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

func endpoint(ns, name, host, password string, ref *v1alpha1.SecretKeySelector) *v1alpha1.DatabaseEndpoint {
	return &v1alpha1.DatabaseEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"source": "shop"}},
		Spec: v1alpha1.DatabaseEndpointSpec{Database: v1alpha1.Database{MySQL: &v1alpha1.MySQL{
			Host: host, Port: 3306, User: "root", Password: password, PasswordSecretRef: ref, DB: "shop"}}},
	}
}

func strategy(ns, name string) *v1alpha1.TrafficStrategy {
	return &v1alpha1.TrafficStrategy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.TrafficStrategySpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"source": "shop"}},
			LoadBalance: &v1alpha1.LoadBalance{SimpleLoadBalance: &v1alpha1.SimpleLoadBalance{
				Kind: v1alpha1.LoadBalanceRandom}},
		},
	}
}

func vdb(ns, name, ts string) *v1alpha1.VirtualDatabase {
	return &v1alpha1.VirtualDatabase{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.VirtualDatabaseSpec{Services: []v1alpha1.VirtualDatabaseService{{
			Name: "mysql", TrafficStrategy: ts,
			DatabaseService: v1alpha1.DatabaseService{DatabaseMySQL: &v1alpha1.DatabaseMySQL{
				Host: "127.0.0.1", Port: 3306, User: "app", Password: "apppw", DB: "shop"}},
		}}},
	}
}

// served is the proxy configuration of ns/app as the config API serves it.
type served struct {
	Version string `json:"version"`
	MySQL   struct {
		Node []struct {
			Name     string `json:"name"`
			Password string `json:"password"`
		} `json:"node"`
	} `json:"mysql"`
	Proxy struct {
		Config []json.RawMessage `json:"config"`
	} `json:"proxy"`
}

func fetch(t *testing.T, ns, app string) (*served, int) {
	t.Helper()
	resp, err := http.Get(api.URL + configserver.APIPrefix + "/namespaces/" + ns + "/proxyconfigs/" + app)
	if err != nil {
		t.Fatalf("GET config: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode
	}
	var s served
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("config JSON: %v\n%s", err, body)
	}
	return &s, resp.StatusCode
}

func ready(ctx context.Context, t *testing.T, obj client.Object, conds func() []metav1.Condition) (status metav1.ConditionStatus, reason, msg string) {
	t.Helper()
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatalf("get %s: %v", obj.GetName(), err)
	}
	c := meta.FindStatusCondition(conds(), v1alpha1.ConditionReady)
	if c == nil {
		return "", "", ""
	}
	if c.ObservedGeneration != obj.GetGeneration() {
		return "", "", "stale generation"
	}
	return c.Status, c.Reason, c.Message
}

func TestConfigAndStatusFollowObjects(t *testing.T) {
	ctx, ns := setup(t)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
		Data: map[string][]byte{"password": []byte("s3cret")}}
	ep := endpoint(ns, "shop-db", "10.0.0.1", "", &v1alpha1.SecretKeySelector{Name: "db", Key: "password"})
	v := vdb(ns, "shop", "shop")
	// The VirtualDatabase first: its TrafficStrategy is missing.
	create(ctx, t, secret, ep, v)
	eventually(t, "VirtualDatabase reports TrafficStrategyNotFound", func() string {
		st, reason, msg := ready(ctx, t, v, func() []metav1.Condition { return v.Status.Conditions })
		if st != metav1.ConditionFalse || reason != v1alpha1.ReasonTrafficStrategyNotFound {
			return fmt.Sprintf("Ready=%s %s %q", st, reason, msg)
		}
		return ""
	})
	// Fail closed: the service is left out, so the proxy has no listener for it.
	if s, code := fetch(t, ns, "shop"); code != 200 || len(s.Proxy.Config) != 0 {
		t.Fatalf("config with a missing strategy: code %d, %+v", code, s)
	}

	ts := strategy(ns, "shop")
	create(ctx, t, ts)
	var first *served
	eventually(t, "VirtualDatabase Ready", func() string {
		st, reason, msg := ready(ctx, t, v, func() []metav1.Condition { return v.Status.Conditions })
		if st != metav1.ConditionTrue {
			return fmt.Sprintf("Ready=%s %s %q", st, reason, msg)
		}
		s, code := fetch(t, ns, "shop")
		if code != 200 || len(s.Proxy.Config) != 1 {
			return fmt.Sprintf("config: %d %+v", code, s)
		}
		if strconv.FormatInt(v.Status.ConfigVersion, 10) != s.Version {
			return fmt.Sprintf("status.configVersion %d, served %s", v.Status.ConfigVersion, s.Version)
		}
		first = s
		return ""
	})
	if len(first.MySQL.Node) != 1 || first.MySQL.Node[0].Password != "s3cret" {
		t.Fatalf("nodes %+v: want shop-db with the Secret's password", first.MySQL.Node)
	}
	if got := v.Status.Endpoints; len(got) != 1 || got[0] != "shop-db" {
		t.Fatalf("status.endpoints %v", got)
	}
	eventually(t, "TrafficStrategy and DatabaseEndpoint Ready", func() string {
		if st, r, m := ready(ctx, t, ts, func() []metav1.Condition { return ts.Status.Conditions }); st != metav1.ConditionTrue {
			return fmt.Sprintf("ts Ready=%s %s %q", st, r, m)
		}
		if got := ts.Status.Endpoints; len(got) != 1 || got[0] != "shop-db" {
			return fmt.Sprintf("ts status.endpoints %v", got)
		}
		if st, r, m := ready(ctx, t, ep, func() []metav1.Condition { return ep.Status.Conditions }); st != metav1.ConditionTrue {
			return fmt.Sprintf("endpoint Ready=%s %s %q", st, r, m)
		}
		if ep.Status.Endpoint != "10.0.0.1" || ep.Status.Port != 3306 || ep.Status.Protocol != "MySQL" {
			return fmt.Sprintf("endpoint status %+v", ep.Status)
		}
		return ""
	})

	// A password rotated in the Secret reaches the configuration.
	secret.Data["password"] = []byte("rotated")
	if err := k8s.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rotated password served", func() string {
		s, _ := fetch(t, ns, "shop")
		if s == nil || len(s.MySQL.Node) != 1 || s.MySQL.Node[0].Password != "rotated" {
			return fmt.Sprintf("%+v", s)
		}
		if s.Version == first.Version {
			return "version unchanged"
		}
		return ""
	})

	// An endpoint the selector does not match is not used.
	other := endpoint(ns, "other-db", "10.0.0.2", "pw", nil)
	other.Labels = map[string]string{"source": "elsewhere"}
	create(ctx, t, other)
	// Its status is written by the reconcile that saw it, after the configurations were built.
	eventually(t, "the new endpoint reconciled", func() string {
		if st, r, m := ready(ctx, t, other, func() []metav1.Condition { return other.Status.Conditions }); st != metav1.ConditionTrue {
			return fmt.Sprintf("endpoint Ready=%s %s %q", st, r, m)
		}
		return ""
	})
	if s, _ := fetch(t, ns, "shop"); s == nil || len(s.MySQL.Node) != 1 || s.MySQL.Node[0].Name != "shop-db" {
		t.Fatalf("unselected endpoint leaked into the config: %+v", s)
	}

	// Deleting the VirtualDatabase removes its configuration: its sidecars get 404.
	if err := k8s.Delete(ctx, v); err != nil {
		t.Fatal(err)
	}
	eventually(t, "config removed", func() string {
		if _, code := fetch(t, ns, "shop"); code != http.StatusNotFound {
			return fmt.Sprintf("GET answered %d", code)
		}
		return ""
	})
}

func TestInvalidRuleAndNoEndpoints(t *testing.T) {
	ctx, ns := setup(t)
	ts := strategy(ns, "shop")
	ts.Spec.CircuitBreaks = []v1alpha1.CircuitBreak{{Regex: []string{"(unclosed"}}}
	v := vdb(ns, "shop", "shop")
	create(ctx, t, ts, v)
	eventually(t, "NoEndpoints reported", func() string {
		st, reason, msg := ready(ctx, t, ts, func() []metav1.Condition { return ts.Status.Conditions })
		if st != metav1.ConditionFalse || (reason != v1alpha1.ReasonNoEndpoints && reason != v1alpha1.ReasonInvalidRule) {
			return fmt.Sprintf("Ready=%s %s %q", st, reason, msg)
		}
		return ""
	})
	create(ctx, t, endpoint(ns, "shop-db", "10.0.0.1", "pw", nil))
	eventually(t, "InvalidRule reported on the strategy and the VirtualDatabase", func() string {
		st, reason, msg := ready(ctx, t, ts, func() []metav1.Condition { return ts.Status.Conditions })
		if st != metav1.ConditionFalse || reason != v1alpha1.ReasonInvalidRule || !strings.Contains(msg, "(unclosed") {
			return fmt.Sprintf("strategy Ready=%s %s %q", st, reason, msg)
		}
		st, reason, msg = ready(ctx, t, v, func() []metav1.Condition { return v.Status.Conditions })
		if st != metav1.ConditionFalse || reason != v1alpha1.ReasonInvalidRule {
			return fmt.Sprintf("vdb Ready=%s %s %q", st, reason, msg)
		}
		return ""
	})
	// Fixing the rule makes everything Ready and the service served.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(ts), ts); err != nil {
			return err
		}
		ts.Spec.CircuitBreaks[0].Regex = []string{"^DROP"}
		return k8s.Update(ctx, ts)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Ready after the fix", func() string {
		st, reason, msg := ready(ctx, t, v, func() []metav1.Condition { return v.Status.Conditions })
		if st != metav1.ConditionTrue {
			return fmt.Sprintf("vdb Ready=%s %s %q", st, reason, msg)
		}
		if s, _ := fetch(t, ns, "shop"); s == nil || len(s.Proxy.Config) != 1 {
			return fmt.Sprintf("config %+v", s)
		}
		return ""
	})
}

func report(t *testing.T, ns, app, pod, version, errText string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"pod": pod, "version": version, "error": errText})
	resp, err := http.Post(api.URL+configserver.APIPrefix+"/namespaces/"+ns+"/proxyconfigs/"+app+"/status",
		"application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("report: %d", resp.StatusCode)
	}
}

func pod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{controller.InjectLabel: controller.InjectLabelValue}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}},
	}
}

func TestSidecarReportsInStatus(t *testing.T) {
	ctx, ns := setup(t)
	v := vdb(ns, "shop", "shop")
	create(ctx, t, endpoint(ns, "shop-db", "10.0.0.1", "pw", nil), strategy(ns, "shop"), v, pod(ns, "shop-1"), pod(ns, "shop-2"))
	var version string
	eventually(t, "config built", func() string {
		s, code := fetch(t, ns, "shop")
		if code != 200 {
			return fmt.Sprint(code)
		}
		version = s.Version
		return ""
	})
	report(t, ns, "shop", "shop-1", version, "")
	report(t, ns, "shop", "shop-2", "1", "")
	eventually(t, "status counts one current sidecar of two", func() string {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(v), v); err != nil {
			return err.Error()
		}
		if c := v.Status.Sidecars; c == nil || c.Total != 2 || c.Current != 1 {
			return fmt.Sprintf("sidecars %+v", c)
		}
		return ""
	})
	report(t, ns, "shop", "shop-2", version, "listener mysql: bad regex")
	eventually(t, "a rejection shows as ConfigRejected", func() string {
		st, reason, msg := ready(ctx, t, v, func() []metav1.Condition { return v.Status.Conditions })
		if st != metav1.ConditionFalse || reason != v1alpha1.ReasonConfigRejected {
			return fmt.Sprintf("Ready=%s %s %q", st, reason, msg)
		}
		if len(v.Status.Rejected) != 1 || v.Status.Rejected[0].Pod != "shop-2" ||
			strconv.FormatInt(v.Status.Rejected[0].Version, 10) != version {
			return fmt.Sprintf("rejected %+v", v.Status.Rejected)
		}
		return ""
	})
	// shop-2 goes away: once its report is older than the grace period it leaves the status.
	if err := k8s.Delete(ctx, pod(ns, "shop-2"), client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	clock.Store(int64(controller.ReportGrace + time.Minute))
	t.Cleanup(func() { clock.Store(0) })
	report(t, ns, "shop", "shop-1", version, "") // nudges a reconcile
	eventually(t, "a gone pod is forgotten", func() string {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(v), v); err != nil {
			return err.Error()
		}
		c := v.Status.Sidecars
		if c == nil || c.Total != 1 || c.Current != 1 || len(v.Status.Rejected) != 0 {
			return fmt.Sprintf("sidecars %+v rejected %+v", c, v.Status.Rejected)
		}
		if cond := meta.FindStatusCondition(v.Status.Conditions, v1alpha1.ConditionReady); cond == nil || cond.Status != metav1.ConditionTrue {
			return fmt.Sprintf("Ready %+v", cond)
		}
		return ""
	})
}

func TestDaemonConfigFromQoSClaim(t *testing.T) {
	ctx, ns := setup(t)
	qc := &v1alpha1.QoSClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gold"},
		Spec: v1alpha1.QoSClaimSpec{TrafficQoS: v1alpha1.TrafficQoS{Name: "gold",
			QoSGroup: &v1alpha1.QoSGroup{Rate: "10mbit", Ceil: "20mbit"}}},
	}
	v := vdb(ns, "shop", "shop")
	v.Spec.Services[0].QoSClaim = "gold"
	create(ctx, t, endpoint(ns, "shop-db", "10.0.0.9", "pw", nil), strategy(ns, "shop"), qc, v)
	app := ns + ".shop"
	eventually(t, "daemon config holds the claim", func() string {
		resp, err := http.Get(api.URL + configserver.APIPrefix + "/daemonconfigs")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		s := string(b)
		if resp.StatusCode != 200 || !strings.Contains(s, `"`+app+`"`) || !strings.Contains(s, "10.0.0.9") ||
			!strings.Contains(s, "10mbit") {
			return fmt.Sprintf("%d %s", resp.StatusCode, s)
		}
		return ""
	})
	eventually(t, "QoSClaim Ready", func() string {
		st, reason, msg := ready(ctx, t, qc, func() []metav1.Condition { return qc.Status.Conditions })
		if st != metav1.ConditionTrue {
			return fmt.Sprintf("Ready=%s %s %q", st, reason, msg)
		}
		return ""
	})
}
