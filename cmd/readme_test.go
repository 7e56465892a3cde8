package cmd

import (
	"flag"
	"io"
	"regexp"
	"strings"
	"testing"

	"whipgate/cmd/config/configtest"
)

// The section's flag table lists every flag the server has and no other:
// operators copy from it. config's TestREADMEConfiguration checks its
// variables, keys and YAML example.
func TestREADMEFlags(t *testing.T) {
	sec := configtest.READMESection(t, "../README.md", "Configuration")

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
