package circuit

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxy/govern/govmetrics"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

const digestA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func TestCheck(t *testing.T) {
	facts := &sqlparse.Facts{Fingerprint: "select * from t where id = ?", Digest: digestA}
	tests := []struct {
		name   string
		rules  []proxyconfig.CircuitBreak
		sql    string
		facts  *sqlparse.Facts
		reject string // rule name, "" = pass
		dry    string
	}{
		{"no rules", nil, "select 1", nil, "", ""},
		{"regex match", []proxyconfig.CircuitBreak{{MatchSpec: regexSpec("111")}}, "select 111", nil, "circuit_break[0]", ""},
		{"regex no match", []proxyconfig.CircuitBreak{{MatchSpec: regexSpec("111")}}, "select 112", nil, "", ""},
		{"unanchored", []proxyconfig.CircuitBreak{{MatchSpec: regexSpec("delete from")}}, "/* x */ delete from t", nil, "circuit_break[0]", ""},
		{"anchored", []proxyconfig.CircuitBreak{{MatchSpec: regexSpec("^delete")}}, "/* x */ delete from t", nil, "", ""},
		{"case sensitive by default", []proxyconfig.CircuitBreak{{MatchSpec: regexSpec("drop table")}}, "DROP TABLE t", nil, "", ""},
		{"case insensitive", []proxyconfig.CircuitBreak{{MatchSpec: proxyconfig.MatchSpec{Regex: []string{"drop table"}, CaseInsensitive: true}}}, "DROP TABLE t", nil, "circuit_break[0]", ""},
		{"any regex of a rule", []proxyconfig.CircuitBreak{{Name: "r", MatchSpec: regexSpec("aaa", "bbb")}}, "x bbb", nil, "r", ""},
		{"first rule wins", []proxyconfig.CircuitBreak{{Name: "a", MatchSpec: regexSpec("x")}, {Name: "b", MatchSpec: regexSpec("x")}}, "x", nil, "a", ""},
		{"second rule", []proxyconfig.CircuitBreak{{Name: "a", MatchSpec: regexSpec("y")}, {Name: "b", MatchSpec: regexSpec("x")}}, "x", nil, "b", ""},
		{"fingerprint", []proxyconfig.CircuitBreak{{Name: "fp", MatchSpec: proxyconfig.MatchSpec{Fingerprint: []string{"select * from t where id = ?"}}}}, "select * from t where id = 5", facts, "fp", ""},
		{"fingerprint trimmed", []proxyconfig.CircuitBreak{{Name: "fp", MatchSpec: proxyconfig.MatchSpec{Fingerprint: []string{"  select * from t where id = ?\n"}}}}, "q", facts, "fp", ""},
		{"fingerprint no facts", []proxyconfig.CircuitBreak{{Name: "fp", MatchSpec: proxyconfig.MatchSpec{Fingerprint: []string{"select * from t where id = ?"}}}}, "select * from t where id = 5", nil, "", ""},
		{"fingerprint other", []proxyconfig.CircuitBreak{{Name: "fp", MatchSpec: proxyconfig.MatchSpec{Fingerprint: []string{"select * from u"}}}}, "q", facts, "", ""},
		{"digest", []proxyconfig.CircuitBreak{{Name: "d", MatchSpec: proxyconfig.MatchSpec{Fingerprint: []string{strings.ToUpper(digestA)}}}}, "q", facts, "d", ""},
		{"dry run", []proxyconfig.CircuitBreak{{Name: "d", MatchSpec: regexSpec("x"), DryRun: true}}, "x", nil, "", "d"},
		{"dry run then enforce", []proxyconfig.CircuitBreak{{Name: "d", MatchSpec: regexSpec("x"), DryRun: true}, {Name: "e", MatchSpec: regexSpec("x")}}, "x", nil, "e", "d"},
		{"regex or fingerprint", []proxyconfig.CircuitBreak{{Name: "m", MatchSpec: proxyconfig.MatchSpec{Regex: []string{"zzz"}, Fingerprint: []string{digestA}}}}, "q", facts, "m", ""},
		{"empty sql", []proxyconfig.CircuitBreak{{MatchSpec: regexSpec("x*")}}, "", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile(tt.rules, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // second time through the cache
				rej, dry := s.Check(tt.sql, tt.facts)
				if got := name(rej); got != tt.reject {
					t.Errorf("reject = %q, want %q", got, tt.reject)
				}
				if got := name(dry); got != tt.dry {
					t.Errorf("dry = %q, want %q", got, tt.dry)
				}
			}
		})
	}
}

func name(c *Compiled) string {
	if c == nil {
		return ""
	}
	return c.Name
}

