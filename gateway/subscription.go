package gateway

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Out is one packet as a subscriber sends it: the shared payload with this
// subscriber's sequence number and timestamp. SSRC and payload type are the
// sender's to set.
type Out struct {
	Track     int
	Seq       uint16
	Timestamp uint32
	Marker    bool
	KeyStart  bool
	Payload   []byte // shared: read-only
	// Arrival is when the hub got the packet (hub clock, nanoseconds).
	Arrival int64
}

type entry struct {
	p      *Packet
	track  uint8
	resync bool
}

// Subscription is one subscriber's view of some tracks of a stream, with its
// own bounded queue, drained by the subscriber's own goroutine.
type Subscription struct {
	stream *Stream
	id     uint64
	opt    SubscribeOptions
	since  time.Time
	tracks []*subTrack

	mu     sync.Mutex
	ring   []entry
	head   int
	n      int
	notify chan struct{}
	// armed: the consumer found the queue empty and waits for a wake-up.
	// The producer wakes it at a frame's end, not for every packet (see
	// wakeBatch); wakeTimer bounds how long a partial frame may wait.
	armed     bool
	wakeTimer *time.Timer
	replay    bool // a GOP cache was queued: pace it (see catchUpSpeed)

	catching   bool  // the replay has begun
	catchStart int64 // hub clock when it began
	catchBase  int64 // arrival of the packet it began with

	// Consumer-only.
	scratch []entry
	pace    *time.Timer

	life      ending
	closeOnce sync.Once

	ended                       atomic.Bool
	delivered, dropped, skipped atomic.Uint64
}

// Wake-ups are the cost of a subscriber whose publisher paces its packets
// (each arriving alone): waking the sender per packet costs a scheduler
// round trip and a sendmmsg of one, 8–34 % of a core per 100 Mbps viewer
// against 2–3 % when packets come in bursts. So a video packet wakes a
// waiting subscriber only when it ends a frame (marker bit), when
// wakeBatch packets are queued, or wakeDelay after the first one; audio
// wakes at once. A frame is complete at its last packet, so holding its
// first ones costs nothing as long as most of the frame has left by then:
// with wakeDelay at 15 ms a paced frame left whole at its marker, and the
// bench's wire latency p99 at 8 paced viewers went from 27 to 51 ms for
// 2.9 % instead of 4.0 % of a core per viewer.
const (
	wakeBatch = 128
	wakeDelay = 4 * time.Millisecond
)

// The GOP cache a new subscriber gets is replayed at catchUpSpeed times
// the pace it arrived at, until the subscriber is within catchUpLag of
// live, instead of all at once: up to a GOP (12 MB at 100
// Mbps, GOP 1 s) sent in a few milliseconds overflows a receiver's buffers
// (pion's are 1 MB) and makes Chrome give up NACKing. The keyframe that
// starts the cache still leaves as the burst it arrived as, so joining
// stays immediate, and the subscriber is live again after
// backlog/(catchUpSpeed-1).
const (
	catchUpLag   = 50 * time.Millisecond
	catchUpSpeed = 4
)

func newSubscription(s *Stream, id uint64, opt SubscribeOptions, capacity int) *Subscription {
	sub := &Subscription{
		stream: s,
		id:     id,
		opt:    opt,
		since:  time.Now(),
		ring:   make([]entry, capacity),
		notify: make(chan struct{}, 1),
		life:   ending{done: make(chan struct{})},
	}
	sub.wakeTimer = time.AfterFunc(time.Hour, sub.wakeLate)
	sub.wakeTimer.Stop()
	return sub
}

// subTrack is a subscription's state for one track. The producer fields are
// guarded by the track's mutex; the rewrite fields belong to the consumer.
type subTrack struct {
	sub *Subscription
	idx uint8
	t   *track

	// Producer side.
	needKey bool // dropping until the next keyframe
	resync  bool // the next queued packet starts a new run
	// staleJoin is when a subscriber joined on a cache too old to start
	// on (hub clock; 0: it did not): it waits for a keyframe, and after
	// GOPKeyWait starts on the cache after all.
	staleJoin int64

	// clockRate is the track's RTP clock rate. It cannot change under a
	// subscriber (a codec change ends the subscription), and keeping a
	// copy lets the consumer read it without the track's mutex.
	clockRate int64

	// Consumer side: this subscriber's sequence and timestamp mapping.
	started     bool
	epoch       uint32 // of the publication the mapping was made for
	seqOff      uint16
	tsOff       uint32
	lastSeq     uint16
	lastTS      uint32
	lastArrival int64
}

