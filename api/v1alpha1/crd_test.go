package v1alpha1_test

// These tests install config/crd/bases into a real kube-apiserver (controller-runtime envtest)
// and check what the API server accepts and refuses. The binaries come from hack/envtest.sh:
//
//	KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./api/...
//
// `make test` sets KUBEBUILDER_ASSETS. Without it the tests skip locally and fail in CI.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
)

var (
	crdDir     = filepath.Join("..", "..", "config", "crd", "bases")
	samplesDir = filepath.Join("..", "..", "config", "samples")

	// k8s talks to the test API server with strict field validation: an unknown field is an
	// error, not a silent prune.
	k8s     client.Client
	scheme  = runtime.NewScheme()
	skipMsg string // why the tests skip (KUBEBUILDER_ASSETS unset, not in CI)
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	for _, add := range []func(*runtime.Scheme) error{
		v1alpha1.AddToScheme, corev1.AddToScheme, apiextensionsv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			fmt.Fprintln(os.Stderr, "scheme:", err)
			return 1
		}
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		msg := "KUBEBUILDER_ASSETS is not set: the CRD tests need kube-apiserver and etcd; " +
			"run `make test`, or KUBEBUILDER_ASSETS=$(hack/envtest.sh) go test ./api/..."
		if ci := os.Getenv("CI"); ci != "" && ci != "false" {
			fmt.Fprintln(os.Stderr, "FAIL (CI):", msg)
			return 1
		}
		skipMsg = msg
		return m.Run()
	}

	ctrllog.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr,
		&slog.HandlerOptions{Level: slog.LevelWarn})))
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{crdDir},
		ErrorIfCRDPathMissing: true,
	}
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		env.ControlPlaneStartTimeout = 60 * time.Second // a loaded 2-core machine is slow
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "envtest start:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "envtest stop:", err)
		}
	}()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	k8s = client.WithFieldValidation(c, metav1.FieldValidationStrict)
	return m.Run()
}

func needAPIServer(t *testing.T) context.Context {
	t.Helper()
	// Read the variables here, inside the test, so that go test's result cache keys on them
	// (reads in TestMain before m.Run are not recorded).
	os.Getenv("KUBEBUILDER_ASSETS")
	if skipMsg != "" {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" {
			t.Fatal("CI: " + skipMsg)
		}
		t.Skip(skipMsg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newNamespace creates a namespace for one test.
func newNamespace(ctx context.Context, t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "crd-test-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

func TestCRDsInstalled(t *testing.T) {
	ctx := needAPIServer(t)
	want := []struct {
		plural, kind string
		shortNames   []string
		columns      []string
	}{
		{"virtualdatabases", "VirtualDatabase", []string{"vdb"},
			[]string{"Services", "Ready", "Reason", "Config", "Current", "Sidecars", "Age"}},
		{"trafficstrategies", "TrafficStrategy", []string{"ts"},
			[]string{"Balance", "Endpoints", "Ready", "Reason", "Age"}},
		{"databaseendpoints", "DatabaseEndpoint", []string{"dbep"},
			[]string{"Protocol", "Endpoint", "Port", "Role", "Ready", "Age"}},
		{"datashards", "DataShard", []string{"ds", "shard"},
			[]string{"Tables", "Ready", "Reason", "Age"}},
		{"qosclaims", "QoSClaim", []string{"qc"},
			[]string{"QoS", "Rate", "Ceil", "Ready", "Age"}},
		{"securityclaims", "SecurityClaim", []string{"sc"},
			[]string{"Active Key", "Assisted Key", "Ready", "Reason", "Age"}},
	}
	for _, w := range want {
		t.Run(w.kind, func(t *testing.T) {
			var crd apiextensionsv1.CustomResourceDefinition
			name := w.plural + ".core.database-mesh.io"
			if err := k8s.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
				t.Fatalf("get CRD %s: %v", name, err)
			}
			established := false
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					established = true
				}
			}
			if !established {
				t.Errorf("CRD %s not established: %+v", name, crd.Status.Conditions)
			}
			if crd.Spec.Names.Kind != w.kind || crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
				t.Errorf("kind %q scope %q, want %q Namespaced", crd.Spec.Names.Kind, crd.Spec.Scope, w.kind)
			}
			if !slices.Equal(crd.Spec.Names.ShortNames, w.shortNames) {
				t.Errorf("shortNames %v, want %v", crd.Spec.Names.ShortNames, w.shortNames)
			}
			if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != "v1alpha1" {
				t.Fatalf("versions %+v, want only v1alpha1", crd.Spec.Versions)
			}
			v := crd.Spec.Versions[0]
			if v.Subresources == nil || v.Subresources.Status == nil {
				t.Errorf("no status subresource")
			}
			var cols []string
			for _, c := range v.AdditionalPrinterColumns {
				cols = append(cols, c.Name)
			}
			if !slices.Equal(cols, w.columns) {
				t.Errorf("printer columns %v, want %v", cols, w.columns)
			}
		})
	}
}

