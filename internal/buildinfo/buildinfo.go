// Package buildinfo holds the version of this build, set by the linker or read from the module.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set with -ldflags "-X github.com/hardtrail/hardtrail/internal/buildinfo.Version=...".
var (
	Version  = ""
	Revision = ""
)

// GoVersion is the Go release that built the binary.
var GoVersion = runtime.Version()

func init() {
	bi, ok := debug.ReadBuildInfo()
	if Version == "" {
		Version = "devel"
		if ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			Version = bi.Main.Version
		}
	}
	if Revision == "" && ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				Revision = s.Value
			}
		}
	}
	if Revision == "" {
		Revision = "unknown"
	}
}

// String is "VERSION (revision REV, GOVERSION)".
func String() string {
	return Version + " (revision " + Revision + ", " + GoVersion + ")"
}
