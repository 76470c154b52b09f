// Package version holds build information set with -ldflags at build time.
package version

import (
	"fmt"
	"runtime"
)

// Set with -ldflags "-X github.com/database-mesh/pisanix-go/internal/version.Version=...".
var (
	Version   = "0.0.0-dev"
	GitCommit = "unknown"
	GitBranch = "unknown"
	BuildDate = "unknown"
)

// String is pisa-proxy's one-line version, shown by --version and /version (Pisanix's
// format).
func String() string { return For("Pisa-Proxy") }

// For is the one-line version of the named program ("Pisa-Controller", "Pisa-Daemon").
func For(program string) string {
	return fmt.Sprintf("%s Release: %s, Pisa Edition: Community, Go Version: %s, Git Commit: %s, Git Branch: %s, Build Date: %s",
		program, Version, runtime.Version(), GitCommit, GitBranch, BuildDate)
}
