package cmd

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"whipgate/certs/certstest"
	"whipgate/cmd/config/configtest"
)

func TestBuildInfoFrom(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "-buildmode", Value: "exe"},
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "82c83480c4d1"},
		{Key: "vcs.time", Value: "2026-12-07T02:37:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}
	for _, tc := range []struct {
		name    string
		stamped string
		bi      *debug.BuildInfo
		want    BuildInfo
	}{
		{
			name: "no build info",
			want: BuildInfo{Version: "(devel)", GoVersion: runtime.Version()},
		},
		{
			name:    "stamped, no build info",
			stamped: "v1.2.3",
			want:    BuildInfo{Version: "v1.2.3", GoVersion: runtime.Version()},
		},
		{
			name: "module version and VCS",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "whipgate", Version: "v0.3.0"}, Settings: vcs},
			want: BuildInfo{Version: "v0.3.0", Revision: "82c83480c4d1", Time: "2026-12-07T02:37:00Z", Modified: true, GoVersion: "go1.26.8"},
		},
		{
			name:    "the stamp wins over the module version",
			stamped: "v1.2.3",
			bi:      &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "whipgate", Version: "v0.3.0"}},
			want:    BuildInfo{Version: "v1.2.3", GoVersion: "go1.26.8"},
		},
		{
			name: "a build without a version is (devel)",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "whipgate"}, Settings: []debug.BuildSetting{{Key: "vcs.modified", Value: "false"}}},
			want: BuildInfo{Version: "(devel)", GoVersion: "go1.26.8"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := buildInfoFrom(tc.stamped, tc.bi); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestBuildInfoWrite(t *testing.T) {
	for _, tc := range []struct {
		in   BuildInfo
		want string
	}{
		{
			BuildInfo{Version: "v1.2.3", Revision: "abc", Time: "2026-12-07T02:37:00Z", Modified: true, GoVersion: "go1.26.8"},
			"whipgate v1.2.3\nrevision abc\ntime     2026-12-07T02:37:00Z\nmodified true\ngo       go1.26.8\n",
		},
		{
			BuildInfo{Version: "(devel)", GoVersion: "go1.26.8"},
			"whipgate (devel)\nrevision unknown\ntime     unknown\nmodified false\ngo       go1.26.8\n",
		},
	} {
		var b strings.Builder
		if err := tc.in.Write(&b); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
		}
	}
}

// `version`, -version and --version print the same thing.
func TestRunVersion(t *testing.T) {
	var want strings.Builder
	if err := ReadBuildInfo().Write(&want); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"version"}, {"-version"}, {"--version"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr certstest.LogTap
			if err := Run(t.Context(), args, configtest.Env(nil), &stdout, &stderr); err != nil {
				t.Fatal(err)
			}
			if stdout.String() != want.String() || !strings.Contains(stdout.String(), "go       "+runtime.Version()) {
				t.Fatalf("got\n%s\nwant\n%s", stdout.String(), want.String())
			}
		})
	}
}

// The release stamp documented in buildinfo.go really reaches the binary:
// a wrong package path in -X is silently ignored by the linker.
func TestVersionStampedByLdflags(t *testing.T) {
	// go test puts its own toolchain first in PATH.
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command in PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "whipgate")
	build := exec.CommandContext(t.Context(), gobin, "build", "-buildvcs=false", "-ldflags", "-X whipgate/cmd.version=v9.8.7-test", "-o", bin, "./whipgate")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(t.Context(), bin, "version").Output()
	if err != nil {
		t.Fatalf("whipgate version: %v", err)
	}
	if !strings.HasPrefix(string(out), "whipgate v9.8.7-test\n") {
		t.Fatalf("got %q, want it to start with \"whipgate v9.8.7-test\"", out)
	}
}
