package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"whipgate/gateway"
	"whipgate/ingest/h264synth"
)

// TestSourceConfig describes the built-in test stream.
type TestSourceConfig struct {
	// Stream is the name the test stream is published under. Default "test".
	Stream string `yaml:"stream"`
	// Main is the full-size layer. Default 1280x720 at 30 fps.
	Main TestLayerConfig `yaml:"main"`
	// Preview is the small layer. Default 320x180 at 30 fps.
	Preview TestLayerConfig `yaml:"preview"`
	// OnFrame, if set, is called with the layer name after each frame is
	// written; it must be quick. A watchdog uses it.
	OnFrame func(layer string) `yaml:"-"`
}

// TestLayerConfig describes one layer of the test stream.
type TestLayerConfig struct {
	// Width in pixels, even, 64 to 8192. Default 1280 (main) or 320 (preview).
	Width int `yaml:"width"`
	// Height in pixels, even, 64 to 8192. Default 720 (main) or 180 (preview).
	Height int `yaml:"height"`
	// FPS is the frame rate, 1 to 240. Default 30.
	FPS int `yaml:"fps"`
	// GOP is the number of frames from one IDR to the next. Default 2 s
	// worth (2 × FPS). Keyframe requests from viewers add IDRs in between.
	GOP int `yaml:"gop"`
}

func (c TestSourceConfig) withDefaults() TestSourceConfig {
	if c.Stream == "" {
		c.Stream = "test"
	}
	c.Main = c.Main.withDefaults(1280, 720)
	c.Preview = c.Preview.withDefaults(320, 180)
	return c
}

func (c TestLayerConfig) withDefaults(w, h int) TestLayerConfig {
	if c.Width == 0 {
		c.Width = w
	}
	if c.Height == 0 {
		c.Height = h
	}
	if c.FPS == 0 {
		c.FPS = 30
	}
	return c
}

// Validate checks the config with its defaults applied.
func (c TestSourceConfig) Validate() error {
	c = c.withDefaults()
	if err := gateway.ValidStreamName(c.Stream); err != nil {
		return fmt.Errorf("ingest: test source: %w", err)
	}
	_, err := newTestLayers(c)
	return err
}

// TestSource publishes a moving H.264 test pattern in two layers, "main"
// and "preview", paced in real time, as one publication. A viewer's
// keyframe request makes the layer's next frame an IDR.
type TestSource struct {
	cfg    TestSourceConfig
	hub    *gateway.Hub
	log    *slog.Logger
	layers []*testLayer
	mu     sync.Mutex // held by Run
}

type testLayer struct {
	name  string
	cfg   TestLayerConfig
	enc   *h264synth.Encoder
	pk    packetizer
	clock frameClock
	au    []byte
}

func newTestLayers(cfg TestSourceConfig) ([]*testLayer, error) {
	var layers []*testLayer
	for _, l := range []struct {
		name string
		cfg  TestLayerConfig
	}{{"main", cfg.Main}, {"preview", cfg.Preview}} {
		enc, err := h264synth.New(h264synth.Config{
			Width: l.cfg.Width, Height: l.cfg.Height, FPS: l.cfg.FPS, GOP: l.cfg.GOP, Label: l.name,
		})
		if err != nil {
			return nil, fmt.Errorf("ingest: test source %s: %w", l.name, err)
		}
		t := &testLayer{name: l.name, cfg: l.cfg, enc: enc, pk: newPacketizer(gateway.H264), clock: frameClock{fps: float64(l.cfg.FPS)}}
		layers = append(layers, t)
	}
	return layers, nil
}

// NewTestSource validates cfg, applies its defaults and sets up the
// encoders. It publishes nothing until Run.
func NewTestSource(cfg TestSourceConfig, hub *gateway.Hub, log *slog.Logger) (*TestSource, error) {
	if hub == nil {
		return nil, errors.New("ingest: test source: nil hub")
	}
	cfg = cfg.withDefaults()
	if err := gateway.ValidStreamName(cfg.Stream); err != nil {
		return nil, fmt.Errorf("ingest: test source: %w", err)
	}
	layers, err := newTestLayers(cfg)
	if err != nil {
		return nil, err
	}
	return &TestSource{cfg: cfg, hub: hub, log: log.With("component", "ingest", "source", "test", "stream", cfg.Stream), layers: layers}, nil
}

// Tracks describes the layers as they are published.
func (s *TestSource) Tracks() []gateway.TrackInfo {
	out := make([]gateway.TrackInfo, len(s.layers))
	for i, l := range s.layers {
		out[i] = gateway.TrackInfo{
			Name:   l.name,
			Codec:  gateway.H264,
			Fmtp:   "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + l.enc.ProfileLevelID(),
			Width:  l.enc.Width(),
			Height: l.enc.Height(),
		}
	}
	return out
}

// Run publishes the stream, taking it over from any live publisher, and
// writes frames until ctx is done (then it returns ctx.Err()) or the
// publication ends, such as when another publisher takes the stream. Run
// may be called again after it returns; calls are serialized.
func (s *TestSource) Run(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	pub, err := s.hub.Publish(s.cfg.Stream, s.Tracks(), gateway.PublishOptions{Kind: "test", Remote: "h264synth", Takeover: true})
	if err != nil {
		return fmt.Errorf("ingest: test source: %w", err)
	}
	defer pub.Close()
	s.log.Info("test source publishing", "main", fmt.Sprintf("%dx%d@%d", s.cfg.Main.Width, s.cfg.Main.Height, s.cfg.Main.FPS),
		"preview", fmt.Sprintf("%dx%d@%d", s.cfg.Preview.Width, s.cfg.Preview.Height, s.cfg.Preview.FPS))

	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i, l := range s.layers {
		wg.Go(func() { l.run(lctx, pub, i, s.cfg.OnFrame) })
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-pub.Done():
			return fmt.Errorf("ingest: test source %q: %w", s.cfg.Stream, pub.Err())
		case i := <-pub.KeyframeRequests():
			if i >= 0 && i < len(s.layers) {
				s.layers[i].enc.RequestKeyframe()
			}
		}
	}
}

// run writes one access unit per frame interval, on a schedule fixed to the
// start so that timer jitter does not add up.
func (l *testLayer) run(ctx context.Context, w TrackWriter, track int, onFrame func(string)) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	l.clock.begin(start)
	for n := int64(0); ; n++ {
		due := start.Add(time.Duration(n) * time.Second / time.Duration(l.cfg.FPS))
		wait := time.Until(due)
		if wait < -time.Second {
			// Far behind (the machine was suspended or starved): start a
			// new schedule instead of sending a burst of stale frames.
			start, n, wait = time.Now(), 0, 0
			l.clock.begin(start)
		}
		if wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		nalus, _ := l.enc.Next()
		l.au = l.au[:0]
		for _, nal := range nalus {
			l.au = append(l.au, 0, 0, 0, 1)
			l.au = append(l.au, nal...)
		}
		l.pk.writeFrame(w, track, l.au, l.clock.next(time.Now()))
		if onFrame != nil {
			onFrame(l.name)
		}
	}
}
