package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
	"github.com/database-mesh/pisanix-go/internal/configserver"
	"github.com/database-mesh/pisanix-go/internal/testutil/kubetest"
)

// isLeader reads controller-runtime's leader_election_master_status from a controller's
// metrics.
func isLeader(metricsAddr string) bool {
	_, body := httpStatus("http://" + metricsAddr + "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "leader_election_master_status{") && strings.HasSuffix(line, " 1") {
			return true
		}
	}
	return false
}

// TestTwoReplicas runs two controllers with leader election: both serve every configuration,
// one writes status, and when it stops the other takes over.
func TestTwoReplicas(t *testing.T) {
	kubetest.NeedAPIServer(t, startErr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	system := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "pisa-ha-"}}
	if err := k8s.Create(ctx, system); err != nil {
		t.Fatal(err)
	}
	le := []string{"-leader-elect", "-leader-election-namespace=" + system.Name}
	cfgA, procA, metricsA := startControllerProc(t, le...)
	cfgB, procB, metricsB := startControllerProc(t, le...)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-ha-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	ts := &v1alpha1.TrafficStrategy{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "shop"},
		Spec: v1alpha1.TrafficStrategySpec{LoadBalance: &v1alpha1.LoadBalance{
			SimpleLoadBalance: &v1alpha1.SimpleLoadBalance{Kind: v1alpha1.LoadBalanceRoundRobin}}}}
	for _, o := range []client.Object{
		ts,
		&v1alpha1.DatabaseEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "shop-db"},
			Spec: v1alpha1.DatabaseEndpointSpec{Database: v1alpha1.Database{MySQL: &v1alpha1.MySQL{
				Host: "10.0.0.1", Port: 3306, User: "root", DB: "shop"}}}},
		&v1alpha1.VirtualDatabase{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "shop"},
			Spec: v1alpha1.VirtualDatabaseSpec{Services: []v1alpha1.VirtualDatabaseService{{
				Name: "mysql", TrafficStrategy: "shop",
				DatabaseService: v1alpha1.DatabaseService{DatabaseMySQL: &v1alpha1.DatabaseMySQL{
					Host: "127.0.0.1", Port: 3306, User: "u", Password: "p", DB: "shop"}},
			}}}},
	} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}
	path := configserver.APIPrefix + "/namespaces/" + ns.Name + "/proxyconfigs/shop"
	eventually(t, 20*time.Second, "both replicas serve the configuration", func() string {
		for _, addr := range []string{cfgA, cfgB} {
			if code, body := httpStatus("http://" + addr + path); code != http.StatusOK || !strings.Contains(body, "10.0.0.1") {
				return fmt.Sprintf("%s: %d %s", addr, code, body)
			}
		}
		return ""
	})
	var leader *proc
	followerMetrics := ""
	eventually(t, 30*time.Second, "one leader", func() string {
		a, b := isLeader(metricsA), isLeader(metricsB)
		switch {
		case a && !b:
			leader, followerMetrics = procA, metricsB
		case b && !a:
			leader, followerMetrics = procB, metricsA
		default:
			return fmt.Sprintf("leader status A=%v B=%v", a, b)
		}
		return ""
	})
	ready := func(gen int64) func() string {
		return func() string {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(ts), ts); err != nil {
				return err.Error()
			}
			c := meta.FindStatusCondition(ts.Status.Conditions, v1alpha1.ConditionReady)
			if c == nil || c.Status != metav1.ConditionTrue || ts.Status.ObservedGeneration < gen {
				return fmt.Sprintf("generation %d, status %+v", gen, ts.Status)
			}
			return ""
		}
	}
	eventually(t, 20*time.Second, "status written", ready(1))

	// The leader stops (releasing its lease); the other replica takes over status writes.
	if err := leader.stop(); err != nil {
		t.Fatalf("the leader did not exit cleanly on SIGTERM: %v\n%s", err, leader.out.String())
	}
	if strings.Contains(leader.out.String(), "level=ERROR") {
		t.Errorf("the leader logged errors while stopping:\n%s", leader.out.String())
	}
	eventually(t, 60*time.Second, "the other replica leads", func() string {
		if !isLeader(followerMetrics) {
			return "not leader yet"
		}
		return ""
	})
	update(ctx, t, ts, func(ts *v1alpha1.TrafficStrategy) {
		ts.Spec.LoadBalance.SimpleLoadBalance.Kind = v1alpha1.LoadBalanceRandom
	})
	eventually(t, 20*time.Second, "the new leader writes status", ready(ts.Generation))
}
