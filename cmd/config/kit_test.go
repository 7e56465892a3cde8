package config

// The test kit of package config: how a test writes a config file, fakes
// the environment and checks an error. Keep it this small; tests that
// start a server belong to package cmd and its kit.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFile writes content to name in a fresh temporary directory and
// returns its path.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// env is a fake environment for the getenv that ApplyEnv and
// ApplyDefaults take.
func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

// checkErr fails unless err matches want: nil for "", otherwise an error
// whose text contains want.
func checkErr(t testing.TB, err error, want string) {
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