func TestError(t *testing.T) {
	s, err := Compile([]proxyconfig.CircuitBreak{{Name: "no-full-scan", MatchSpec: regexSpec("select \\* from big$")}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rej, _ := s.Check("select * from big", nil)
	if rej == nil {
		t.Fatal("not rejected")
	}
	e := rej.Err
	if e.Code != mysql.ErrCodeUnknownCom || e.SQLState != "08S01" || e.Message != `audit plugin rejected: circuit_break rule "no-full-scan"` {
		t.Errorf("err = %+v", e)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		rules []proxyconfig.CircuitBreak
		want  string
	}{
		{[]proxyconfig.CircuitBreak{{MatchSpec: regexSpec("(")}}, "circuit_break[0].regex[0]: invalid regular expression"},
		{[]proxyconfig.CircuitBreak{{MatchSpec: regexSpec("a")}, {MatchSpec: regexSpec("")}}, "circuit_break[1].regex[0]: empty"},
		{[]proxyconfig.CircuitBreak{{}}, "circuit_break[0]: needs at least one regex or fingerprint"},
		{[]proxyconfig.CircuitBreak{{Name: "x", MatchSpec: regexSpec("a")}, {Name: "x", MatchSpec: regexSpec("b")}}, `duplicate rule name "x"`},
		{[]proxyconfig.CircuitBreak{{MatchSpec: regexSpec("a")}, {Name: "circuit_break[0]", MatchSpec: regexSpec("b")}}, "duplicate rule name"},
		{[]proxyconfig.CircuitBreak{{MatchSpec: proxyconfig.MatchSpec{Fingerprint: []string{"  "}}}}, "circuit_break[0].fingerprint[0]: empty"},
		{[]proxyconfig.CircuitBreak{{MatchSpec: regexSpec("(?<=a)b")}}, "invalid regular expression"}, // no lookbehind in RE2
	}
	for _, tt := range tests {
		err := proxyconfig.ValidateCircuitBreaks(tt.rules)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v, want %q", tt.rules, err, tt.want)
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := govmetrics.New(reg)
	s, err := Compile([]proxyconfig.CircuitBreak{
		{Name: "dry", MatchSpec: regexSpec("x"), DryRun: true},
		{Name: "hard", MatchSpec: regexSpec("y")},
	}, Options{Domain: "d1", Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"x", "x", "xy", "y", "z"} {
		s.Check(q, nil)
	}
	want := `
# HELP pisa_proxy_rule_dry_run_hits_total Statements a dry_run rule would have rejected (they were let through), by rule and reason.
# TYPE pisa_proxy_rule_dry_run_hits_total counter
pisa_proxy_rule_dry_run_hits_total{domain="d1",reason="circuit_break",rule="dry"} 3
# HELP pisa_proxy_rule_rejections_total Statements rejected by a governance rule (access, circuit_break, concurrency_control), by rule and reason.
# TYPE pisa_proxy_rule_rejections_total counter
pisa_proxy_rule_rejections_total{domain="d1",reason="circuit_break",rule="hard"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pisa_proxy_rule_dry_run_hits_total", "pisa_proxy_rule_rejections_total"); err != nil {
		t.Error(err)
	}
}

func TestManyRules(t *testing.T) { // more than 64 rules: uncached path
	var rules []proxyconfig.CircuitBreak
	for i := range 100 {
		rules = append(rules, proxyconfig.CircuitBreak{MatchSpec: regexSpec("tok" + strings.Repeat("x", i) + "$")})
	}
	s, err := Compile(rules, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rej, _ := s.Check("a tok"+strings.Repeat("x", 80), nil)
	if name(rej) != "circuit_break[80]" {
		t.Errorf("got %q", name(rej))
	}
}

func BenchmarkCheckPass(b *testing.B) {
	s, err := Compile([]proxyconfig.CircuitBreak{
		{MatchSpec: regexSpec("(?i)drop\\s+table", "truncate")},
		{MatchSpec: proxyconfig.MatchSpec{Regex: []string{"select \\* from big$"}, CaseInsensitive: true}},
	}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	f := &sqlparse.Facts{Fingerprint: "select c from sbtest1 where id = ?", Digest: digestA}
	q := "SELECT c FROM sbtest1 WHERE id=4711 AND k BETWEEN 10 AND 20"
	b.ReportAllocs()
	for b.Loop() {
		if r, _ := s.Check(q, f); r != nil {
			b.Fatal("rejected")
		}
	}
}

// regexSpec is a match spec of regexps only.
func regexSpec(res ...string) proxyconfig.MatchSpec { return proxyconfig.MatchSpec{Regex: res} }
