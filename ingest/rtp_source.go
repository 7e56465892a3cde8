package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"whipgate/gateway"
)

// RTPSourceConfig describes a stream whose layers all arrive as RTP over
// UDP, each on its own port.
type RTPSourceConfig struct {
	// Stream is the name the layers are published under. Required.
	Stream string `yaml:"stream"`
	// Layers are the tracks, one receiver each; layer names must differ.
	// At least one.
	Layers []RTPConfig `yaml:"layers"`
}

// Validate checks the config with its defaults applied.
func (c RTPSourceConfig) Validate() error {
	if c.Stream == "" {
		return errors.New("ingest: rtp source: stream is required")
	}
	if err := gateway.ValidStreamName(c.Stream); err != nil {
		return fmt.Errorf("ingest: rtp source: %w", err)
	}
	if len(c.Layers) == 0 {
		return fmt.Errorf("ingest: rtp source %q: no layers", c.Stream)
	}
	seen := map[string]bool{}
	for _, l := range c.Layers {
		l, err := l.withDefaults()
		if err != nil {
			return fmt.Errorf("ingest: rtp source %q: %w", c.Stream, err)
		}
		if seen[l.Layer] {
			return fmt.Errorf("ingest: rtp source %q: layer %q twice", c.Stream, l.Layer)
		}
		seen[l.Layer] = true
	}
	return nil
}

// RTPSource publishes a stream whose layers arrive as RTP over UDP, and
// turns viewers' keyframe requests into PLIs toward the senders.
type RTPSource struct {
	cfg       RTPSourceConfig
	hub       *gateway.Hub
	log       *slog.Logger
	receivers []*RTPReceiver
	mu        sync.Mutex // held by Run
}

// NewRTPSource validates cfg and binds every layer's socket, so the ports
// are known before the encoder starts. Close releases them.
func NewRTPSource(cfg RTPSourceConfig, hub *gateway.Hub, log *slog.Logger) (*RTPSource, error) {
	if hub == nil {
		return nil, errors.New("ingest: rtp source: nil hub")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &RTPSource{cfg: cfg, hub: hub, log: log.With("component", "ingest", "source", "rtp", "stream", cfg.Stream)}
	for _, l := range cfg.Layers {
		r, err := NewRTPReceiver(l, log.With("stream", cfg.Stream))
		if err != nil {
			return nil, errors.Join(err, s.Close())
		}
		s.receivers = append(s.receivers, r)
	}
	return s, nil
}

// Receivers returns the per-layer receivers, in the order of the layers.
func (s *RTPSource) Receivers() []*RTPReceiver { return s.receivers }

// Tracks describes the layers as they are published.
func (s *RTPSource) Tracks() []gateway.TrackInfo {
	out := make([]gateway.TrackInfo, len(s.receivers))
	for i, r := range s.receivers {
		out[i] = gateway.TrackInfo{Name: r.cfg.Layer, Codec: r.cfg.Codec}
	}
	return out
}

// Run publishes the stream, taking it over from any live publisher, and
// receives until ctx is done (then it returns ctx.Err()), the publication
// ends, or a receiver fails. It may be called again after it returns; the
// sockets stay bound in between. Calls are serialized.
func (s *RTPSource) Run(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	addrs := make([]string, len(s.receivers))
	for i, r := range s.receivers {
		addrs[i] = r.Addr().String()
	}
	pub, err := s.hub.Publish(s.cfg.Stream, s.Tracks(), gateway.PublishOptions{Kind: "rtp", Remote: strings.Join(addrs, ","), Takeover: true})
	if err != nil {
		return fmt.Errorf("ingest: rtp source: %w", err)
	}
	defer pub.Close()

	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	failed := make(chan error, len(s.receivers))
	for i, r := range s.receivers {
		wg.Go(func() {
			if err := r.Run(rctx, pub, i); rctx.Err() == nil {
				failed <- err
			}
		})
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-pub.Done():
			return fmt.Errorf("ingest: rtp source %q: %w", s.cfg.Stream, pub.Err())
		case err := <-failed:
			return err
		case i := <-pub.KeyframeRequests():
			if i < 0 || i >= len(s.receivers) {
				continue
			}
			if err := s.receivers[i].RequestKeyframe(); err != nil {
				s.log.Debug("keyframe request not sent", "err", err)
			}
		}
	}
}

// Close releases every socket. It is idempotent.
func (s *RTPSource) Close() error {
	var errs []error
	for _, r := range s.receivers {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}
