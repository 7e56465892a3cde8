package hwaccel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const fakeEncoderList = `Encoders:
 V..... = Video
 ------
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (codec h264)
 V....D h264_nvenc           NVIDIA NVENC H.264 encoder (codec h264)
 V....D hevc_nvenc           NVIDIA NVENC hevc encoder (codec hevc)
 V....D h264_vaapi           H.264/AVC (VAAPI) (codec h264)
 V..... h264_qsv             H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (Intel Quick Sync Video acceleration) (codec h264)
 V..... h264_v4l2m2m         V4L2 mem2mem H.264 encoder wrapper (codec h264)
`

const fakeFilterList = `Filters:
  T.. = Timeline support
  | = Source or sink filter
 ... hwupload          V->V       Upload a normal frame to a hardware frame
 ... hwupload_cuda     V->V       Upload a system memory frame to a CUDA device.
 ... scale_cuda        V->V       GPU accelerated video resizer
 ... scale_vaapi       V->V       Scale to/from VAAPI surfaces.
 ... vpp_qsv           V->V       Quick Sync Video VPP.
 ..C scale             V->V       Scale the input video size and/or convert the image format.
 ... split             V->N       Pass on the input to N video outputs.
`

// fakeTools writes fake ffmpeg, gst-inspect-1.0 and gst-launch-1.0 scripts:
// the listings above, gst-inspect knowing only elements, and a test encode
// that prints msg to stderr and exits with code. Each logs its argv.
func fakeTools(t *testing.T, msg string, code int, elements ...string) (Config, string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		script := "#!/bin/sh\necho \"$*\" >> " + filepath.Join(dir, name+".log") + "\n" + body
		if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		return path
	}
	encode := fmt.Sprintf("cat >&2 <<'EOF'\n%s\nEOF\nexit %d\n", msg, code)
	ffmpeg := write("ffmpeg", "case \"$*\" in\n"+
		"*-encoders*) cat <<'EOF'\n"+fakeEncoderList+"EOF\nexit 0;;\n"+
		"*-filters*) cat <<'EOF'\n"+fakeFilterList+"EOF\nexit 0;;\nesac\n"+encode)
	known := ""
	for _, e := range elements {
		known += e + ") exit 0;;\n"
	}
	inspect := write("gst-inspect-1.0", "case \"$1\" in\n"+known+"esac\necho \"No such element or plugin '$1'\" >&2\nexit 255\n")
	launch := write("gst-launch-1.0", encode)
	return Config{FFmpeg: ffmpeg, GstInspect: inspect, GstLaunch: launch}, dir
}

