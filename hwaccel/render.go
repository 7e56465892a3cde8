package hwaccel

import (
	"errors"
	"fmt"
	"strings"
	"text/template"
)

// pipelineData is what the templates see at the top level.
type pipelineData struct {
	Exe      string // argv[0]
	Input    inputData
	Layers   []layerData
	Device   string // Config.Device or the backend's default
	LowPower bool
	Probe    bool // the probe's test encode: finite input, null outputs
	RTP      bool // some layer leaves as RTP (GStreamer needs rtpbin)
}

type inputData struct {
	Kind         InputKind
	Device       string
	DeviceNumber int
	Format       PixelFormat
	GstFormat    string // YUY2, UYVY, NV12; "" for MJPEG
	Width        int
	Height       int
	FPS          int
	Mode         string // DeckLink mode in the tool's naming
	Probe        bool
}

// layerData is what per-layer templates see.
type layerData struct {
	Index          int
	FD             int
	Name           string
	Codec          Codec
	Encoder        string // the backend's encoder for Codec
	Width          int
	Height         int
	FPS            int
	Scaled         bool // differs from the input size
	BitrateKbps    int
	MaxBitrateKbps int
	CBR            bool // MaxBitrateKbps == BitrateKbps
	VBVKbits       int
	VBVMillis      int // VBVKbits in milliseconds of BitrateKbps (x264enc)
	GOP            int
	Profile        string
	Transport      Transport
	Container      Container
	Muxer          string // ffmpeg -f for a pipe: h264, hevc, ivf, obu
	Port           int
	RTCPPort       int
	FeedbackPort   int
	PayloadType    int
	Input          inputData
	Device         string
	LowPower       bool
	Probe          bool
}

func newPipelineData(c Config, spec *backendSpec, probe bool) (*pipelineData, error) {
	in := c.Input
	if probe {
		// The test encode must not fight the running pipeline for the
		// capture device; a pattern of the same size and format exercises
		// the same upload and conversion.
		in.Kind = InputTestSrc
		if in.Format == MJPEG {
			in.Format = YUYV422
		}
	}
	id := inputData{
		Kind: in.Kind, Device: in.Device, DeviceNumber: in.DeviceNumber, Format: in.Format,
		GstFormat: in.Format.gstFormat(), Width: in.Width, Height: in.Height, FPS: in.FPS, Probe: probe,
	}
	if in.Kind == InputDeckLink {
		id.Mode = in.Mode
		if id.Mode == "" {
			m, err := decklinkMode(spec.Tool, in.Width, in.Height, in.FPS)
			if err != nil {
				return nil, err
			}
			id.Mode = m
		}
	}
	d := &pipelineData{Input: id, Device: c.Device, LowPower: c.LowPower, Probe: probe}
	if d.Device == "" {
		d.Device = spec.DefaultDevice
	}
	switch spec.Tool {
	case ToolGStreamer:
		d.Exe = c.GstLaunch
	default:
		d.Exe = c.FFmpeg
	}
	for i, l := range c.Layers {
		ld := layerData{
			Index: i, FD: 3 + i, Name: l.Name, Codec: l.Codec,
			Width: l.Width, Height: l.Height, FPS: in.FPS, Scaled: l.Width != in.Width || l.Height != in.Height,
			BitrateKbps: l.BitrateKbps, MaxBitrateKbps: l.MaxBitrateKbps, CBR: l.MaxBitrateKbps == l.BitrateKbps,
			VBVKbits: l.VBVKbits, VBVMillis: max(1, l.VBVKbits*1000/l.BitrateKbps), GOP: l.GOP, Profile: l.Profile,
			Transport: l.Transport, Container: l.Container, Muxer: muxer(l.Codec, l.Container),
			Port: l.Port, RTCPPort: l.RTCPPort, FeedbackPort: l.FeedbackPort, PayloadType: l.PayloadType,
			Input: id, Device: d.Device, LowPower: c.LowPower, Probe: probe,
		}
		if cs := spec.Codecs[l.Codec]; cs != nil {
			ld.Encoder = cs.Encoder
		}
		if probe {
			ld.Transport = transportDiscard
		}
		if ld.Transport == TransportRTP {
			d.RTP = true
		}
		d.Layers = append(d.Layers, ld)
	}
	return d, nil
}

func muxer(c Codec, k Container) string {
	switch k {
	case ContainerAnnexB:
		if c == H265 {
			return "hevc"
		}
		return "h264"
	case ContainerIVF, ContainerOBU:
		return string(k)
	}
	return ""
}

// decklinkMode names a DeckLink display mode the way each tool does: FFmpeg
// takes the BMDDisplayMode fourcc, GStreamer its own nicks.
func decklinkMode(tool Tool, w, h, fps int) (string, error) {
	type mode struct{ ffmpeg, gst string }
	modes := map[[3]int]mode{
		{7680, 4320, 24}: {"8k24", "8kp24"}, {7680, 4320, 25}: {"8k25", "8kp25"},
		{7680, 4320, 30}: {"8k30", "8kp30"}, {7680, 4320, 50}: {"8k50", "8kp50"},
		{7680, 4320, 60}: {"8k60", "8kp60"},
		{3840, 2160, 24}: {"4k24", "2160p24"}, {3840, 2160, 25}: {"4k25", "2160p25"},
		{3840, 2160, 30}: {"4k30", "2160p30"}, {3840, 2160, 50}: {"4k50", "2160p50"},
		{3840, 2160, 60}: {"4k60", "2160p60"},
		{1920, 1080, 25}: {"Hp25", "1080p25"}, {1920, 1080, 30}: {"Hp30", "1080p30"},
		{1920, 1080, 50}: {"Hp50", "1080p50"}, {1920, 1080, 60}: {"Hp60", "1080p60"},
		{1280, 720, 50}: {"hp50", "720p50"}, {1280, 720, 60}: {"hp60", "720p60"},
	}
	m, ok := modes[[3]int{w, h, fps}]
	if !ok {
		return "", fmt.Errorf("no DeckLink mode known for %dx%d@%d; set input.mode", w, h, fps)
	}
	if tool == ToolGStreamer {
		return m.gst, nil
	}
	return m.ffmpeg, nil
}

