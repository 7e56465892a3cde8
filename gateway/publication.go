package gateway

import (
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// Publication is one publisher's hold on a stream.
type Publication struct {
	stream *Stream
	id     uint64
	opt    PublishOptions
	since  time.Time
	tracks []*track
	keyReq chan int

	lastWrite atomic.Int64
	life      ending
}

// ID identifies the publication within the hub.
func (p *Publication) ID() uint64 { return p.id }

// Stream is the stream published to.
func (p *Publication) Stream() *Stream { return p.stream }

// WriteRTP publishes one packet on track i (an index into the tracks given
// to Publish). It never blocks and does not keep pkt: the payload is copied,
// so the caller may reuse its buffer at once.
func (p *Publication) WriteRTP(i int, pkt *rtp.Packet) {
	if i < 0 || i >= len(p.tracks) {
		return
	}
	now := p.stream.hub.now()
	p.lastWrite.Store(now)
	p.tracks[i].write(p, pkt, now)
}

// RequestKeyframe asks for a keyframe on track i on the publisher's own
// behalf (its transport lost packets for good), merged and rate-limited
// with the subscribers' requests: it arrives on KeyframeRequests.
func (p *Publication) RequestKeyframe(i int) {
	if i < 0 || i >= len(p.tracks) {
		return
	}
	t := p.tracks[i]
	t.mu.Lock()
	if t.owner == p {
		t.requestKeyframeLocked(p.stream.hub.now())
	}
	t.mu.Unlock()
}

// Repair is what a publisher's transport did to repair one track since it
// last reported: sequence numbers asked for again (NACK), packets that
// came back through RTX, packets lost for good.
type Repair struct {
	NACKed, Recovered, Lost uint64
}

// AddRepair adds r to track i's counters, which outlive the publication
// like the track's other counters.
func (p *Publication) AddRepair(i int, r Repair) {
	if i < 0 || i >= len(p.tracks) {
		return
	}
	t := p.tracks[i]
	t.mu.Lock()
	t.repair.NACKed += r.NACKed
	t.repair.Recovered += r.Recovered
	t.repair.Lost += r.Lost
	t.mu.Unlock()
}

// KeyframeRequests delivers the index of a track whose subscribers need a
// keyframe. Requests are merged and rate-limited; a publisher turns them into
// PLI/FIR or an encoder command, and may ignore them.
func (p *Publication) KeyframeRequests() <-chan int { return p.keyReq }

// Done is closed when the publication ends: closed, replaced by a newer
// publisher, or the hub closed. Err then says which.
func (p *Publication) Done() <-chan struct{} { return p.life.done }

// Err is why the publication ended, or nil while it is live.
func (p *Publication) Err() error { return p.life.why() }

func (p *Publication) end(err error) { p.life.end(err) }

// Close detaches the publisher. The stream and its subscribers stay until
// the stream has neither publisher nor subscribers (or for good, if pinned).
// Close is idempotent.
func (p *Publication) Close() error {
	p.end(ErrClosed)
	p.stream.unpublish(p)
	return nil
}
