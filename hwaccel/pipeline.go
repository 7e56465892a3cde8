package hwaccel

import (
	"fmt"
	"slices"
)

// Pipeline is one encoder process, rendered and ready to run.
type Pipeline struct {
	// Backend is the backend name ("nvenc", "software", ...).
	Backend string `json:"backend"`
	// Tool is the program that runs it.
	Tool Tool `json:"tool"`
	// Argv is the command; Argv[0] is the executable. No shell is involved.
	Argv []string `json:"argv"`
	// Outputs describe the layers in config order.
	Outputs []Output `json:"outputs"`
}

// Output tells a reader how to take one layer from the process.
type Output struct {
	// Layer is the layer name ("main", "preview").
	Layer string `json:"layer"`
	// Codec of the encoded video.
	Codec Codec `json:"codec"`
	// Container is annexb, ivf or obu on a pipe, rtp on UDP.
	Container Container `json:"container"`
	// Transport is pipe or rtp.
	Transport Transport `json:"transport"`
	// Width, Height and FPS of the encoded video.
	Width  int `json:"width"`
	Height int `json:"height"`
	FPS    int `json:"fps"`
	// GOP is the IDR interval in frames.
	GOP int `json:"gop"`
	// FD is the child's file descriptor of a pipe output (3 + layer index);
	// 0 for RTP.
	FD int `json:"fd,omitempty"`
	// Port, RTCPPort and FeedbackPort are the UDP ports on 127.0.0.1 of an
	// RTP output (see LayerConfig).
	Port         int `json:"port,omitempty"`
	RTCPPort     int `json:"rtcp_port,omitempty"`
	FeedbackPort int `json:"feedback_port,omitempty"`
	// PayloadType is the RTP payload type (clock rate 90000).
	PayloadType int `json:"payload_type,omitempty"`
	// KeyframeOnPLI is true when an RTCP PLI sent to FeedbackPort makes the
	// encoder emit an IDR (GStreamer rtpbin); otherwise only the GOP does.
	KeyframeOnPLI bool `json:"keyframe_on_pli"`
}

// Build renders the pipeline of cfg's primary backend (Backend and Tool).
func Build(cfg Config) (*Pipeline, error) {
	ps, err := cfg.candidates()
	if err != nil {
		return nil, err
	}
	return ps[0], nil
}

// BuildBackend renders the pipeline cfg would run on backend with tool
// ("" for the backend's preferred tool), ignoring cfg.Backend and Fallback.
func BuildBackend(cfg Config, backend string, tool Tool) (*Pipeline, error) {
	if err := checkControlChars(cfg); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := cfg.validateGeneric(); err != nil {
		return nil, err
	}
	return build(cfg, backend, tool, false)
}

