package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"

	"whipgate/gateway"
	"whipgate/hwaccel"
)

// EncoderSource publishes what a supervised encoder pipeline (hwaccel)
// produces: every layer read from its pipe or received as RTP, in one
// publication. The stream stays published while the supervisor restarts the
// encoder or falls back to another backend, so viewers and egress sessions
// carry on at the next keyframe.
type EncoderSource struct {
	stream string
	hub    *gateway.Hub
	sup    *hwaccel.Supervisor
	log    *slog.Logger

	// RTP receivers are bound once, before any encoder starts, so no
	// process ever sends to a port nobody listens on.
	rtp map[string]*RTPReceiver
	// Pipe readers outlive encoder runs, so sequence numbers and
	// timestamps run on across a restart.
	pipes map[string]*PipeReader

	mu  sync.Mutex
	pub *gateway.Publication
}

// NewEncoderSource binds the RTP ports the pipelines send to. Close, or
// Run until ctx ends, releases them.
func NewEncoderSource(stream string, sup *hwaccel.Supervisor, hub *gateway.Hub, log *slog.Logger) (*EncoderSource, error) {
	if err := gateway.ValidStreamName(stream); err != nil {
		return nil, fmt.Errorf("encoder source: %w", err)
	}
	// The layers become the publication's tracks: a bad name would fail
	// every run, long after the start.
	for _, p := range sup.Pipelines() {
		for _, o := range p.Outputs {
			if err := gateway.ValidLayerName(o.Layer); err != nil {
				return nil, fmt.Errorf("encoder source: %s (%s): %w", p.Backend, p.Tool, err)
			}
		}
	}
	s := &EncoderSource{stream: stream, hub: hub, sup: sup, log: log, rtp: make(map[string]*RTPReceiver), pipes: make(map[string]*PipeReader)}
	for _, p := range sup.Pipelines() {
		for _, o := range p.Outputs {
			if o.Transport != hwaccel.TransportRTP || s.rtp[rtpKey(o)] != nil {
				continue
			}
			codec, err := gateway.ParseCodec(string(o.Codec))
			if err != nil {
				s.Close()
				return nil, err
			}
			r, err := NewRTPReceiver(RTPConfig{
				Layer:    o.Layer,
				Codec:    codec,
				Listen:   net.JoinHostPort("127.0.0.1", strconv.Itoa(o.Port)),
				RTCPPort: o.FeedbackPort,
				OnFrame:  sup.FrameArrived,
			}, log)
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("encoder source: layer %s: %w", o.Layer, err)
			}
			s.rtp[rtpKey(o)] = r
		}
	}
	return s, nil
}

func (s *EncoderSource) pipeReader(o hwaccel.Output, codec gateway.Codec) (*PipeReader, error) {
	key := o.Layer + "/" + string(o.Codec) + "/" + string(o.Container)
	if pr, ok := s.pipes[key]; ok {
		return pr, nil
	}
	pr, err := NewPipeReader(PipeConfig{
		Layer:     o.Layer,
		Codec:     codec,
		Container: Container(o.Container),
		FPS:       float64(o.FPS),
		OnFrame:   s.sup.FrameArrived,
	}, s.log)
	if err != nil {
		return nil, fmt.Errorf("encoder source: layer %s: %w", o.Layer, err)
	}
	s.pipes[key] = pr
	return pr, nil
}

func rtpKey(o hwaccel.Output) string { return o.Layer + "/" + strconv.Itoa(o.Port) }

// Run supervises the encoder until ctx ends.
func (s *EncoderSource) Run(ctx context.Context) error {
	defer s.Close()
	return s.sup.Run(ctx, s.run)
}

// Close ends the publication and releases the RTP ports. Idempotent.
func (s *EncoderSource) Close() error {
	s.mu.Lock()
	pub := s.pub
	s.pub = nil
	s.mu.Unlock()
	if pub != nil {
		pub.Close()
	}
	var errs []error
	for _, r := range s.rtp {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}

// publication keeps one publication while the layers stay the same, so a
// restart is invisible to viewers but for the wait for a keyframe.
func (s *EncoderSource) publication(tracks []gateway.TrackInfo) (*gateway.Publication, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pub != nil && s.pub.Err() == nil && slices.Equal(s.pub.Stream().Tracks(), tracks) {
		return s.pub, nil
	}
	pub, err := s.hub.Publish(s.stream, tracks, gateway.PublishOptions{Kind: "encoder", Takeover: true})
	if err != nil {
		return nil, err
	}
	s.pub = pub
	return pub, nil
}

func (s *EncoderSource) run(ctx context.Context, run *hwaccel.Run) error {
	outs := run.Pipeline.Outputs
	tracks := make([]gateway.TrackInfo, len(outs))
	for i, o := range outs {
		codec, err := gateway.ParseCodec(string(o.Codec))
		if err != nil {
			return err
		}
		tracks[i] = gateway.TrackInfo{Name: o.Layer, Codec: codec, Width: o.Width, Height: o.Height}
	}
	pub, err := s.publication(tracks)
	if err != nil {
		return fmt.Errorf("encoder source: publish %q: %w", s.stream, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(outs))
	var wg sync.WaitGroup
	defer wg.Wait()
	for i, o := range outs {
		switch o.Transport {
		case hwaccel.TransportRTP:
			r := s.rtp[rtpKey(o)]
			// A new encoder process sends from new ports; the last one
			// has exited, so its address need not fall silent first.
			r.ReleaseSource()
			wg.Go(func() { errs <- r.Run(ctx, pub, i) })
		default:
			in, ok := run.Outputs[o.Layer]
			if !ok {
				return fmt.Errorf("encoder source: no pipe for layer %s", o.Layer)
			}
			pr, err := s.pipeReader(o, tracks[i].Codec)
			if err != nil {
				return err
			}
			wg.Go(func() { errs <- pr.Ingest(ctx, in, pub, i) })
		}
	}
	// Viewers' keyframe requests reach encoders that take a PLI (GStreamer
	// rtpbin); the others rely on their GOP and the hub's GOP cache.
	for {
		select {
		case err := <-errs:
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("encoder output ended")
			}
			return err
		case i := <-pub.KeyframeRequests():
			if o := outs[i]; o.Transport == hwaccel.TransportRTP && o.KeyframeOnPLI {
				if err := s.rtp[rtpKey(o)].RequestKeyframe(); err != nil {
					s.log.Debug("keyframe request not sent", "layer", o.Layer, "err", err)
				}
			}
		case <-pub.Done():
			return pub.Err()
		case <-ctx.Done():
			return nil
		}
	}
}
