package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

const module = "github.com/database-mesh/pisanix-go/"

// goList returns the import paths that `go list -deps` prints for pkgs.
func goList(t *testing.T, pkgs ...string) []string {
	t.Helper()
	// go test puts its own GOROOT/bin first in the test's PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(goBin, append([]string{"list", "-deps"}, pkgs...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps %v: %v\n%s", pkgs, err, ee.Stderr)
		}
		t.Fatalf("go list -deps %v: %v", pkgs, err)
	}
	return strings.Fields(string(out))
}

// The controller never links the data path (ARCHITECTURE.md, "Arrows point
// down only"): not the proxy, the SQL parser, the MySQL codec or the daemon
// agent. It builds their configuration from the schemas, which are leaves.
func TestControllerDoesNotLinkTheDataPath(t *testing.T) {
	dataPath := regexp.MustCompile(`internal/(proxy|sqlparse|mysql|daemon)$|internal/proxy/`)
	for _, p := range goList(t, ".") {
		if dataPath.MatchString(p) {
			t.Errorf("pisa-controller links %s", p)
		}
	}
}

// The config schemas import nothing of the programs that use them: only
// their own subpackages among this module's packages.
func TestSchemasAreLeaves(t *testing.T) {
	for _, schema := range []string{"internal/proxyconfig", "internal/daemonconfig"} {
		for _, p := range goList(t, module+schema) {
			if strings.HasPrefix(p, module) && p != module+schema && !strings.HasPrefix(p, module+schema+"/") {
				t.Errorf("%s imports %s", schema, p)
			}
		}
	}
}
