package rtc

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/whip/rtc/dtlskeys"
)

// directIngest reads one WHIP publisher's SRTP beneath pion: the shared
// socket's reader decrypts each RTP packet with the session's own keys and
// queues it for the stream's interceptor chain, instead of handing it
// through pion's UDP mux, ICE connection, DTLS/SRTP mux and SRTP session,
// three goroutine hops and two copies a packet. Ingest is on every
// viewer's path: a keyframe of 1,390 packets reaches the hub only as fast
// as it is read (docs/benchmarks-history.md, profiles).
//
// Only the bottom of pion's path is replaced. directIngest's interceptor is
// innermost, so the reader pion binds for a stream reads our queue, and
// everything above it — RTCP receiver reports, TWCC feedback, the NACK
// generator, RTX repair, the track reader — runs as before. The keys come
// from the handshake as directSRTP's do (we answer as DTLS server).
//
// The rule that keeps it safe: each SSRC is read one way for the life of
// the session, decided at its first packet or at its binding, whichever
// comes first. Only SSRCs the offer declares (a=ssrc) and only while the
// selected pair is on our socket go our way: an undeclared SSRC (simulcast
// by rid) is pion's to discover, and one that pion saw first is pion's for
// good. If the path later leaves our socket (an ICE restart onto a relay),
// the PeerConnection is closed and the publisher reconnects.
//
// Packets are recognised by their source address: the selected pair's, and
// any address a packet of a declared SSRC came from that decrypted with
// the session's keys. The selected pair alone is not enough: a browser
// with two host candidates that both reach us may send its media on the
// pair it prefers while pion, the controlled side, selected the other.
type directIngest struct {
	log    *slog.Logger
	keys   dtlskeys.Secrets
	replay uint // SRTP replay window, as pion's (Config.SRTPReplayWindow)

	ours  atomic.Bool             // the selected pair is on our socket
	addrs cowList[netip.AddrPort] // where the publisher's media comes from
	// onOurs looks at the selected pair now and sets ours (and learns its
	// address) if it is on our socket, else says why not; nil until watch.
	onOurs func() (ok bool, why string)

	mu       sync.Mutex
	declared map[uint32]bool
	repairOf map[uint32]repairSSRC    // RTX SSRCs (a=ssrc-group:FID), read-only like declared
	repairs  map[uint32]*repairReader // media SSRCs whose RTX is read our way (direct_rtx.go)
	queues   map[uint32]*ingestQueue  // SSRCs read our way
	viaPion  map[uint32]bool          // SSRCs read pion's way
	ctx      *srtp.Context            // nil until the first packet or binding
	failed   bool                     // no keys or no context: pion's way for all
	hdr      rtp.Header
	scratch  []byte // decrypts what no queue takes, to verify its origin

	taken, dropped, undecryptable atomic.Uint64
}

// newDirectIngest returns a directIngest for one publisher's
// PeerConnection, to pass in APIOptions.Ingest of the API that creates it;
// Declare and Watch it once the PeerConnection exists.
func newDirectIngest(log *slog.Logger) *directIngest {
	return &directIngest{log: log, declared: map[uint32]bool{}, repairOf: map[uint32]repairSSRC{}, repairs: map[uint32]*repairReader{},
		queues: map[uint32]*ingestQueue{}, viaPion: map[uint32]bool{}}
}

// Declare notes the SSRCs an offer announces (a=ssrc lines, RTX and FEC
// included): only those may be read our way. A simulcast section's are
// left out: pion tells its layers apart by the rid on their first packets.
// It also notes which SSRC repairs which (a=ssrc-group:FID media rtx) and
// the media payload type of each RTX payload type (a=fmtp:rtx apt=media).
func (d *directIngest) declare(offer *sdp.SessionDescription) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range offer.MediaDescriptions {
		if _, ok := m.Attribute("simulcast"); ok {
			continue
		}
		if _, ok := m.Attribute("rid"); ok {
			continue
		}
		apt := map[uint8]uint8{}
		for _, a := range m.Attributes {
			switch a.Key {
			case "ssrc":
				id, _, _ := strings.Cut(a.Value, " ")
				if s, err := strconv.ParseUint(id, 10, 32); err == nil {
					d.declared[uint32(s)] = true
				}
			case "fmtp":
				if rtx, media, ok := parseAPT(a.Value); ok {
					apt[rtx] = media
				}
			}
		}
		for _, a := range m.Attributes {
			if a.Key != "ssrc-group" {
				continue
			}
			// RFC 5576: FID lists the media SSRC, then its repair SSRC.
			f := strings.Fields(a.Value)
			if len(f) != 3 || f[0] != "FID" {
				continue
			}
			media, err1 := strconv.ParseUint(f[1], 10, 32)
			rtx, err2 := strconv.ParseUint(f[2], 10, 32)
			if err1 == nil && err2 == nil && media != rtx {
				d.repairOf[uint32(rtx)] = repairSSRC{media: uint32(media), apt: apt}
			}
		}
	}
}

