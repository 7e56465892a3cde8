package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"whipgate/gateway"
)

// Container is how frames are delimited in a piped elementary stream.
type Container string

const (
	// AnnexB is an H.264 or H.265 byte stream with start codes (ffmpeg
	// -f h264 / -f hevc, GStreamer stream-format=byte-stream).
	AnnexB Container = "annexb"
	// IVF is the IVF container around VP8, VP9 or AV1 frames (ffmpeg -f ivf).
	IVF Container = "ivf"
	// OBU is an AV1 low-overhead OBU stream (ffmpeg -f obu), temporal units
	// split on temporal delimiters.
	OBU Container = "obu"
)

// PipeConfig describes one layer's elementary stream on a pipe.
type PipeConfig struct {
	// Layer names the layer in logs and OnFrame calls. Default "main".
	Layer string `yaml:"layer"`
	// Codec is the stream's codec: h264, h265, av1, vp8 or vp9. Required.
	Codec gateway.Codec `yaml:"codec"`
	// Container is how frames are delimited: annexb (H.264, H.265), ivf
	// (VP8, VP9, AV1) or obu (AV1). Default annexb for H.264 and H.265, obu
	// for AV1 and ivf for VP8 and VP9.
	Container Container `yaml:"container"`
	// FPS, when set, times frames by their count at this rate, which gives
	// a constant-frame-rate encoder smooth timestamps. Default 0: frames
	// are timed by their arrival. IVF frames are always timed by their pts.
	FPS float64 `yaml:"fps"`
	// MaxFrameBytes bounds one access unit; a larger one fails the read,
	// since it means the stream is not what the config says. Default
	// 32 MiB, many times an 8K60 keyframe at 100 Mbps.
	MaxFrameBytes int `yaml:"max_frame_bytes"`
	// OnFrame, if set, is called with Layer after each frame is written,
	// on the reading goroutine; it must be quick. A watchdog uses it.
	OnFrame func(layer string) `yaml:"-"`
}

const defaultMaxFrameBytes = 32 << 20

// Validate checks the config with its defaults applied.
func (c PipeConfig) Validate() error {
	_, err := c.withDefaults()
	return err
}

// layerCodec applies the layer name's default and checks the layer name
// and the codec, which every source's layer config has; kind names the
// source in the errors ("pipe", "rtp").
func layerCodec(kind, layer string, codec gateway.Codec) (string, gateway.Codec, error) {
	if layer == "" {
		layer = "main"
	}
	if err := gateway.ValidLayerName(layer); err != nil {
		return layer, codec, fmt.Errorf("ingest: %s: %w", kind, err)
	}
	if codec == "" {
		return layer, codec, fmt.Errorf("ingest: %s %s: codec is required", kind, layer)
	}
	parsed, err := gateway.ParseCodec(string(codec))
	if err != nil {
		return layer, codec, fmt.Errorf("ingest: %s %s: %w", kind, layer, err)
	}
	return layer, parsed, nil
}

func (c PipeConfig) withDefaults() (PipeConfig, error) {
	var err error
	if c.Layer, c.Codec, err = layerCodec("pipe", c.Layer, c.Codec); err != nil {
		return c, err
	}
	codec := c.Codec
	if c.Container == "" {
		switch codec {
		case gateway.H264, gateway.H265:
			c.Container = AnnexB
		case gateway.AV1:
			c.Container = OBU
		default:
			c.Container = IVF
		}
	}
	ok := false
	switch c.Container {
	case AnnexB:
		ok = codec == gateway.H264 || codec == gateway.H265
	case IVF:
		ok = codec == gateway.VP8 || codec == gateway.VP9 || codec == gateway.AV1
	case OBU:
		ok = codec == gateway.AV1
	}
	if !ok {
		return c, fmt.Errorf("ingest: pipe %s: %s cannot carry %s", c.Layer, c.Container, codec.Name())
	}
	if c.FPS < 0 {
		return c, fmt.Errorf("ingest: pipe %s: fps %g is negative", c.Layer, c.FPS)
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = defaultMaxFrameBytes
	}
	if c.MaxFrameBytes < 1<<10 {
		return c, fmt.Errorf("ingest: pipe %s: max_frame_bytes %d is below 1 KiB", c.Layer, c.MaxFrameBytes)
	}
	return c, nil
}

// PipeReader turns one layer's elementary stream into RTP. Make one per
// layer and call Ingest with each new reader the encoder process hands over
// (a restarted encoder gets a new pipe): sequence numbers and timestamps run
// on across calls, and cached parameter sets fill in an IDR that lacks them.
//
// A pipe has no way back to the encoder, so the reader does nothing with
// keyframe requests: whoever owns the publication passes them on to the
// encoder's own control, if it has one, and otherwise viewers rely on the
// hub's GOP cache and the encoder's fixed GOP.
type PipeReader struct {
	cfg PipeConfig
	log *slog.Logger

	mu    sync.Mutex // held by Ingest: one stream at a time
	pk    packetizer
	clock frameClock
	ps    paramSets
	buf   []byte // read buffer, reused across frames and calls
	nals  []int  // where the NAL units of the access unit being read start in it

	frames, bytes atomic.Uint64
}

// NewPipeReader validates cfg and applies its defaults.
func NewPipeReader(cfg PipeConfig, log *slog.Logger) (*PipeReader, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &PipeReader{
		cfg:   cfg,
		log:   log.With("component", "ingest", "layer", cfg.Layer, "codec", cfg.Codec.Name(), "container", string(cfg.Container)),
		pk:    newPacketizer(cfg.Codec),
		clock: frameClock{fps: cfg.FPS},
	}
	return p, nil
}

// Config returns the config with defaults applied.
func (p *PipeReader) Config() PipeConfig { return p.cfg }

// Frames returns how many frames the reader has written, over all calls.
func (p *PipeReader) Frames() uint64 { return p.frames.Load() }

// Bytes returns how many stream bytes the reader has consumed.
func (p *PipeReader) Bytes() uint64 { return p.bytes.Load() }

// Ingest reads r until EOF, writing each frame as RTP to track of w. It
// returns nil at a clean end of stream, ctx.Err() once ctx is done, or what
// went wrong. A read blocked in r ends on cancellation only if r has a
// SetReadDeadline method (an *os.File pipe such as exec.Cmd.StdoutPipe
// returns does); otherwise closing the writing end ends it. Calls are
// serialized.
func (p *PipeReader) Ingest(ctx context.Context, r io.Reader, w TrackWriter, track int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	r = rawPipe(r)
	if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok {
		stop := context.AfterFunc(ctx, func() { _ = d.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	p.clock.begin(time.Now())

	in := countingReader{r: r, n: &p.bytes}
	var err error
	switch p.cfg.Container {
	case AnnexB:
		err = p.readAnnexB(in, w, track)
	case IVF:
		err = p.readIVF(in, w, track)
	case OBU:
		err = p.readOBU(in, w, track)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("ingest: pipe %s: %w", p.cfg.Layer, err)
	}
	return nil
}

// frame writes one frame and tells the watchdog. It writes data's bytes
// back as they were, but may change them meanwhile (see packetizer).
func (p *PipeReader) frame(w TrackWriter, track int, data []byte, ts uint32) {
	p.pk.writeFrame(w, track, data, ts)
	p.frameWritten()
}

func (p *PipeReader) frameWritten() {
	p.frames.Add(1)
	if p.cfg.OnFrame != nil {
		p.cfg.OnFrame(p.cfg.Layer)
	}
}

type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(uint64(n))
	return n, err
}
