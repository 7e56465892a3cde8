package hwaccel

import (
	"errors"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the hwaccel section of the whipgate configuration (under
// `hwaccel:`). The zero value is a software encode of a 1280x720@30 test
// pattern into an H.264 main layer and a 320x180 H.264 preview, both on pipes.
type Config struct {
	// Backend is the backend started first: nvenc, vaapi, qsv, jetson,
	// v4l2m2m, software or custom. Default "software".
	Backend string `yaml:"backend"`
	// Fallback lists the backends tried in turn after the current one failed
	// Restart.FallbackAfter times within Restart.FallbackWindow; after the
	// last one the supervisor returns to Backend. An entry is a backend name
	// or a FallbackConfig. Default none.
	Fallback []FallbackConfig `yaml:"fallback"`
	// Tool picks a backend's variant: ffmpeg or gstreamer. Fallbacks use the
	// same tool when they have it and their preferred variant otherwise.
	// Default: the backend's preferred variant (gstreamer for nvenc and
	// jetson, ffmpeg for the others).
	Tool Tool `yaml:"tool"`
	// Device is the encoder device: the DRM render node for vaapi and qsv,
	// the CUDA device index for nvenc with ffmpeg. Default: the backend's
	// (/dev/dri/renderD128, 0).
	Device string `yaml:"device"`
	// LowPower selects the low-power (VDEnc) entrypoints for vaapi and qsv;
	// Intel Arc and newer only have those, AMD has none. Default false.
	LowPower bool `yaml:"low_power"`
	// Input is the capture source. Default: a 1280x720@30 test pattern.
	Input InputConfig `yaml:"input"`
	// Layers are the encodes made from the one capture, in output order: the
	// first goes to fd 3 when piped, the second to fd 4, and so on (at most
	// four). Default: main at the input size and preview at a quarter of it
	// per side, both H.264 (H.265 for a main wider than 4096).
	Layers []LayerConfig `yaml:"layers"`
	// Custom is the user command run by the custom backend.
	Custom CustomConfig `yaml:"custom"`
	// FFmpeg is the ffmpeg executable. Default "ffmpeg" (looked up in PATH).
	FFmpeg string `yaml:"ffmpeg"`
	// GstLaunch is the gst-launch-1.0 executable. Default "gst-launch-1.0".
	GstLaunch string `yaml:"gst_launch"`
	// GstInspect is the gst-inspect-1.0 executable the probe uses. Default
	// "gst-inspect-1.0".
	GstInspect string `yaml:"gst_inspect"`
	// Watchdog says when a running encoder counts as broken.
	Watchdog WatchdogConfig `yaml:"watchdog"`
	// Restart says how the supervisor restarts and falls back.
	Restart RestartConfig `yaml:"restart"`
}

// FallbackConfig is one fallback backend. In YAML a plain name ("software")
// is short for {backend: software}.
type FallbackConfig struct {
	// Backend is the backend name. Required.
	Backend string `yaml:"backend"`
	// Tool picks the variant. Default: Config.Tool when the backend has it,
	// else the backend's preferred variant.
	Tool Tool `yaml:"tool"`
	// Layers replace Config.Layers while this backend runs, for example only
	// a CPU-encoded preview once the GPU is gone. Default: Config.Layers.
	Layers []LayerConfig `yaml:"layers"`
}

// UnmarshalYAML accepts a bare backend name as well as the mapping.
func (f *FallbackConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		f.Backend = n.Value
		return nil
	}
	type plain FallbackConfig // no UnmarshalYAML: no recursion
	return n.Decode((*plain)(f))
}

// InputConfig describes the capture.
type InputConfig struct {
	// Kind is v4l2, decklink or testsrc. Default testsrc.
	Kind InputKind `yaml:"kind"`
	// Device is the V4L2 device node (default /dev/video0) or, for decklink
	// with ffmpeg, the card's name (default "DeckLink 8K Pro (1)").
	Device string `yaml:"device"`
	// DeviceNumber is the DeckLink device-number for GStreamer. Default 0.
	DeviceNumber int `yaml:"device_number"`
	// Format is what the capture delivers: yuyv422, uyvy422, nv12 or mjpeg
	// (V4L2 only). DeckLink delivers uyvy422 (8-bit YUV) only. Default:
	// yuyv422 for v4l2, uyvy422 for decklink, nv12 for testsrc.
	Format PixelFormat `yaml:"format"`
	// Width of the captured frames in pixels. Default 1280.
	Width int `yaml:"width"`
	// Height of the captured frames in pixels. Default 720.
	Height int `yaml:"height"`
	// FPS is the capture frame rate (integer). Default 30.
	FPS int `yaml:"fps"`
	// Mode is the DeckLink display mode as the tool names it (ffmpeg
	// -format_code such as "8k60", GStreamer mode such as "8kp60"). Default:
	// derived from width, height and fps.
	Mode string `yaml:"mode"`
}

// LayerConfig is one encode of the capture.
type LayerConfig struct {
	// Name identifies the layer to the gateway. Default "main" for the first
	// layer, "preview" for the second, "layer3" and "layer4" after.
	Name string `yaml:"name"`
	// Codec is h264, h265, av1, vp8 or vp9. Default h264, or h265 when the
	// layer is wider than 4096 (no hardware H.264 encoder goes beyond).
	Codec Codec `yaml:"codec"`
	// Width in pixels (even, at most the input's). Default: the input width
	// for the first layer, a quarter of it for later ones.
	Width int `yaml:"width"`
	// Height in pixels (even, at most the input's). Default as for Width.
	Height int `yaml:"height"`
	// BitrateKbps is the target bitrate. Default: 0.07 bit per pixel and frame
	// for H.264 and VP8, 0.05 for H.265, AV1 and VP9 (8K60 H.265 ≈ 100 Mbps,
	// 720p30 H.264 ≈ 1.9 Mbps).
	BitrateKbps int `yaml:"bitrate_kbps"`
	// MaxBitrateKbps caps the rate; equal to BitrateKbps means CBR, larger
	// means capped VBR. Default BitrateKbps.
	MaxBitrateKbps int `yaml:"max_bitrate_kbps"`
	// GOP is the distance between IDR frames in frames. Default: the input
	// fps (one second).
	GOP int `yaml:"gop"`
	// MaxFrameBytes bounds the largest (key)frame through the VBV size.
	// Chrome drops frames of more than 2048 RTP packets (≈2.4 MB at 1200-byte
	// packets). Default 2000000.
	MaxFrameBytes int `yaml:"max_frame_bytes"`
	// VBVKbits is the rate-control buffer (VBV/HRD) size in kbit; a frame
	// never exceeds it. Default: half a second of MaxBitrateKbps, capped at
	// MaxFrameBytes.
	VBVKbits int `yaml:"vbv_kbits"`
	// Profile is the codec profile. Default "baseline" for H.264 (browsers
	// decode constrained baseline everywhere), "main" for H.265, unset
	// otherwise.
	Profile string `yaml:"profile"`
	// Transport is pipe or rtp. Default pipe.
	Transport Transport `yaml:"transport"`
	// Container is the pipe format: annexb (H.264/H.265), ivf (VP8/VP9/AV1)
	// or obu (AV1). Default: annexb, ivf for VP8/VP9, obu for AV1. Always rtp
	// for the rtp transport.
	Container Container `yaml:"container"`
	// Port is the UDP port on 127.0.0.1 that receives the RTP. Required for
	// the rtp transport.
	Port int `yaml:"port"`
	// RTCPPort receives the encoder's RTCP sender reports. Default Port+1.
	RTCPPort int `yaml:"rtcp_port"`
	// FeedbackPort is where a GStreamer pipeline listens for RTCP from
	// whipgate (a PLI there yields an IDR). Default Port+5.
	FeedbackPort int `yaml:"feedback_port"`
	// PayloadType is the RTP payload type. Default 96 + layer index.
	PayloadType int `yaml:"payload_type"`
}

// CustomConfig is the encoder command of the custom backend.
type CustomConfig struct {
	// Command is the argv, run without a shell. Each element is a Go
	// text/template over the same data as the built-in backends, e.g.
	// "pipe:{{(index .Layers 0).FD}}" or "{{(index .Layers 1).Port}}". The
	// command must follow the output conventions of the layers (pipe i on
	// fd 3+i; RTP to the layer's port). Default none.
	Command []string `yaml:"command"`
}

// WatchdogConfig decides when a running encoder is restarted. It needs the
// caller to report frames with Supervisor.FrameArrived.
type WatchdogConfig struct {
	// FirstFrame is how long every layer may take to deliver its first frame
	// (an 8K DeckLink lock can take seconds). Negative disables. Default 10s.
	FirstFrame time.Duration `yaml:"first_frame"`
	// Stall restarts the encoder when a layer delivered no frame for this
	// long. Negative disables. Default 2s.
	Stall time.Duration `yaml:"stall"`
	// LowFPS warns when a layer runs below this fraction of the input fps
	// for LowFPSFor. Default 0.9.
	LowFPS float64 `yaml:"low_fps"`
	// LowFPSFor is how long the rate must stay low before the warning.
	// Default 10s.
	LowFPSFor time.Duration `yaml:"low_fps_for"`
}

// RestartConfig controls restarts and fallback.
type RestartConfig struct {
	// BackoffMin is the first restart delay; it doubles per failure (±20 %
	// jitter). Default 500ms.
	BackoffMin time.Duration `yaml:"backoff_min"`
	// BackoffMax caps the restart delay (before the jitter). Default 30s.
	BackoffMax time.Duration `yaml:"backoff_max"`
	// HealthyAfter is how long a run must last to reset the backoff.
	// Default 60s.
	HealthyAfter time.Duration `yaml:"healthy_after"`
	// FallbackAfter failures within FallbackWindow move to the next backend.
	// Default 3.
	FallbackAfter int `yaml:"fallback_after"`
	// FallbackWindow is the window FallbackAfter counts in. Default 60s.
	FallbackWindow time.Duration `yaml:"fallback_window"`
	// StopGrace is how long an encoder gets after SIGINT to flush and exit
	// before SIGKILL (SVT-AV1 can hang on exit). Default 3s.
	StopGrace time.Duration `yaml:"stop_grace"`
}

// Backend names.
const (
	BackendNVENC    = "nvenc"
	BackendVAAPI    = "vaapi"
	BackendQSV      = "qsv"
	BackendJetson   = "jetson"
	BackendV4L2M2M  = "v4l2m2m"
	BackendSoftware = "software"
	BackendCustom   = "custom"
)

const maxLayers = 4

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.Backend == "" {
		c.Backend = BackendSoftware
	}
	if c.FFmpeg == "" {
		c.FFmpeg = "ffmpeg"
	}
	if c.GstLaunch == "" {
		c.GstLaunch = "gst-launch-1.0"
	}
	if c.GstInspect == "" {
		c.GstInspect = "gst-inspect-1.0"
	}
	c.Input = c.Input.withDefaults()
	if len(c.Layers) == 0 {
		c.Layers = make([]LayerConfig, 2)
	} else {
		c.Layers = append([]LayerConfig(nil), c.Layers...)
	}
	for i := range c.Layers {
		c.Layers[i] = c.Layers[i].withDefaults(i, c.Input)
	}
	c.Fallback = append([]FallbackConfig(nil), c.Fallback...)
	for i, fb := range c.Fallback {
		fb.Layers = append([]LayerConfig(nil), fb.Layers...)
		for j := range fb.Layers {
			fb.Layers[j] = fb.Layers[j].withDefaults(j, c.Input)
		}
		c.Fallback[i] = fb
	}
	c.Watchdog = c.Watchdog.withDefaults()
	c.Restart = c.Restart.withDefaults()
	return c
}