// offer queues p for the subscriber, or drops it. Called with the track's
// mutex held.
func (st *subTrack) offer(p *Packet) {
	if st.needKey {
		if !p.KeyStart {
			st.sub.skipped.Add(1)
			return
		}
		st.needKey, st.resync = false, true
		if st.staleJoin != 0 {
			st.staleJoin = 0
			st.t.staleJoins--
		}
	}
	urgent := st.t.kind != KindVideo || p.Marker
	if !st.sub.push(entry{p: p, track: st.idx, resync: st.resync}, urgent) {
		st.sub.dropped.Add(1)
		st.needKey = true
		st.t.requestKeyframeLocked(p.Arrival)
		return
	}
	st.resync = false
}

// push queues e; urgent asks to wake the consumer now rather than at the
// end of the frame.
func (s *Subscription) push(e entry, urgent bool) bool {
	if s.ended.Load() {
		return true // nobody drains it any more; not a drop
	}
	s.mu.Lock()
	if s.n == len(s.ring) {
		s.mu.Unlock()
		return false
	}
	s.ring[(s.head+s.n)%len(s.ring)] = e
	s.n++
	// Next waits only after finding the queue empty (armed), so while the
	// subscriber is busy or behind, the publisher skips all of this.
	wake, later := false, false
	if s.armed {
		switch {
		case urgent || s.n >= wakeBatch:
			s.armed, wake = false, true
		case s.n == 1:
			later = true
		}
	}
	s.mu.Unlock()
	if wake {
		s.wakeTimer.Stop()
		s.wake()
	} else if later {
		s.wakeTimer.Reset(wakeDelay)
	}
	return true
}

func (s *Subscription) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// wakeLate wakes a consumer whose frame's end did not come in time (a lost
// marker, a publisher that never sets it).
func (s *Subscription) wakeLate() {
	s.mu.Lock()
	wake := s.armed && s.n > 0
	if wake {
		s.armed = false
	}
	s.mu.Unlock()
	if wake {
		s.wake()
	}
}

// ID identifies the subscription within the hub.
func (s *Subscription) ID() uint64 { return s.id }

// Stream is the stream subscribed to.
func (s *Subscription) Stream() *Stream { return s.stream }

// Tracks describes the subscribed tracks, in the order given to Subscribe.
func (s *Subscription) Tracks() []TrackInfo {
	out := make([]TrackInfo, len(s.tracks))
	for i, st := range s.tracks {
		st.t.mu.Lock()
		out[i] = st.t.info
		st.t.mu.Unlock()
	}
	return out
}

