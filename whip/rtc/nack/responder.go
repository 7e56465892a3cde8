package nack

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// Re-sends are limited per stream (SSRC), so that a receiver asking
// again and again, or for the whole history at once, costs a bounded
// share of the link:
//   - a packet re-sent is not re-sent again within the resend interval:
//     the round trip to the receiver once known (SetRTT), as libwebrtc's
//     packet history and mediasoup do, since a request that arrives
//     sooner was sent before the re-send could have reached it; a
//     receiver asks again a round trip after it asked (libwebrtc's
//     NackRequester), so a longer interval would drop the request that
//     repairs a lost re-send;
//   - re-sent bytes stay within a budget, a share of the bytes the
//     stream sent over the last second; NACKed packets past it are
//     skipped;
//   - a packet sent MaxAge or longer ago is forgotten, however large the
//     history: it is no use to a receiver any more, and its payload is
//     released (a large history on a slow stream would otherwise hold
//     many seconds of the hub's chunks).
const (
	// DefaultResendInterval is ResendInterval's default: twice the
	// 50 ms a round trip within a region takes.
	DefaultResendInterval = 100 * time.Millisecond
	// MinResendInterval is the resend interval however short the round
	// trip: half of the 20 ms at which receivers look for what to ask
	// again (libwebrtc's kProcessIntervalMs), so that a request one look
	// later is answered and one from the same look is not.
	MinResendInterval = 10 * time.Millisecond
	// KeyframeGap is how long after asking for a keyframe for a stream
	// (OnHopeless) the responder leaves its further hopeless requests
	// alone: the keyframe asked for is on its way. The hub's own limit
	// per layer (hub.keyframe_interval) is as long by default.
	KeyframeGap = 500 * time.Millisecond
	// DefaultResendBudget is ResendBudget's default, in percent. Chrome
	// and pion ask for what did not arrive; at 15 % re-sent a link that
	// loses that much is too poor to hold the stream anyway.
	DefaultResendBudget = 15
	// MaxAge is how long a sent packet is kept for re-sending at most, as
	// mediasoup keeps video (MaxRetransmissionDelayForVideoMs): a frame
	// repaired later than that has long been skipped by the receiver.
	MaxAge = 2 * time.Second
)

// The budget's window: the bytes a stream sent and re-sent over the last
// second, in slots of 100 ms. The sender's path looks at the clock every
// clockEvery packets only (a NACK always does), so sent bytes may count
// in a slot up to clockEvery packets late, never early.
const (
	windowSlots = 10
	windowSlot  = 100 * time.Millisecond
	clockEvery  = 16
)

// ResponderFactory builds Responders: pion's NACK responder without the
// copy, with re-sends limited per stream. pion copies every sent packet
// into a pooled 1460-byte buffer (about 6 MB per viewer at 4096 packets,
// and a memcpy per packet); ours keeps a reference to the payload, which
// the hub shares read-only among all viewers and never changes, so
// history costs tens of bytes a packet.
//
// The contract: a payload handed to a sender on an API with this responder
// must not change afterwards (Forward's and the Pacer's payloads are the
// hub's, cut from chunks that are never reused). Senders that reuse
// payload buffers set rtc.APIOptions.PionNACK.
//
// Like the GeneratorFactory, it finds a PeerConnection's Responder again
// by the PeerConnection's ID (For), so that a session can read its stats
// and tell it the round trip; so do the factories of other sizes made
// from it (WithSize).
type ResponderFactory struct {
	size     uint16 // power of two
	log      *slog.Logger
	interval time.Duration
	budget   int64 // percent
	// reg is the Responders of the factory and of those made from it.
	reg *pcRegistry[*Responder]
}

// ResponderOption configures a ResponderFactory.
type ResponderOption func(*ResponderFactory)

// ResendInterval is how long after re-sending a packet the responder
// ignores further requests for it until the round trip is known, and at
// most after (see Responder.SetRTT). Default DefaultResendInterval; zero
// or negative means the default.
func ResendInterval(d time.Duration) ResponderOption {
	return func(f *ResponderFactory) {
		if d > 0 {
			f.interval = d
		}
	}
}