// parseAPT reads an RTX format's parameters, "97 apt=96" (RFC 4588, 8.6):
// the RTX payload type and the media payload type it repairs.
func parseAPT(fmtp string) (rtx, media uint8, ok bool) {
	pt, params, _ := strings.Cut(fmtp, " ")
	r, err := strconv.ParseUint(pt, 10, 7)
	if err != nil {
		return 0, 0, false
	}
	for p := range strings.SplitSeq(params, ";") {
		if v, found := strings.CutPrefix(strings.TrimSpace(p), "apt="); found {
			if m, err := strconv.ParseUint(v, 10, 7); err == nil {
				return uint8(r), uint8(m), true
			}
		}
	}
	return 0, 0, false
}

// Watch follows pc's selected pair and puts d in r's table: from then on
// the shared socket's reader offers d the publisher's RTP. Call it after
// Declare and before pc connects.
func (d *directIngest) watch(r *Transport, pc *webrtc.PeerConnection) error {
	sctp := pc.SCTP()
	if sctp == nil {
		return errors.New("whip: direct ingest: no transport")
	}
	d.onOurs = func() (bool, string) {
		route, why := r.conns.directRoute(pc)
		if route == nil {
			return false, why
		}
		d.learn(route.remote)
		d.ours.Store(true)
		return true, ""
	}
	sctp.Transport().ICETransport().OnSelectedCandidatePairChange(func(*webrtc.ICECandidatePair) {
		if ok, why := d.onOurs(); !ok {
			d.ours.Store(false)
			if d.isActive() {
				d.log.Warn("publisher's media path left the shared UDP port; closing the session so it reconnects", "why", why)
				go func() { _ = pc.Close() }() // not from inside pion's callback
			}
		}
	})
	r.ingest.add(d)
	return nil
}

// Unwatch stops reading for the publisher; its queues end. Nil-safe.
func (d *directIngest) unwatch(r *Transport) {
	if d == nil {
		return
	}
	r.ingest.remove(d)
	d.close()
	if taken, dropped, bad := d.stats(); taken+dropped+bad > 0 {
		d.log.Info("publisher's media was read beneath pion", "packets", taken, "dropped", dropped, "undecryptable", bad)
	}
}

// Active reports whether any of the publisher's SSRCs is read our way.
func (d *directIngest) isActive() bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.queues) > 0
}

// Stats returns the packets read our way, those dropped at a full or
// closed queue, and those that did not decrypt.
func (d *directIngest) stats() (taken, dropped, undecryptable uint64) {
	if d == nil {
		return 0, 0, 0
	}
	return d.taken.Load(), d.dropped.Load(), d.undecryptable.Load()
}

// readyLocked says whether a new SSRC may be read our way now: the pair is
// on our socket and the keys make a context.
func (d *directIngest) readyLocked() bool {
	if d.failed {
		return false
	}
	// pion tells of a selected pair from a goroutine of its own, and a
	// publisher's first media can come before: it did, for 1 in 25
	// publishers whose offer had no candidates (as OBS's) on a loaded
	// machine, and the session was read through pion for its life. So
	// until told, look at the pair itself.
	if !d.ours.Load() {
		if d.onOurs == nil {
			return false
		}
		if ok, _ := d.onOurs(); !ok {
			return false
		}
	}
	if d.ctx != nil {
		return true
	}
	ctx, err := d.keys.Context(false, srtp.SRTPReplayDetectorFactory(ringReplayFactory(d.replay)))
	if err != nil {
		d.failed = true
		d.log.Warn("reading the publisher's media through pion", "why", err)
		return false
	}
	d.ctx = ctx
	return true
}

// queueLocked is ssrc's queue when ssrc is (or now becomes) ours, nil when
// it is pion's.
func (d *directIngest) queueLocked(ssrc uint32) *ingestQueue {
	if q := d.queues[ssrc]; q != nil {
		return q
	}
	if d.viaPion[ssrc] || !d.declared[ssrc] || !d.readyLocked() {
		d.viaPion[ssrc] = true
		return nil
	}
	q := newIngestQueue()
	d.queues[ssrc] = q
	return q
}

