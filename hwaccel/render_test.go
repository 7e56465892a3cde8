package hwaccel

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current templates")

// goldenInputs are the capture variants every backend is rendered with.
var goldenInputs = []struct {
	name string
	in   InputConfig
}{
	{"v4l2-yuyv422", InputConfig{Kind: InputV4L2, Format: YUYV422}},
	{"v4l2-uyvy422", InputConfig{Kind: InputV4L2, Format: UYVY422}},
	{"v4l2-nv12", InputConfig{Kind: InputV4L2, Format: NV12}},
	{"v4l2-mjpeg", InputConfig{Kind: InputV4L2, Format: MJPEG}},
	{"decklink", InputConfig{Kind: InputDeckLink}},
	{"testsrc", InputConfig{Kind: InputTestSrc}},
}

// TestGoldenMatrix renders every backend × input × main codec at 1080p30
// (main on a pipe, a 640x360 H.264 preview over RTP) and compares the argv
// with testdata/<backend>-<tool>-<input>.golden. Combinations a backend
// cannot do are recorded with their error.
func TestGoldenMatrix(t *testing.T) {
	cat, err := loadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range cat.backends {
		for _, gi := range goldenInputs {
			if !slices.Contains(b.Inputs, gi.in.Kind) {
				continue
			}
			name := fmt.Sprintf("%s-%s-%s", b.Name, b.Tool, gi.name)
			t.Run(name, func(t *testing.T) {
				var out strings.Builder
				valid := 0
				for _, c := range allCodecs {
					in := gi.in
					in.Width, in.Height, in.FPS = 1920, 1080, 30
					cfg := Config{Input: in, Layers: []LayerConfig{
						{Codec: c},
						{Width: 640, Height: 360, Transport: TransportRTP, Port: 5002},
					}}
					fmt.Fprintf(&out, "# main %s 1920x1080 pipe, preview h264 640x360 rtp:5002\n", c)
					p, err := BuildBackend(cfg, b.Name, b.Tool)
					if err != nil {
						fmt.Fprintf(&out, "error: %v\n\n", err)
						continue
					}
					valid++
					writeArgv(&out, p)
				}
				if valid == 0 {
					t.Errorf("no codec renders for %s", name)
				}
				checkGolden(t, name, out.String())
			})
		}
	}
}

// goldenScenarios cover what the matrix does not: 8K, RTP main layers,
// capped VBR, low power, a custom command.
var goldenScenarios = []struct {
	name string
	cfg  Config
}{
	{"nvenc-ffmpeg-8k60-hevc", Config{Backend: "nvenc", Tool: ToolFFmpeg, Input: eightK, Layers: []LayerConfig{
		{Codec: H265, BitrateKbps: 80000, GOP: 60, MaxFrameBytes: 2_000_000},
		{Width: 1280, Height: 720, BitrateKbps: 2500, GOP: 30},
	}}},
	{"nvenc-gstreamer-8k60-av1-rtp-preview", Config{Backend: "nvenc", Input: eightK, Layers: []LayerConfig{
		{Codec: AV1, BitrateKbps: 60000},
		{Width: 1280, Height: 720, BitrateKbps: 2500, Transport: TransportRTP, Port: 5002, RTCPPort: 5003, FeedbackPort: 5007},
	}}},
	{"software-gstreamer-rtp-both", Config{Tool: ToolGStreamer, Layers: []LayerConfig{
		{Transport: TransportRTP, Port: 5000},
		{Codec: VP8, Transport: TransportRTP, Port: 5010},
	}}},
	{"software-ffmpeg-capped-vbr-single-layer", Config{Layers: []LayerConfig{
		{Codec: VP9, BitrateKbps: 1500, MaxBitrateKbps: 3000, VBVKbits: 1000, GOP: 60},
	}}},
	{"vaapi-ffmpeg-low-power", Config{Backend: "vaapi", LowPower: true, Device: "/dev/dri/renderD129",
		Input: InputConfig{Kind: InputV4L2, Width: 3840, Height: 2160, FPS: 30}, Layers: []LayerConfig{
			{Codec: H265}, {Width: 1280, Height: 720},
		}}},
	{"custom", Config{Backend: "custom", Custom: CustomConfig{Command: []string{
		"/opt/enc/bin/encode", "--main-fd", "{{(index .Layers 0).FD}}",
		"--preview", "udp://127.0.0.1:{{(index .Layers 1).Port}}", "--size", "{{.Input.Width}}x{{.Input.Height}}",
	}}, Layers: []LayerConfig{{}, {Transport: TransportRTP, Port: 6000}}}},
}

var eightK = InputConfig{Kind: InputDeckLink, Width: 7680, Height: 4320, FPS: 60}

func TestGoldenScenarios(t *testing.T) {
	for _, c := range goldenScenarios {
		t.Run(c.name, func(t *testing.T) {
			p, err := Build(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			writeArgv(&out, p)
			checkGolden(t, c.name, out.String())
		})
	}
}

func writeArgv(w *strings.Builder, p *Pipeline) {
	for _, o := range p.Outputs {
		fmt.Fprintf(w, "# output %s %s %s %s fd=%d port=%d rtcp=%d feedback=%d pt=%d pli=%v\n",
			o.Layer, o.Codec, o.Container, o.Transport, o.FD, o.Port, o.RTCPPort, o.FeedbackPort, o.PayloadType, o.KeyframeOnPLI)
	}
	for _, a := range p.Argv {
		w.WriteString(a + "\n")
	}
	w.WriteString("\n")
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./hwaccel -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the rendered argv (go test ./hwaccel -update refreshes it):\n%s", path, diffLines(string(want), got))
	}
}

// diffLines shows the first differing line with a little context.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want %q\n  got  %q", i+1, wl, gl)
		}
	}
	return "(no line differs)"
}

// TestGoldenFilesAreUsed catches golden files left behind by a renamed
// backend or input.
func TestGoldenFilesAreUsed(t *testing.T) {
	if *update {
		t.Skip("files are being rewritten")
	}
	files, _ := filepath.Glob("testdata/*.golden")
	cat, err := loadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, b := range cat.backends {
		for _, gi := range goldenInputs {
			if slices.Contains(b.Inputs, gi.in.Kind) {
				known[fmt.Sprintf("%s-%s-%s", b.Name, b.Tool, gi.name)] = true
			}
		}
	}
	for _, c := range goldenScenarios {
		known[c.name] = true
	}
	for _, d := range docSnippets {
		known["docs-"+d] = true
	}
	for _, f := range files {
		if name := strings.TrimSuffix(filepath.Base(f), ".golden"); !known[name] {
			t.Errorf("%s is not produced by any test; delete it", f)
		}
	}
}