// candidates renders Backend then every Fallback, in order.
func (c Config) candidates() ([]*Pipeline, error) {
	if err := checkControlChars(c); err != nil {
		return nil, err
	}
	c = c.withDefaults()
	if err := c.validateGeneric(); err != nil {
		return nil, err
	}
	first, err := build(c, c.Backend, c.Tool, false)
	if err != nil {
		return nil, err
	}
	out := []*Pipeline{first}
	for i, fb := range c.Fallback {
		fc := c
		if len(fb.Layers) > 0 {
			fc.Layers = fb.Layers
			if err := fc.validateGeneric(); err != nil {
				return nil, fmt.Errorf("hwaccel: fallback %d (%s): %w", i+1, fb.Backend, err)
			}
		}
		tool := fb.Tool
		if tool == "" {
			tool = fallbackTool(fb.Backend, c.Tool)
		}
		p, err := build(fc, fb.Backend, tool, false)
		if err != nil {
			return nil, fmt.Errorf("hwaccel: fallback %d: %w", i+1, err)
		}
		for _, q := range out {
			if q.Backend == p.Backend && q.Tool == p.Tool {
				return nil, fmt.Errorf("hwaccel: fallback %d: %s (%s) is already a candidate", i+1, p.Backend, p.Tool)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// fallbackTool keeps the configured tool when the fallback has it.
func fallbackTool(name string, tool Tool) Tool {
	cat, err := loadCatalog()
	if err != nil || tool == "" {
		return ""
	}
	if _, err := cat.backend(name, tool); err != nil {
		return ""
	}
	return tool
}

// build renders one backend variant for c (which has defaults and passed
// validateGeneric). probe swaps the input for a 5-frame test pattern of the
// same size and format and discards the outputs.
func build(c Config, name string, tool Tool, probe bool) (*Pipeline, error) {
	if name == BackendCustom {
		if tool != "" && tool != ToolCustom {
			return nil, fmt.Errorf("hwaccel: backend custom has no %s variant", tool)
		}
		return buildCustom(c)
	}
	cat, err := loadCatalog()
	if err != nil {
		return nil, err
	}
	spec, err := cat.backend(name, tool)
	if err != nil {
		return nil, err
	}
	ts := cat.tools[spec.Tool]
	if err := spec.check(ts, c); err != nil {
		return nil, err
	}
	d, err := newPipelineData(c, spec, probe)
	if err != nil {
		return nil, fmt.Errorf("hwaccel: %s (%s): %w", spec.Name, spec.Tool, err)
	}
	var argv []string
	switch spec.Tool {
	case ToolFFmpeg:
		argv, err = renderFFmpeg(ts, spec, d)
	case ToolGStreamer:
		argv, err = renderGStreamer(ts, spec, d)
	default:
		err = fmt.Errorf("unknown tool %q", spec.Tool)
	}
	if err != nil {
		return nil, fmt.Errorf("hwaccel: %s (%s): %w", spec.Name, spec.Tool, err)
	}
	return &Pipeline{Backend: spec.Name, Tool: spec.Tool, Argv: argv, Outputs: outputs(c, spec.Tool)}, nil
}

// check reports why spec cannot run c, naming the limit that is hit.
func (s *backendSpec) check(ts *toolSpec, c Config) error {
	where := fmt.Sprintf("%s (%s)", s.Name, s.Tool)
	if !slices.Contains(s.Inputs, c.Input.Kind) {
		return fmt.Errorf("hwaccel: %s: input %s is not supported (have %v)", where, c.Input.Kind, s.Inputs)
	}
	for _, l := range c.Layers {
		cs := s.Codecs[l.Codec]
		if cs == nil {
			return fmt.Errorf("hwaccel: %s: layer %s: codec %s is not supported", where, l.Name, l.Codec)
		}
		if l.Width > cs.MaxWidth || l.Height > cs.MaxHeight {
			return fmt.Errorf("hwaccel: %s: layer %s: %s at %dx%d exceeds the encoder limit of %dx%d",
				where, l.Name, l.Codec, l.Width, l.Height, cs.MaxWidth, cs.MaxHeight)
		}
		switch l.Transport {
		case TransportRTP:
			if _, ok := ts.Pay[l.Codec]; !ok {
				return fmt.Errorf("hwaccel: %s: layer %s: %s cannot packetize %s as RTP; use the pipe transport", where, l.Name, s.Tool, l.Codec)
			}
		case TransportPipe:
			if _, ok := ts.Outputs["pipe_"+string(l.Container)]; !ok {
				return fmt.Errorf("hwaccel: %s: layer %s: %s cannot write %s to a pipe", where, l.Name, s.Tool, l.Container)
			}
		}
	}
	return nil
}

func outputs(c Config, tool Tool) []Output {
	out := make([]Output, len(c.Layers))
	for i, l := range c.Layers {
		o := Output{
			Layer: l.Name, Codec: l.Codec, Container: l.Container, Transport: l.Transport,
			Width: l.Width, Height: l.Height, FPS: c.Input.FPS, GOP: l.GOP,
		}
		if l.Transport == TransportPipe {
			o.FD = 3 + i
		} else {
			o.Port, o.RTCPPort, o.FeedbackPort, o.PayloadType = l.Port, l.RTCPPort, l.FeedbackPort, l.PayloadType
			o.KeyframeOnPLI = tool == ToolGStreamer
		}
		out[i] = o
	}
	return out
}