// knows says whether the publisher's media has come from addr.
func (d *directIngest) knows(addr netip.AddrPort) bool {
	for _, a := range d.addrs.load() {
		if a == addr {
			return true
		}
	}
	return false
}

// learn adds addr to where the publisher's media comes from.
func (d *directIngest) learn(addr netip.AddrPort) {
	if !d.knows(addr) {
		d.addrs.add(addr)
	}
}

// auth is what the socket reader learnt of a datagram's origin, for the
// read gate: only the publisher's own packets may hold the socket.
type auth uint8

const (
	authUnknown auth = iota // not checked (no keys yet, not RTP, or no publisher of ours)
	authOK                  // decrypted with the publisher's keys
	authBad                 // did not decrypt: not the publisher's, or a replay
)

// take reads one RTP datagram from the publisher: taken when its SSRC is
// read our way (queued, or dropped), else it is handed to pion. From an
// address not yet known (known false) only a packet that decrypts is
// taken, and its address learnt. A packet handed to pion is checked with
// the session's keys all the same (a decryption into scratch), so that the
// read gate counts only what authenticates.
func (d *directIngest) take(b []byte, from netip.AddrPort, known bool) (bool, auth) {
	ssrc := binary.BigEndian.Uint32(b[8:12])
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.queueLocked(ssrc)
	if q == nil {
		return false, d.verifyLocked(b)
	}
	err := q.push(len(b), func(dst []byte) ([]byte, error) { return d.ctx.DecryptRTP(dst, b, &d.hdr) })
	if errors.Is(err, errQueueFull) || errors.Is(err, io.ErrClosedPipe) {
		// Not pushed, so not decrypted: it is the publisher's (an address
		// to learn, a packet the read gate counts) only if it decrypts. A
		// known address proves nothing: a source address is easy to forge.
		if out, derr := d.ctx.DecryptRTP(d.scratch[:0], b, &d.hdr); derr != nil {
			err = derr
		} else {
			d.scratch = out
		}
	}
	switch {
	case err == nil:
		d.taken.Add(1)
	case errors.Is(err, errQueueFull), errors.Is(err, io.ErrClosedPipe):
		d.dropped.Add(1)
	case !known:
		return false, authBad // not the publisher's: pion's to judge
	default:
		d.undecryptable.Add(1) // pion drops these too: failed auth, a replay
		return true, authBad
	}
	if !known {
		d.learn(from)
	}
	return true, authOK
}

// verifyLocked checks a packet pion will read with the session's keys, if
// they are known: the packet itself is left as it is.
func (d *directIngest) verifyLocked(b []byte) auth {
	if d.ctx == nil && !d.readyLocked() {
		return authUnknown
	}
	var err error
	if d.scratch, err = d.ctx.DecryptRTP(d.scratch[:0], b, &d.hdr); err != nil {
		return authBad
	}
	return authOK
}

// bind is the reader pion gets for a stream: ssrc's queue when ssrc is
// read our way, nil for pion's own.
func (d *directIngest) bind(ssrc uint32) *ingestQueue {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queueLocked(ssrc)
}

func (d *directIngest) unbind(ssrc uint32) {
	d.mu.Lock()
	q := d.queues[ssrc]
	d.mu.Unlock()
	if q != nil {
		q.close() // later packets of ssrc are dropped, not handed to pion
	}
}

func (d *directIngest) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, q := range d.queues {
		q.close()
	}
}

// ingestQueue is one SSRC's decrypted packets between the socket reader
// and the stream's reader in pion. The read gate (readgate.go) keeps a
// publisher's packets in flight under ingestWindow, so it rarely holds
// more than a few hundred; its slots are allocated as it first grows.
type ingestQueue struct {
	mu     sync.Mutex
	slots  [][]byte // ring of packet buffers, each reused
	head   int
	n      int
	closed bool
	wake   chan struct{} // a reader waits
	notify chan struct{} // woken too: the reader of the media this queue repairs (link)
	done   chan struct{} // closed by close
}

const (
	ingestQueueMax  = 2048
	ingestSlotBytes = 1500
)

var errQueueFull = errors.New("whip: direct ingest: queue full")

