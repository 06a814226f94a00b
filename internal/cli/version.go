package cli

import "github.com/drover-hpc/drover/internal/buildinfo"

func versionString() string { return buildinfo.String() }
