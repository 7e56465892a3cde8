package gateway

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// TrackInfo describes one track of a publication.
type TrackInfo struct {
	// Name is the layer name: "main", "preview", a simulcast rid, or "audio".
	Name  string `json:"name"`
	Codec Codec  `json:"codec"`
	// Fmtp is the codec's SDP format parameters as the publisher declared them.
	Fmtp string `json:"fmtp,omitempty"`
	// Channels is the audio channel count (Opus: 2).
	Channels uint16 `json:"channels,omitempty"`
	// Width, Height and BitrateKbps are what the source says it sends, when
	// it knows; informative only.
	Width       int `json:"width,omitempty"`
	Height      int `json:"height,omitempty"`
	BitrateKbps int `json:"bitrate_kbps,omitempty"`
}

// PublishOptions say who publishes and how a busy stream is handled.
type PublishOptions struct {
	// Kind names the source type for stats ("whip", "test", "pipe", "rtp").
	Kind string
	// Remote is the source's address or description, for stats.
	Remote string
	// Takeover lets this publisher replace a live one.
	Takeover bool
	// StaleAfter lets this publisher replace one that has written nothing
	// for this long (an OBS that lost its network re-POSTs without DELETE).
	// Zero means never.
	StaleAfter time.Duration
}

// SubscribeOptions describe a subscriber.
type SubscribeOptions struct {
	// Kind names the subscriber type for stats ("whep", "egress").
	Kind string
	// Remote is the subscriber's address or description, for stats.
	Remote string
}

// Stream is a named set of tracks with at most one live publisher. It stays
// registered while a publisher restarts as long as anyone subscribes, or
// for good once pinned.
type Stream struct {
	hub  *Hub
	name string

	mu     sync.Mutex
	pinned bool
	pub    *Publication
	tracks map[string]*track
	order  []string
	subs   map[*Subscription]struct{}

	// What the subscribers that left had delivered and dropped.
	retiredDelivered, retiredDropped uint64
}

// Name is the stream's name.
func (s *Stream) Name() string { return s.name }

// Live reports whether a publisher is attached.
func (s *Stream) Live() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pub != nil
}

// Tracks lists the tracks of the live publication, in its order.
func (s *Stream) Tracks() []TrackInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pub == nil {
		return nil
	}
	out := make([]TrackInfo, len(s.pub.tracks))
	for i, t := range s.pub.tracks {
		out[i] = t.info
	}
	return out
}

// RequestKeyframe asks the live publisher for a keyframe on every video
// track (rate-limited like subscribers' requests).
func (s *Stream) RequestKeyframe() error {
	s.mu.Lock()
	pub := s.pub
	s.mu.Unlock()
	if pub == nil {
		return ErrNoPublisher
	}
	for _, t := range pub.tracks {
		t.mu.Lock()
		t.requestKeyframeLocked(s.hub.now())
		t.mu.Unlock()
	}
	return nil
}

func (s *Stream) publish(id uint64, infos []TrackInfo, opt PublishOptions) (*Publication, error) {
	now := s.hub.now()
	s.mu.Lock()
	old := s.pub
	if old != nil && !opt.Takeover && (opt.StaleAfter <= 0 || time.Duration(now-old.lastWrite.Load()) < opt.StaleAfter) {
		s.mu.Unlock()
		return nil, fmt.Errorf("publish %q: %w", s.name, ErrStreamBusy)
	}
	p := &Publication{
		stream: s,
		id:     id,
		opt:    opt,
		since:  time.Now(),
		keyReq: make(chan int, 16),
		life:   ending{done: make(chan struct{})},
		tracks: make([]*track, len(infos)),
	}
	p.lastWrite.Store(now)
	for i, info := range infos {
		info.Codec, _ = ParseCodec(string(info.Codec)) // validated by the hub
		t, ok := s.tracks[info.Name]
		if !ok {
			t = newTrack(s.hub, s.name)
			s.tracks[info.Name] = t
			s.order = append(s.order, info.Name)
		}
		t.begin(p, i, info, now)
		p.tracks[i] = t
	}
	if old != nil {
		// The replaced publisher may write on until it notices; layers the
		// new one does not publish must not take those writes either.
		s.disownLocked(old)
	}
	s.pub = p
	s.mu.Unlock()
	if old != nil {
		old.end(ErrReplaced)
		s.hub.log.Info("publisher replaced", "stream", s.name, "old", old.id, "new", id)
	}
	return p, nil
}

