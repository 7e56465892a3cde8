package hwaccel

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// docSnippets are the docs/hwaccel-*.snippet.yaml files: what a user pastes
// under `hwaccel:`. They must decode strictly, validate and render.
var docSnippets = []string{"software-box", "nvenc-8k60"}

func TestDocSnippets(t *testing.T) {
	for _, name := range docSnippets {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "docs", "hwaccel-"+name+".snippet.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			// The snippet is the value of the hwaccel key of the main config.
			var doc struct {
				HWAccel Config `yaml:"hwaccel"`
			}
			dec := yaml.NewDecoder(bytes.NewReader(b))
			dec.KnownFields(true)
			if err := dec.Decode(&doc); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if err := doc.HWAccel.Validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
			s, err := NewSupervisor(doc.HWAccel, testLog(t))
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			for _, p := range s.Pipelines() {
				writeArgv(&out, p)
			}
			checkGolden(t, "docs-"+name, out.String())
		})
	}
}