// sample is one object of config/samples.
type sample struct {
	file string
	obj  *unstructured.Unstructured
}

func readSamples(t *testing.T) []sample {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(samplesDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out []sample
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		for _, obj := range readYAML(t, f) {
			out = append(out, sample{filepath.Base(f), obj})
		}
	}
	if len(out) == 0 {
		t.Fatalf("no samples in %s", samplesDir)
	}
	return out
}

// readYAML decodes every document of a YAML file.
func readYAML(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, obj)
	}
}

// sampleOf returns a copy of the first sample of a file, in namespace ns with the given name.
func sampleOf(t *testing.T, file, ns, name string) *unstructured.Unstructured {
	t.Helper()
	objs := readYAML(t, filepath.Join(samplesDir, file))
	if len(objs) == 0 {
		t.Fatalf("no object in %s", file)
	}
	obj := objs[0].DeepCopy()
	obj.SetNamespace(ns)
	obj.SetName(name)
	return obj
}

// TestSamplesAccepted creates every sample through the API server and checks that nothing was
// pruned (a field the schema does not know) and that the Go types carry every field.
func TestSamplesAccepted(t *testing.T) {
	ctx := needAPIServer(t)
	ns := newNamespace(ctx, t)
	kinds := map[string]bool{}
	for _, s := range readSamples(t) {
		t.Run(s.file+"/"+s.obj.GetName(), func(t *testing.T) {
			obj := s.obj.DeepCopy()
			obj.SetNamespace(ns)
			kinds[obj.GetKind()] = true
			wantSpec := obj.Object["spec"]
			if err := k8s.Create(ctx, obj); err != nil {
				t.Fatalf("create: %v", err)
			}
			if got := obj.Object["spec"]; !reflect.DeepEqual(got, wantSpec) {
				t.Errorf("the API server changed the spec (pruned fields?):\n got %v\nwant %v", got, wantSpec)
			}

			// The typed Go object read back must carry every non-empty field of the sample.
			typed, err := scheme.New(obj.GroupVersionKind())
			if err != nil {
				t.Fatal(err)
			}
			tobj := typed.(client.Object)
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), tobj); err != nil {
				t.Fatalf("get typed: %v", err)
			}
			raw, err := json.Marshal(tobj)
			if err != nil {
				t.Fatal(err)
			}
			var back map[string]any
			if err := json.Unmarshal(raw, &back); err != nil {
				t.Fatal(err)
			}
			wantJSON, _ := json.Marshal(wantSpec)
			var want any
			_ = json.Unmarshal(wantJSON, &want)
			if diff := missing("spec", want, back["spec"]); diff != "" {
				t.Errorf("the Go type lost sample fields: %s", diff)
			}
		})
	}
	for _, k := range []string{"VirtualDatabase", "TrafficStrategy", "DatabaseEndpoint", "DataShard", "QoSClaim"} {
		if !kinds[k] {
			t.Errorf("no sample of kind %s in %s", k, samplesDir)
		}
	}
}

