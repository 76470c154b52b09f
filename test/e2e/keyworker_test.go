package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
	"github.com/database-mesh/pisanix-go/internal/testutil"
	"github.com/database-mesh/pisanix-go/internal/testutil/kubetest"
)

// TestKeyWorkerPerSidecar: a DataShard rule with a key generator and no workerId, two pods of
// one application, each with a `pisa-proxy sidecar` of the pisa-controller binary. Each sidecar
// gets its own worker id (recorded in the namespace's pisanix-key-workers ConfigMap) and the keys
// the two make while inserting at once carry it and never collide.
func TestKeyWorkerPerSidecar(t *testing.T) {
	kubetest.NeedAPIServer(t, startErr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m1, m2 := testutil.StartMariaDB(t), testutil.StartMariaDB(t)
	controllerAddr := startController(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-keyworker-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	endpoint := func(name string, m *testutil.MariaDB) *v1alpha1.DatabaseEndpoint {
		host, port, _ := net.SplitHostPort(m.Addr)
		p, _ := strconv.Atoi(port)
		return &v1alpha1.DatabaseEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name,
			Labels: map[string]string{"app": "shop-db"}},
			Spec: v1alpha1.DatabaseEndpointSpec{Database: v1alpha1.Database{MySQL: &v1alpha1.MySQL{
				Host: host, Port: int32(p), User: "root", DB: "test"}}}}
	}
	pods := []*corev1.Pod{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "shop-a", Labels: map[string]string{"app": "shop"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "shop", Image: "shop"}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "shop-b", Labels: map[string]string{"app": "shop"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "shop", Image: "shop"}}}},
	}
	listens := []int{freePort(t)}
	objs := []client.Object{pods[0], pods[1], endpoint("ds001", m1), endpoint("ds002", m2),
		&v1alpha1.TrafficStrategy{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "shop"},
			Spec: v1alpha1.TrafficStrategySpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop-db"}},
				LoadBalance: &v1alpha1.LoadBalance{SimpleLoadBalance: &v1alpha1.SimpleLoadBalance{
					Kind: v1alpha1.LoadBalanceRoundRobin}}}},
		&v1alpha1.DataShard{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "shop"},
			Spec: v1alpha1.DataShardSpec{Rules: []v1alpha1.ShardingRule{{TableName: "t_order",
				ActualDatanodes: dsNodes("ds001", "ds002"),
				DatabaseStrategy: &v1alpha1.DatabaseStrategy{DatabaseShardingAlgorithmName: "mod",
					DatabaseShardingColumn: "id"},
				KeyGenerator: &v1alpha1.KeyGenerator{Type: "snowflake"}}}}},
		&v1alpha1.VirtualDatabase{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "shop"},
			Spec: v1alpha1.VirtualDatabaseSpec{Services: []v1alpha1.VirtualDatabaseService{{
				Name: "mysql", TrafficStrategy: "shop", DataShard: "shop",
				DatabaseService: v1alpha1.DatabaseService{DatabaseMySQL: &v1alpha1.DatabaseMySQL{
					Host: "127.0.0.1", Port: int32(listens[0]), User: "shop_app", Password: "shop_password", DB: "test"}},
			}}}},
	}
	for _, o := range objs {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}

	// The two sidecars run one after the other: they get the same configuration, so the same
	// listen address. The first pod still exists when the second asks.
	workers := map[string]int64{}
	for i, pod := range pods {
		admin := freePort(t)
		p := start(t, "pisa-proxy", []string{
			"PISA_CONTROLLER_HOST=" + controllerAddr,
			"PISA_DEPLOYED_NAMESPACE=" + ns.Name,
			"PISA_DEPLOYED_NAME=shop",
			"PISA_PROXY_ADMIN_LISTEN_HOST=127.0.0.1",
			"PISA_PROXY_ADMIN_LISTEN_PORT=" + strconv.Itoa(admin),
			"PISA_PROXY_ADMIN_LOG_LEVEL=INFO",
			"POD_NAME=" + pod.Name,
			"POD_UID=" + string(pod.UID),
		}, "sidecar")
		eventually(t, 30*time.Second, pod.Name+"'s sidecar ready", func() string {
			if code, body := httpStatus(fmt.Sprintf("http://127.0.0.1:%d/readyz", admin)); code != http.StatusOK {
				return fmt.Sprintf("%d %s", code, body)
			}
			return ""
		})
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = "shop_app", "shop_password", "tcp",
			fmt.Sprintf("127.0.0.1:%d", listens[0]), "test"
		cfg.Timeout = 5 * time.Second
		connector, err := mysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(connector)
		if i == 0 {
			if _, err := db.ExecContext(ctx, "CREATE TABLE t_order (id BIGINT PRIMARY KEY, pod VARCHAR(20))"); err != nil {
				t.Fatal(err)
			}
		}
		var values []string
		for range 20 {
			values = append(values, fmt.Sprintf("('%s')", pod.Name))
		}
		// Two statements of 20 rows: the keys of one sidecar go to both shards.
		for range 2 {
			if _, err := db.ExecContext(ctx, "INSERT INTO t_order (pod) VALUES "+strings.Join(values, ", ")); err != nil {
				t.Fatalf("%s: INSERT without keys: %v", pod.Name, err)
			}
		}
		db.Close()
		if err := p.stop(); err != nil {
			t.Logf("%s's sidecar: %v", pod.Name, err)
		}
	}

	// The keys on both servers: 40 per pod, each carrying its sidecar's worker id.
	rows := 0
	for _, m := range []*testutil.MariaDB{m1, m2} {
		r, err := m.Open(t, "test").QueryContext(ctx, "SELECT id, pod FROM t_order")
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			var id int64
			var pod string
			if err := r.Scan(&id, &pod); err != nil {
				t.Fatal(err)
			}
			rows++
			w := (id >> 12) & 1023
			if prev, ok := workers[pod]; ok && prev != w {
				t.Fatalf("%s's keys carry worker ids %d and %d", pod, prev, w)
			}
			workers[pod] = w
		}
		r.Close()
	}
	if rows != 80 || len(workers) != 2 || workers["shop-a"] == workers["shop-b"] {
		t.Fatalf("%d rows; worker ids by pod: %v (want 80 rows and two different ids)", rows, workers)
	}
	var cm corev1.ConfigMap
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "pisanix-key-workers"}, &cm); err != nil {
		t.Fatal(err)
	}
	for _, pod := range pods {
		if want := fmt.Sprintf("%d %s", workers[pod.Name], pod.Name); cm.Data[string(pod.UID)] != want {
			t.Fatalf("pisanix-key-workers has %q for %s, want %q (table %v)", cm.Data[string(pod.UID)], pod.Name, want, cm.Data)
		}
	}
}
