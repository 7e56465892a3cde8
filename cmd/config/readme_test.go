package config

import (
	"regexp"
	"strings"
	"testing"

	"whipgate/cmd/config/configtest"
)

// The section names variables and keys that exist, and its YAML example
// loads strictly: operators copy from it. cmd's TestREADMEFlags checks
// its flag table.
func TestREADMEConfiguration(t *testing.T) {
	sec := configtest.READMESection(t, "../../README.md", "Configuration")

	known := map[string]string{EnvConfigFile: ""}
	for _, v := range envVars() {
		known[v.name] = v.key
	}
	vars := regexp.MustCompile(`WHIPGATE_[A-Z0-9_]+`).FindAllString(sec, -1)
	if len(vars) < 10 {
		t.Fatalf("got %d variables in the section, want the common ones", len(vars))
	}
	for _, name := range vars {
		if _, ok := known[name]; !ok {
			t.Errorf("the README names %s, which whipgate does not read", name)
		}
	}

	// Rows of the rule's table: | `key` | `WHIPGATE_...` |
	rows := regexp.MustCompile("(?m)^\\| `([a-z_.]+)` \\| `(WHIPGATE_[A-Z0-9_]+)` \\|$").FindAllStringSubmatch(sec, -1)
	if len(rows) < 3 {
		t.Fatalf("got %d key → variable rows, want the rule's examples", len(rows))
	}
	for _, r := range rows {
		if got := envName(strings.Split(r[1], ".")); got != r[2] || known[r[2]] != r[1] {
			t.Errorf("README row %s → %s: the rule gives %s for a key whipgate reads as %q", r[1], r[2], got, known[r[2]])
		}
	}

	_, block, ok := strings.Cut(sec, "```yaml\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("the section has no YAML example")
	}
	// DecodeFile: the example's token files are not on this machine.
	c, err := DecodeFile(configtest.WriteFile(t, "readme.yaml", block))
	if err != nil {
		t.Fatalf("the README's YAML example: %v", err)
	}
	c.ApplyDefaults(configtest.Env(nil))
	c.APITokenFile, c.APIToken = "", "from-the-file"
	for name, sc := range c.Streams {
		sc.PublishTokenFile = ""
		c.Streams[name] = sc
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the README's YAML example does not validate: %v", err)
	}
}
