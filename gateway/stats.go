package gateway

import "time"

// StreamStats is a snapshot of a stream for the API and metrics.
type StreamStats struct {
	Name        string            `json:"name"`
	Live        bool              `json:"live"`
	Pinned      bool              `json:"pinned"`
	Publisher   *PublisherStats   `json:"publisher,omitempty"`
	Tracks      []TrackStats      `json:"layers"`
	Subscribers []SubscriberStats `json:"subscribers"`
	// Delivered and Dropped count every subscriber's packets since the
	// stream was made, those gone included: per-stream counters that only
	// grow, where per-subscriber ones come and go.
	Delivered uint64 `json:"delivered"`
	Dropped   uint64 `json:"dropped"`
}

// PublisherStats describes the live publisher.
type PublisherStats struct {
	ID     uint64    `json:"id"`
	Kind   string    `json:"kind"`
	Remote string    `json:"remote,omitempty"`
	Since  time.Time `json:"since"`
}

// TrackStats is a snapshot of one track.
type TrackStats struct {
	TrackInfo
	Kind string `json:"kind"`
	Live bool   `json:"live"`
	// BitrateBps and FPS are measured over the last second or so.
	BitrateBps       int64   `json:"bitrate_bps"`
	FPS              float64 `json:"fps"`
	Packets          uint64  `json:"packets"`
	Bytes            uint64  `json:"bytes"`
	Frames           uint64  `json:"frames"`
	Keyframes        uint64  `json:"keyframes"`
	KeyframeBytes    int     `json:"keyframe_bytes"`
	KeyframePackets  int     `json:"keyframe_packets"`
	KeyframeRequests uint64  `json:"keyframe_requests"`
	GOPCacheBytes    int     `json:"gop_cache_bytes"`
	GOPCachePackets  int     `json:"gop_cache_packets"`
	// GOPDropped counts the GOP caches dropped for passing the track's
	// gop_cache_bytes or the hub's max_gop_bytes_total.
	GOPDropped  uint64 `json:"gop_dropped"`
	Subscribers int    `json:"subscribers"`
	// NACKsSent, RecoveredRTX and Lost are the publisher's transport's
	// repair: sequence numbers it asked for again, packets that came back
	// through RTX, and packets lost for good (WHIP ingest).
	NACKsSent    uint64 `json:"nacks_sent"`
	RecoveredRTX uint64 `json:"recovered_rtx"`
	Lost         uint64 `json:"lost"`
}

// SubscriberStats is a snapshot of one subscription.
type SubscriberStats struct {
	ID     uint64    `json:"id"`
	Kind   string    `json:"kind"`
	Remote string    `json:"remote,omitempty"`
	Tracks []string  `json:"layers"`
	Since  time.Time `json:"since"`
	// Delivered counts packets handed to the sender; Dropped those lost to
	// a full queue; Skipped those passed over while waiting for a keyframe.
	Delivered uint64 `json:"delivered"`
	Dropped   uint64 `json:"dropped"`
	Skipped   uint64 `json:"skipped"`
	Queued    int    `json:"queued"`
}

// Stats returns a snapshot of the stream.
func (s *Stream) Stats() StreamStats {
	s.mu.Lock()
	out := StreamStats{Name: s.name, Live: s.pub != nil, Pinned: s.pinned}
	if p := s.pub; p != nil {
		out.Publisher = &PublisherStats{ID: p.id, Kind: p.opt.Kind, Remote: p.opt.Remote, Since: p.since}
	}
	tracks := make([]*track, 0, len(s.order))
	for _, n := range s.order {
		tracks = append(tracks, s.tracks[n])
	}
	subs := make([]*Subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	out.Delivered, out.Dropped = s.retiredDelivered, s.retiredDropped
	s.mu.Unlock()
	for _, t := range tracks {
		out.Tracks = append(out.Tracks, t.stats())
	}
	for _, sub := range subs {
		st := sub.Stats()
		out.Subscribers = append(out.Subscribers, st)
		out.Delivered += st.Delivered
		out.Dropped += st.Dropped
	}
	return out
}

func (t *track) stats() TrackStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return TrackStats{
		TrackInfo:        t.info,
		Kind:             t.kind.String(),
		Live:             t.owner != nil,
		BitrateBps:       t.bitrate,
		FPS:              t.fps,
		Packets:          t.packets,
		Bytes:            t.bytes,
		Frames:           t.frames,
		Keyframes:        t.keyframes,
		KeyframeBytes:    t.keyframeBytes,
		KeyframePackets:  t.keyframePackets,
		KeyframeRequests: t.keyReqs,
		GOPCacheBytes:    t.gopBytes,
		GOPCachePackets:  len(t.gop),
		GOPDropped:       t.gopDropped,
		Subscribers:      len(t.subs),
		NACKsSent:        t.repair.NACKed,
		RecoveredRTX:     t.repair.Recovered,
		Lost:             t.repair.Lost,
	}
}

// Stats returns a snapshot of the subscription.
func (s *Subscription) Stats() SubscriberStats {
	out := SubscriberStats{
		ID: s.id, Kind: s.opt.Kind, Remote: s.opt.Remote, Since: s.since,
		Delivered: s.delivered.Load(), Dropped: s.dropped.Load(), Skipped: s.skipped.Load(),
	}
	for _, st := range s.tracks {
		st.t.mu.Lock()
		out.Tracks = append(out.Tracks, st.t.info.Name)
		st.t.mu.Unlock()
	}
	s.mu.Lock()
	out.Queued = s.n
	s.mu.Unlock()
	return out
}