// missing reports the first non-empty value of want that got lacks or differs in.
func missing(path string, want, got any) string {
	switch w := want.(type) {
	case map[string]any:
		g, _ := got.(map[string]any)
		for k, wv := range w {
			if d := missing(path+"."+k, wv, g[k]); d != "" {
				return d
			}
		}
	case []any:
		g, _ := got.([]any)
		if len(g) != len(w) {
			return fmt.Sprintf("%s: %d items, want %d", path, len(g), len(w))
		}
		for i := range w {
			if d := missing(path+"["+strconv.Itoa(i)+"]", w[i], g[i]); d != "" {
				return d
			}
		}
	default:
		if want == nil || reflect.ValueOf(want).IsZero() {
			return "" // omitempty may drop "", 0, false
		}
		if !reflect.DeepEqual(want, got) {
			return fmt.Sprintf("%s: got %v, want %v", path, got, want)
		}
	}
	return ""
}

// edit changes a field of an unstructured object: path elements are map keys, or list indexes
// written as numbers; value del removes the field.
type edit struct {
	path  string
	value any
}

var del = &struct{}{}

func apply(t *testing.T, obj map[string]any, e edit) {
	t.Helper()
	parts := strings.Split(e.path, ".")
	var cur any = obj
	for i, p := range parts {
		last := i == len(parts)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				if e.value == del {
					delete(c, p)
				} else {
					c[p] = e.value
				}
				return
			}
			if _, ok := c[p]; !ok {
				c[p] = map[string]any{}
			}
			cur = c[p]
		case []any:
			n, err := strconv.Atoi(p)
			if err != nil || n >= len(c) {
				t.Fatalf("edit %s: bad index %q", e.path, p)
			}
			if last {
				c[n] = e.value
				return
			}
			cur = c[n]
		default:
			t.Fatalf("edit %s: %q is not a map or list", e.path, p)
		}
	}
}

const (
	vdbSample   = "core_v1alpha1_virtualdatabase.yaml"
	vdbFull     = "core_v1alpha1_virtualdatabase_full.yaml"
	tsSample    = "core_v1alpha1_trafficstrategy.yaml"
	tsRW        = "core_v1alpha1_trafficstrategy_rwsplit.yaml"
	dbepSample  = "core_v1alpha1_databaseendpoint.yaml"
	shardSample = "core_v1alpha1_datashard.yaml"
	qcSample    = "core_v1alpha1_qosclaim.yaml"
	scSample    = "core_v1alpha1_securityclaim.yaml"
)

const (
	mha   = "spec.loadBalance.readWriteSplitting.dynamic.discovery.masterHighAvailability"
	rule0 = "spec.loadBalance.readWriteSplitting.static.rules.0"
)

