package rxmatch

import (
	"fmt"
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
	"github.com/database-mesh/pisanix-go/internal/sqlparse"
)

func name(i int) string { return fmt.Sprintf("r[%d]", i) }

func TestNext(t *testing.T) {
	s, err := Compile([]proxyconfig.MatchSpec{
		{Regex: []string{"a"}},
		{Regex: []string{"B"}, CaseInsensitive: true},
		{Fingerprint: []string{"select ?"}},
		{Regex: []string{"a"}, Fingerprint: []string{strings.Repeat("F", 64)}},
	}, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &sqlparse.Facts{Fingerprint: "select ?", Digest: strings.Repeat("f", 64)}
	tests := []struct {
		sql  string
		f    *sqlparse.Facts
		from int
		want int
	}{
		{"xyz", nil, 0, -1},
		{"xaz", nil, 0, 0},
		{"xaz", nil, 1, 3},
		{"xbz", nil, 0, 1},
		{"xyz", f, 0, 2}, // rule 2 by fingerprint
		{"xyz", f, 3, 3}, // rule 3 by digest
		{"xyz", f, 4, -1},
		{"xyz", &sqlparse.Facts{Digest: strings.Repeat("f", 64)}, 0, 3},
		{"", nil, 0, -1},
		{"a", nil, 4, -1},
	}
	for _, tt := range tests {
		for range 3 { // miss, admit, hit
			if got := s.Next(tt.sql, tt.f, tt.from); got != tt.want {
				t.Errorf("Next(%q, %v, %d) = %d, want %d", tt.sql, tt.f, tt.from, got, tt.want)
			}
		}
	}
}

func TestNormalize(t *testing.T) {
	up := strings.ToUpper
	s, err := Compile([]proxyconfig.MatchSpec{{Fingerprint: []string{" select 1 "}}}, name, up)
	if err != nil {
		t.Fatal(err)
	}
	if s.Next("", &sqlparse.Facts{Fingerprint: "SELECT 1"}, 0) != 0 {
		t.Error("normalizer not applied")
	}
	if NormalizeKey(strings.Repeat("AB", 32), up) != strings.Repeat("ab", 32) {
		t.Error("digest not lowercased")
	}
	if s.Empty() || s.Len() != 1 {
		t.Error("Empty/Len")
	}
	var nilSet *Set
	if !nilSet.Empty() || nilSet.Len() != 0 || nilSet.Next("x", nil, 0) != -1 {
		t.Error("nil set")
	}
}

func TestCacheUnderChurn(t *testing.T) {
	s, _ := Compile([]proxyconfig.MatchSpec{{Regex: []string{"7$"}}}, name, nil)
	for i := range 30000 {
		q := fmt.Sprintf("select %d", i%2000)
		want := -1
		if strings.HasSuffix(q, "7") {
			want = 0
		}
		if got := s.Next(q, nil, 0); got != want {
			t.Fatalf("%q: %d", q, got)
		}
	}
}

func FuzzNext(f *testing.F) {
	f.Add("a|b", true, "xAx", "x")
	f.Add("(?s).", false, "\n", "")
	f.Fuzz(func(t *testing.T, rx string, ci bool, sql, fp string) {
		s, err := Compile([]proxyconfig.MatchSpec{{Regex: []string{rx}, CaseInsensitive: ci}, {Fingerprint: []string{fp}}}, name, nil)
		if err != nil {
			return
		}
		facts := &sqlparse.Facts{Fingerprint: strings.TrimSpace(fp)}
		direct := -1
		if s.ruleRegex(0, sql) {
			direct = 0
		} else if strings.TrimSpace(fp) != "" {
			direct = 1
		}
		for range 3 {
			if got := s.Next(sql, facts, 0); got != direct {
				t.Fatalf("Next = %d, direct = %d", got, direct)
			}
		}
	})
}