func renderFFmpeg(ts *toolSpec, spec *backendSpec, d *pipelineData) ([]string, error) {
	var argv []string
	add := func(t *template.Template, data any) error {
		lines, err := renderLines(t, data)
		argv = append(argv, lines...)
		return err
	}
	if err := add(ts.templates["head"], d); err != nil {
		return nil, err
	}
	if err := add(spec.templates["init"], d); err != nil {
		return nil, err
	}
	if err := add(ts.templates["input/"+string(d.Input.Kind)], d.Input); err != nil {
		return nil, err
	}
	upload, err := renderString(spec.templates["upload"], d)
	if err != nil {
		return nil, err
	}
	var g strings.Builder
	g.WriteString("[0:v]")
	if upload != "" {
		g.WriteString(upload + ",")
	}
	fmt.Fprintf(&g, "split=%d", len(d.Layers))
	for _, l := range d.Layers {
		fmt.Fprintf(&g, "[s%d]", l.Index)
	}
	for _, l := range d.Layers {
		scale, err := renderString(spec.templates["scale"], l)
		if err != nil {
			return nil, err
		}
		if scale == "" {
			scale = "null"
		}
		fmt.Fprintf(&g, ";[s%d]%s[o%d]", l.Index, scale, l.Index)
	}
	argv = append(argv, "-filter_complex", g.String())
	for _, l := range d.Layers {
		argv = append(argv, "-map", fmt.Sprintf("[o%d]", l.Index))
		if err := add(spec.templates["encode/"+string(l.Codec)], l); err != nil {
			return nil, err
		}
		if l.Transport == TransportRTP {
			if err := add(ts.templates["pay/"+string(l.Codec)], l); err != nil {
				return nil, err
			}
		}
		if err := add(ts.templates["output/"+outputKey(l)], l); err != nil {
			return nil, err
		}
	}
	return argv, nil
}

func outputKey(l layerData) string {
	if l.Transport == TransportPipe {
		return "pipe_" + string(l.Container)
	}
	return string(l.Transport)
}

func renderGStreamer(ts *toolSpec, spec *backendSpec, d *pipelineData) ([]string, error) {
	argv, err := renderLines(ts.templates["head"], d)
	if err != nil {
		return nil, err
	}
	// A chain is elements joined by "!"; a template that renders nothing
	// drops out of it.
	chain := func(parts ...[]string) {
		first := true
		for _, p := range parts {
			if len(p) == 0 {
				continue
			}
			if !first {
				argv = append(argv, "!")
			}
			argv = append(argv, p...)
			first = false
		}
	}
	var errs []error
	render := func(t *template.Template, data any) []string {
		lines, err := renderLines(t, data)
		errs = append(errs, err)
		return lines
	}
	var decode []string
	if d.Input.Format == MJPEG {
		decode = render(spec.templates["decode_mjpeg"], d)
	}
	chain(render(ts.templates["input/"+string(d.Input.Kind)], d.Input), decode,
		render(spec.templates["upload"], d), []string{"tee", "name=t"})
	for _, l := range d.Layers {
		out := render(ts.templates["output/"+outputKey(l)], l)
		if l.Transport == TransportRTP {
			out = append(render(ts.templates["pay/"+string(l.Codec)], l), append([]string{"!"}, out...)...)
		}
		chain(render(ts.templates["branch"], l), render(spec.templates["scale"], l),
			render(spec.templates["encode/"+string(l.Codec)], l), out)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return argv, nil
}

func buildCustom(c Config) (*Pipeline, error) {
	if len(c.Custom.Command) == 0 {
		return nil, errors.New("hwaccel: backend custom: custom.command is empty")
	}
	spec := &backendSpec{Name: BackendCustom, Tool: ToolCustom}
	d, err := newPipelineData(c, spec, false)
	if err != nil {
		return nil, fmt.Errorf("hwaccel: custom: %w", err)
	}
	var argv []string
	for i, src := range c.Custom.Command {
		t, err := template.New(fmt.Sprintf("custom.command[%d]", i)).Funcs(templateFuncs).Option("missingkey=error").Parse(src)
		if err != nil {
			return nil, fmt.Errorf("hwaccel: custom: %w", err)
		}
		var b strings.Builder
		if err := t.Execute(&b, d); err != nil {
			return nil, fmt.Errorf("hwaccel: custom: %w", err)
		}
		// Unlike the backend files, each element stays one argument even if
		// it is empty or has spaces: the user wrote an argv.
		argv = append(argv, b.String())
	}
	return &Pipeline{Backend: BackendCustom, Tool: ToolCustom, Argv: argv, Outputs: outputs(c, ToolCustom)}, nil
}
