package daemon

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/daemonconfig"
)

func TestExampleFile(t *testing.T) {
	cfg, err := daemonconfig.LoadFile("../../examples/daemon.toml")
	if err != nil {
		t.Fatal(err)
	}
	plans, problems := BuildPlan(context.Background(), cfg, fakeResolver{"mysql.example.internal": {"10.0.0.7", "fd00::7"}})
	if len(plans) == 0 || len(problems) != 0 {
		t.Errorf("example: %d classes, problems %v", len(plans), problems)
	}
}

type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	addrs, ok := f[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func svc(name, rate, ceil string, eps ...daemonconfig.Endpoint) daemonconfig.Service {
	s := daemonconfig.Service{Name: name, Endpoints: eps}
	if rate != "" || ceil != "" {
		s.QoSGroup = &daemonconfig.QoSGroup{Rate: rate, Ceil: ceil}
	}
	return s
}

func ep(ip string, port int) daemonconfig.Endpoint { return daemonconfig.Endpoint{IP: ip, Port: port} }

func aps(s ...string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, x := range s {
		out = append(out, netip.MustParseAddrPort(x))
	}
	return out
}

func TestBuildPlan(t *testing.T) {
	res := fakeResolver{"db.example": {"10.0.0.9", "fd00::9", "10.0.0.8"}}
	cfg := &daemonconfig.Config{App: []daemonconfig.App{
		{Name: "b-app", Service: []daemonconfig.Service{
			svc("s1", "10mbit", "", ep("10.0.0.1", 3306), ep("::ffff:10.0.0.2", 3306), ep("fd00::1", 3307), ep("db.example", 3306)),
			svc("s0", "1mbps", "2mbps", ep("[fd00::2]", 3306)),
			svc("no-qos", "", "", ep("10.0.0.3", 3306)),
		}},
		{Name: "a-app", Service: []daemonconfig.Service{
			svc("bad-rate", "1mps", "", ep("10.0.0.4", 3306)),
			svc("bad-ceil", "10mbit", "5mbit", ep("10.0.0.4", 3306)),
			svc("eps", "10mbit", "", ep("10.0.0.5", 0), ep("", 3306), ep("bad host!", 3306), ep("nx.example", 3306),
				ep("fe80::1%eth0", 3306), ep("10.0.0.6", 3306), ep("10.0.0.6", 3306)),
			svc("eps", "20mbit", "", ep("10.0.0.7", 3306)),
		}},
		{Name: "c-app", Service: []daemonconfig.Service{
			svc("steal", "10mbit", "", ep("10.0.0.1", 3306), ep("10.0.0.10", 3306)),
		}},
	}}
	plans, problems := BuildPlan(context.Background(), cfg, res)
	want := []ClassPlan{
		{Key: ClassKey{"a-app", "eps"}, Rate: 10e6, Ceil: 10e6, Endpoints: aps("10.0.0.6:3306")},
		{Key: ClassKey{"b-app", "s0"}, Rate: 8e6, Ceil: 16e6, Endpoints: aps("[fd00::2]:3306")},
		{Key: ClassKey{"b-app", "s1"}, Rate: 10e6, Ceil: 10e6,
			Endpoints: aps("10.0.0.1:3306", "10.0.0.2:3306", "10.0.0.8:3306", "10.0.0.9:3306", "[fd00::1]:3307", "[fd00::9]:3306")},
		{Key: ClassKey{"c-app", "steal"}, Rate: 10e6, Ceil: 10e6, Endpoints: aps("10.0.0.10:3306")},
	}
	if !reflect.DeepEqual(plans, want) {
		t.Errorf("plans:\n got %+v\nwant %+v", plans, want)
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.Reason+" "+p.Error())
	}
	wantProblems := []string{
		`invalid_rate app "a-app" service "bad-ceil": ceil 5mbit (5Mbit) is below rate 10mbit (10Mbit)`,
		`invalid_rate app "a-app" service "bad-rate": rate: invalid rate "1mps": unknown unit "mps"`,
		`invalid_endpoint app "a-app" service "eps" endpoint "10.0.0.5:0": port 0 out of range 1-65535`,
		`invalid_endpoint app "a-app" service "eps" endpoint ":3306": empty ip`,
		`invalid_endpoint app "a-app" service "eps" endpoint "bad host!:3306": "bad host!" is neither an IP address nor a host name`,
		`resolve app "a-app" service "eps" endpoint "nx.example:3306": resolve "nx.example": no such host`,
		`invalid_endpoint app "a-app" service "eps" endpoint "[fe80::1%eth0]:3306": zoned IPv6 addresses are not supported`,
		`duplicate app "a-app" service "eps": duplicate service; the first one is used`,
		`conflict app "c-app" service "steal" endpoint "10.0.0.1:3306": endpoint already classified into b-app/s1`,
	}
	if len(got) != len(wantProblems) {
		t.Fatalf("problems:\n%s", strings.Join(got, "\n"))
	}
	for i := range got {
		if !strings.HasPrefix(got[i], wantProblems[i]) {
			t.Errorf("problem %d:\n got %s\nwant %s", i, got[i], wantProblems[i])
		}
	}
}

func TestBuildPlanNames(t *testing.T) {
	cfg := &daemonconfig.Config{App: []daemonconfig.App{
		{Name: "", Service: []daemonconfig.Service{svc("s", "1mbit", "")}},
		{Name: "a/b", Service: []daemonconfig.Service{svc("s", "1mbit", "")}},
		{Name: "ok", Service: []daemonconfig.Service{svc("x/y", "1mbit", ""), svc("", "1mbit", "")}},
	}}
	plans, problems := BuildPlan(context.Background(), cfg, nil)
	if len(plans) != 0 || len(problems) != 4 {
		t.Errorf("plans %v problems %v", plans, problems)
	}
	if p, _ := BuildPlan(context.Background(), nil, nil); p != nil {
		t.Error("nil config gave classes")
	}
}

func TestParseClassKey(t *testing.T) {
	k := ClassKey{"app", "svc"}
	if got, ok := ParseClassKey(k.String()); !ok || got != k {
		t.Errorf("round trip: %v %v", got, ok)
	}
	for _, s := range []string{"", "a", "/b", "a/"} {
		if _, ok := ParseClassKey(s); ok {
			t.Errorf("ParseClassKey(%q) ok", s)
		}
	}
}
