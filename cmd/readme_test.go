package cmd

import (
	"flag"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

// readmeConfiguration is the README's "Configuration" section.
func readmeConfiguration(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(raw), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	return sec
}

// The section's flag table lists every flag the server has and no other:
// operators copy from it. config's TestREADMEConfiguration checks its
// variables, keys and YAML example.
func TestREADMEFlags(t *testing.T) {
	sec := readmeConfiguration(t)

	fs := newServerFlags(io.Discard).fs
	for _, m := range regexp.MustCompile("(?m)^\\| `-([a-z-]+)` \\|").FindAllStringSubmatch(sec, -1) {
		if fs.Lookup(m[1]) == nil {
			t.Errorf("the README's flag table has -%s, which whipgate does not have", m[1])
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(sec, "| `-"+f.Name+"` |") {
			t.Errorf("the README's flag table lacks -%s", f.Name)
		}
	})
}
