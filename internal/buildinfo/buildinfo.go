// Package buildinfo holds drover's version, set at link time by the Makefile
// (-ldflags "-X github.com/drover-hpc/drover/internal/buildinfo.Version=...").
package buildinfo

import (
	"fmt"
	"runtime"
)

// Version and Commit are overwritten at link time.
var (
	Version = "dev"
	Commit  = "unknown"
)

// String describes this build in one line.
func String() string {
	return fmt.Sprintf("drover %s (commit %s, %s, %s/%s)", Version, Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