// Next fills out with queued packets, waiting until at least one is there.
// Handing out whatever is queued lets the sender write a frame's packets as
// a group. It returns an error once the subscription has ended or ctx is
// done.
func (s *Subscription) Next(ctx context.Context, out []Out) (int, error) {
	if len(out) == 0 {
		return 0, nil
	}
	if cap(s.scratch) < len(out) {
		s.scratch = make([]entry, len(out))
	}
	for {
		s.mu.Lock()
		n, wait := s.ready(len(out))
		for i := range n {
			j := (s.head + i) % len(s.ring)
			s.scratch[i] = s.ring[j]
			s.ring[j] = entry{}
		}
		s.head = (s.head + n) % len(s.ring)
		s.n -= n
		s.mu.Unlock()
		if n > 0 {
			for i := range n {
				e := s.scratch[i]
				s.tracks[e.track].rewrite(e, &out[i])
				s.scratch[i] = entry{}
			}
			s.delivered.Add(uint64(n))
			return n, nil
		}
		select {
		case <-s.life.done:
			return 0, s.life.err
		default:
		}
		var paced <-chan time.Time
		if wait > 0 {
			if s.pace == nil {
				s.pace = time.NewTimer(wait)
			} else {
				s.pace.Reset(wait)
			}
			paced = s.pace.C
		}
		select {
		case <-s.notify:
		case <-paced:
		case <-s.life.done:
			return 0, s.life.err
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if s.pace != nil {
			s.pace.Stop()
		}
	}
}

// ready says how many queued packets (at most limit) may go now, or how long
// to wait until the next one may when a backlog is being replayed. With
// none queued it arms the wake-up. Called with s.mu held.
func (s *Subscription) ready(limit int) (n int, wait time.Duration) {
	if s.n == 0 {
		s.armed = true
		return 0, 0
	}
	n = min(s.n, limit)
	if !s.replay {
		return n, 0
	}
	now := s.stream.hub.now()
	head := s.ring[s.head].p.Arrival
	if now-head <= int64(catchUpLag) {
		s.replay, s.catching = false, false
		return n, 0
	}
	if !s.catching {
		s.catching, s.catchStart, s.catchBase = true, now, head
	}
	// Replay position: arrivals up to here may go.
	upTo := s.catchBase + (now-s.catchStart)*catchUpSpeed
	for i := range n {
		a := s.ring[(s.head+i)%len(s.ring)].p.Arrival
		if a > upTo {
			if i == 0 {
				due := s.catchStart + (a-s.catchBase)/catchUpSpeed
				return 0, time.Duration(max(due-now, 1))
			}
			return i, 0
		}
	}
	return n, 0
}

// rewrite maps the publisher's sequence numbers and timestamps into this
// subscriber's continuous space. Within a run offsets stay fixed, so the
// publisher's own gaps (losses the viewer may NACK) are kept; a new run
// (first packet, resume after drops, new publisher) continues right after
// the last packet sent. Timestamps keep the publisher's own spacing while
// the publication lasts, which keeps audio and video in sync across drops;
// a new publisher's timestamps continue from the last ones sent, advanced
// by the wall-clock time in between.
func (st *subTrack) rewrite(e entry, o *Out) {
	p := e.p
	if !st.started {
		st.started, st.epoch = true, p.epoch
		st.seqOff, st.tsOff = 0, 0
		st.lastSeq, st.lastTS, st.lastArrival = p.Seq-1, p.Timestamp, p.Arrival
	} else if e.resync {
		st.seqOff = st.lastSeq + 1 - p.Seq
		if p.epoch != st.epoch {
			st.epoch = p.epoch
			// In microseconds first, so that a gap of days cannot overflow.
			gap := (p.Arrival - st.lastArrival) / int64(time.Microsecond) * st.clockRate / int64(time.Second/time.Microsecond)
			gap = max(gap, 1)
			st.tsOff = st.lastTS + uint32(gap) - p.Timestamp
		}
	}
	seq := p.Seq + st.seqOff
	ts := p.Timestamp + st.tsOff
	if int16(seq-st.lastSeq) > 0 {
		st.lastSeq = seq
	}
	if int32(ts-st.lastTS) >= 0 {
		st.lastTS, st.lastArrival = ts, p.Arrival
	}
	*o = Out{Track: int(e.track), Seq: seq, Timestamp: ts, Marker: p.Marker, KeyStart: p.KeyStart, Payload: p.Payload, Arrival: p.Arrival}
}

// RequestKeyframe asks the publisher for a keyframe on subscribed track i
// (a viewer's PLI or FIR). Requests are merged and rate-limited.
func (s *Subscription) RequestKeyframe(i int) {
	if i < 0 || i >= len(s.tracks) {
		return
	}
	t := s.tracks[i].t
	t.mu.Lock()
	t.requestKeyframeLocked(s.stream.hub.now())
	t.mu.Unlock()
}

// Done is closed when the subscription ends; Err says why.
func (s *Subscription) Done() <-chan struct{} { return s.life.done }

// Err is why the subscription ended, or nil while it is live.
func (s *Subscription) Err() error { return s.life.why() }

func (s *Subscription) finish(err error) {
	s.ended.Store(true)
	s.life.end(err)
}

// Close detaches the subscriber. It is idempotent.
func (s *Subscription) Close() error {
	s.finish(ErrClosed)
	s.closeOnce.Do(func() {
		s.wakeTimer.Stop()
		s.stream.unsubscribe(s)
		s.mu.Lock()
		clear(s.ring)
		s.n = 0
		s.mu.Unlock()
	})
	return nil
}