// ResendBudget bounds each stream's re-sent bytes to percent of the bytes
// it sent over the last second (over 100 allows more re-sent than sent).
// Default DefaultResendBudget; zero or negative means the default.
func ResendBudget(percent int) ResponderOption {
	return func(f *ResponderFactory) {
		if percent > 0 {
			f.budget = int64(percent)
		}
	}
}

// NewResponderFactory keeps size packets per sender (a power of two).
func NewResponderFactory(size uint16, log *slog.Logger, opts ...ResponderOption) *ResponderFactory {
	f := &ResponderFactory{size: size, log: log, interval: DefaultResendInterval, budget: DefaultResendBudget,
		reg: &pcRegistry[*Responder]{}}
	for _, o := range opts {
		o(f)
	}
	return f
}

// WithSize is a factory like f that keeps size packets per sender, and
// whose Responders f's For finds too.
func (f *ResponderFactory) WithSize(size uint16) *ResponderFactory {
	g := *f
	g.size = size
	return &g
}

func (f *ResponderFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	if f.size == 0 || f.size&(f.size-1) != 0 {
		return nil, fmt.Errorf("nack: history %d is not a power of two", f.size)
	}
	r := &Responder{factory: f, id: id, epoch: time.Now(), streams: map[uint32]*nackStream{}}
	f.reg.add(id, r) // two PeerConnections that share an ID are neither found
	return r, nil
}

// For returns the Responder of the PeerConnection with the given ID
// (webrtc.PeerConnection.ID); nil when it has none (an API with pion's
// responder, a closed PeerConnection) or when two PeerConnections shared
// the ID.
func (f *ResponderFactory) For(id string) *Responder {
	if f == nil {
		return nil
	}
	return f.reg.find(id)
}

// Responder is one PeerConnection's NACK responder: it keeps each local
// stream's recent packets and re-sends those a receiver NACKs, on the RTX
// stream when one is negotiated, within each stream's limits.
type Responder struct {
	interceptor.NoOp
	factory *ResponderFactory
	id      string
	epoch   time.Time // the streams' clock starts here

	mu       sync.Mutex
	streams  map[uint32]*nackStream
	hopeless func(ssrc uint32)

	rtt atomic.Int64 // nanoseconds; 0: not known

	resent, resentBytes, duplicate, overBudget, unavailable, keyframes atomic.Uint64
}

// ResponderStats counts what a Responder did with the packets receivers
// asked for, over all its streams.
type ResponderStats struct {
	// Resent packets, and their bytes (payload, with RTX's 2 bytes).
	Resent      uint64 `json:"resent"`
	ResentBytes uint64 `json:"resent_bytes"`
	// Duplicate counts requests for a packet re-sent less than the
	// resend interval before: not re-sent again.
	Duplicate uint64 `json:"duplicate"`
	// OverBudget counts requests skipped because the stream's re-sent
	// bytes had reached its budget.
	OverBudget uint64 `json:"over_budget"`
	// Unavailable counts requests for packets no longer (or never) in
	// the history.
	Unavailable uint64 `json:"unavailable"`
	// KeyframeRequests counts the keyframes asked for (OnHopeless)
	// because requests were unavailable or over budget.
	KeyframeRequests uint64 `json:"keyframe_requests"`
}

// Stats returns the counters; nil has none.
func (r *Responder) Stats() ResponderStats {
	if r == nil {
		return ResponderStats{}
	}
	return ResponderStats{
		Resent: r.resent.Load(), ResentBytes: r.resentBytes.Load(), Duplicate: r.duplicate.Load(),
		OverBudget: r.overBudget.Load(), Unavailable: r.unavailable.Load(), KeyframeRequests: r.keyframes.Load(),
	}
}

// Add is the sum of two Responders' figures.
func (s ResponderStats) Add(o ResponderStats) ResponderStats {
	return ResponderStats{
		Resent: s.Resent + o.Resent, ResentBytes: s.ResentBytes + o.ResentBytes, Duplicate: s.Duplicate + o.Duplicate,
		OverBudget: s.OverBudget + o.OverBudget, Unavailable: s.Unavailable + o.Unavailable,
		KeyframeRequests: s.KeyframeRequests + o.KeyframeRequests,
	}
}

