package daemon

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// pisanixTOML is Pisanix's pisa-daemon/example/config.toml shape.
const pisanixTOML = `
[global]
egress_device = "eth0"
bridge_device = "cni0"

[[app]]
name = "test1"

[[app.service]]
name = "svc"
qos_class = "burstable"

[[app.service.endpoints]]
ip = "1.1.1.1"
port = 3306

[app.service.qos_group]
rate = "1mbps"
ceil = "2mbps"
`

func TestParseTOML(t *testing.T) {
	cfg, err := ParseTOML([]byte(pisanixTOML))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Global: &Global{EgressDevice: "eth0", BridgeDevice: "cni0"},
		App: []App{{Name: "test1", Service: []Service{{
			Name: "svc", QoSClass: "burstable",
			QoSGroup:  &QoSGroup{Rate: "1mbps", Ceil: "2mbps"},
			Endpoints: []Endpoint{{IP: "1.1.1.1", Port: 3306}},
		}}}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %+v\nwant %+v", cfg, want)
	}
}

func TestParseTOMLErrors(t *testing.T) {
	for in, msg := range map[string]string{
		"[[app]]\nname = \"a\"\nnmae = \"b\"\n":         `line 3: unknown key "app.nmae"`,
		"[[app]]\nname = 1\n":                           "line 2",
		"[global]\negress_device = \"eth0\"\nfoo = 1\n": `unknown key "global.foo"`,
		"[[app]\n": "line 1",
	} {
		_, err := ParseTOML([]byte(in))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseTOML(%q) error %v, want it to contain %q", in, err, msg)
		}
	}
}

func TestLoadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.toml")
	if err := os.WriteFile(p, []byte(pisanixTOML), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(p); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(p + ".missing"); err == nil {
		t.Fatal("missing file: no error")
	}
}

func TestExampleFile(t *testing.T) {
	cfg, err := LoadFile("../../examples/daemon.toml")
	if err != nil {
		t.Fatal(err)
	}
	plans, problems := BuildPlan(context.Background(), cfg, fakeResolver{"mysql.example.internal": {"10.0.0.7", "fd00::7"}})
	if len(plans) == 0 || len(problems) != 0 {
		t.Errorf("example: %d classes, problems %v", len(plans), problems)
	}
}

// controllerJSON is the controller's daemonconfigs response (§3.4): no
// "global", here with a version.
const controllerJSON = `{"version": 42, "app": [ {"name": "vdb",
  "service": [ {"name": "svc1", "qos_group": {"rate": "10mbit", "ceil": "20mbit"},
                "endpoints": [ {"ip": "10.0.0.5", "port": 3306}, {"ip": "fd00::5", "port": 3306} ]} ]} ],
  "future_field": true}`

func TestParseJSON(t *testing.T) {
	cfg, err := ParseJSON([]byte(controllerJSON))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version != "42" || cfg.Global != nil || len(cfg.App) != 1 || len(cfg.App[0].Service[0].Endpoints) != 2 {
		t.Errorf("got %+v", cfg)
	}
	for in, want := range map[string]string{
		`{"version": "abc", "app": []}`: "abc",
		`{"version": null, "app": []}`:  "",
		`{"app": []}`:                   "",
		`{"version": 7.5}`:              "7.5",
	} {
		cfg, err := ParseJSON([]byte(in))
		if err != nil || cfg.Version != want {
			t.Errorf("ParseJSON(%s) version %q, %v; want %q", in, cfg.Version, err, want)
		}
	}
	for _, in := range []string{`{"version": [1]}`, `{"app": {}}`, `not json`, `{"app":[{"service":[{"endpoints":[{"port":"x"}]}]}]}`} {
		if _, err := ParseJSON([]byte(in)); err == nil {
			t.Errorf("ParseJSON(%s): no error", in)
		}
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

func svc(name, rate, ceil string, eps ...Endpoint) Service {
	s := Service{Name: name, Endpoints: eps}
	if rate != "" || ceil != "" {
		s.QoSGroup = &QoSGroup{Rate: rate, Ceil: ceil}
	}
	return s
}

func ep(ip string, port int) Endpoint { return Endpoint{IP: ip, Port: port} }

func aps(s ...string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, x := range s {
		out = append(out, netip.MustParseAddrPort(x))
	}
	return out
}

func TestBuildPlan(t *testing.T) {
	res := fakeResolver{"db.example": {"10.0.0.9", "fd00::9", "10.0.0.8"}}
	cfg := &Config{App: []App{
		{Name: "b-app", Service: []Service{
			svc("s1", "10mbit", "", ep("10.0.0.1", 3306), ep("::ffff:10.0.0.2", 3306), ep("fd00::1", 3307), ep("db.example", 3306)),
			svc("s0", "1mbps", "2mbps", ep("[fd00::2]", 3306)),
			svc("no-qos", "", "", ep("10.0.0.3", 3306)),
		}},
		{Name: "a-app", Service: []Service{
			svc("bad-rate", "1mps", "", ep("10.0.0.4", 3306)),
			svc("bad-ceil", "10mbit", "5mbit", ep("10.0.0.4", 3306)),
			svc("eps", "10mbit", "", ep("10.0.0.5", 0), ep("", 3306), ep("bad host!", 3306), ep("nx.example", 3306),
				ep("fe80::1%eth0", 3306), ep("10.0.0.6", 3306), ep("10.0.0.6", 3306)),
			svc("eps", "20mbit", "", ep("10.0.0.7", 3306)),
		}},
		{Name: "c-app", Service: []Service{
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
	cfg := &Config{App: []App{
		{Name: "", Service: []Service{svc("s", "1mbit", "")}},
		{Name: "a/b", Service: []Service{svc("s", "1mbit", "")}},
		{Name: "ok", Service: []Service{svc("x/y", "1mbit", ""), svc("", "1mbit", "")}},
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
