package rxfilter

import (
	"regexp"
	"testing"
)

func TestLiteral(t *testing.T) {
	for _, tc := range []struct {
		expr, lit string
		fold      bool
	}{
		{"^SELECT .* FROM report_", " FROM report_", false},
		{"from pisa_bench_never_report", "from pisa_bench_never_report", false},
		{"(?i)^select .* from report_", " FROM REPORT_", true}, // "SELECT" holds an s: cut there
		{"(?i)from big_table", "FROM BIG_TABLE", true},
		{"(?i)from stats", "FROM ", true},
		{"a|b", "", false},
		{"(abc)+d", "abc", false},
		{"x*", "", false},
		{"(?:abcd){2,}", "abcd", false},
		{"(?:abcd)?e", "e", false},
		{"\\x{FFFD}x", "", false},
		{"(?i)KELVIN", "ELVIN", true},
	} {
		r := MustCompile(tc.expr)
		lit, fold := r.Literal()
		if lit != tc.lit || (lit != "" && fold != tc.fold) {
			t.Errorf("%q: literal %q fold=%v, want %q fold=%v", tc.expr, lit, fold, tc.lit, tc.fold)
		}
	}
}

// The prefilter never changes the answer.
func TestSameAnswer(t *testing.T) {
	exprs := []string{"^SELECT .* FROM report_", "(?i)^select .* from report_", "from t1", "(?i)FROM T1", "(?i)kelvin",
		"(?i)class", "ab+c", "(?i)x_y", "(?s)a.b", "^DROP TABLE x$", "(?i)\\bsleep\\(", "\\d+ rows"}
	texts := []string{"", "SELECT * FROM report_2024", "select * from REPORT_x", "SELECT c FROM sbtest1 WHERE id=5", "from t1",
		"FROM T1", "\u212Aelvin", "KELVIN", "cla\u017Fs", "CLASS", "abbbc", "ac", "X_Y", "a\nb", "DROP TABLE x", "SELECT SLEEP(1)",
		"12 rows", "\xff\xfe", "SELECT * from Report_", "fro t1"}
	for _, e := range exprs {
		r, want := MustCompile(e), regexp.MustCompile(e)
		for _, s := range texts {
			if r.MatchString(s) != want.MatchString(s) {
				t.Errorf("%q on %q: %v, regexp says %v", e, s, r.MatchString(s), want.MatchString(s))
			}
		}
	}
}

func FuzzSameAnswer(f *testing.F) {
	f.Add("(?i)^select .* from report_", "select * FROM report_1")
	f.Add("(?i)kelvin", "\u212Aelvin")
	f.Add("a+b", "xaab")
	f.Fuzz(func(t *testing.T, expr, s string) {
		want, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		r := MustCompile(expr)
		if r.MatchString(s) != want.MatchString(s) {
			lit, fold := r.Literal()
			t.Fatalf("%q on %q: %v, regexp says %v (literal %q fold=%v)", expr, s, r.MatchString(s), want.MatchString(s), lit, fold)
		}
	})
}
