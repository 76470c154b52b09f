package proxyconfig

import (
	"path/filepath"
	"testing"
)

// Every example configuration in examples/ loads and validates.
func TestExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		if filepath.Base(f) == "daemon.toml" {
			continue // pisa-daemon's config
		}
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
