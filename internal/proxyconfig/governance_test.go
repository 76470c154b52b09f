package proxyconfig

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

const governanceTOML = `
name = "l"
top_fingerprints = 50

[[plugin.circuit_break]]
regex = ["111"]
case_insensitive = true

[[plugin.circuit_break]]
name = "no-full-scan"
fingerprint = ["select * from big"]
dry_run = true

[[plugin.concurrency_control]]
regex = ["aaa"]
max_concurrency = 5
duration = 333

[[plugin.concurrency_control]]
name = "reports"
regex = ["from report"]
max_concurrency = 2
wait_timeout = "100ms"
max_queue = 10

[access]
[[access.users]]
user = "app"
password = "pw"
schemas = ["shop"]
tables = ["shop.orders", "shop.*", "*"]
kinds = ["read", "write"]
max_rows = 1000

[audit]
output = "stdout"
max_size_mb = 10
max_backups = 3
max_age_days = 7
sample_rate = 0.1
slow_threshold = "200ms"
log_sql = false
include = "all"

[endpoint_breaker]
error_rate = 0.3
min_requests = 10
window = "30s"
open_for = "10s"
half_open_max = 2
timeout = "2s"
`

// The governance keys decode strictly from TOML and JSON, the shared match
// spec's keys (regex, case_insensitive, fingerprint) inline in each rule.
func TestGovernanceDecode(t *testing.T) {
	var l Listener
	d := toml.NewDecoder(strings.NewReader(governanceTOML))
	d.DisallowUnknownFields()
	if err := d.Decode(&l); err != nil {
		t.Fatal(err)
	}
	g := l.Governance()
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	cb, cc := g.CircuitBreak, g.ConcurrencyControl
	if g.TopFingerprints != 50 || len(cb) != 2 || !cb[0].CaseInsensitive || cb[0].Regex[0] != "111" || !cb[1].DryRun ||
		cb[1].Fingerprint[0] != "select * from big" ||
		cc[0].Duration != 333 || cc[0].Window() != 333*time.Second || cc[0].MaxConcurrency != 5 ||
		cc[1].WaitTimeout.Duration != 100*time.Millisecond || cc[1].MaxQueue != 10 ||
		g.Access.Users[0].MaxRows != 1000 || *g.Audit.SampleRate != 0.1 || g.Audit.SlowThreshold.Duration != 200*time.Millisecond {
		t.Errorf("decoded %+v", g)
	}
	if b := l.EndpointBreaker; b.Window.Duration != 30*time.Second || b.ErrorRate != 0.3 || b.HalfOpenMax != 2 || b.Validate() != nil {
		t.Errorf("endpoint_breaker %+v", b)
	}
	// JSON uses the same keys.
	js, err := json.Marshal(&l)
	if err != nil {
		t.Fatal(err)
	}
	var l2 Listener
	jd := json.NewDecoder(bytes.NewReader(js))
	jd.DisallowUnknownFields()
	if err := jd.Decode(&l2); err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	if l2.Plugin.ConcurrencyControl[1].WaitTimeout != cc[1].WaitTimeout || l2.Audit.SlowThreshold != g.Audit.SlowThreshold ||
		!l2.Plugin.CircuitBreak[0].CaseInsensitive {
		t.Errorf("JSON round trip: %s", js)
	}
	for _, k := range []string{`"circuit_break":[{"regex":["111"],"case_insensitive":true}`, `"max_concurrency"`,
		`"wait_timeout":"100ms"`, `"max_rows"`, `"slow_threshold":"200ms"`, `"window":"30s"`} {
		if !bytes.Contains(js, []byte(k)) {
			t.Errorf("JSON lacks %s: %s", k, js)
		}
	}
	// TOML round trip.
	tb, err := toml.Marshal(&l)
	if err != nil {
		t.Fatal(err)
	}
	var l3 Listener
	d = toml.NewDecoder(bytes.NewReader(tb))
	d.DisallowUnknownFields()
	if err := d.Decode(&l3); err != nil {
		t.Fatalf("%s: %v", tb, err)
	}
	if !l3.Plugin.CircuitBreak[0].CaseInsensitive || l3.Plugin.ConcurrencyControl[0].Duration != 333 {
		t.Errorf("TOML round trip: %s", tb)
	}
}