func newIngestQueue() *ingestQueue {
	return &ingestQueue{slots: make([][]byte, 64), wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// poke wakes a reader waiting on c, if any.
func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// pending says whether Read would return at once: a packet, or the end.
func (q *ingestQueue) pending() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n > 0 || q.closed
}

// link has every push to q (an RTX stream's) also wake the reader of
// media, which reads q in turn (see repairReader).
func (q *ingestQueue) link(media *ingestQueue) {
	q.mu.Lock()
	q.notify = media.wake
	q.mu.Unlock()
	poke(media.wake) // for what q already holds
}

// push fills the next slot with fill (given a buffer of capacity ≥ size)
// and wakes the reader.
func (q *ingestQueue) push(size int, fill func(dst []byte) ([]byte, error)) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return io.ErrClosedPipe
	}
	if q.n == len(q.slots) {
		if len(q.slots) >= ingestQueueMax {
			q.mu.Unlock()
			return errQueueFull
		}
		grown := make([][]byte, 2*len(q.slots))
		for i := range q.n {
			grown[i] = q.slots[(q.head+i)%len(q.slots)]
		}
		q.slots, q.head = grown, 0
	}
	i := (q.head + q.n) % len(q.slots)
	buf := q.slots[i]
	if cap(buf) < size {
		buf = make([]byte, 0, max(size, ingestSlotBytes))
	}
	p, err := fill(buf[:0])
	if err != nil {
		q.mu.Unlock()
		return err
	}
	q.slots[i] = p
	q.n++
	notify := q.notify
	q.mu.Unlock()
	poke(q.wake)
	if notify != nil {
		poke(notify)
	}
	return nil
}

// Read is the stream's innermost RTPReader: the next packet, waiting for
// one; io.EOF once closed and empty.
func (q *ingestQueue) Read(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	q.mu.Lock()
	for q.n == 0 {
		if q.closed {
			q.mu.Unlock()
			return 0, a, io.EOF
		}
		q.mu.Unlock()
		<-q.wake
		q.mu.Lock()
	}
	p := q.slots[q.head]
	if len(b) < len(p) {
		q.mu.Unlock()
		return 0, a, io.ErrShortBuffer
	}
	n := copy(b, p)
	q.head = (q.head + 1) % len(q.slots)
	q.n--
	q.mu.Unlock()
	return n, a, nil
}

func (q *ingestQueue) close() {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.done)
	}
	notify := q.notify
	q.mu.Unlock()
	poke(q.wake)
	if notify != nil {
		poke(notify)
	}
}

// ingestTable is the transport's publishers read beneath pion, looked up by
// address for every datagram the shared socket reads.
type ingestTable struct{ cowList[*directIngest] }

// take offers an RTP datagram read from the socket to its publisher's
// directIngest, found by address or else by a declared SSRC: whether it
// was taken, and what was learnt of its origin.
func (t *ingestTable) take(b []byte, from netip.AddrPort) (bool, auth) {
	list := t.load()
	if len(list) == 0 || !IsRTP(b) {
		return false, authUnknown
	}
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	for _, d := range list {
		if d.knows(from) {
			return d.take(b, from, true)
		}
	}
	ssrc := binary.BigEndian.Uint32(b[8:12])
	for _, d := range list {
		if d.declared[ssrc] { // read-only once the directIngest is in the table
			return d.take(b, from, false)
		}
	}
	return false, authUnknown
}

// ingestInterceptor puts a directIngest innermost in an API's interceptor
// chain. It is its own factory, as repairInterceptor is: it keeps nothing
// per PeerConnection.
type ingestInterceptor struct {
	interceptor.NoOp
	d *directIngest
}

func (i *ingestInterceptor) NewInterceptor(string) (interceptor.Interceptor, error) { return i, nil }

// BindRemoteStream gives the stream our queue when its SSRC is read our way.
func (i *ingestInterceptor) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	if q := i.d.bind(info.SSRC); q != nil {
		return q
	}
	return r
}

func (i *ingestInterceptor) UnbindRemoteStream(info *interceptor.StreamInfo) { i.d.unbind(info.SSRC) }

func (i *ingestInterceptor) Close() error {
	i.d.close()
	return nil
}

// OffersDTLSServer reports whether an offer insists on being the DTLS
// server (setup:passive), which rules out reading or sending beneath pion.
func OffersDTLSServer(d *sdp.SessionDescription) bool {
	if v, ok := d.Attribute("setup"); ok && v == "passive" {
		return true
	}
	for _, m := range d.MediaDescriptions {
		if v, ok := m.Attribute("setup"); ok && v == "passive" {
			return true
		}
	}
	return false
}