func (in InputConfig) withDefaults() InputConfig {
	if in.Kind == "" {
		in.Kind = InputTestSrc
	}
	if in.Format == "" {
		switch in.Kind {
		case InputV4L2:
			in.Format = YUYV422
		case InputDeckLink:
			in.Format = UYVY422
		default:
			in.Format = NV12
		}
	}
	if in.Device == "" {
		switch in.Kind {
		case InputV4L2:
			in.Device = "/dev/video0"
		case InputDeckLink:
			in.Device = "DeckLink 8K Pro (1)"
		}
	}
	if in.Width == 0 {
		in.Width = 1280
	}
	if in.Height == 0 {
		in.Height = 720
	}
	if in.FPS == 0 {
		in.FPS = 30
	}
	return in
}

func (l LayerConfig) withDefaults(i int, in InputConfig) LayerConfig {
	if l.Name == "" {
		switch i {
		case 0:
			l.Name = "main"
		case 1:
			l.Name = "preview"
		default:
			l.Name = fmt.Sprintf("layer%d", i+1)
		}
	}
	if l.Width == 0 && l.Height == 0 {
		l.Width, l.Height = in.Width, in.Height
		if i > 0 {
			l.Width, l.Height = even(in.Width/4), even(in.Height/4)
		}
	}
	if l.Codec == "" {
		l.Codec = H264
		if l.Width > 4096 {
			l.Codec = H265
		}
	}
	if l.BitrateKbps == 0 && l.Width > 0 && l.Height > 0 && in.FPS > 0 {
		bpp := 0.05
		if l.Codec == H264 || l.Codec == VP8 {
			bpp = 0.07
		}
		l.BitrateKbps = max(50, int(float64(l.Width*l.Height*in.FPS)*bpp/1000))
	}
	if l.MaxBitrateKbps == 0 {
		l.MaxBitrateKbps = l.BitrateKbps
	}
	if l.GOP == 0 {
		l.GOP = in.FPS
	}
	if l.MaxFrameBytes == 0 {
		l.MaxFrameBytes = 2_000_000
	}
	if l.VBVKbits == 0 {
		l.VBVKbits = min(max(l.MaxBitrateKbps/2, 1), l.MaxFrameBytes*8/1000)
	}
	if l.Profile == "" {
		switch l.Codec {
		case H264:
			l.Profile = "baseline"
		case H265:
			l.Profile = "main"
		}
	}
	if l.Transport == "" {
		l.Transport = TransportPipe
	}
	if l.Container == "" {
		l.Container = defaultContainer(l.Codec)
		if l.Transport == TransportRTP {
			l.Container = ContainerRTP
		}
	}
	if l.Transport == TransportRTP && l.Port != 0 {
		if l.RTCPPort == 0 {
			l.RTCPPort = l.Port + 1
		}
		if l.FeedbackPort == 0 {
			l.FeedbackPort = l.Port + 5
		}
	}
	if l.PayloadType == 0 {
		l.PayloadType = 96 + i
	}
	return l
}

