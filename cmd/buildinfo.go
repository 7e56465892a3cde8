package cmd

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strconv"
)

// version is the release version a release build stamps into the binary:
//
//	go build -ldflags "-X whipgate/cmd.version=v1.2.3" ./cmd/whipgate
//
// It is the package's one variable set from outside, and only by the
// linker: nothing assigns it at run time. Empty means "ask the module"
// (see ReadBuildInfo).
var version string

// BuildInfo says which whipgate this is. `whipgate version` prints it, and
// GET /api/v1/info serves it, so a bug report and a monitoring system name
// the same build.
type BuildInfo struct {
	// Version is the stamped release version, else the module version the
	// go command recorded (a tag, or a pseudo-version when built from a
	// repository), else "(devel)".
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from, "" if unknown
	// (go run, or a build outside a repository, records none).
	Revision string `json:"revision"`
	// Time is the commit's time (RFC 3339), "" if unknown.
	Time string `json:"time"`
	// Modified is true when the working tree had uncommitted changes.
	Modified bool `json:"modified"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"go_version"`
}

// ReadBuildInfo reads what the linker and the go command recorded in this
// binary.
func ReadBuildInfo() BuildInfo {
	bi, _ := debug.ReadBuildInfo() // nil without module support
	return buildInfoFrom(version, bi)
}

// buildInfoFrom is ReadBuildInfo on given inputs, for tests: stamped is the
// -X version, bi may be nil (a binary built without module support).
func buildInfoFrom(stamped string, bi *debug.BuildInfo) BuildInfo {
	b := BuildInfo{Version: stamped, GoVersion: runtime.Version()}
	if bi == nil {
		if b.Version == "" {
			b.Version = "(devel)"
		}
		return b
	}
	if b.Version == "" {
		b.Version = bi.Main.Version
	}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	if bi.GoVersion != "" {
		b.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified, _ = strconv.ParseBool(s.Value)
		}
	}
	return b
}

// Write prints b as `whipgate version` does: one "name value" line each,
// so that both a person and grep can read it.
func (b BuildInfo) Write(w io.Writer) error {
	unknown := func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s
	}
	_, err := fmt.Fprintf(w, "whipgate %s\nrevision %s\ntime     %s\nmodified %t\ngo       %s\n",
		b.Version, unknown(b.Revision), unknown(b.Time), b.Modified, b.GoVersion)
	return err
}
