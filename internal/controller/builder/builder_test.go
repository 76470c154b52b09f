package builder

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
	"github.com/database-mesh/pisanix-go/internal/daemonconfig"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// loadObjects reads a multi-document YAML file of custom resources and Secrets, grouped by
// namespace (default "default"), as `pisa-controller build-config` does.
func loadObjects(t *testing.T, path string) AllNamespaces {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	all := AllNamespaces{}
	if err := DecodeObjects(all, data, "default"); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return all
}

type proxyResult struct {
	Config   *proxyconfig.Config `json:"config"`
	Problems []Problem           `json:"problems"`
}

type golden struct {
	// Proxy is keyed by "<namespace>/<VirtualDatabase>".
	Proxy  map[string]proxyResult `json:"proxy"`
	Daemon struct {
		Config   *daemonconfig.Config `json:"config"`
		Problems []Problem            `json:"problems"`
	} `json:"daemon"`
}

func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			all := loadObjects(t, in)
			var g golden
			g.Proxy = map[string]proxyResult{}
			for ns, objs := range all {
				for _, vdb := range objs.VirtualDatabases {
					cfg, ps, err := BuildProxyConfig(ns, vdb.Name, objs)
					if err != nil {
						t.Fatalf("%s/%s: %v", ns, vdb.Name, err)
					}
					if ps == nil {
						ps = []Problem{}
					}
					g.Proxy[ns+"/"+vdb.Name] = proxyResult{Config: cfg, Problems: ps}
					// What is served must be what a sidecar accepts.
					if len(cfg.Proxy.Config) > 0 && !slices.ContainsFunc(ps, func(p Problem) bool {
						return p.Kind == KindVirtualDatabase && p.Service == "" && p.Reason == v1alpha1.ReasonInvalidSpec
					}) {
						if _, err := proxyconfig.Parse(mustJSON(cfg), proxyconfig.JSON); err != nil {
							t.Errorf("%s/%s: the sidecar would reject the config: %v", ns, vdb.Name, err)
						}
					}
					// Pure: a second build gives the same bytes.
					again, _, _ := BuildProxyConfig(ns, vdb.Name, objs)
					if !bytes.Equal(mustJSON(cfg), mustJSON(again)) {
						t.Errorf("%s/%s: two builds differ", ns, vdb.Name)
					}
				}
			}
			dc, dps := BuildDaemonConfig(all)
			if dps == nil {
				dps = []Problem{}
			}
			g.Daemon.Config, g.Daemon.Problems = dc, dps
			// What is served must be what the daemon decodes.
			back, err := daemonconfig.ParseJSON(mustJSON(dc))
			if err != nil {
				t.Fatalf("daemonconfig.ParseJSON: %v", err)
			}
			if !reflect.DeepEqual(back, dc) {
				t.Errorf("daemon config does not survive a JSON round trip:\n%+v\n%+v", back, dc)
			}

			got, err := json.MarshalIndent(g, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			goldenPath := filepath.Join("testdata", name+".json")
			if *update {
				if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the build (go test -update rewrites it); got:\n%s", goldenPath, got)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	_, _, err := BuildProxyConfig("ns", "missing", Objects{VirtualDatabases: []v1alpha1.VirtualDatabase{
		{ObjectMeta: metav1.ObjectMeta{Name: "missing", Namespace: "other"}}}})
	if !errors.Is(err, ErrVirtualDatabaseNotFound) {
		t.Fatalf("err = %v, want ErrVirtualDatabaseNotFound", err)
	}
}