func (w WatchdogConfig) withDefaults() WatchdogConfig {
	if w.FirstFrame == 0 {
		w.FirstFrame = 10 * time.Second
	}
	if w.Stall == 0 {
		w.Stall = 2 * time.Second
	}
	if w.LowFPS == 0 {
		w.LowFPS = 0.9
	}
	if w.LowFPSFor == 0 {
		w.LowFPSFor = 10 * time.Second
	}
	return w
}

func (r RestartConfig) withDefaults() RestartConfig {
	if r.BackoffMin == 0 {
		r.BackoffMin = 500 * time.Millisecond
	}
	if r.BackoffMax == 0 {
		r.BackoffMax = 30 * time.Second
	}
	if r.HealthyAfter == 0 {
		r.HealthyAfter = 60 * time.Second
	}
	if r.FallbackAfter == 0 {
		r.FallbackAfter = 3
	}
	if r.FallbackWindow == 0 {
		r.FallbackWindow = 60 * time.Second
	}
	if r.StopGrace == 0 {
		r.StopGrace = 3 * time.Second
	}
	return r
}

func even(n int) int { return n &^ 1 }

// Validate reports the first problem with c, after defaults: unknown names,
// impossible sizes, codecs or transports a backend cannot produce (for
// example H.264 wider than 4096 on nvenc, vaapi or qsv), clashing ports.
// Every backend in Fallback is checked as well.
func (c Config) Validate() error {
	_, err := c.candidates()
	return err
}