// TestInvalidRejected changes one field of a valid sample and checks that the API server refuses
// the object with a message naming the field.
func TestInvalidRejected(t *testing.T) {
	ctx := needAPIServer(t)
	ns := newNamespace(ctx, t)
	cases := []struct {
		name  string
		file  string
		edits []edit
		want  []string // substrings of the error message
	}{
		// VirtualDatabase
		{"vdb port too high", vdbSample, []edit{{"spec.services.0.databaseMySQL.port", int64(70000)}},
			[]string{"spec.services[0].databaseMySQL.port", "less than or equal to 65535"}},
		{"vdb port zero", vdbSample, []edit{{"spec.services.0.databaseMySQL.port", int64(0)}},
			[]string{"spec.services[0].databaseMySQL.port", "greater than or equal to 1"}},
		{"vdb poolSize too high", vdbSample, []edit{{"spec.services.0.databaseMySQL.poolSize", int64(256)}},
			[]string{"spec.services[0].databaseMySQL.poolSize", "less than or equal to 255"}},
		{"vdb without services", vdbSample, []edit{{"spec.services", del}},
			[]string{"spec.services", "Required value"}},
		{"vdb empty services", vdbSample, []edit{{"spec.services", []any{}}},
			[]string{"spec.services", "at least 1 items"}},
		{"vdb service without name", vdbSample, []edit{{"spec.services.0.name", del}},
			[]string{"spec.services[0].name", "Required value"}},
		{"vdb service without databaseMySQL", vdbSample, []edit{{"spec.services.0.databaseMySQL", del}},
			[]string{"spec.services[0].databaseMySQL", "Required value"}},
		{"vdb duplicate service", vdbFull, []edit{{"spec.services.1.name", "mysql"}},
			[]string{"spec.services[1]", "Duplicate value"}},
		{"vdb password and secret", vdbSample, []edit{{"spec.services.0.databaseMySQL.passwordSecretRef",
			map[string]any{"name": "s", "key": "k"}}},
			[]string{"spec.services[0].databaseMySQL", "password and passwordSecretRef are mutually exclusive"}},
		{"vdb secret ref without key", vdbFull, []edit{{"spec.services.0.databaseMySQL.passwordSecretRef.key", del}},
			[]string{"spec.services[0].databaseMySQL.passwordSecretRef.key", "Required value"}},
		{"vdb unknown field", vdbSample, []edit{{"spec.services.0.databaseMySQL.pool_size", int64(3)}},
			[]string{`unknown field "spec.services[0].databaseMySQL.pool_size"`}},

		// TrafficStrategy
		{"ts bad balance kind", tsSample, []edit{{"spec.loadBalance.simpleLoadBalance.kind", "leastconn"}},
			[]string{"spec.loadBalance.simpleLoadBalance.kind", `Unsupported value: "leastconn"`, `"random", "roundrobin"`}},
		{"ts balance without kind", tsSample, []edit{{"spec.loadBalance.simpleLoadBalance.kind", del}},
			[]string{"spec.loadBalance.simpleLoadBalance.kind", "Required value"}},
		{"ts bad rule type", tsRW, []edit{{rule0 + ".type", "glob"}},
			[]string{"spec.loadBalance.readWriteSplitting.static.rules[0].type", `Unsupported value: "glob"`}},
		{"ts bad rule target", tsRW, []edit{{rule0 + ".target", "write"}},
			[]string{"spec.loadBalance.readWriteSplitting.static.rules[0].target", `Unsupported value: "write"`}},
		{"ts bad default target", tsRW, []edit{{"spec.loadBalance.readWriteSplitting.static.defaultTarget", "primary"}},
			[]string{"spec.loadBalance.readWriteSplitting.static.defaultTarget", "Unsupported value"}},
		{"ts rule without algorithm", tsRW, []edit{{rule0 + ".algorithmName", del}},
			[]string{"spec.loadBalance.readWriteSplitting.static.rules[0].algorithmName", "Required value"}},
		{"ts rule without name", tsRW, []edit{{rule0 + ".name", del}},
			[]string{"spec.loadBalance.readWriteSplitting.static.rules[0].name", "Required value"}},
		{"ts dynamic without discovery", tsRW, []edit{{"spec.loadBalance.readWriteSplitting.dynamic.discovery", del}},
			[]string{"spec.loadBalance.readWriteSplitting.dynamic.discovery", "Required value"}},
		{"ts mha negative monitorPeriod", tsRW, []edit{{mha + ".monitorPeriod", int64(-1)}},
			[]string{mha + ".monitorPeriod", "greater than or equal to 0"}},
		{"ts mha without user", tsRW, []edit{{mha + ".user", del}},
			[]string{mha + ".user", "Required value"}},
		{"ts mha without password", tsRW, []edit{{mha + ".passwordSecretRef", del}},
			[]string{mha, "exactly one of password and passwordSecretRef must be set"}},
		{"ts negative probe period", tsRW, []edit{{mha + ".connectionProbe.periodMilliseconds", int64(-1)}},
			[]string{mha + ".connectionProbe.periodMilliseconds", "greater than or equal to 0"}},
		{"ts lag probe without maxReplicationLag", tsRW, []edit{{mha + ".replicationLagProbe.maxReplicationLag", del}},
			[]string{mha + ".replicationLagProbe.maxReplicationLag", "Required value"}},
		{"ts circuit break without regex", tsRW, []edit{{"spec.circuitBreaks.0.regex", del}},
			[]string{"spec.circuitBreaks[0].regex", "Required value"}},
		{"ts concurrency zero", tsRW, []edit{{"spec.concurrencyControls.0.maxConcurrency", int64(0)}},
			[]string{"spec.concurrencyControls[0].maxConcurrency", "greater than or equal to 1"}},
		{"ts concurrency without duration", tsRW, []edit{{"spec.concurrencyControls.0.duration", del}},
			[]string{"spec.concurrencyControls[0].duration", "Required value"}},
		{"ts bad wait timeout", tsRW, []edit{{"spec.concurrencyControls.1.waitTimeout", "soon"}},
			[]string{"spec.concurrencyControls[1].waitTimeout"}},
		{"ts bad access kind", tsRW, []edit{{"spec.accessControl.users.0.kinds", []any{"read", "execute"}}},
			[]string{"spec.accessControl.users[0].kinds[1]", `Unsupported value: "execute"`}},
		{"ts duplicate access user", tsRW, []edit{{"spec.accessControl.users.1.user", "reporter"}},
			[]string{"spec.accessControl.users[1]", "Duplicate value"}},
		{"ts access user password and secret", tsRW, []edit{{"spec.accessControl.users.0.password", "x"}},
			[]string{"spec.accessControl.users[0]", "password and passwordSecretRef are mutually exclusive"}},
		{"ts negative maxRows", tsRW, []edit{{"spec.accessControl.users.0.maxRows", int64(-5)}},
			[]string{"spec.accessControl.users[0].maxRows", "greater than or equal to 0"}},
		{"ts audit without output", tsRW, []edit{{"spec.audit.output", del}},
			[]string{"spec.audit.output", "Required value"}},
		{"ts bad audit include", tsRW, []edit{{"spec.audit.include", "some"}},
			[]string{"spec.audit.include", `Unsupported value: "some"`}},
		{"ts bad sample rate", tsRW, []edit{{"spec.audit.sampleRate", "2"}},
			[]string{"spec.audit.sampleRate", "should match"}},
		{"ts zero error rate", tsRW, []edit{{"spec.endpointBreaker.errorRate", "0"}},
			[]string{"spec.endpointBreaker.errorRate", "should match"}},
		{"ts failover without an option", tsRW, []edit{{"spec.failover", map[string]any{"delayedRetryTimeout": "5s"}}},
			[]string{"spec.failover", "failover sets neither delayedRetry nor transactionReplay"}},
		{"ts failover negative size", tsRW, []edit{{"spec.failover", map[string]any{"transactionReplay": true, "transactionReplayMaxSize": int64(-1)}}},
			[]string{"spec.failover.transactionReplayMaxSize", "greater than or equal to 0"}},
		{"ts selector expression without operator", tsRW, []edit{{"spec.selector.matchExpressions.0.operator", del}},
			[]string{"spec.selector.matchExpressions[0].operator", "Required value"}},

		// DatabaseEndpoint
		{"dbep port too high", dbepSample, []edit{{"spec.database.MySQL.port", int64(65536)}},
			[]string{"spec.database.MySQL.port", "less than or equal to 65535"}},
		{"dbep negative port", dbepSample, []edit{{"spec.database.MySQL.port", int64(-1)}},
			[]string{"spec.database.MySQL.port", "greater than or equal to 1"}},
		{"dbep lower-case mysql", dbepSample, []edit{
			{"spec.database.mysql", map[string]any{"host": "h", "port": int64(3306)}},
			{"spec.database.MySQL", del}},
			[]string{`unknown field "spec.database.mysql"`}},
		{"dbep without database", dbepSample, []edit{{"spec.database", del}},
			[]string{"spec.database", "Required value"}},
		{"dbep password and secret", dbepSample, []edit{{"spec.database.MySQL.passwordSecretRef",
			map[string]any{"name": "s", "key": "k"}}},
			[]string{"spec.database.MySQL", "password and passwordSecretRef are mutually exclusive"}},
		{"dbep port as string", dbepSample, []edit{{"spec.database.MySQL.port", "3306"}},
			[]string{"spec.database.MySQL.port", "Invalid value", "integer"}},

		// DataShard
		{"ds without rules", shardSample, []edit{{"spec.rules", del}},
			[]string{"spec.rules", "Required value"}},
		{"ds rule without tableName", shardSample, []edit{{"spec.rules.0.tableName", del}},
			[]string{"spec.rules[0].tableName", "Required value"}},
		{"ds bad algorithm", shardSample, []edit{{"spec.rules.0.tableStrategy.tableShardingAlgorithmName", "hash"}},
			[]string{"spec.rules[0].tableStrategy.tableShardingAlgorithmName", `Unsupported value: "hash"`, `"mod", "crc32mod"`}},
		{"ds crc32_mod (doc spelling)", shardSample, []edit{{"spec.rules.1.databaseStrategy.databaseShardingAlgorithmName", "crc32_mod"}},
			[]string{"spec.rules[1].databaseStrategy.databaseShardingAlgorithmName", `Unsupported value: "crc32_mod"`}},
		{"ds zero shardingCount", shardSample, []edit{{"spec.rules.0.tableStrategy.shardingCount", int64(0)}},
			[]string{"spec.rules[0].tableStrategy.shardingCount", "greater than or equal to 1"}},
		{"ds two strategies", shardSample, []edit{{"spec.rules.0.databaseStrategy",
			map[string]any{"databaseShardingAlgorithmName": "mod", "databaseShardingColumn": "id"}}},
			[]string{"spec.rules[0]", "exactly one of tableStrategy, databaseStrategy and databaseTableStrategy"}},
		{"ds no strategy", shardSample, []edit{{"spec.rules.0.tableStrategy", del}},
			[]string{"spec.rules[0]", "exactly one of tableStrategy, databaseStrategy and databaseTableStrategy"}},
		{"ds node with value and group", shardSample, []edit{{"spec.rules.2.actualDatanodes.valueSource.nodes.0.value", "ds001"}},
			[]string{"spec.rules[2].actualDatanodes.valueSource.nodes[0]", "exactly one of value and valueFromReadWriteSplitting"}},
		{"ds group rule bad type", shardSample, []edit{{"spec.rules.2.readWriteSplittingGroup.0.rules.0.type", "glob"}},
			[]string{"spec.rules[2].readWriteSplittingGroup[0].rules[0].type", `Unsupported value: "glob"`}},

		// QoSClaim
		{"qc without trafficQoS", qcSample, []edit{{"spec.trafficQoS", del}},
			[]string{"spec.trafficQoS", "Required value"}},
		{"qc without name", qcSample, []edit{{"spec.trafficQoS.name", del}},
			[]string{"spec.trafficQoS.name", "Required value"}},
		{"qc bad rate unit (doc typo 1mps)", qcSample, []edit{{"spec.trafficQoS.qos_group.rate", "1mps"}},
			[]string{"spec.trafficQoS.qos_group.rate", "should match"}},
		{"qc prefix without unit", qcSample, []edit{{"spec.trafficQoS.qos_group.rate", "1k"}},
			[]string{"spec.trafficQoS.qos_group.rate", "should match"}},
		{"qc bad ceil", qcSample, []edit{{"spec.trafficQoS.qos_group.ceil", "fast"}},
			[]string{"spec.trafficQoS.qos_group.ceil", "should match"}},
		{"qc camel-case qosGroup", qcSample, []edit{{"spec.trafficQoS.qosGroup", map[string]any{"rate": "1mbit"}}},
			[]string{`unknown field "spec.trafficQoS.qosGroup"`}},

		// SecurityClaim
		{"sc bad masking mode", scSample, []edit{{"spec.masking.0.mode", "blur"}},
			[]string{"spec.masking[0].mode", `Unsupported value: "blur"`}},
		{"sc keepLast with mode fixed", scSample, []edit{{"spec.masking.0.mode", "fixed"}},
			[]string{"spec.masking[0]", "keepFirst, keepLast and maskChar apply to mode keep only"}},
		{"sc cipher column is the logical name", scSample, []edit{{"spec.encryptedTables.0.columns.0.cipherColumn", "email"}},
			[]string{"spec.encryptedTables[0].columns[0]", "cipherColumn must differ from the logical name"}},
		{"sc tables without active key", scSample, []edit{{"spec.activeKey", del}},
			[]string{"activeKey is required when encryptedTables are set"}},
		{"sc assisted key is the active key", scSample, []edit{{"spec.assistedKey", "k1"}},
			[]string{"assistedKey must not be the activeKey"}},
		{"sc key without secretRef", scSample, []edit{{"spec.keys.0.secretRef", del}},
			[]string{"spec.keys[0].secretRef", "Required value"}},
		{"sc table without columns", scSample, []edit{{"spec.encryptedTables.0.columns", []any{}}},
			[]string{"spec.encryptedTables[0].columns", "at least 1 items"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obj := sampleOf(t, c.file, ns, "bad-"+strconv.Itoa(i))
			for _, e := range c.edits {
				apply(t, obj.Object, e)
			}
			err := k8s.Create(ctx, obj)
			if err == nil {
				t.Fatalf("the API server accepted the invalid object")
			}
			t.Logf("refused: %v", err)
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
				t.Errorf("error is %T (reason %s), want Invalid or BadRequest: %v", err, apierrors.ReasonForError(err), err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestValidEdgeCases are objects the schema must not refuse: Pisanix manifests and boundary
// values.
func TestValidEdgeCases(t *testing.T) {
	ctx := needAPIServer(t)
	ns := newNamespace(ctx, t)
	cases := []struct {
		name  string
		file  string
		edits []edit
	}{
		{"vdb port 65535 poolSize 255", vdbSample, []edit{
			{"spec.services.0.databaseMySQL.port", int64(65535)},
			{"spec.services.0.databaseMySQL.poolSize", int64(255)}}},
		{"vdb minimal (defaults from the controller)", vdbSample, []edit{
			{"spec.services.0.databaseMySQL", map[string]any{}},
			{"spec.services.0.trafficStrategy", del}}},
		{"ts without selector (Pisanix v0.2+ style)", tsSample, []edit{{"spec.selector", del}}},
		{"ts empty spec", tsSample, []edit{{"spec", map[string]any{}}}},
		{"ts mha with plain password, no probes", tsRW, []edit{
			{mha, map[string]any{"user": "monitor", "password": "monitor", "monitorInterval": int64(0)}}}},
		// Pisanix v0.2.0–v0.3.2's documented MHA shape: monitorPeriod (deprecated alias), no
		// monitorInterval, probes without successThreshold.
		{"ts mha Pisanix spelling", tsRW, []edit{{mha + ".monitorInterval", del}, {mha + ".monitorPeriod", int64(1000)},
			{mha + ".pingProbe.successThreshold", del}}},
		{"ts mha without monitorInterval", tsRW, []edit{{mha + ".monitorInterval", del}}},
		{"ts static only, no rules", tsRW, []edit{
			{"spec.loadBalance.readWriteSplitting", map[string]any{"static": map[string]any{"defaultTarget": "read"}}}}},
		{"ts concurrency window 0", tsRW, []edit{{"spec.concurrencyControls.0.duration", int64(0)}}},
		{"ts sample rate edges", tsRW, []edit{{"spec.audit.sampleRate", "1"}, {"spec.endpointBreaker.errorRate", "1.0"}}},
		{"ts failover", tsRW, []edit{{"spec.failover", map[string]any{"delayedRetry": true, "delayedRetryTimeout": "20s", "transactionReplay": true}}}},
		{"ts sample rate zero", tsRW, []edit{{"spec.audit.sampleRate", "0"}, {"spec.endpointBreaker.errorRate", ".25"}}},
		{"dbep without host (filled in later)", dbepSample, []edit{{"spec.database.MySQL", map[string]any{}}}},
		{"dbep without MySQL", dbepSample, []edit{{"spec.database", map[string]any{}}}},
		{"ds expression only", shardSample, []edit{{"spec.rules.0.actualDatanodes.valueSource",
			map[string]any{"expression": "ds00${0..1}"}}}},
		{"qc rates in every unit form", qcSample, []edit{
			{"spec.trafficQoS.qos_group", map[string]any{"rate": "800", "ceil": "1.5Gbit"}}}},
		{"qc byte rates", qcSample, []edit{
			{"spec.trafficQoS.qos_group", map[string]any{"rate": "125kbps", "ceil": "1MiBps"}}}},
		{"qc IEC bit rate", qcSample, []edit{
			{"spec.trafficQoS.qos_group", map[string]any{"rate": "10kibit", "ceil": "2TBit"}}}},
		{"qc without qos_group", qcSample, []edit{{"spec.trafficQoS.qos_group", del}}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obj := sampleOf(t, c.file, ns, "ok-"+strconv.Itoa(i))
			for _, e := range c.edits {
				apply(t, obj.Object, e)
			}
			if err := k8s.Create(ctx, obj); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

// TestStatusSubresource checks that status is written only through /status and that a status
// write does not bump the generation.
func TestStatusSubresource(t *testing.T) {
	ctx := needAPIServer(t)
	ns := newNamespace(ctx, t)

	vdb := &v1alpha1.VirtualDatabase{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "catalogue"},
		Spec: v1alpha1.VirtualDatabaseSpec{Services: []v1alpha1.VirtualDatabaseService{{
			Name:            "mysql",
			TrafficStrategy: "catalogue",
			DatabaseService: v1alpha1.DatabaseService{DatabaseMySQL: &v1alpha1.DatabaseMySQL{
				Port: 3306, User: "u",
				PasswordSecretRef: &v1alpha1.SecretKeySelector{Name: "s", Key: "password"},
			}},
		}}},
		// Ignored on create: status goes through the subresource.
		Status: v1alpha1.VirtualDatabaseStatus{ConfigVersion: 99},
	}
	if err := k8s.Create(ctx, vdb); err != nil {
		t.Fatalf("create: %v", err)
	}
	if vdb.Status.ConfigVersion != 0 {
		t.Errorf("create stored status.configVersion %d, want 0", vdb.Status.ConfigVersion)
	}
	gen := vdb.Generation

	vdb.Status = v1alpha1.VirtualDatabaseStatus{
		ObservedGeneration: gen,
		ConfigVersion:      3,
		Endpoints:          []string{"catalogue-db"},
		Sidecars:           &v1alpha1.SidecarCounts{Total: 2, Current: 1},
		Rejected:           []v1alpha1.SidecarRejection{{Pod: "catalogue-7d9f-abcde", Version: 3, Error: "bad regex"}},
	}
	meta.SetStatusCondition(&vdb.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: v1alpha1.ReasonTrafficStrategyNotFound, Message: `TrafficStrategy "catalogue" not found`,
		ObservedGeneration: gen,
	})
	if err := k8s.Status().Update(ctx, vdb); err != nil {
		t.Fatalf("status update: %v", err)
	}

	var got v1alpha1.VirtualDatabase
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(vdb), &got); err != nil {
		t.Fatal(err)
	}
	if got.Generation != gen {
		t.Errorf("status write changed generation %d → %d", gen, got.Generation)
	}
	c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Reason != v1alpha1.ReasonTrafficStrategyNotFound || got.Status.ConfigVersion != 3 ||
		got.Status.Sidecars == nil || got.Status.Sidecars.Current != 1 || len(got.Status.Rejected) != 1 {
		t.Errorf("status not stored: %+v", got.Status)
	}

	// A spec change bumps the generation and leaves status alone.
	got.Spec.Services[0].DatabaseMySQL.PoolSize = 8
	got.Status.ConfigVersion = 100 // ignored: main resource
	if err := k8s.Update(ctx, &got); err != nil {
		t.Fatalf("update: %v", err)
	}
	if got.Generation != gen+1 || got.Status.ConfigVersion != 3 {
		t.Errorf("after spec update: generation %d (want %d), configVersion %d (want 3)",
			got.Generation, gen+1, got.Status.ConfigVersion)
	}

	// A condition with a bad status is refused by the metav1.Condition schema.
	bad := got.DeepCopy()
	bad.Status.Conditions[0].Status = "Maybe"
	err := k8s.Status().Update(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), "status.conditions[0].status") {
		t.Errorf("condition status Maybe: got %v, want an error naming status.conditions[0].status", err)
	}
}
