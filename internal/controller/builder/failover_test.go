package builder

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
)

// A TrafficStrategy's failover becomes the listener's [proxy.config.failover].
func TestFailoverFromTrafficStrategy(t *testing.T) {
	objs := Objects{
		VirtualDatabases: []v1alpha1.VirtualDatabase{{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "ns"},
			Spec: v1alpha1.VirtualDatabaseSpec{Services: []v1alpha1.VirtualDatabaseService{{Name: "db", TrafficStrategy: "ts",
				DatabaseService: v1alpha1.DatabaseService{DatabaseMySQL: &v1alpha1.DatabaseMySQL{User: "app", Password: "pw"}}}}}}},
		TrafficStrategies: []v1alpha1.TrafficStrategy{{ObjectMeta: metav1.ObjectMeta{Name: "ts", Namespace: "ns"},
			Spec: v1alpha1.TrafficStrategySpec{Failover: &v1alpha1.Failover{DelayedRetry: true,
				DelayedRetryTimeout: &metav1.Duration{Duration: 20 * time.Second}, TransactionReplay: true, TransactionReplayMaxSize: 4096}}}},
		DatabaseEndpoints: []v1alpha1.DatabaseEndpoint{{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "ns"},
			Spec: v1alpha1.DatabaseEndpointSpec{Database: v1alpha1.Database{MySQL: &v1alpha1.MySQL{Host: "h", Port: 3306, DB: "d", User: "u", Password: "p"}}}}},
	}
	cfg, ps, err := BuildProxyConfig("ns", "app", objs)
	if err != nil || len(ps) != 0 || len(cfg.Proxy.Config) != 1 {
		t.Fatalf("cfg=%+v problems=%+v err=%v", cfg, ps, err)
	}
	f := cfg.Proxy.Config[0].Failover
	if f == nil || !f.DelayedRetry || !f.TransactionReplay || f.DelayedRetryTimeout.Duration != 20*time.Second ||
		f.TransactionReplayMaxSize != 4096 || f.DelayedRetryMaxWaiting != 0 { // 0: the proxy's default
		t.Fatalf("failover: %+v", f)
	}
}
