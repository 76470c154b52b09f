package govern

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/database-mesh/pisanix-go/internal/proxy/govern/breaker"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/circuit"
)

const sampleTOML = `
top_fingerprints = 50

[[circuit_break]]
regex = ["111"]
case_insensitive = true

[[circuit_break]]
name = "no-full-scan"
fingerprint = ["select * from big"]
dry_run = true

[[concurrency_control]]
regex = ["aaa"]
max_concurrency = 5
duration = 333

[[concurrency_control]]
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
`

func TestDecodeTOMLAndJSON(t *testing.T) {
	var c Config
	d := toml.NewDecoder(strings.NewReader(sampleTOML))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := Validate(&c); err != nil {
		t.Fatal(err)
	}
	cc := c.ConcurrencyControl
	if c.TopFingerprints != 50 || len(c.CircuitBreak) != 2 || !c.CircuitBreak[0].CaseInsensitive || !c.CircuitBreak[1].DryRun ||
		cc[0].Duration != 333 || cc[0].MaxConcurrency != 5 || cc[1].WaitTimeout.Duration != 100*time.Millisecond || cc[1].MaxQueue != 10 ||
		c.Access.Users[0].MaxRows != 1000 || *c.Audit.SampleRate != 0.1 || c.Audit.SlowThreshold.Duration != 200*time.Millisecond {
		t.Errorf("decoded %+v", c)
	}
	// JSON uses the same keys.
	js, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	var c2 Config
	jd := json.NewDecoder(bytes.NewReader(js))
	jd.DisallowUnknownFields()
	if err := jd.Decode(&c2); err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	if c2.ConcurrencyControl[1].WaitTimeout != cc[1].WaitTimeout || c2.Audit.SlowThreshold != c.Audit.SlowThreshold {
		t.Errorf("JSON round trip: %s", js)
	}
	for _, k := range []string{`"circuit_break"`, `"case_insensitive"`, `"max_concurrency"`, `"wait_timeout":"100ms"`, `"max_rows"`, `"slow_threshold":"200ms"`} {
		if !bytes.Contains(js, []byte(k)) {
			t.Errorf("JSON lacks %s: %s", k, js)
		}
	}

	var b breaker.Config
	if err := toml.Unmarshal([]byte("error_rate = 0.3\nmin_requests = 10\nwindow = \"30s\"\nopen_for = \"10s\"\nhalf_open_max = 2\ntimeout = \"2s\"\n"), &b); err != nil {
		t.Fatal(err)
	}
	if b.Window.Duration != 30*time.Second || b.Validate() != nil {
		t.Errorf("breaker %+v", b)
	}
}

type captureHandler struct{ n *int }

func (h captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h captureHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "dry_run") {
		*h.n++
	}
	return nil
}
func (h captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h captureHandler) WithGroup(string) slog.Handler      { return h }

func TestDryRunLogRateLimited(t *testing.T) {
	n := 0
	now := time.Unix(1000, 0)
	st := NewState("d", nil, StateOptions{Logger: slog.New(captureHandler{&n}), Clock: func() time.Time { return now }})
	c, err := Compile(&Config{CircuitBreak: []circuit.Rule{{Name: "w", Regex: []string{"x"}, DryRun: true}}}, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := req("u", "x", nil)
	for range 100 {
		if _, rej := c.Check(context.Background(), r); rej != nil {
			t.Fatal(rej)
		}
	}
	now = now.Add(time.Second)
	c.Check(context.Background(), r)
	if n != 2 {
		t.Errorf("%d dry-run log lines, want 2 (one per second)", n)
	}
}
