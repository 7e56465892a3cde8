package hwaccel

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// backendTable renders the markdown table docs/hwaccel.md carries.
func backendTable(t *testing.T) string {
	bs, err := Backends()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("| backend | tool | codecs (max size) | inputs | keyframes | probe looks for |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, bi := range bs {
		var codecs, inputs []string
		for _, c := range bi.Codecs {
			codecs = append(codecs, fmt.Sprintf("%s `%s` (%dx%d)", c.Codec, c.Encoder, c.MaxWidth, c.MaxHeight))
		}
		for _, in := range bi.Inputs {
			inputs = append(inputs, string(in))
		}
		tool := string(bi.Tool)
		if bi.Preferred {
			tool += " (default)"
		}
		devices := "—"
		if len(bi.Devices) > 0 {
			devices = "`" + strings.Join(bi.Devices, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", bi.Name, tool, strings.Join(codecs, ", "),
			strings.Join(inputs, ", "), bi.Keyframes, devices)
	}
	return b.String()
}

// TestDocsBackendTable keeps the table in docs/hwaccel.md equal to the
// embedded backend files.
func TestDocsBackendTable(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "hwaccel.md"))
	if err != nil {
		t.Fatal(err)
	}
	if want := backendTable(t); !strings.Contains(string(doc), want) {
		t.Errorf("docs/hwaccel.md does not contain the current backend table; replace it with:\n%s", want)
	}
}

func TestBackendsComplete(t *testing.T) {
	bs, err := Backends()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, b := range bs {
		have[b.Name+"/"+string(b.Tool)] = true
		if b.Summary == "" || b.Keyframes == "" || len(b.Codecs) == 0 {
			t.Errorf("%s/%s: summary, keyframes and codecs are required: %+v", b.Name, b.Tool, b)
		}
	}
	for _, want := range []string{"nvenc/ffmpeg", "nvenc/gstreamer", "vaapi/ffmpeg", "qsv/ffmpeg", "jetson/gstreamer",
		"v4l2m2m/ffmpeg", "software/ffmpeg", "software/gstreamer"} {
		if !have[want] {
			t.Errorf("backend %s missing", want)
		}
	}
	preferred := map[string]int{}
	for _, b := range bs {
		if b.Preferred {
			preferred[b.Name]++
		}
	}
	for _, b := range bs {
		if preferred[b.Name] != 1 {
			t.Errorf("backend %s has %d preferred variants, want 1", b.Name, preferred[b.Name])
		}
	}
}