// validateGeneric checks what does not depend on the backend; c has defaults.
func (c Config) validateGeneric() error {
	in := c.Input
	switch in.Kind {
	case InputV4L2, InputDeckLink, InputTestSrc:
	default:
		return fmt.Errorf("hwaccel: input kind %q: want v4l2, decklink or testsrc", in.Kind)
	}
	switch in.Format {
	case YUYV422, UYVY422, NV12:
	case MJPEG:
		if in.Kind != InputV4L2 {
			return fmt.Errorf("hwaccel: input format mjpeg is only for v4l2, not %s", in.Kind)
		}
	default:
		return fmt.Errorf("hwaccel: input format %q: want yuyv422, uyvy422, nv12 or mjpeg", in.Format)
	}
	if in.Kind == InputDeckLink && in.Format != UYVY422 {
		return fmt.Errorf("hwaccel: decklink input format %q: only uyvy422 (8-bit YUV) is supported; 10-bit v210 needs a GPU unpack no template has", in.Format)
	}
	if in.Width <= 0 || in.Height <= 0 || in.Width%2 != 0 || in.Height%2 != 0 {
		return fmt.Errorf("hwaccel: input size %dx%d: want positive even numbers", in.Width, in.Height)
	}
	if in.FPS <= 0 || in.FPS > 240 {
		return fmt.Errorf("hwaccel: input fps %d: want 1..240", in.FPS)
	}
	if in.DeviceNumber < 0 {
		return fmt.Errorf("hwaccel: input device_number %d: want >= 0", in.DeviceNumber)
	}
	if len(c.Layers) > maxLayers {
		return fmt.Errorf("hwaccel: %d layers: at most %d", len(c.Layers), maxLayers)
	}
	names := map[string]bool{}
	ports := map[int]string{}
	for i, l := range c.Layers {
		if err := l.validate(in); err != nil {
			return fmt.Errorf("hwaccel: layer %d (%s): %w", i, l.Name, err)
		}
		if names[l.Name] {
			return fmt.Errorf("hwaccel: layer name %q used twice", l.Name)
		}
		names[l.Name] = true
		if l.Transport != TransportRTP {
			continue
		}
		for _, p := range []struct {
			port int
			what string
		}{{l.Port, "port"}, {l.RTCPPort, "rtcp_port"}, {l.FeedbackPort, "feedback_port"}} {
			if other, dup := ports[p.port]; dup {
				return fmt.Errorf("hwaccel: layer %s %s %d is already %s", l.Name, p.what, p.port, other)
			}
			ports[p.port] = fmt.Sprintf("layer %s %s", l.Name, p.what)
		}
	}
	if c.Restart.BackoffMin < 0 || c.Restart.BackoffMax < c.Restart.BackoffMin {
		return fmt.Errorf("hwaccel: restart backoff %v..%v: want 0 < min <= max", c.Restart.BackoffMin, c.Restart.BackoffMax)
	}
	if c.Restart.FallbackAfter < 0 {
		return errors.New("hwaccel: restart fallback_after must not be negative")
	}
	if c.Watchdog.LowFPS < 0 || c.Watchdog.LowFPS > 1 {
		return fmt.Errorf("hwaccel: watchdog low_fps %v: want a fraction in 0..1", c.Watchdog.LowFPS)
	}
	return nil
}

