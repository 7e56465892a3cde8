package hwaccel

import (
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