// fakeDev makes device nodes (plain files) under a fake root.
func fakeDev(t *testing.T, paths ...string) string {
	root := t.TempDir()
	for _, p := range paths {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestProbeReasons(t *testing.T) {
	allDevs := []string{"/dev/nvidiactl", "/dev/dri/renderD128", "/dev/video11"}
	cases := []struct {
		name     string
		backend  string
		tool     Tool
		layers   []LayerConfig
		devs     []string
		elements []string
		msg      string
		code     int
		works    bool
		stage    string
		reason   string
	}{
		{name: "no driver", backend: "nvenc", tool: ToolFFmpeg, msg: "[AVHWDeviceContext @ 0x5581] Cannot load libcuda.so.1\n[AVHWDeviceContext @ 0x5581] Could not dynamically load CUDA\nDevice creation failed: -1.", code: 1,
			stage: StageTest, reason: "no NVIDIA driver"},
		{name: "session limit", backend: "nvenc", tool: ToolFFmpeg, msg: "[h264_nvenc @ 0x55] OpenEncodeSessionEx failed: out of memory (10): (no details)\nError initializing output stream 0:0", code: 1,
			stage: StageTest, reason: "NVENC session limit"},
		{name: "no capable device", backend: "nvenc", tool: ToolFFmpeg, msg: "[h264_nvenc @ 0x55] No NVENC capable devices found", code: 1,
			stage: StageTest, reason: "no NVENC device can encode this codec at this size"},
		{name: "no nvenc engine", backend: "nvenc", tool: ToolFFmpeg, msg: "[hevc_nvenc @ 0x55] OpenEncodeSessionEx failed: unsupported device (2): (no details)", code: 1,
			layers: []LayerConfig{{Codec: H265}, {}}, stage: StageTest, reason: "GPU has no NVENC engine"},
		{name: "vaapi", backend: "vaapi", tool: ToolFFmpeg, msg: "[AVHWDeviceContext @ 0x5] Failed to initialise VAAPI connection: -1 (unknown libva error).\nDevice creation failed: -5.\nFailed to set value 'vaapi=va:/dev/dri/renderD128' for option 'init_hw_device': Input/output error", code: 1,
			stage: StageTest, reason: "no working VA-API device or driver"},
		{name: "qsv", backend: "qsv", tool: ToolFFmpeg, msg: "[AVHWDeviceContext @ 0x5] Error creating a MFX session: -9.\nDevice creation failed: -1313558101.", code: 1,
			stage: StageTest, reason: "no Intel QSV runtime or GPU"},
		{name: "v4l2m2m", backend: "v4l2m2m", tool: ToolFFmpeg, msg: "[h264_v4l2m2m @ 0x5] Could not find a valid device\n[h264_v4l2m2m @ 0x5] can't configure encoder", code: 1,
			layers: []LayerConfig{{}, {}}, stage: StageTest, reason: "no V4L2 M2M encoder device"},
		{name: "unknown message", backend: "software", tool: ToolFFmpeg, msg: "something odd\nreally odd", code: 3,
			stage: StageTest, reason: "exit status 3: really odd"},
		{name: "software works", backend: "software", tool: ToolFFmpeg, msg: "", code: 0, works: true},
		{name: "encoder missing from build", backend: "software", tool: ToolFFmpeg, layers: []LayerConfig{{Codec: H265}, {}},
			stage: StageEncoder, reason: "this ffmpeg has no encoder libx265"},
		{name: "no device node", backend: "nvenc", tool: ToolFFmpeg, devs: []string{"/dev/dri/renderD128"},
			stage: StageDevice, reason: "not found: /dev/nvidiactl"},
		{name: "gst element missing", backend: "nvenc", tool: ToolGStreamer, elements: []string{"cudaupload", "cudaconvertscale"},
			stage: StageEncoder, reason: "GStreamer element nvcudah264enc is not registered"},
		{name: "gst works", backend: "nvenc", tool: ToolGStreamer, elements: []string{"nvcudah264enc", "cudaupload", "cudaconvertscale"},
			works: true},
		{name: "h264 too wide", backend: "nvenc", tool: ToolFFmpeg, layers: []LayerConfig{{Codec: H264, Width: 7680, Height: 4320}, {Width: 1280, Height: 720}},
			stage: StageConfig, reason: "h264 at 7680x4320 exceeds the encoder limit of 4096x4096"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, dir := fakeTools(t, c.msg, c.code, c.elements...)
			cfg.Input = InputConfig{Width: 1920, Height: 1080, FPS: 30}
			if c.layers != nil {
				cfg.Layers = c.layers
				if c.layers[0].Width > 1920 {
					cfg.Input = InputConfig{Kind: InputDeckLink, Width: 7680, Height: 4320, FPS: 60}
				}
			}
			devs := c.devs
			if devs == nil {
				devs = allDevs
			}
			rs, err := Probe(t.Context(), cfg, ProbeOptions{Backends: []string{c.backend}, Root: fakeDev(t, devs...), Timeout: 5 * time.Second}, testLog(t))
			var r *Result
			for i := range rs {
				if rs[i].Tool == c.tool {
					r = &rs[i]
				}
			}
			if r == nil {
				t.Fatalf("no %s/%s row in %+v", c.backend, c.tool, rs)
			}
			if r.Works != c.works || r.Stage != c.stage || !strings.Contains(r.Reason, c.reason) {
				t.Errorf("got works=%v stage=%q reason=%q, want works=%v stage=%q reason containing %q",
					r.Works, r.Stage, r.Reason, c.works, c.stage, c.reason)
			}
			anyWorks := false
			for _, r := range rs {
				anyWorks = anyWorks || r.Works
			}
			if anyWorks != (err == nil) || !anyWorks && !errors.Is(err, ErrNothingWorks) {
				t.Errorf("err %v with works=%v", err, anyWorks)
			}
			if c.stage == StageTest || c.works && c.tool == ToolFFmpeg {
				// The test encode ran both layers at once, five frames each.
				b, _ := os.ReadFile(filepath.Join(dir, "ffmpeg.log"))
				last := lastLine(strings.Split(string(b), "\n"))
				if strings.Count(last, "-frames:v 5") != 2 || !strings.Contains(last, "testsrc2=size=1920x1080") {
					t.Errorf("test encode argv %q: want both layers, 5 frames, at 1920x1080", last)
				}
			}
		})
	}
}

func TestProbeTimeout(t *testing.T) {
	cfg, _ := fakeTools(t, "", 0, "x264enc", "videoconvert", "videoscale")
	if err := os.WriteFile(cfg.GstLaunch, []byte("#!/bin/sh\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rs, err := Probe(t.Context(), cfg, ProbeOptions{Backends: []string{"software"}, Timeout: 300 * time.Millisecond}, testLog(t))
	if err != nil {
		t.Fatal(err) // the ffmpeg variant works
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("probe took %v with a 300ms timeout", time.Since(start))
	}
	for _, r := range rs {
		if r.Tool == ToolGStreamer && (r.Works || !strings.Contains(r.Reason, "timed out after 300ms")) {
			t.Errorf("gstreamer row %+v, want a timeout", r)
		}
	}
}

func TestWriteTable(t *testing.T) {
	var b strings.Builder
	err := WriteTable(&b, []Result{
		{Backend: "nvenc", Tool: ToolGStreamer, Codecs: []Codec{H265, H264}, Sizes: []string{"7680x4320", "1280x720"}, Works: true},
		{Backend: "vaapi", Tool: ToolFFmpeg, Codecs: []Codec{H265, H264}, Sizes: []string{"7680x4320", "1280x720"}, Stage: StageDevice, Reason: "not found: /dev/dri/renderD*"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `BACKEND  TOOL       CODEC      SIZE                WORKS  REASON
nvenc    gstreamer  h265+h264  7680x4320+1280x720  yes    
vaapi    ffmpeg     h265+h264  7680x4320+1280x720  no     device: not found: /dev/dri/renderD*
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestProbeThisMachine runs the real probe: on this GPU-less machine the
// software backends must work and the hardware ones must say why not.
func TestProbeThisMachine(t *testing.T) {
	needTool(t, "ffmpeg", "apt-get install -y ffmpeg")
	needTool(t, "gst-inspect-1.0", "apt-get install -y gstreamer1.0-tools")
	rs, err := Probe(t.Context(), Config{}, ProbeOptions{}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	WriteTable(&b, rs)
	t.Logf("\n%s", b.String())
	for _, r := range rs {
		t.Logf("%s/%s: %v", r.Backend, r.Tool, r.Duration)
		if r.Backend == BackendSoftware && !r.Works {
			t.Errorf("software/%s does not work: %s %v", r.Tool, r.Reason, r.Output)
		}
		if !r.Works && r.Reason == "" {
			t.Errorf("%s/%s fails without a reason", r.Backend, r.Tool)
		}
	}
}