// SetRTT sets the round trip to the receiver, as last measured: the
// resend interval becomes rtt, within MinResendInterval and the
// factory's ResendInterval. Zero or negative: unknown, the factory's.
// Nil does nothing.
func (r *Responder) SetRTT(rtt time.Duration) {
	if r != nil {
		r.rtt.Store(int64(max(rtt, 0)))
	}
}

// Interval is the resend interval now in force (see SetRTT); the
// default for nil.
func (r *Responder) Interval() time.Duration {
	if r == nil {
		return DefaultResendInterval
	}
	ceiling := r.factory.interval
	if rtt := time.Duration(r.rtt.Load()); rtt > 0 {
		return min(max(rtt, MinResendInterval), ceiling)
	}
	return ceiling
}

// OnHopeless has f called with the SSRC of a stream a receiver asked for
// packets that cannot be re-sent, no longer held or over the budget: the
// frames they belong to are lost, and the receiver needs a keyframe,
// which the caller asks for. At most once per KeyframeGap per stream,
// each call counted (KeyframeRequests); on the RTCP reader's goroutine,
// so f must not block. Nil does nothing.
func (r *Responder) OnHopeless(f func(ssrc uint32)) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.hopeless = f
	r.mu.Unlock()
}

// clock is the time on the Responder's clock.
func (r *Responder) clock() time.Duration { return time.Since(r.epoch) }

// nackEntry is one sent packet: its header fields and shared references to
// its payload and header extensions (mid and rid for simulcast).
type nackEntry struct {
	payload  []byte
	exts     []rtp.Extension
	ts       uint32
	resentAt uint32 // on the Responder's clock, in milliseconds (wraps after 49 days)
	profile  uint16 // header extension profile, 0 without extensions
	seq      uint16
	marker   bool
	ok       bool
	resent   bool // resentAt is set
}

type nackStream struct {
	r      *Responder
	writer interceptor.RTPWriter
	ssrc   uint32
	pt     uint8
	rtx    uint32 // RTX SSRC, 0 without RTX
	rtxPT  uint8
	twccID uint8 // transport-cc extension ID, 0 if not negotiated
	ridID  uint8 // rtp-stream-id (rid) and repaired-rtp-stream-id extension
	rridID uint8 // IDs, 0 if not negotiated: an RTX re-send trades one for the other

	mu      sync.Mutex
	ring    []nackEntry
	highest uint16
	tail    uint16 // the oldest sequence number that may still be held
	started bool
	rtxSeq  uint16
	askedAt uint32          // when OnHopeless was last called for the stream, ms
	asked   bool            // askedAt is set
	scratch []byte          // RTX payload: original sequence number + payload
	extBuf  []rtp.Extension // a re-send's extensions
	win     byteWindow
	unclock int   // packets added since the window last looked at the clock
	pending int64 // and their bytes, not in the window yet
	marks   marks
}

// marks are the highest sequence number sent at ticks at least windowSlot
// apart, oldest first: every packet up to a mark's was sent by its time,
// so once that is MaxAge ago they may all go. A packet is forgotten no
// sooner than MaxAge after it was sent; on a stream of at least
// clockEvery packets per windowSlot (1.6 ms at 100 Mbps, 30 ms at 5 Mbps),
// within another windowSlot or two.
type marks struct {
	at    [32]uint32 // milliseconds; 32 slots outlast MaxAge / windowSlot
	seq   [32]uint16
	first int
	n     int
}

func (m *marks) push(ms uint32, seq uint16) {
	if m.n > 0 && ms-m.at[(m.first+m.n-1)%len(m.at)] < uint32(windowSlot/time.Millisecond) {
		return
	}
	if m.n == len(m.at) { // cannot happen: MaxAge is far shorter
		m.first, m.n = (m.first+1)%len(m.at), m.n-1
	}
	i := (m.first + m.n) % len(m.at)
	m.at[i], m.seq[i] = ms, seq
	m.n++
}

// expired pops the oldest mark if it is MaxAge old at ms.
func (m *marks) expired(ms uint32) (seq uint16, ok bool) {
	if m.n == 0 || ms-m.at[m.first] < maxAgeMS {
		return 0, false
	}
	seq = m.seq[m.first]
	m.first, m.n = (m.first+1)%len(m.at), m.n-1
	return seq, true
}

