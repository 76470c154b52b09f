package audit

import (
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

func FuzzRedact(f *testing.F) {
	f.Add("select 'a', 1, `b` from t")
	f.Add("'\\")
	f.Add("`")
	f.Fuzz(func(t *testing.T, sql string) {
		out := Redact(sql)
		if len(out) > len(sql) {
			t.Fatalf("redaction grew the text: %q -> %q", sql, out)
		}
		if !strings.ContainsAny(sql, "`'\"") && strings.ContainsAny(sql, "0123456789") == strings.ContainsAny(out, "0123456789") && out != sql {
			// nothing quoted: only numbers may change
			if !strings.ContainsAny(sql, "0123456789") {
				t.Fatalf("text without literals changed: %q -> %q", sql, out)
			}
		}
	})
}

func FuzzConfig(f *testing.F) {
	f.Add("all", 0.5, int64(0), 1)
	f.Add("slow", -1.0, int64(5), -3)
	f.Fuzz(func(t *testing.T, include string, sample float64, slowNS int64, size int) {
		c := proxyconfig.Audit{Output: "stdout", Include: include, SampleRate: &sample, MaxSizeMB: size}
		c.SlowThreshold.Duration = 0
		if slowNS > 0 {
			c.SlowThreshold.Duration = 1
		}
		if c.Validate() != nil {
			return
		}
		c.Output = "" // do not open stdout writers in the fuzzer
		if _, err := Open(&c, "d", nil); err != nil {
			t.Fatal(err)
		}
	})
}
