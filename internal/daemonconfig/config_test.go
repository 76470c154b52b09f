package daemonconfig

import (
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