// byteWindow is a stream's sent and re-sent bytes over the last second,
// in windowSlots slots.
type byteWindow struct {
	slot   int64 // the current slot, on the Responder's clock
	sent   [windowSlots]int64
	resent [windowSlots]int64
}

// advance moves the window on to slot, emptying the slots it passes.
func (w *byteWindow) advance(slot int64) {
	if slot <= w.slot {
		return
	}
	for i := w.slot + 1; i <= slot && i <= w.slot+windowSlots; i++ {
		w.sent[i%windowSlots], w.resent[i%windowSlots] = 0, 0
	}
	w.slot = slot
}

func (w *byteWindow) totals() (sent, resent int64) {
	for i := range windowSlots {
		sent += w.sent[i]
		resent += w.resent[i]
	}
	return sent, resent
}

func slotAt(t time.Duration) int64 { return int64(t / windowSlot) }

func nackNegotiated(info *interceptor.StreamInfo) bool {
	for _, fb := range info.RTCPFeedback {
		if fb.Type == "nack" && fb.Parameter == "" {
			return true
		}
	}
	return false
}

// BindLocalStream records every packet of the stream's own SSRC.
func (r *Responder) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	if !nackNegotiated(info) {
		return writer
	}
	s := &nackStream{r: r, writer: writer, ssrc: info.SSRC, pt: info.PayloadType, ring: make([]nackEntry, r.factory.size)}
	s.win.slot = slotAt(r.clock())
	if info.SSRCRetransmission != 0 && info.PayloadTypeRetransmission != 0 {
		s.rtx, s.rtxPT = info.SSRCRetransmission, info.PayloadTypeRetransmission
		var b [2]byte
		_, _ = rand.Read(b[:])
		s.rtxSeq = binary.BigEndian.Uint16(b[:])
	}
	for _, e := range info.RTPHeaderExtensions {
		if e.ID <= 0 || e.ID >= 256 {
			continue
		}
		switch e.URI {
		case sdp.TransportCCURI:
			s.twccID = uint8(e.ID)
		case sdp.SDESRTPStreamIDURI:
			s.ridID = uint8(e.ID)
		case sdp.SDESRepairRTPStreamIDURI:
			s.rridID = uint8(e.ID)
		}
	}
	r.mu.Lock()
	r.streams[info.SSRC] = s
	r.mu.Unlock()
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if h.SSRC == s.ssrc {
			s.add(h, payload)
		}
		return writer.Write(h, payload, a)
	})
}

