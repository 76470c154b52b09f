package migration

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
	"github.com/database-mesh/pisanix-go/internal/controller/builder"
	tu "github.com/database-mesh/pisanix-go/internal/testutil"
)

// readObjects decodes a multi-document YAML fixture.
func readObjects(t *testing.T, name string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "crds", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// typed converts fixture objects into the builder's input.
func typed(t *testing.T, us []*unstructured.Unstructured) builder.Objects {
	t.Helper()
	var o builder.Objects
	conv := func(u *unstructured.Unstructured, into any) {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, into, true); err != nil {
			t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	for _, u := range us {
		switch u.GetKind() {
		case "VirtualDatabase":
			var x v1alpha1.VirtualDatabase
			conv(u, &x)
			o.VirtualDatabases = append(o.VirtualDatabases, x)
		case "TrafficStrategy":
			var x v1alpha1.TrafficStrategy
			conv(u, &x)
			o.TrafficStrategies = append(o.TrafficStrategies, x)
		case "DatabaseEndpoint":
			var x v1alpha1.DatabaseEndpoint
			conv(u, &x)
			o.DatabaseEndpoints = append(o.DatabaseEndpoints, x)
		case "DataShard":
			var x v1alpha1.DataShard
			conv(u, &x)
			o.DataShards = append(o.DataShards, x)
		case "QoSClaim":
			var x v1alpha1.QoSClaim
			conv(u, &x)
			o.QoSClaims = append(o.QoSClaims, x)
		default:
			t.Fatalf("unexpected kind %s", u.GetKind())
		}
	}
	return o
}

// toLocalMariaDB points every DatabaseEndpoint at the test's MariaDB (the fixtures name hosts
// of their own clusters).
func toLocalMariaDB(t *testing.T, o *builder.Objects) {
	t.Helper()
	host, port, _ := net.SplitHostPort(tu.MariaDBAddr(t))
	p, _ := strconv.Atoi(port)
	for i := range o.DatabaseEndpoints {
		m := o.DatabaseEndpoints[i].Spec.Database.MySQL
		m.Host, m.Port, m.User, m.Password = host, int32(p), "root", ""
	}
}

// The seed's Socks-shop objects: the selector matches no endpoint. The VirtualDatabase's
// problems name the TrafficStrategy, the endpoint it did not match, and the kubectl label
// command; after that command (the label added) the catalogue app gets its listener and
// real queries through it.
func TestSeedSocksShop(t *testing.T) {
	objs := typed(t, readObjects(t, "seed-hello-pisanix.yaml"))
	cfg, ps, err := builder.BuildProxyConfig("default", "catalogue", objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Proxy.Config) != 0 {
		t.Fatalf("listeners %v, want none (the selector matches nothing)", cfg.Proxy.Config)
	}
	msg := ""
	for _, p := range ps {
		msg += p.String() + "\n"
	}
	for _, want := range []string{
		`TrafficStrategy "catalogue": spec.selector source=catalogue matches no usable DatabaseEndpoint`,
		"catalogue-db (no labels)",
		"kubectl label databaseendpoint -n default catalogue-db source=catalogue",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("problems lack %q:\n%s", want, msg)
		}
	}

	// kubectl label databaseendpoint -n default catalogue-db source=catalogue
	objs.DatabaseEndpoints[0].Labels = map[string]string{"source": "catalogue"}
	toLocalMariaDB(t, &objs)
	direct(t, "CREATE DATABASE IF NOT EXISTS socksdb")
	cfg, ps, err = builder.BuildProxyConfig("default", "catalogue", objs)
	if err != nil || len(ps) != 0 || len(cfg.Proxy.Config) != 1 {
		t.Fatalf("after the label: %v %v %+v", err, ps, cfg.Proxy.Config)
	}
	r := serve(t, cfg)
	db := r.client(t, "mysql")
	if v := one(t, db, "SELECT DATABASE()"); v != "socksdb" {
		t.Fatalf("SELECT DATABASE(): %q", v)
	}
}

// The spec's objects build a configuration with every part (read/write splitting, circuit
// break, concurrency control, sharding) that serves queries.
func TestSpecObjects(t *testing.T) {
	objs := typed(t, readObjects(t, "spec-objects.yaml"))
	toLocalMariaDB(t, &objs)
	cfg, ps, err := builder.BuildProxyConfig("demotest", "catalogue", objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 0 || len(cfg.Proxy.Config) != 1 {
		t.Fatalf("problems %v, listeners %d", ps, len(cfg.Proxy.Config))
	}
	l := cfg.Proxy.Config[0]
	if l.ReadWriteSplitting == nil || l.Plugin == nil || len(l.Sharding) != 1 {
		t.Fatalf("listener lacks a part: %+v", l)
	}
	direct(t, "CREATE DATABASE IF NOT EXISTS socksdb")
	for i := 0; i < 4; i++ {
		direct(t, "CREATE TABLE IF NOT EXISTS socksdb.t_order_0000"+strconv.Itoa(i)+" (id BIGINT PRIMARY KEY)")
	}
	r := serve(t, cfg)
	db := r.client(t, "mysql")
	if v := one(t, db, "select 1"); v != "1" {
		t.Fatalf("select: %q", v)
	}
	if v := one(t, db, "select count(*) from t_order where id = 3"); v != "0" {
		t.Fatalf("sharded count: %q", v)
	}
	_, err = db.Exec("SELECT * FROM t_order")
	if me := mysqlErr(err); me == nil || !strings.HasPrefix(me.Message, "audit plugin rejected") {
		t.Fatalf("circuit break: %v", err)
	}
}

// startAPIServer starts a kube-apiserver with no CRDs (skipped without KUBEBUILDER_ASSETS).
func startAPIServer(t *testing.T) (*envtest.Environment, client.Client) {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		msg := "KUBEBUILDER_ASSETS is not set: KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./test/migration/"
		if ci := os.Getenv("CI"); ci != "" && ci != "false" {
			t.Fatal("CI: " + msg)
		}
		t.Skip(msg)
	}
	env := &envtest.Environment{ControlPlaneStartTimeout: 90 * time.Second}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = apiextensionsv1.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return env, c
}

// An MHA TrafficStrategy stored under Pisanix's CRD (monitorPeriod, successThreshold) keeps
// working after the CRDs are upgraded to this project's: the stored monitorPeriod is read, the
// Deprecated condition names it, and Pisanix's documented shapes (with or without
// successThreshold) are accepted by the upgraded schema, as are the seed's and the spec's
// objects.
func TestCRDUpgradeFromPisanix(t *testing.T) {
	env, c := startAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join("testdata", "crds", "pisanix-v0.3.2-trafficstrategy-crd.yaml")}}); err != nil {
		t.Fatal(err)
	}
	mha := readObjects(t, "mha-trafficstrategy.yaml")[0]
	mha.SetNamespace("default")
	if err := c.Create(ctx, mha.DeepCopy()); err != nil {
		t.Fatalf("create under Pisanix's CRD: %v", err)
	}

	// Upgrade: this project's CRDs replace Pisanix's.
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join("..", "..", "config", "crd", "bases")}}); err != nil {
		t.Fatal(err)
	}
	var ts v1alpha1.TrafficStrategy
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "catalogue"}, &ts)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	got := ts.Spec.LoadBalance.ReadWriteSplitting.Dynamic.Discovery.MasterHighAvailability
	if got.MonitorPeriod == nil || *got.MonitorPeriod != 1500 {
		t.Fatalf("stored monitorPeriod lost after the upgrade: %+v", got)
	}
	if d := strings.Join(builder.Deprecations(&ts), "\n"); !strings.Contains(d, "monitorPeriod is deprecated") {
		t.Fatalf("deprecations: %q", d)
	}
	// The controller's configuration uses it.
	objs := builder.Objects{TrafficStrategies: []v1alpha1.TrafficStrategy{ts}}
	seed := typed(t, readObjects(t, "seed-hello-pisanix.yaml"))
	objs.VirtualDatabases = seed.VirtualDatabases
	objs.DatabaseEndpoints = seed.DatabaseEndpoints
	objs.DatabaseEndpoints[0].Labels = map[string]string{"source": "catalogue"}
	objs.DatabaseEndpoints[0].Annotations = map[string]string{"database-mesh.io/role": "readwrite"}
	cfg, ps, err := builder.BuildProxyConfig("default", "catalogue", objs)
	if err != nil || len(ps) != 0 {
		t.Fatalf("build: %v %v", err, ps)
	}
	if mp := cfg.Proxy.Config[0].ReadWriteSplitting.Dynamic.Discovery.MonitorPeriod; mp != 1500 {
		t.Fatalf("monitor_period %d, want 1500 from monitorPeriod", mp)
	}

	// Pisanix's documented shapes are valid under the upgraded schema: the MHA strategy as
	// documented, the same without successThreshold, the seed's and the spec's objects.
	noSuccess := mha.DeepCopy()
	noSuccess.SetName("no-success-threshold")
	for _, probe := range []string{"connectionProbe", "pingProbe", "replicationLagProbe", "readOnlyProbe"} {
		unstructured.RemoveNestedField(noSuccess.Object, "spec", "loadBalance", "readWriteSplitting", "dynamic",
			"discovery", "masterHighAvailability", probe, "successThreshold")
	}
	fresh := mha.DeepCopy()
	fresh.SetName("fresh")
	objsToCreate := []*unstructured.Unstructured{noSuccess, fresh}
	for _, f := range []string{"seed-hello-pisanix.yaml", "spec-objects.yaml"} {
		for _, u := range readObjects(t, f) {
			if u.GetKind() == "TrafficStrategy" && u.GetNamespace() == "default" {
				continue // catalogue exists already
			}
			objsToCreate = append(objsToCreate, u)
		}
	}
	for _, u := range objsToCreate {
		if u.GetNamespace() == "" {
			u.SetNamespace("default")
		}
		if u.GetNamespace() != "default" {
			ns := &unstructured.Unstructured{}
			ns.SetAPIVersion("v1")
			ns.SetKind("Namespace")
			ns.SetName(u.GetNamespace())
			_ = c.Create(ctx, ns)
		}
		if err := c.Create(ctx, u); err != nil {
			t.Errorf("%s %s/%s refused by the upgraded schema: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
	_ = meta.IsStatusConditionTrue
}