func (s *Stream) unpublish(p *Publication) {
	s.mu.Lock()
	if s.pub == p {
		s.pub = nil
	}
	s.disownLocked(p)
	s.mu.Unlock()
	s.hub.forget(s)
}

// disownLocked takes p's tracks from it. A track nobody watches is removed
// from the stream; one with subscribers stays for them (a publisher that
// restarts takes it up again) until the last of them leaves. Either way
// its GOP cache goes: it serves only joiners of a live track. Called with
// s.mu held.
func (s *Stream) disownLocked(p *Publication) {
	for _, t := range p.tracks {
		t.mu.Lock()
		if t.owner != p {
			t.mu.Unlock()
			continue
		}
		t.owner = nil
		t.resetGOP()
		t.slab = slab{}
		unused := len(t.subs) == 0
		name := t.info.Name
		t.mu.Unlock()
		if unused {
			s.removeTrackLocked(name, t)
		}
	}
}

// removeTrackLocked forgets track t, registered as name. Called with s.mu
// held, once nothing owns or uses t.
func (s *Stream) removeTrackLocked(name string, t *track) {
	if s.tracks[name] != t {
		return
	}
	delete(s.tracks, name)
	if i := slices.Index(s.order, name); i >= 0 {
		s.order = slices.Delete(s.order, i, i+1)
	}
}

func (s *Stream) subscribe(names []string, opt SubscribeOptions) (*Subscription, error) {
	if len(names) == 0 || len(names) > maxTracks {
		return nil, fmt.Errorf("subscribe %q: %w: %d tracks", s.name, ErrBadTracks, len(names))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pub == nil {
		return nil, fmt.Errorf("subscribe %q: %w", s.name, ErrNoPublisher)
	}
	tracks := make([]*track, len(names))
	cached := 0
	for i, n := range names {
		t, ok := s.tracks[n]
		if !ok || t.owner != s.pub {
			return nil, fmt.Errorf("subscribe %q: %w %q", s.name, ErrNoTrack, n)
		}
		tracks[i] = t
		t.mu.Lock()
		cached += len(t.gop)
		t.mu.Unlock()
	}
	sub := newSubscription(s, s.hub.nextID.Add(1), opt, s.hub.cfg.QueuePackets+cached)
	now := s.hub.now()
	for i, t := range tracks {
		st := &subTrack{sub: sub, idx: uint8(i), t: t}
		sub.tracks = append(sub.tracks, st)
		t.mu.Lock()
		st.clockRate = int64(t.info.Codec.ClockRate())
		t.attach(st, now)
		t.mu.Unlock()
	}
	if s.subs == nil {
		s.subs = make(map[*Subscription]struct{})
	}
	s.subs[sub] = struct{}{}
	return sub, nil
}

func (s *Stream) unsubscribe(sub *Subscription) {
	final := sub.Stats() // before its tracks detach; it takes no stream lock
	s.mu.Lock()
	if _, ok := s.subs[sub]; ok {
		s.retiredDelivered += final.Delivered
		s.retiredDropped += final.Dropped
	}
	for _, st := range sub.tracks {
		t := st.t
		t.mu.Lock()
		t.detach(st)
		unused := t.owner == nil && len(t.subs) == 0
		name := t.info.Name
		t.mu.Unlock()
		if unused {
			// The last subscriber of a track its publisher left.
			s.removeTrackLocked(name, t)
		}
	}
	delete(s.subs, sub)
	s.mu.Unlock()
	s.hub.forget(s)
}

func (s *Stream) close() {
	s.mu.Lock()
	pub := s.pub
	subs := make([]*Subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	if pub != nil {
		pub.end(ErrClosed)
		s.unpublish(pub)
	}
	for _, sub := range subs {
		sub.finish(ErrClosed)
	}
}