// Nothing in the objects may make the builder panic: zero values everywhere.
func TestNoPanicOnEmptyObjects(t *testing.T) {
	objs := Objects{
		VirtualDatabases: []v1alpha1.VirtualDatabase{{ObjectMeta: metav1.ObjectMeta{Name: "a"},
			Spec: v1alpha1.VirtualDatabaseSpec{Services: []v1alpha1.VirtualDatabaseService{
				{}, {Name: "x", TrafficStrategy: "ts", DataShard: "ds", QoSClaim: "qc",
					DatabaseService: v1alpha1.DatabaseService{DatabaseMySQL: &v1alpha1.DatabaseMySQL{}}}}}}},
		TrafficStrategies: []v1alpha1.TrafficStrategy{{ObjectMeta: metav1.ObjectMeta{Name: "ts"},
			Spec: v1alpha1.TrafficStrategySpec{Selector: &metav1.LabelSelector{},
				LoadBalance: &v1alpha1.LoadBalance{ReadWriteSplitting: &v1alpha1.ReadWriteSplitting{
					Dynamic: &v1alpha1.ReadWriteSplittingDynamic{Discovery: v1alpha1.ReadWriteDiscovery{
						MasterHighAvailability: &v1alpha1.MasterHighAvailability{}}}}},
				AccessControl: &v1alpha1.AccessControl{Users: []v1alpha1.AccessUser{{}}},
				Audit:         &v1alpha1.Audit{}, EndpointBreaker: &v1alpha1.EndpointBreaker{},
				CircuitBreaks: []v1alpha1.CircuitBreak{{}}, ConcurrencyControls: []v1alpha1.ConcurrencyControl{{}}}}},
		DatabaseEndpoints: []v1alpha1.DatabaseEndpoint{{ObjectMeta: metav1.ObjectMeta{Name: "e"},
			Spec: v1alpha1.DatabaseEndpointSpec{Database: v1alpha1.Database{MySQL: &v1alpha1.MySQL{Host: "h"}}}}, {}},
		DataShards: []v1alpha1.DataShard{{ObjectMeta: metav1.ObjectMeta{Name: "ds"},
			Spec: v1alpha1.DataShardSpec{Rules: []v1alpha1.ShardingRule{{}, {ActualDatanodes: &v1alpha1.ActualDatanodesValue{
				ValueSource: &v1alpha1.ValueSourceType{Nodes: []v1alpha1.ValueFromType{{}}}}}}}}},
		QoSClaims: []v1alpha1.QoSClaim{{ObjectMeta: metav1.ObjectMeta{Name: "qc"}}},
	}
	cfg, ps, err := BuildProxyConfig("", "a", objs)
	if err != nil || cfg == nil || len(ps) == 0 {
		t.Fatalf("cfg=%v problems=%v err=%v", cfg, ps, err)
	}
	if len(cfg.Proxy.Config) != 0 {
		t.Errorf("broken services must not be served: %+v", cfg.Proxy.Config)
	}
	dc, dps := BuildDaemonConfig(AllNamespaces{"": objs})
	if dc == nil || len(dps) == 0 {
		t.Fatalf("daemon: %v %v", dc, dps)
	}
}

func TestSelectEndpoints(t *testing.T) {
	ep := func(name string, l map[string]string) v1alpha1.DatabaseEndpoint {
		return v1alpha1.DatabaseEndpoint{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: l},
			Spec: v1alpha1.DatabaseEndpointSpec{Database: v1alpha1.Database{MySQL: &v1alpha1.MySQL{Host: name}}}}
	}
	eps := []v1alpha1.DatabaseEndpoint{ep("c", map[string]string{"app": "x", "tier": "ro"}),
		ep("a", map[string]string{"app": "x"}), ep("b", map[string]string{"app": "y"}),
		{ObjectMeta: metav1.ObjectMeta{Name: "nomysql", Namespace: "ns", Labels: map[string]string{"app": "x"}}}}
	ts := func(sel *metav1.LabelSelector) *v1alpha1.TrafficStrategy {
		return &v1alpha1.TrafficStrategy{ObjectMeta: metav1.ObjectMeta{Namespace: "ns"}, Spec: v1alpha1.TrafficStrategySpec{Selector: sel}}
	}
	for _, tc := range []struct {
		name string
		ts   *v1alpha1.TrafficStrategy
		want []string
	}{
		{"nil strategy", nil, []string{"a", "b", "c"}},
		{"nil selector", ts(nil), []string{"a", "b", "c"}},
		{"empty selector", ts(&metav1.LabelSelector{}), []string{"a", "b", "c"}},
		{"matchLabels", ts(&metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}), []string{"a", "c"}},
		{"matchExpressions", ts(&metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpDoesNotExist}}}), []string{"a"}},
		{"none", ts(&metav1.LabelSelector{MatchLabels: map[string]string{"app": "z"}}), nil},
	} {
		got, err := SelectEndpoints(tc.ts, eps)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if _, err := SelectEndpoints(ts(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "a", Operator: "Bogus"}}}), eps); err == nil {
		t.Error("an invalid operator must be an error")
	}
}

// A service without a password is reported on the VirtualDatabase, not
// served to sidecars that would refuse it.
func TestPasswordlessServiceReported(t *testing.T) {
	objs := Objects{
		VirtualDatabases: []v1alpha1.VirtualDatabase{{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "ns"},
			Spec: v1alpha1.VirtualDatabaseSpec{Services: []v1alpha1.VirtualDatabaseService{{Name: "db",
				DatabaseService: v1alpha1.DatabaseService{DatabaseMySQL: &v1alpha1.DatabaseMySQL{User: "app"}}}}}}},
		DatabaseEndpoints: []v1alpha1.DatabaseEndpoint{{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "ns"},
			Spec: v1alpha1.DatabaseEndpointSpec{Database: v1alpha1.Database{MySQL: &v1alpha1.MySQL{Host: "h", DB: "d", User: "u", Password: "p"}}}}},
	}
	cfg, ps, err := BuildProxyConfig("ns", "app", objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Proxy.Config) != 0 || len(ps) != 1 || !strings.Contains(ps[0].Message, "databaseMySQL.password") {
		t.Fatalf("listeners %d, problems %+v", len(cfg.Proxy.Config), ps)
	}
}
