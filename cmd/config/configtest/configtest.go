// Package configtest is the test kit that package cmd and package config
// share: how a test writes a config file, fakes the environment, checks an
// error and reads a section or the curl examples of the README (the
// integration tests run those too). Tests that start a server keep their
// helpers in cmd's own kit.
//
// Only tests import it. It imports nothing of whipgate, so that the tests of
// every package under cmd can use it.
package configtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// WriteFile writes content to name in a fresh temporary directory and
// returns its path.
func WriteFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Env is a fake environment for the getenv that cmd.Run, cmd.Start,
// config.ApplyEnv and Config.ApplyDefaults take.
func Env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// CheckErr fails unless err matches want: nil for "", otherwise an error
// whose text contains want.
func CheckErr(t testing.TB, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("got error %q, want none", err)
	case want != "" && err == nil:
		t.Fatalf("got no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("got error %q, want one containing %q", err, want)
	}
}

// READMESection is the section of the README at path headed
// "## title", up to the next "## " heading.
func READMESection(t testing.TB, path, title string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(raw), "\n## "+title+"\n")
	if !ok {
		t.Fatalf("%s has no %s section", path, title)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	return sec
}

// READMECurlLines are the curl lines of the api-examples block of the
// README at path, as written. It fails the test when the block is gone or
// has fewer than 10 of them.
func READMECurlLines(t testing.TB, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(raw), "<!-- api-examples:begin -->")
	block, _, ok2 := strings.Cut(block, "<!-- api-examples:end -->")
	if !ok || !ok2 {
		t.Fatalf("%s has no api-examples block", path)
	}
	var lines []string
	for l := range strings.Lines(block) {
		if strings.HasPrefix(l, "curl ") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	if len(lines) < 10 {
		t.Fatalf("only %d curl lines in the api-examples block of %s", len(lines), path)
	}
	return lines
}
