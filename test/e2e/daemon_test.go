package e2e

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/database-mesh/pisanix-go/api/v1alpha1"
	"github.com/database-mesh/pisanix-go/internal/testutil/kubetest"
)

// requireNetAdmin skips unless the process may create network namespaces, tc classes and eBPF
// programs (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF) and has ip and tc.
func requireNetAdmin(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("skipping privileged test: %v", err)
	}
	var eff uint64
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			eff, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	const netAdmin, sysAdmin, bpf = 12, 21, 39
	for _, c := range []uint{netAdmin, sysAdmin, bpf} {
		if eff&(1<<c) == 0 {
			t.Skipf("skipping privileged test: needs CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_BPF (CapEff %#x); run as root", eff)
		}
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping privileged test: %s (iproute2) not found", tool)
		}
	}
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestDaemonFollowsQoSClaim runs pisa-daemon in a network namespace against the real
// controller: a QoSClaim becomes an HTB class on the namespace's device, a changed claim
// changes it in place, and a removed one removes it.
func TestDaemonFollowsQoSClaim(t *testing.T) {
	kubetest.NeedAPIServer(t, startErr)
	requireNetAdmin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// A named namespace joined to the root namespace by a veth pair: the daemon shapes its
	// side's egress, and reaches the controller on the root side's address.
	suffix := strconv.Itoa(os.Getpid() % 100000)
	netns, rootDev, nsDev := "pisa-e2e-"+suffix, "pe2r"+suffix, "pe2n"+suffix
	const rootIP, nsIP, dbIP = "10.231.77.1", "10.231.77.2", "10.231.78.9"
	sh(t, "ip", "netns", "add", netns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", netns).Run() })
	sh(t, "ip", "link", "add", rootDev, "type", "veth", "peer", "name", nsDev)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", rootDev).Run() })
	sh(t, "ip", "link", "set", nsDev, "netns", netns)
	sh(t, "ip", "addr", "add", rootIP+"/30", "dev", rootDev)
	sh(t, "ip", "link", "set", rootDev, "up")
	sh(t, "ip", "netns", "exec", netns, "ip", "addr", "add", nsIP+"/30", "dev", nsDev)
	sh(t, "ip", "netns", "exec", netns, "ip", "link", "set", nsDev, "up")
	sh(t, "ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up")
	sh(t, "ip", "netns", "exec", netns, "ip", "route", "add", "default", "via", rootIP)

	controllerAddr := startController(t)
	_, cfgPort, _ := strings.Cut(controllerAddr, ":")

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-qos-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	qc := &v1alpha1.QoSClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "catalogue-qos"},
		Spec: v1alpha1.QoSClaimSpec{TrafficQoS: v1alpha1.TrafficQoS{Name: "catalogue",
			QoSGroup: &v1alpha1.QoSGroup{Rate: "10mbit", Ceil: "10mbit"}}}}
	for _, o := range []client.Object{
		qc,
		&v1alpha1.DatabaseEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "catalogue-db"},
			Spec: v1alpha1.DatabaseEndpointSpec{Database: v1alpha1.Database{MySQL: &v1alpha1.MySQL{
				Host: dbIP, Port: 3306, User: "root", DB: "socksdb"}}}},
		&v1alpha1.VirtualDatabase{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "catalogue"},
			Spec: v1alpha1.VirtualDatabaseSpec{Services: []v1alpha1.VirtualDatabaseService{{
				Name: "mysql", QoSClaim: "catalogue-qos",
				DatabaseService: v1alpha1.DatabaseService{DatabaseMySQL: &v1alpha1.DatabaseMySQL{
					Host: "127.0.0.1", Port: 3306, User: "u", Password: "p", DB: "socksdb"}},
			}}}},
	} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}

	// The daemon, as the DaemonSet runs it, in the namespace.
	admin := "127.0.0.1:" + strconv.Itoa(freePort(t))
	startExec(t, "pisa-daemon", nil, "ip", "netns", "exec", netns, binDir+"/pisa-daemon",
		"--global-egress-device="+nsDev,
		"--pisa-controller-host="+rootIP+":"+cfgPort,
		"--node-name=node-e2e",
		"--admin-addr="+admin,
		"--bpffs="+t.TempDir(),
		"--cleanup-on-exit=true",
		"--log-level=DEBUG")

	classes := func() string {
		out, _ := exec.Command("ip", "netns", "exec", netns, "tc", "class", "show", "dev", nsDev).CombinedOutput()
		return string(out)
	}
	hasClass := func(rate string) func() string {
		return func() string {
			c := classes()
			if !strings.Contains(c, "htb") || !strings.Contains(c, "rate "+rate) {
				return "tc classes:\n" + c
			}
			return ""
		}
	}
	eventually(t, 30*time.Second, "a 10Mbit HTB class for the claim", hasClass("10Mbit"))
	before := classes()

	// A changed claim changes the class in place (same class id).
	update(ctx, t, qc, func(qc *v1alpha1.QoSClaim) {
		qc.Spec.TrafficQoS.QoSGroup = &v1alpha1.QoSGroup{Rate: "20mbit", Ceil: "20mbit"}
	})
	eventually(t, 30*time.Second, "the class at 20Mbit", hasClass("20Mbit"))
	if id, id2 := classID(before, "10Mbit"), classID(classes(), "20Mbit"); id == "" || id != id2 {
		t.Fatalf("class id changed from %q to %q: not updated in place\n%s", id, id2, classes())
	}

	// The claim removed from the service: its class goes.
	vdb := &v1alpha1.VirtualDatabase{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "catalogue"}}
	update(ctx, t, vdb, func(vdb *v1alpha1.VirtualDatabase) { vdb.Spec.Services[0].QoSClaim = "" })
	eventually(t, 30*time.Second, "the class removed", func() string {
		if c := classes(); strings.Contains(c, "rate 20Mbit") {
			return "tc classes:\n" + c
		}
		return ""
	})
}

// classID returns the id ("1:10") of the HTB class line with the given rate.
func classID(tcOut, rate string) string {
	for _, line := range strings.Split(tcOut, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "class" && f[1] == "htb" && strings.Contains(line, "rate "+rate) {
			return f[2]
		}
	}
	return ""
}