func (s *nackStream) add(h *rtp.Header, payload []byte) {
	e := nackEntry{payload: payload, ts: h.Timestamp, seq: h.SequenceNumber, marker: h.Marker, ok: true}
	if h.Extension && (h.ExtensionProfile == rtp.ExtensionProfileOneByte || h.ExtensionProfile == rtp.ExtensionProfileTwoByte) {
		e.exts, e.profile = h.Extensions, h.ExtensionProfile
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending += int64(len(payload))
	if s.unclock++; s.unclock >= clockEvery {
		s.tickLocked(s.r.clock())
	}
	size := uint16(len(s.ring))
	seq := h.SequenceNumber
	if s.started {
		diff := seq - s.highest
		if diff == 0 || diff >= 1<<15 {
			// A duplicate or a late packet: the latest write of a sequence
			// number is what a NACK should get, unless it is older than
			// what the history still holds.
			if s.highest-seq < size && seq-s.tail < 1<<15 {
				s.ring[seq%size] = e
			}
			return
		}
		// Forget the skipped sequence numbers, and drop their references,
		// so a NACK never finds a packet a lap older.
		for i, k := s.highest+1, 0; i != seq && k < int(size); i, k = i+1, k+1 {
			s.ring[i%size] = nackEntry{}
		}
	}
	if !s.started {
		s.tail = seq
	}
	s.started, s.highest = true, seq
	s.ring[seq%size] = e
}

// tickLocked moves the window on to now, counts the bytes sent since the
// last tick in the current slot, and forgets the packets sent MaxAge or
// longer ago.
func (s *nackStream) tickLocked(now time.Duration) {
	s.win.advance(slotAt(now))
	s.win.sent[s.win.slot%windowSlots] += s.pending
	s.pending, s.unclock = 0, 0
	if !s.started {
		return
	}
	ms := millis(now)
	s.marks.push(ms, s.highest)
	for {
		seq, ok := s.marks.expired(ms)
		if !ok {
			return
		}
		s.forgetLocked(seq)
	}
}

// forgetLocked moves the tail past seq, dropping the references of the
// packets it passes; each sequence number is passed once.
func (s *nackStream) forgetLocked(seq uint16) {
	size := uint16(len(s.ring))
	if held := s.highest - s.tail + 1; held > size { // 0: all forgotten
		s.tail = s.highest - size + 1 // the ring has moved on past them
	}
	if seq-s.tail >= s.highest-s.tail+1 {
		return // at or behind the tail already
	}
	for ; s.tail != seq+1; s.tail++ {
		if e := &s.ring[s.tail%size]; e.seq == s.tail {
			*e = nackEntry{}
		}
	}
}

const maxAgeMS = uint32(MaxAge / time.Millisecond)

func millis(d time.Duration) uint32 { return uint32(d / time.Millisecond) }

// skippedLocked says whether seq lies between the oldest packet the
// history may still hold and the newest sent: one not held there was
// never sent (the ring forgets only from the tail, and clears what the
// stream skips).
func (s *nackStream) skippedLocked(seq uint16) bool {
	return s.started && s.highest-seq < uint16(len(s.ring)) && seq-s.tail < 1<<15
}

// get returns the entry with sequence number seq, if still held.
func (s *nackStream) get(seq uint16) (*nackEntry, bool) {
	size := uint16(len(s.ring))
	if !s.started || s.highest-seq >= size || seq-s.tail >= 1<<15 {
		return nil, false
	}
	e := &s.ring[seq%size]
	return e, e.ok && e.seq == seq
}

// BindRTCPReader answers NACKs as the RTCP passes by. It re-sends in the
// reader's goroutine (the sender's RTCP loop): pion starts a goroutine per
// NACK, which nothing waits for.
func (r *Responder) BindRTCPReader(reader interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		i, attr, err := reader.Read(b, a)
		if err != nil {
			return 0, nil, err
		}
		if attr == nil {
			attr = make(interceptor.Attributes)
		}
		pkts, err := attr.GetRTCPPackets(b[:i])
		if err != nil {
			return 0, nil, err
		}
		for _, p := range pkts {
			if nack, ok := p.(*rtcp.TransportLayerNack); ok {
				r.resend(nack)
			}
		}
		return i, attr, nil
	})
}

func (r *Responder) resend(nack *rtcp.TransportLayerNack) {
	r.mu.Lock()
	s := r.streams[nack.MediaSSRC]
	hopeless := r.hopeless
	r.mu.Unlock()
	if s == nil {
		return
	}
	now := r.clock()
	s.mu.Lock()
	s.tickLocked(now)
	sent, resent := s.win.totals()
	s.mu.Unlock()
	b := resendBatch{
		nowMS:      millis(now),
		intervalMS: millis(r.Interval()),
		allowance:  sent*r.factory.budget/100 - resent,
	}
	for _, pair := range nack.Nacks {
		pair.Range(func(seq uint16) bool {
			// Locked per packet, so the sender's writes go on in between.
			s.mu.Lock()
			err := s.resendLocked(seq, &b)
			s.mu.Unlock()
			if err != nil {
				r.factory.log.Debug("nack: re-send failed", "ssrc", s.ssrc, "seq", seq, "err", err)
			}
			return true
		})
	}
	if b.hopeless && hopeless != nil && s.askKeyframe(b.nowMS) {
		r.keyframes.Add(1)
		hopeless(s.ssrc)
	}
}

// askKeyframe reports whether a hopeless request at nowMS asks for a
// keyframe: not within KeyframeGap of the stream's last.
func (s *nackStream) askKeyframe(nowMS uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.asked && nowMS-s.askedAt < uint32(KeyframeGap/time.Millisecond) {
		return false
	}
	s.asked, s.askedAt = true, nowMS
	return true
}

// resendBatch is the state of one NACK's re-sends.
type resendBatch struct {
	nowMS, intervalMS uint32
	allowance         int64 // bytes the budget still allows
	hopeless          bool  // a packet asked for is unavailable or over budget
}

