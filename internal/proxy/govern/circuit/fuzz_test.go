package circuit

import (
	"testing"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

func FuzzCheck(f *testing.F) {
	f.Add("111", false, "abc", "select 111", "fp")
	f.Add("(?i)drop", true, "", "DROP TABLE x", "")
	f.Add("(", false, "x", "", "x")
	f.Add("^$", false, "  ", "\x00\xff", "\xff")
	f.Fuzz(func(t *testing.T, rx string, ci bool, fp, sql, factsFP string) {
		s, err := Compile([]proxyconfig.CircuitBreak{{MatchSpec: proxyconfig.MatchSpec{Regex: []string{rx}, CaseInsensitive: ci, Fingerprint: []string{fp}}}, {MatchSpec: regexSpec("x"), DryRun: true}}, Options{})
		if err != nil {
			return
		}
		facts := &sqlparse.Facts{Fingerprint: factsFP, Digest: factsFP}
		r1, d1 := s.Check(sql, facts)
		r2, d2 := s.Check(sql, facts)
		if r1 != r2 || d1 != d2 {
			t.Fatalf("cached result differs: %v/%v vs %v/%v", r1, d1, r2, d2)
		}
	})
}
