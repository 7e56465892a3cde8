// Package gateway is whipgate's media hub: named streams, each with tracks
// (video layers such as "main" and "preview", simulcast rids, and audio),
// published by one source at a time and fanned out to many subscribers.
//
// The hub owns no goroutines. A publisher's WriteRTP runs on the publisher's
// goroutine, copies the packet once and pushes a pointer into every
// subscriber's bounded queue; it never blocks on a subscriber. Each
// subscriber drains its own queue on its own goroutine. A subscriber whose
// queue overflows loses packets (counted), then resumes at the next keyframe
// with its sequence numbers rebased (and its timestamps too when a new
// publisher took over), so the viewer sees a continuous stream and the
// source and other viewers never slow down.
//
// Stream names follow ValidStreamName and track (layer) names
// ValidLayerName; the hub refuses others with ErrBadName.
//
// The hub knows nothing of HTTP or PeerConnections.
package gateway

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config tunes the hub. The zero value means the defaults.
type Config struct {
	// QueuePackets bounds each subscriber's queue. Default 8192 packets:
	// about 0.8 s at 100 Mbps, enough for a 2 MB keyframe burst several
	// times over.
	QueuePackets int `yaml:"queue_packets"`
	// GOPCacheBytes bounds the per-track cache of packets since the last
	// keyframe, which lets a new subscriber start at once. Default 32 MiB
	// (over 2 s at 100 Mbps). Negative disables the cache.
	GOPCacheBytes int `yaml:"gop_cache_bytes"`
	// MaxGOPBytesTotal bounds the GOP caches of all tracks of the hub
	// together. A track whose cache would grow past it drops its own
	// cache instead (counted as gop_dropped in its stats) and caches
	// again from its next keyframe; its joiners wait for a keyframe
	// meanwhile. The publisher is never held up. Default 256 MiB.
	// Negative means no limit beyond GOPCacheBytes per track.
	MaxGOPBytesTotal int `yaml:"max_gop_bytes_total"`
	// MaxTracksPerStream bounds the tracks (layers) of one publication;
	// Publish refuses more with ErrBadTracks. Default 16, at most 255.
	MaxTracksPerStream int `yaml:"max_tracks_per_stream"`
	// GOPJoinMaxAge is the oldest cached GOP a new subscriber is started
	// on: an older one would show it pictures that old (a publisher that
	// makes keyframes only on request, as browsers do, may have cached
	// tens of seconds). It asks for a keyframe and starts on that instead.
	// Default 2 s.
	GOPJoinMaxAge time.Duration `yaml:"gop_join_max_age"`
	// GOPKeyWait is how long such a subscriber waits for the keyframe it
	// asked for before it is started on the cache after all (a publisher
	// that ignores keyframe requests, as OBS and ffmpeg do). Default 1 s.
	GOPKeyWait time.Duration `yaml:"gop_key_wait"`
	// GOPCacheMaxAge drops a GOP cache that has grown this old: nobody
	// should start on pictures older. Default 10 s.
	GOPCacheMaxAge time.Duration `yaml:"gop_cache_max_age"`
	// KeyframeInterval is the shortest gap between two keyframe requests
	// sent to a publisher for one track; requests in between are merged.
	// Default 500 ms.
	KeyframeInterval time.Duration `yaml:"keyframe_interval"`
}

// maxTracks is the most tracks a publication or a subscription may have:
// a subscription's queue entries name their track in a byte.
const maxTracks = 255

func (c *Config) applyDefaults() {
	if c.QueuePackets <= 0 {
		c.QueuePackets = 8192
	}
	if c.GOPCacheBytes == 0 {
		c.GOPCacheBytes = 32 << 20
	}
	if c.MaxGOPBytesTotal == 0 {
		c.MaxGOPBytesTotal = 256 << 20
	}
	if c.MaxTracksPerStream <= 0 {
		c.MaxTracksPerStream = 16
	}
	c.MaxTracksPerStream = min(c.MaxTracksPerStream, maxTracks)
	if c.GOPJoinMaxAge <= 0 {
		c.GOPJoinMaxAge = 2 * time.Second
	}
	if c.GOPKeyWait <= 0 {
		c.GOPKeyWait = time.Second
	}
	if c.GOPCacheMaxAge <= 0 {
		c.GOPCacheMaxAge = 10 * time.Second
	}
	if c.KeyframeInterval <= 0 {
		c.KeyframeInterval = 500 * time.Millisecond
	}
}

// Hub holds the streams.
//
// Locks nest in one order only: Hub.mu, Stream.mu, track.mu, then a
// Subscription's mu.
type Hub struct {
	cfg    Config
	log    *slog.Logger
	start  time.Time
	nextID atomic.Uint64 // atomic: taken under a stream's mutex, which nests inside mu
	// gopBytes is what all tracks' GOP caches hold together. Tracks add
	// to it under their own mutexes, one atomic add per cached packet.
	gopBytes atomic.Int64

	mu      sync.Mutex
	streams map[string]*Stream
	closed  bool
}