func (l LayerConfig) validate(in InputConfig) error {
	if !l.Codec.valid() {
		return fmt.Errorf("codec %q: want h264, h265, av1, vp8 or vp9", l.Codec)
	}
	if l.Width <= 0 || l.Height <= 0 || l.Width%2 != 0 || l.Height%2 != 0 {
		return fmt.Errorf("size %dx%d: want positive even numbers", l.Width, l.Height)
	}
	if l.Width > in.Width || l.Height > in.Height {
		return fmt.Errorf("size %dx%d is larger than the input %dx%d", l.Width, l.Height, in.Width, in.Height)
	}
	if l.BitrateKbps <= 0 || l.MaxBitrateKbps < l.BitrateKbps {
		return fmt.Errorf("bitrate %d kbps, max %d kbps: want 0 < bitrate <= max", l.BitrateKbps, l.MaxBitrateKbps)
	}
	if l.GOP <= 0 {
		return fmt.Errorf("gop %d: want a positive number of frames", l.GOP)
	}
	if l.MaxFrameBytes <= 0 || l.VBVKbits <= 0 {
		return fmt.Errorf("max_frame_bytes %d, vbv_kbits %d: want positive", l.MaxFrameBytes, l.VBVKbits)
	}
	if l.VBVKbits*1000/8 > l.MaxFrameBytes {
		return fmt.Errorf("vbv_kbits %d allows %d-byte frames, more than max_frame_bytes %d", l.VBVKbits, l.VBVKbits*1000/8, l.MaxFrameBytes)
	}
	if l.PayloadType < 96 || l.PayloadType > 127 {
		return fmt.Errorf("payload_type %d: want a dynamic type 96..127", l.PayloadType)
	}
	switch l.Transport {
	case TransportPipe:
		if !containerFits(l.Container, l.Codec) {
			return fmt.Errorf("container %q cannot carry %s on a pipe (annexb: h264/h265, ivf: vp8/vp9/av1, obu: av1)", l.Container, l.Codec)
		}
	case TransportRTP:
		if l.Container != ContainerRTP {
			return fmt.Errorf("container %q with the rtp transport: leave it empty or rtp", l.Container)
		}
		for _, p := range []int{l.Port, l.RTCPPort, l.FeedbackPort} {
			if p <= 0 || p > 65535 {
				return fmt.Errorf("rtp ports %d/%d/%d: port is required and all must be 1..65535", l.Port, l.RTCPPort, l.FeedbackPort)
			}
		}
	default:
		return fmt.Errorf("transport %q: want pipe or rtp", l.Transport)
	}
	return nil
}