// resendLocked writes one packet again, unless it was re-sent within the
// interval or the budget is spent. s.mu is held across the write so the
// RTX sequence numbers leave in order and the scratch buffers are ours.
// The window may have moved on a slot since the batch began; the bytes
// count in the current one.
func (s *nackStream) resendLocked(seq uint16, b *resendBatch) error {
	r := s.r
	e, ok := s.get(seq)
	if !ok {
		r.unavailable.Add(1)
		// Too old: its frame needs a keyframe. A packet the stream
		// skipped is not hopeless: it never reached us (the publisher's
		// loss), and the ingest's repair, still under way, sends it on
		// when it comes, or asks for a keyframe itself (Ingest.OnLost).
		// At 5 % loss from the publisher a viewer's NACK often comes
		// first: counted hopeless, it asked for a keyframe every
		// KeyframeGap.
		b.hopeless = b.hopeless || !s.skippedLocked(seq)
		return nil
	}
	if e.resent && b.nowMS-e.resentAt < b.intervalMS {
		r.duplicate.Add(1)
		return nil
	}
	n := len(e.payload)
	if s.rtx != 0 {
		n += 2
	}
	if int64(n) > b.allowance {
		r.overBudget.Add(1)
		b.hopeless = true
		return nil
	}
	b.allowance -= int64(n)
	s.win.resent[s.win.slot%windowSlots] += int64(n)
	e.resent, e.resentAt = true, b.nowMS
	r.resent.Add(1)
	r.resentBytes.Add(uint64(n))

	h := rtp.Header{Version: 2, PayloadType: s.pt, SSRC: s.ssrc, SequenceNumber: e.seq, Timestamp: e.ts, Marker: e.marker}
	// The transport-wide sequence number stays behind: repeating it would
	// make the bandwidth estimator count one packet twice.
	if len(e.exts) > 0 {
		// A copy: the references are shared with whoever wrote the packet.
		s.extBuf = append(s.extBuf[:0], e.exts...)
		h.Extension, h.ExtensionProfile, h.Extensions = true, e.profile, s.extBuf
		if s.twccID != 0 {
			_ = h.DelExtension(s.twccID) // absent is fine
		}
		if len(h.Extensions) == 0 {
			h.Extension, h.ExtensionProfile, h.Extensions = false, 0, nil
		}
	}
	payload := e.payload
	if s.rtx != 0 {
		// RFC 4588: the original sequence number, then the payload.
		s.scratch = binary.BigEndian.AppendUint16(s.scratch[:0], e.seq)
		s.scratch = append(s.scratch, e.payload...)
		payload = s.scratch
		h.PayloadType, h.SSRC, h.SequenceNumber = s.rtxPT, s.rtx, s.rtxSeq
		s.rtxSeq++
		s.repairRID(&h)
	}
	_, err := s.writer.Write(&h, payload, interceptor.Attributes{})
	return err
}

// repairRID has an RTX re-send of a simulcast layer name its layer in
// repaired-rtp-stream-id instead of rid (RFC 8852 §3.2): a receiver that
// sees a rid takes the RTX stream for a layer of its own (pion does: it
// then reads repairs as that layer's media), and one with the repaired
// id knows which layer's RTX it is.
func (s *nackStream) repairRID(h *rtp.Header) {
	if s.ridID == 0 {
		return
	}
	rid := h.GetExtension(s.ridID)
	if rid == nil {
		return
	}
	_ = h.DelExtension(s.ridID)
	if s.rridID != 0 {
		_ = h.SetExtension(s.rridID, rid)
	}
	if len(h.Extensions) == 0 {
		h.Extension, h.ExtensionProfile, h.Extensions = false, 0, nil
	}
}

// UnbindLocalStream forgets the stream, releasing its payload references.
func (r *Responder) UnbindLocalStream(info *interceptor.StreamInfo) {
	r.mu.Lock()
	delete(r.streams, info.SSRC)
	r.mu.Unlock()
}

// Close forgets all streams, and For no longer finds the Responder; its
// Stats stay readable. Idempotent.
func (r *Responder) Close() error {
	r.mu.Lock()
	r.streams = map[uint32]*nackStream{}
	r.mu.Unlock()
	r.factory.reg.remove(r.id, r)
	return nil
}