// NewHub returns an empty hub. A nil log discards the hub's messages.
func NewHub(cfg Config, log *slog.Logger) *Hub {
	cfg.applyDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{cfg: cfg, log: log, start: time.Now(), streams: make(map[string]*Stream)}
}

func (h *Hub) now() int64 { return int64(time.Since(h.start)) }

// GOPCacheBytes is what the GOP caches of all tracks hold together, the
// figure MaxGOPBytesTotal bounds.
func (h *Hub) GOPCacheBytes() int64 { return h.gopBytes.Load() }

// reserveGOP accounts n more bytes of GOP cache, unless that would pass
// MaxGOPBytesTotal.
func (h *Hub) reserveGOP(n int) bool {
	total := h.gopBytes.Add(int64(n))
	if limit := h.cfg.MaxGOPBytesTotal; limit > 0 && total > int64(limit) {
		h.gopBytes.Add(-int64(n))
		return false
	}
	return true
}

// Pin keeps a stream registered even when nothing publishes or watches it,
// so viewers of a configured stream get "no publisher yet" instead of "not
// found". It returns the stream, or fails with ErrBadName.
func (h *Hub) Pin(name string) (*Stream, error) {
	if err := ValidStreamName(name); err != nil {
		return nil, fmt.Errorf("pin: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	s := h.streamLocked(name)
	s.mu.Lock()
	s.pinned = true
	s.mu.Unlock()
	return s, nil
}

func (h *Hub) streamLocked(name string) *Stream {
	s, ok := h.streams[name]
	if !ok {
		s = &Stream{hub: h, name: name, tracks: make(map[string]*track)}
		h.streams[name] = s
	}
	return s
}

// Stream returns the named stream.
func (h *Hub) Stream(name string) (*Stream, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.streams[name]
	return s, ok
}

// Streams returns a snapshot of every stream, sorted by name.
func (h *Hub) Streams() []StreamStats {
	h.mu.Lock()
	list := slices.Collect(maps.Values(h.streams))
	h.mu.Unlock()
	out := make([]StreamStats, 0, len(list))
	for _, s := range list {
		out = append(out, s.Stats())
	}
	slices.SortFunc(out, func(a, b StreamStats) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Publish makes p the publisher of the named stream, creating the stream if
// needed. Tracks are addressed by their index in tracks from then on. A
// stream or track name that breaks its rule fails with ErrBadName; an
// unusable track list with ErrBadTracks.
func (h *Hub) Publish(name string, tracks []TrackInfo, opt PublishOptions) (*Publication, error) {
	if err := ValidStreamName(name); err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if err := validateTracks(tracks, h.cfg.MaxTracksPerStream); err != nil {
		return nil, fmt.Errorf("publish %q: %w", name, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	// Still under the hub's mutex: a stream that loses its last
	// subscriber meanwhile must not be forgotten while this publisher
	// attaches to it.
	return h.streamLocked(name).publish(h.nextID.Add(1), tracks, opt)
}

// Subscribe attaches a subscriber to the named tracks of a stream. It fails
// with ErrBadName, ErrNotFound, ErrNoPublisher or ErrNoTrack.
func (h *Hub) Subscribe(name string, trackNames []string, opt SubscribeOptions) (*Subscription, error) {
	if err := ValidStreamName(name); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	s, ok := h.Stream(name)
	if !ok {
		return nil, fmt.Errorf("subscribe %q: %w", name, ErrNotFound)
	}
	return s.subscribe(trackNames, opt)
}

// Close ends every publication and subscription.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	list := slices.Collect(maps.Values(h.streams))
	h.mu.Unlock()
	for _, s := range list {
		s.close()
	}
}

// forget drops a stream that has nothing attached and is not pinned.
func (h *Hub) forget(s *Stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.mu.Lock()
	idle := s.pub == nil && len(s.subs) == 0 && !s.pinned
	s.mu.Unlock()
	if idle && h.streams[s.name] == s {
		delete(h.streams, s.name)
	}
}

func validateTracks(tracks []TrackInfo, most int) error {
	if len(tracks) == 0 {
		return fmt.Errorf("%w: no tracks", ErrBadTracks)
	}
	if len(tracks) > most {
		return fmt.Errorf("%w: %d tracks, at most %d (max_tracks_per_stream)", ErrBadTracks, len(tracks), most)
	}
	seen := make(map[string]bool, len(tracks))
	for _, t := range tracks {
		if err := ValidLayerName(t.Name); err != nil {
			return fmt.Errorf("%w: %w", ErrBadTracks, err)
		}
		if seen[t.Name] {
			return fmt.Errorf("%w: track %q twice", ErrBadTracks, t.Name)
		}
		seen[t.Name] = true
		if _, err := ParseCodec(string(t.Codec)); err != nil {
			return fmt.Errorf("%w: track %q: %w", ErrBadTracks, t.Name, err)
		}
	}
	return nil
}
