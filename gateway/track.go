package gateway

import (
	"slices"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// maxReorder, in seconds, is how late a packet of an older frame may come
// and still count as late rather than as a source restarting its clock.
const maxReorder = 5

// track is one named track of a stream. It outlives publications, so that
// subscribers stay attached while a publisher restarts.
type track struct {
	hub    *Hub
	stream string // the stream's name, for logs

	mu       sync.Mutex
	info     TrackInfo
	kind     Kind
	owner    *Publication // nil while nothing publishes this track
	ownerIdx int          // this track's index in owner's track list
	subs     []*subTrack
	slab     slab
	epoch    uint32 // counts publications, so subscribers see a publisher change

	// Frame boundaries and the GOP cache.
	haveTS      bool
	lastTS      uint32
	frameStart  int  // index in gop of the current frame's first packet
	frameKey    bool // the current frame holds a keyframe
	gop         []*Packet
	gopBytes    int // accounted in hub.gopBytes too
	gopValid    bool
	gopDropped  uint64
	lastGOPWarn int64 // hub clock; the dropped-cache warning is rate-limited

	// Keyframe requests toward the publisher.
	keyPending bool
	lastKeyReq int64

	lastBigKeyWarn int64 // hub clock; the oversized-keyframe warning is rate-limited
	keyReqs        uint64
	staleJoins     int    // subscribers waiting for a keyframe after a stale join
	repair         Repair // reported by publishers (AddRepair)

	// Stats.
	packets, bytes, frames, keyframes uint64
	curFrameBytes, curFramePackets    int
	keyframeBytes, keyframePackets    int // of the last complete keyframe
	winStart                          int64
	winBytes, winFrames               uint64
	bitrate                           int64
	fps                               float64
}

func newTrack(h *Hub, stream string) *track {
	return &track{hub: h, stream: stream, lastKeyReq: -1 << 62, lastBigKeyWarn: -1 << 62, lastGOPWarn: -1 << 62}
}

// begin hands the track to a new publication. Subscribers stay and resume at
// the new publisher's first keyframe; ones that negotiated another codec end.
func (t *track) begin(p *Publication, idx int, info TrackInfo, now int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.info.Codec != "" && t.info.Codec != info.Codec {
		for _, st := range t.subs {
			st.sub.finish(ErrCodecChanged)
		}
	}
	t.owner, t.ownerIdx, t.info, t.kind = p, idx, info, info.Codec.Kind()
	t.epoch++
	t.resetGOP()
	t.haveTS = false
	for _, st := range t.subs {
		st.needKey = true
	}
	t.keyPending = len(t.subs) > 0 && t.kind == KindVideo
	t.lastKeyReq = -1 << 62
	t.winStart, t.winBytes, t.winFrames, t.bitrate, t.fps = now, 0, 0, 0, 0
}

func (t *track) resetGOP() {
	clear(t.gop)
	t.gop = t.gop[:0]
	if t.gopBytes != 0 {
		t.hub.gopBytes.Add(-int64(t.gopBytes))
	}
	t.gopBytes = 0
	t.gopValid = false
	t.frameStart = 0
}

// dropGOP empties a cache that hit limit (the name of its config key);
// caching starts again at the next keyframe.
func (t *track) dropGOP(limit string, now int64) {
	t.gopDropped++
	if now-t.lastGOPWarn >= int64(time.Minute) {
		t.lastGOPWarn = now
		t.hub.log.Warn("GOP cache dropped: new viewers of this layer wait for its next keyframe",
			"stream", t.stream, "layer", t.info.Name, "limit", limit, "cache_bytes", t.gopBytes,
			"hub_cache_bytes", t.hub.gopBytes.Load(), "dropped_so_far", t.gopDropped)
	}
	t.resetGOP()
}

// attach adds a subscriber and queues the GOP cache for it, so it can start
// decoding at once instead of a GOP later.
func (t *track) attach(st *subTrack, now int64) {
	t.subs = append(t.subs, st)
	if t.kind == KindVideo && t.gopValid && len(t.gop) > 0 && now-t.gop[0].Arrival > int64(t.hub.cfg.GOPJoinMaxAge) {
		// The cache is old: ask for a fresh keyframe and start on it;
		// write falls back to the cache if none comes.
		st.needKey, st.staleJoin = true, now
		t.staleJoins++
		t.requestKeyframeLocked(now)
		return
	}
	if t.kind == KindVideo && t.gopValid && len(t.gop) > 0 {
		t.replayGOP(st)
		return
	}
	st.needKey = true
	t.requestKeyframeLocked(now)
}

// replayGOP queues the GOP cache for st, so it starts decoding at once.
func (t *track) replayGOP(st *subTrack) {
	st.resync = true
	st.sub.mu.Lock()
	st.sub.replay = true
	st.sub.mu.Unlock()
	for _, p := range t.gop {
		st.offer(p)
	}
}

// startStaleJoins starts on the cache the subscribers that joined on a
// stale one and got no keyframe within GOPKeyWait (the publisher ignores
// requests): an old picture that catches up beats none.
func (t *track) startStaleJoins(now int64) {
	for _, st := range t.subs {
		if st.staleJoin == 0 || now-st.staleJoin < int64(t.hub.cfg.GOPKeyWait) {
			continue
		}
		st.staleJoin = 0
		t.staleJoins--
		if st.needKey && t.gopValid && len(t.gop) > 0 {
			st.needKey = false
			t.replayGOP(st)
		}
	}
}

func (t *track) detach(st *subTrack) {
	if i := slices.Index(t.subs, st); i >= 0 {
		t.subs = slices.Delete(t.subs, i, i+1)
		if st.staleJoin != 0 {
			st.staleJoin = 0
			t.staleJoins--
		}
	}
}

// write is the publisher's path: copy once, classify, cache, fan out.
func (t *track) write(pub *Publication, pkt *rtp.Packet, now int64) {
	if len(pkt.Payload) == 0 { // padding-only probes carry nothing to forward
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.owner != pub {
		return
	}
	p := t.slab.packet(pkt.Payload)
	p.Timestamp, p.Seq, p.Marker, p.Arrival, p.epoch = pkt.Timestamp, pkt.SequenceNumber, pkt.Marker, now, t.epoch

	// A packet of an older frame (a retransmission answering the ingest's
	// NACK, or plain reordering) belongs to a frame already counted: it
	// must not end the current frame and restart frame and keyframe
	// tracking. Only a jump back of more than maxReorder (a source that
	// restarted its clock) starts a new frame.
	d := int64(int32(pkt.Timestamp - t.lastTS))
	newFrame := !t.haveTS || d > 0 || d < -maxReorder*int64(t.info.Codec.ClockRate())
	late := !newFrame && d < 0
	if newFrame {
		t.endFrame(now)
		t.haveTS, t.lastTS = true, pkt.Timestamp
		t.frameStart, t.frameKey = len(t.gop), false
		t.frames++
		t.winFrames++
	}
	if t.kind == KindAudio {
		p.KeyStart = true
	} else if !t.frameKey && !late && IsKeyframe(t.info.Codec, p.Payload) {
		// A keyframe whose first packet did not show it (an SEI or AUD
		// ahead of the parameter sets) still starts the cache at its
		// frame's first packet; waiting subscribers start here.
		t.frameKey, p.KeyStart = true, true
		t.keyframes++
		t.keyPending = false
		if t.frameStart > 0 {
			n := copy(t.gop, t.gop[t.frameStart:])
			clear(t.gop[n:])
			t.gop = t.gop[:n]
			kept := 0
			for _, q := range t.gop {
				kept += len(q.Payload)
			}
			t.hub.gopBytes.Add(int64(kept - t.gopBytes))
			t.gopBytes = kept
			t.frameStart = 0
		}
		t.gopValid = true
	}
	if !late {
		t.curFrameBytes += len(p.Payload)
		t.curFramePackets++
	}
	if t.staleJoins > 0 {
		t.startStaleJoins(now) // before p joins the cache: p is offered below
	}
	if t.gopValid && len(t.gop) > 0 && now-t.gop[0].Arrival > int64(t.hub.cfg.GOPCacheMaxAge) {
		// Too old to start anyone on: joiners ask for a keyframe. Not a
		// limit passed (no warning): a long GOP is a publisher's choice.
		t.resetGOP()
	}
	if t.kind == KindVideo && t.gopValid && t.hub.cfg.GOPCacheBytes > 0 {
		// A GOP too long to cache, or too much cached hub-wide: joiners
		// wait for the next keyframe.
		n := len(p.Payload)
		switch {
		case t.gopBytes+n > t.hub.cfg.GOPCacheBytes:
			t.dropGOP("gop_cache_bytes", now)
		case !t.hub.reserveGOP(n):
			t.dropGOP("max_gop_bytes_total", now)
		default:
			t.gop = append(t.gop, p)
			t.gopBytes += n
		}
	}

	t.packets++
	t.bytes += uint64(len(p.Payload))
	t.winBytes += uint64(len(p.Payload))
	if d := now - t.winStart; d >= int64(time.Second) {
		t.bitrate = int64(t.winBytes * 8 * uint64(time.Second) / uint64(d))
		t.fps = float64(t.winFrames) * float64(time.Second) / float64(d)
		t.winStart, t.winBytes, t.winFrames = now, 0, 0
	}

	for _, st := range t.subs {
		st.offer(p)
	}
	if t.keyPending {
		t.flushKeyRequestLocked(now)
	}
}

// browserMaxFramePackets is libwebrtc's packet buffer limit: Chrome drops a
// frame of more packets and asks for a keyframe, forever, if every keyframe
// is that large.
const browserMaxFramePackets = 2048

func (t *track) endFrame(now int64) {
	if t.frameKey && t.curFramePackets > 0 {
		t.keyframeBytes, t.keyframePackets = t.curFrameBytes, t.curFramePackets
		if t.curFramePackets > browserMaxFramePackets && now-t.lastBigKeyWarn > int64(time.Minute) {
			t.lastBigKeyWarn = now
			t.hub.log.Warn("keyframe too large for browsers: cap the encoder's VBV / max frame size",
				"layer", t.info.Name, "packets", t.curFramePackets, "bytes", t.curFrameBytes, "browser_limit_packets", browserMaxFramePackets)
		}
	}
	t.curFrameBytes, t.curFramePackets = 0, 0
}

// requestKeyframeLocked records that someone needs a keyframe; the request
// reaches the publisher at most once per KeyframeInterval, merged with any
// others made meanwhile.
func (t *track) requestKeyframeLocked(now int64) {
	if t.kind != KindVideo {
		return
	}
	t.keyPending = true
	t.flushKeyRequestLocked(now)
}

func (t *track) flushKeyRequestLocked(now int64) {
	if t.owner == nil || now-t.lastKeyReq < int64(t.hub.cfg.KeyframeInterval) {
		return
	}
	select {
	case t.owner.keyReq <- t.ownerIdx:
		t.lastKeyReq = now
		t.keyPending = false
		t.keyReqs++
	default: // the publisher has not drained earlier requests; retry on a later packet
	}
}