// Every governance problem is reported when the file is loaded, with its
// path; unknown keys in a rule are errors.
func TestGovernanceValidatedAtLoad(t *testing.T) {
	base := `
[admin]
port = 5591
[[mysql.node]]
name = "n"
host = "127.0.0.1"
port = 3306
user = "u"
password = "p"
[[proxy.config]]
listen_addr = "127.0.0.1:0"
user = "u"
password = "p"
`
	tests := []struct{ extra, want string }{
		{"[[proxy.config.plugin.circuit_break]]\nregex = [\"(\"]\n", "proxy.config[0].plugin.circuit_break[0].regex[0]: invalid regular expression"},
		{"[[proxy.config.plugin.circuit_break]]\nregex = [\"\"]\n", "circuit_break[0].regex[0]: empty regular expression"},
		{"[[proxy.config.plugin.circuit_break]]\nfingerprint = [\" \"]\n", "circuit_break[0].fingerprint[0]: empty fingerprint"},
		{"[[proxy.config.plugin.circuit_break]]\nname = \"x\"\nregex = [\"a\"]\n[[proxy.config.plugin.circuit_break]]\nname = \"x\"\nregex = [\"b\"]\n", `duplicate rule name "x"`},
		{"[[proxy.config.plugin.circuit_break]]\ndry_run = true\n", "circuit_break[0].regex: must not be empty"},
		{"[[proxy.config.plugin.circuit_break]]\nregex = [\"a\"]\nregexp = [\"b\"]\n", `unknown key "proxy.config.plugin.circuit_break.regexp"`},
		{"[[proxy.config.plugin.concurrency_control]]\nregex = [\"a\"]\nmax_queue = 3\n", "concurrency_control[0].max_queue: needs wait_timeout > 0"},
		{"[[proxy.config.plugin.concurrency_control]]\nregex = [\"a\"]\nduration = -1\n", "concurrency_control[0].duration: must be >= 0 seconds"},
		{"[[proxy.config.plugin.concurrency_control]]\nregex = [\"a\"]\nduration = \"5s\"\n", "duration"},
		{"[[proxy.config.access.users]]\nuser = \"a\"\npassword = \"p\"\nkinds = [\"execute\"]\n", `proxy.config[0]: access.users[0].kinds[0]: unknown kind "execute"`},
		{"[[proxy.config.access.users]]\nuser = \"a\"\npassword = \"p\"\ntables = [\"orders\"]\n", `access.users[0].tables[0]: invalid table pattern "orders"`},
		{"[[proxy.config.access.users]]\nuser = \"a\"\npassword = \"p\"\nschemas = [\"a b\"]\n", `access.users[0].schemas[0]: invalid schema name`},
		{"[proxy.config.audit]\noutput = \"stdout\"\ninclude = \"slow\"\n", `proxy.config[0]: audit.include: "slow" needs slow_threshold`},
		{"[proxy.config.endpoint_breaker]\nerror_rate = 1.5\n", "proxy.config[0].endpoint_breaker: error_rate: must be in (0, 1]"},
		{"[proxy.config.endpoint_breaker]\nwindow = \"10\"\n", "invalid duration"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(base+tt.extra), TOML)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s\n  got %v\n  want %q", tt.extra, err, tt.want)
		}
	}
	if _, err := Parse([]byte(base+"[[proxy.config.plugin.circuit_break]]\nregex = [\"a\"]\n"), TOML); err != nil {
		t.Error(err)
	}
}

func TestParseTablePattern(t *testing.T) {
	tests := []struct{ in, db, table string }{
		{" * ", "", ""},
		{"shop.*", "shop", ""},
		{"shop.orders", "shop", "orders"},
		{"`a.b`.`c``d`", "a.b", "c`d"},
		{"shop.`*`", "shop", "*"},
	}
	for _, tt := range tests {
		db, table, err := ParseTablePattern(tt.in)
		if err != nil || db != tt.db || table != tt.table {
			t.Errorf("ParseTablePattern(%q) = %q, %q, %v", tt.in, db, table, err)
		}
	}
	for _, in := range []string{"orders", "a.b.c", ".b", "`a", "a.", "a b.c"} {
		if _, _, err := ParseTablePattern(in); err == nil {
			t.Errorf("ParseTablePattern(%q) accepted", in)
		}
	}
}
