package hwaccel

import (
	"bytes"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDefaults(t *testing.T) {
	p, err := Build(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Backend != BackendSoftware || p.Tool != ToolFFmpeg || p.Argv[0] != "ffmpeg" {
		t.Errorf("zero config runs %s/%s %q, want software/ffmpeg ffmpeg", p.Backend, p.Tool, p.Argv[0])
	}
	want := []Output{
		{Layer: "main", Codec: H264, Container: ContainerAnnexB, Transport: TransportPipe, Width: 1280, Height: 720, FPS: 30, GOP: 30, FD: 3},
		{Layer: "preview", Codec: H264, Container: ContainerAnnexB, Transport: TransportPipe, Width: 320, Height: 180, FPS: 30, GOP: 30, FD: 4},
	}
	for i, o := range p.Outputs {
		if o != want[i] {
			t.Errorf("output %d = %+v, want %+v", i, o, want[i])
		}
	}
	c := Config{Input: InputConfig{Kind: InputDeckLink, Width: 7680, Height: 4320, FPS: 60}}.withDefaults()
	main := c.Layers[0]
	// 8K60 H.265 at 0.05 bit/pixel ≈ 99.5 Mbps; VBV half a second but
	// capped so a frame stays under 2,000,000 bytes.
	if main.Codec != H265 || main.BitrateKbps != 99532 || main.VBVKbits != 16000 || main.GOP != 60 || main.Profile != "main" {
		t.Errorf("8K main defaults %+v", main)
	}
	if c.Input.Format != UYVY422 || c.Input.Device != "DeckLink 8K Pro (1)" {
		t.Errorf("decklink input defaults %+v", c.Input)
	}
	rtp := LayerConfig{Transport: TransportRTP, Port: 5000}.withDefaults(1, c.Input)
	if rtp.RTCPPort != 5001 || rtp.FeedbackPort != 5005 || rtp.PayloadType != 97 || rtp.Container != ContainerRTP {
		t.Errorf("rtp defaults %+v", rtp)
	}
	r := c.Restart
	if r.BackoffMin != 500*time.Millisecond || r.BackoffMax != 30*time.Second || r.FallbackAfter != 3 || r.StopGrace != 3*time.Second {
		t.Errorf("restart defaults %+v", r)
	}
}

func TestConfigYAML(t *testing.T) {
	src := `
backend: nvenc
tool: gstreamer
fallback:
  - software
  - backend: vaapi
    tool: ffmpeg
    layers:
      - {name: preview, width: 1280, height: 720}
input: {kind: v4l2, device: /dev/video2, format: uyvy422, width: 3840, height: 2160, fps: 60}
layers:
  - {name: main, codec: h265, bitrate_kbps: 40000, gop: 60}
  - {name: preview, width: 1280, height: 720, transport: rtp, port: 5002}
watchdog: {first_frame: 15s, stall: 1500ms}
restart: {backoff_max: 1m}
`
	var c Config
	d := yaml.NewDecoder(strings.NewReader(src))
	d.KnownFields(true)
	if err := d.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.Watchdog.FirstFrame != 15*time.Second || c.Watchdog.Stall != 1500*time.Millisecond || c.Restart.BackoffMax != time.Minute {
		t.Errorf("durations %+v %+v", c.Watchdog, c.Restart)
	}
	if len(c.Fallback) != 2 || c.Fallback[0].Backend != "software" || c.Fallback[1].Tool != ToolFFmpeg || len(c.Fallback[1].Layers) != 1 {
		t.Errorf("fallback %+v", c.Fallback)
	}
	s, err := NewSupervisor(c, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range s.Pipelines() {
		got = append(got, p.Backend+"/"+string(p.Tool)+":"+strconv.Itoa(len(p.Outputs)))
	}
	// software keeps the configured tool, gstreamer, since it has it.
	if strings.Join(got, " ") != "nvenc/gstreamer:2 software/gstreamer:2 vaapi/ffmpeg:1" {
		t.Errorf("candidates %v", got)
	}
	if err := yaml.NewDecoder(strings.NewReader("layers: [{bitrate: 5}]")).Decode(&Config{}); err != nil {
		t.Fatal(err)
	}
	strict := yaml.NewDecoder(bytes.NewReader([]byte("layers: [{bitrate: 5}]")))
	strict.KnownFields(true)
	if err := strict.Decode(&Config{}); err == nil {
		t.Error("unknown field accepted by a strict decoder")
	}
}

func TestValidateErrors(t *testing.T) {
	eight := InputConfig{Kind: InputDeckLink, Width: 7680, Height: 4320, FPS: 60}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"h264 8k nvenc", Config{Backend: "nvenc", Input: eight, Layers: []LayerConfig{{Codec: H264}}},
			"nvenc (gstreamer): layer main: h264 at 7680x4320 exceeds the encoder limit of 4096x4096"},
		{"h264 8k nvenc ffmpeg", Config{Backend: "nvenc", Tool: ToolFFmpeg, Input: eight, Layers: []LayerConfig{{Codec: H264}}},
			"h264 at 7680x4320 exceeds the encoder limit of 4096x4096"},
		{"h264 8k vaapi", Config{Backend: "vaapi", Input: eight, Layers: []LayerConfig{{Codec: H264}}}, "limit of 4096x4096"},
		{"h264 8k qsv", Config{Backend: "qsv", Input: eight, Layers: []LayerConfig{{Codec: H264}}}, "limit of 4096x4096"},
		{"h264 4k v4l2m2m", Config{Backend: "v4l2m2m", Input: InputConfig{Width: 3840, Height: 2160}, Layers: []LayerConfig{{}}}, "limit of 1920x1088"},
		{"hevc 8k jetson", Config{Backend: "jetson", Input: InputConfig{Width: 7680, Height: 4320}, Layers: []LayerConfig{{}}}, "limit of 4096x4096"},
		{"decklink on jetson", Config{Backend: "jetson", Input: InputConfig{Kind: InputDeckLink, Width: 1920, Height: 1080, FPS: 30}}, "input decklink is not supported"},
		{"vp8 on nvenc", Config{Backend: "nvenc", Layers: []LayerConfig{{Codec: VP8}}}, "codec vp8 is not supported"},
		{"vp8 pipe on gstreamer", Config{Tool: ToolGStreamer, Layers: []LayerConfig{{Codec: VP8}}}, "gstreamer cannot write ivf to a pipe"},
		{"av1 rtp ffmpeg", Config{Layers: []LayerConfig{{Codec: AV1, Transport: TransportRTP, Port: 5000}}}, "ffmpeg cannot packetize av1 as RTP"},
		{"av1 rtp gstreamer", Config{Tool: ToolGStreamer, Layers: []LayerConfig{{Codec: AV1, Transport: TransportRTP, Port: 5000}}}, "gstreamer cannot packetize av1 as RTP"},
		{"unknown backend", Config{Backend: "rkmpp"}, `unknown backend "rkmpp"`},
		{"no such variant", Config{Backend: "qsv", Tool: ToolGStreamer}, "backend qsv has no gstreamer variant"},
		{"custom without command", Config{Backend: "custom"}, "custom.command is empty"},
		{"custom bad template", Config{Backend: "custom", Custom: CustomConfig{Command: []string{"enc", "{{.Nope}}"}}}, "custom"},
		{"bad codec", Config{Layers: []LayerConfig{{Codec: "mpeg2"}}}, `codec "mpeg2"`},
		{"odd size", Config{Layers: []LayerConfig{{Width: 641, Height: 360}}}, "size 641x360"},
		{"bigger than input", Config{Layers: []LayerConfig{{Width: 1920, Height: 1080}}}, "larger than the input 1280x720"},
		{"mjpeg testsrc", Config{Input: InputConfig{Format: MJPEG}}, "mjpeg is only for v4l2"},
		{"decklink 10 bit", Config{Input: InputConfig{Kind: InputDeckLink, Format: NV12}}, "only uyvy422"},
		{"decklink odd mode", Config{Input: InputConfig{Kind: InputDeckLink, Width: 1000, Height: 500, FPS: 30}}, "no DeckLink mode known for 1000x500@30; set input.mode"},
		{"unknown input", Config{Input: InputConfig{Kind: "ndi"}}, `input kind "ndi"`},
		{"fps", Config{Input: InputConfig{FPS: 500}}, "fps 500"},
		{"same names", Config{Layers: []LayerConfig{{Name: "a"}, {Name: "a"}}}, `layer name "a" used twice`},
		{"too many layers", Config{Layers: make([]LayerConfig, 5)}, "at most 4"},
		{"rtp without port", Config{Layers: []LayerConfig{{Transport: TransportRTP}}}, "port is required"},
		{"ports clash", Config{Layers: []LayerConfig{{Transport: TransportRTP, Port: 5000}, {Transport: TransportRTP, Port: 5001}}},
			"layer preview port 5001 is already layer main rtcp_port"},
		{"vbv over max frame", Config{Layers: []LayerConfig{{VBVKbits: 20000}}}, "vbv_kbits 20000 allows 2500000-byte frames, more than max_frame_bytes 2000000"},
		{"ivf for h264", Config{Layers: []LayerConfig{{Container: ContainerIVF}}}, `container "ivf" cannot carry h264`},
		{"rtp container on pipe", Config{Layers: []LayerConfig{{Container: ContainerRTP}}}, `container "rtp" cannot carry h264`},
		{"bad transport", Config{Layers: []LayerConfig{{Transport: "srt"}}}, `transport "srt"`},
		{"max below bitrate", Config{Layers: []LayerConfig{{BitrateKbps: 3000, MaxBitrateKbps: 2000}}}, "want 0 < bitrate <= max"},
		{"payload type", Config{Layers: []LayerConfig{{PayloadType: 33}}}, "payload_type 33"},
		{"fallback twice", Config{Fallback: []FallbackConfig{{Backend: "software"}}}, "software (ffmpeg) is already a candidate"},
		{"fallback invalid", Config{Input: eight, Layers: []LayerConfig{{Codec: H265}}, Fallback: []FallbackConfig{{Backend: "v4l2m2m"}}},
			"fallback 1: hwaccel: v4l2m2m (ffmpeg): input decklink is not supported"},
		{"fallback layers invalid", Config{Fallback: []FallbackConfig{{Backend: "software", Tool: ToolGStreamer, Layers: []LayerConfig{{Width: 3}}}}},
			"fallback 1 (software)"},
		{"backoff", Config{Restart: RestartConfig{BackoffMin: time.Minute, BackoffMax: time.Second}}, "restart backoff"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantInvalid(t, c.cfg, c.want) })
	}
}

// TestUnsupportedInputs: every backend refuses the inputs it has no
// template for.
func TestUnsupportedInputs(t *testing.T) {
	cat, err := loadCatalog()
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, b := range cat.backends {
		for _, k := range []InputKind{InputV4L2, InputDeckLink, InputTestSrc} {
			cfg := Config{Input: InputConfig{Kind: k, Width: 1920, Height: 1080, FPS: 30}, Layers: []LayerConfig{{}}}
			_, err := BuildBackend(cfg, b.Name, b.Tool)
			supported := false
			for _, in := range b.Inputs {
				supported = supported || in == k
			}
			if supported != (err == nil) {
				t.Errorf("%s/%s with %s: err %v, supported %v", b.Name, b.Tool, k, err, supported)
			}
			if !supported {
				refused++
			}
		}
	}
	if refused == 0 {
		t.Error("no backend refuses any input; the test checks nothing")
	}
}

// TestDeps: hwaccel imports none of whipgate's packages.
func TestDeps(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "whipgate" || strings.HasPrefix(p, "whipgate/") {
				t.Errorf("%s imports %s: hwaccel must not depend on other whipgate packages", f, p)
			}
		}
	}
}
