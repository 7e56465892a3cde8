package hwaccel

// Codec is a video codec a layer is encoded with.
type Codec string

// Codecs the templates know.
const (
	H264 Codec = "h264"
	H265 Codec = "h265"
	AV1  Codec = "av1"
	VP8  Codec = "vp8"
	VP9  Codec = "vp9"
)

var allCodecs = []Codec{H264, H265, AV1, VP8, VP9}

func (c Codec) valid() bool {
	for _, k := range allCodecs {
		if c == k {
			return true
		}
	}
	return false
}

// Transport is how a layer leaves the encoder process.
type Transport string

// Transports.
const (
	// TransportPipe writes the layer to an inherited pipe, fd 3 + layer index.
	TransportPipe Transport = "pipe"
	// TransportRTP sends the layer as RTP to a UDP port on 127.0.0.1.
	TransportRTP Transport = "rtp"
	// transportDiscard discards the output; only the probe's test encode uses it.
	transportDiscard Transport = "discard"
)

// Container is the byte format of a layer's output.
type Container string

// Containers.
const (
	// ContainerAnnexB is an H.264/H.265 byte stream: start codes, an AUD
	// opening every access unit, parameter sets before every IDR.
	ContainerAnnexB Container = "annexb"
	// ContainerIVF is the IVF file format (32-byte header, 12-byte frame headers).
	ContainerIVF Container = "ivf"
	// ContainerOBU is the AV1 low-overhead bitstream: a temporal delimiter opens
	// every temporal unit, a sequence header precedes every keyframe.
	ContainerOBU Container = "obu"
	// ContainerRTP is RTP packets of at most 1200 bytes over UDP.
	ContainerRTP Container = "rtp"
)

// defaultContainer is what a pipe carries for a codec unless configured.
func defaultContainer(c Codec) Container {
	switch c {
	case H264, H265:
		return ContainerAnnexB
	case AV1:
		return ContainerOBU
	default:
		return ContainerIVF
	}
}

// containerFits reports whether a pipe of container k can carry codec c.
func containerFits(k Container, c Codec) bool {
	switch k {
	case ContainerAnnexB:
		return c == H264 || c == H265
	case ContainerIVF:
		return c == VP8 || c == VP9 || c == AV1
	case ContainerOBU:
		return c == AV1
	}
	return false
}

// Tool is the program that runs a pipeline.
type Tool string

// Tools.
const (
	ToolFFmpeg    Tool = "ffmpeg"
	ToolGStreamer Tool = "gstreamer"
	// ToolCustom runs the command given in Config.Custom.
	ToolCustom Tool = "custom"
)

// InputKind is the capture source.
type InputKind string

// Input kinds.
const (
	InputV4L2     InputKind = "v4l2"
	InputDeckLink InputKind = "decklink"
	// InputTestSrc is a synthetic pattern (lavfi testsrc2 / videotestsrc).
	InputTestSrc InputKind = "testsrc"
)

// PixelFormat is the format the capture delivers, in FFmpeg's names.
type PixelFormat string

// Pixel formats.
const (
	YUYV422 PixelFormat = "yuyv422"
	UYVY422 PixelFormat = "uyvy422"
	NV12    PixelFormat = "nv12"
	MJPEG   PixelFormat = "mjpeg"
)

// gstFormat is the GStreamer name of a raw format ("" for MJPEG).
func (f PixelFormat) gstFormat() string {
	switch f {
	case YUYV422:
		return "YUY2"
	case UYVY422:
		return "UYVY"
	case NV12:
		return "NV12"
	}
	return ""
}
