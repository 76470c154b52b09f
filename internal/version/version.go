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

// String is the one-line version shown by --version and /version.
func String() string {
	return fmt.Sprintf("Pisa-Proxy Release: %s, Pisa Edition: Community, Go Version: %s, Git Commit: %s, Git Branch: %s, Build Date: %s",
		Version, runtime.Version(), GitCommit, GitBranch, BuildDate)
}
