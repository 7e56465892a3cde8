package rtc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// FuzzDirectIngest drives the shared socket's RTP path beneath pion
// (ingestTable.take, directIngest.take) with two publishers, each with
// fixed SRTP keys, SSRCs declared by an offer (fuzzOffer) and the address
// of its selected pair.
// Each op is 4 bytes: a kind, then arguments; kinds send a valid SRTP
// packet, a burst of them, garbage, a valid packet with a byte changed, a
// replay, from one of six addresses (each publisher's, the first's as
// IPv4-mapped IPv6, three unknown), or drain or close a queue.
// (A replay may decrypt: a publisher that did not take it first has not
// seen it.)
//
// A datagram from an address neither publisher knows is taken only if it
// decrypts with a publisher's keys, and only then is its address learnt;
// an undeclared SSRC is never taken; every datagram taken is counted once
// (taken, dropped or undecryptable) by the publisher that took it; each
// queue stays within ingestQueueMax packets; and a queue gives back
// exactly the packets counted as taken for its SSRC, decrypted, in order.
//
// Each publisher's second SSRC is the first's RTX (a=ssrc-group:FID): its
// packets wrap a media packet (RFC 4588) with headers of every shape
// (CSRCs, extensions, padding), some bandwidth probes (padding only),
// some of an RTX payload type the offer gave no apt for. Both queues are
// bound as pion binds them (bindRepair) and drained through the media
// stream's repairReader, which must give back every repair unwrapped into
// exactly the media packet it wraps (the track's payload type where the
// offer gave none, skipped before there is one), before the media queued
// with it, and no probe.
func FuzzDirectIngest(f *testing.F) {
	f.Add([]byte{0, 0, 0, 10, 0, 1, 0, 20, 4, 0, 0, 0, 0, 0, 2, 30, 2, 0, 2, 12, 3, 0, 2, 7})
	f.Add([]byte{0, 0, 3, 10, 7, 0, 2, 0, 0, 2, 5, 40, 4, 1, 0, 0})
	f.Add([]byte{5, 0, 0, 0, 2, 0, 3, 30, 3, 0, 4, 9, 0, 0, 4, 12, 4, 0, 0, 0})
	f.Add([]byte{6, 0, 0, 20, 6, 0, 0, 20, 6, 0, 0, 20, 2, 0, 5, 16, 4, 0, 0, 0})
	f.Add([]byte{0, 0, 1, 10, 0, 0, 0, 20, 0, 0, 0x21, 30, 0, 0, 0x41, 3, 0, 0, 0x81, 5, 4, 0, 0, 0, 0, 0, 0xc1, 9, 4, 0, 0, 0})
	f.Add([]byte{0, 0, 0x19, 40, 0, 0, 0x61, 0, 5, 0, 1, 0, 0, 0, 0x11, 7, 4, 0, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		rig := newIngestFuzzRig(t)
		for i := 0; i+4 <= len(ops); i += 4 {
			rig.op(t, ops[i], ops[i+1], ops[i+2], ops[i+3])
			rig.check(t)
		}
		rig.op(t, 4, 0, 0, 0)
		rig.op(t, 4, 1, 0, 0)
	})
}

// ingestFuzzPub is one publisher of the rig: its directIngest, the context
// its packets are sealed with, and what it should give back.
type ingestFuzzPub struct {
	d       *directIngest
	send    *srtp.Context
	ssrcs   []uint32 // media, its RTX
	home    netip.AddrPort
	allowed map[netip.AddrPort]bool // addresses it may know
	queued  map[uint32][]fuzzWant   // what the packets counted taken read as, by SSRC
	count   uint64                  // datagrams it took

	reader *repairReader // the media stream's, as pion binds it
	seenPT bool          // reader read a media packet: it has the track's payload type
}

// fuzzWant is a packet counted taken as it must come out of its queue: a
// media packet's plaintext, or the media packet a repair wraps, which a
// repair of an RTX payload type with no apt comes out as only once the
// reader read a media packet (noAPT).
type fuzzWant struct {
	plain []byte
	noAPT bool
}

type ingestFuzzRig struct {
	table ingestTable
	pubs  [2]*ingestFuzzPub
	addrs []netip.AddrPort
	seq   map[uint32]uint16
	last  []byte    // the last valid datagram, for a replay
	lastW *fuzzWant // and what it reads as
}

func newIngestFuzzRig(t *testing.T) *ingestFuzzRig {
	t.Helper()
	rig := &ingestFuzzRig{seq: map[uint32]uint16{}, addrs: []netip.AddrPort{
		netip.MustParseAddrPort("192.0.2.10:50000"),
		netip.MustParseAddrPort("[2001:db8::20]:50002"),
		netip.MustParseAddrPort("[::ffff:192.0.2.10]:50000"), // the first publisher's, as IPv4-mapped IPv6
		netip.MustParseAddrPort("192.0.2.10:50001"),
		netip.MustParseAddrPort("198.51.100.7:50000"),
		netip.MustParseAddrPort("[2001:db8::99]:50000"),
	}}
	for i := range rig.pubs {
		key := bytes.Repeat([]byte{byte(0x11 * (i + 1))}, 16)
		salt := bytes.Repeat([]byte{byte(0x22 * (i + 1))}, 14)
		profile := srtp.ProtectionProfileAes128CmHmacSha1_80
		recv, err := srtp.CreateContext(key, salt, profile, srtp.SRTPReplayProtection(64))
		if err != nil {
			t.Fatal(err)
		}
		send, err := srtp.CreateContext(key, salt, profile)
		if err != nil {
			t.Fatal(err)
		}
		p := &ingestFuzzPub{d: newDirectIngest(slog.New(slog.DiscardHandler)), send: send, home: rig.addrs[i],
			ssrcs: []uint32{uint32(1000*(i+1) + 1), uint32(1000*(i+1) + 2)}, allowed: map[netip.AddrPort]bool{}, queued: map[uint32][]fuzzWant{}}
		p.d.declare(fuzzOffer(t, p.ssrcs[0], p.ssrcs[1]))
		p.d.ctx = recv // as readyLocked makes it from the handshake's keys
		p.d.ours.Store(true)
		// Bound as pion binds them: media first, each innermost, then
		// outermost (the chain between is none here).
		for _, s := range p.ssrcs {
			r := p.d.bindRepair(s, p.d.bind(s))
			if s == p.ssrcs[0] {
				p.reader, _ = r.(*repairReader)
			} else if _, ok := r.(parkedReader); !ok {
				t.Fatalf("the RTX stream got %T, not parked", r)
			}
		}
		if p.reader == nil {
			t.Fatal("the media stream got no repairReader")
		}
		p.d.learn(p.home) // the selected pair
		p.allowed[p.home] = true
		rig.pubs[i] = p
		rig.table.add(p.d)
	}
	return rig
}

// fuzzOffer is a publisher's offer as a browser makes it: media and its
// RTX (a=ssrc-group:FID), one RTX payload type with its apt, another
// without (fuzzNoAPTPT).
func fuzzOffer(t *testing.T, media, rtx uint32) *sdp.SessionDescription {
	t.Helper()
	raw := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"+
		"m=video 9 UDP/TLS/RTP/SAVPF %[1]d %[2]d %[3]d\r\na=mid:0\r\n"+
		"a=rtpmap:%[1]d VP8/90000\r\na=rtpmap:%[2]d rtx/90000\r\na=fmtp:%[2]d apt=%[1]d\r\na=rtpmap:%[3]d rtx/90000\r\n"+
		"a=ssrc-group:FID %[4]d %[5]d\r\na=ssrc:%[4]d cname:x\r\na=ssrc:%[5]d cname:x\r\n",
		fuzzMediaPT, fuzzRTXPT, fuzzNoAPTPT, media, rtx)
	var d sdp.SessionDescription
	if err := d.UnmarshalString(raw); err != nil {
		t.Fatal(err)
	}
	return &d
}

func unmapped(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// knownTo is the publisher that knows from, or nil.
func (rig *ingestFuzzRig) knownTo(from netip.AddrPort) *ingestFuzzPub {
	for _, p := range rig.pubs {
		if p.d.knows(unmapped(from)) {
			return p
		}
	}
	return nil
}

// The payload types of the rig's media and RTX, and an RTX payload type
// the offer gave no apt for.
const (
	fuzzMediaPT  = 96
	fuzzRTXPT    = 97
	fuzzNoAPTPT  = 98
	fuzzOtherSeq = 40000 // where the media packets that repairs wrap are numbered from
)

// packet seals a packet of ssrc (an undeclared one for ssrc index 4 and
// up) with its publisher's keys; it returns what it must read as too (nil
// for a probe, which is never read). A packet of an RTX SSRC wraps a media
// packet of its own; which's high bits shape it: CSRCs (0x10), a header
// extension (0x20), padding (0x40), an RTX payload type without apt
// (0x80), or, with padding and no payload (size 0), a bandwidth probe.
func (rig *ingestFuzzRig) packet(t *testing.T, which byte, size int) (*ingestFuzzPub, uint32, *fuzzWant, []byte) {
	t.Helper()
	p := rig.pubs[which%4/2]
	ssrc := p.ssrcs[which%2]
	if which%8 >= 4 {
		ssrc += 500 // not declared
	}
	rig.seq[ssrc]++
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(int(rig.seq[ssrc]) + i)
	}
	h := rtp.Header{Version: 2, PayloadType: fuzzMediaPT, SequenceNumber: rig.seq[ssrc], Timestamp: uint32(rig.seq[ssrc]) * 3000, SSRC: ssrc}
	if _, ok := p.d.repairOf[ssrc]; !ok {
		plain, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return p, ssrc, &fuzzWant{plain: plain}, rig.seal(t, p, plain)
	}
	// A repair: the media packet as first sent, then as RTX.
	h.SSRC, h.SequenceNumber = p.ssrcs[0], fuzzOtherSeq+rig.seq[ssrc]
	h.Marker = size%2 == 1
	if which&0x10 != 0 {
		h.CSRC = []uint32{0x01020304, uint32(size)}
	}
	if which&0x20 != 0 {
		if err := h.SetExtension(1, []byte{byte(size), 2, 3}); err != nil {
			t.Fatal(err)
		}
	}
	if which&0x40 != 0 {
		h.Padding, h.PaddingSize = true, byte(size%7+1)
	}
	media, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := &fuzzWant{plain: media, noAPT: which&0x80 != 0}
	osn := h.SequenceNumber
	h.SSRC, h.SequenceNumber, h.PayloadType = ssrc, rig.seq[ssrc], fuzzRTXPT
	if want.noAPT {
		h.PayloadType = fuzzNoAPTPT
	}
	rtxPayload := append(binary.BigEndian.AppendUint16(nil, osn), payload...)
	if size == 0 && h.Padding {
		rtxPayload, want = nil, nil // padding only: a probe
	}
	rtx, err := (&rtp.Packet{Header: h, Payload: rtxPayload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return p, ssrc, want, rig.seal(t, p, rtx)
}

func (rig *ingestFuzzRig) seal(t *testing.T, p *ingestFuzzPub, plain []byte) []byte {
	t.Helper()
	enc, err := p.send.EncryptRTP(nil, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// take offers b from from to the table and checks who took it.
func (rig *ingestFuzzRig) take(t *testing.T, b []byte, from netip.AddrPort, decrypts bool, ssrc uint32, want *fuzzWant) {
	t.Helper()
	owner := rig.knownTo(from)
	var before [2]uint64
	var takenBefore [2]uint64
	for i, p := range rig.pubs {
		taken, dropped, bad := p.d.stats()
		before[i], takenBefore[i] = taken+dropped+bad, taken
	}
	got, a := rig.table.take(b, from)
	if a == authOK && !decrypts {
		t.Fatalf("a datagram that does not decrypt authenticated for the read gate")
	}
	took := -1
	for i, p := range rig.pubs {
		taken, dropped, bad := p.d.stats()
		switch n := taken + dropped + bad - before[i]; {
		case n > 1 || n == 1 && took >= 0:
			t.Fatalf("one datagram counted %d times", n)
		case n == 1:
			took = i
			p.count++
			if taken > takenBefore[i] && want != nil {
				p.queued[ssrc] = append(p.queued[ssrc], *want)
			}
		}
	}
	if got != (took >= 0) {
		t.Fatalf("take = %v, counted by publisher %d", got, took)
	}
	if !got {
		return
	}
	p := rig.pubs[took]
	if !p.d.declared[ssrc] && decrypts {
		t.Fatalf("publisher %d took a packet of undeclared SSRC %d", took, ssrc)
	}
	if owner == nil && !decrypts {
		t.Fatalf("a datagram from unknown %v that does not decrypt was taken by publisher %d", from, took)
	}
	if owner == nil {
		p.allowed[unmapped(from)] = true // it decrypted: the publisher's now
	}
}

func (rig *ingestFuzzRig) op(t *testing.T, kind, a, b, c byte) {
	t.Helper()
	from := rig.addrs[int(a)%len(rig.addrs)]
	switch kind % 8 {
	case 0, 1: // a valid packet
		_, ssrc, want, enc := rig.packet(t, b, int(c))
		rig.last, rig.lastW = bytes.Clone(enc), want
		rig.take(t, enc, from, true, ssrc, want)
	case 2: // garbage that looks like RTP
		g := make([]byte, 12+int(c))
		for i := range g {
			g[i] = byte(i*int(b+1) + int(c))
		}
		g[0], g[1] = 0x80, 96
		ssrc := rig.pubs[b%2].ssrcs[(b/2)%2]
		binary.BigEndian.PutUint32(g[8:], ssrc)
		rig.take(t, g, from, false, ssrc, nil)
	case 3: // a valid packet with one byte changed
		_, _, _, enc := rig.packet(t, b, int(c))
		enc[int(c)%len(enc)] ^= b | 1
		rig.take(t, enc, from, false, binary.BigEndian.Uint32(enc[8:]), nil)
	case 4: // a publisher's reader drains its queues
		rig.pubs[a%2].drain(t)
	case 5: // a stream is unbound: its queue closes
		p := rig.pubs[a%2]
		p.d.unbind(p.ssrcs[b%2])
	case 6: // a burst, nobody reading: the queue must stay bounded
		for range int(c) * 8 {
			_, ssrc, want, enc := rig.packet(t, b%2, 100)
			rig.take(t, enc, rig.pubs[0].home, true, ssrc, want)
		}
	case 7: // the last valid datagram again: a replay, or new to a publisher that did not take it
		if rig.last != nil {
			rig.take(t, bytes.Clone(rig.last), from, true, binary.BigEndian.Uint32(rig.last[8:]), rig.lastW)
		}
	}
}

// drain reads the publisher's queues through its media stream's
// repairReader until both are empty, and checks they gave back what was
// taken: every repair before the media queued with it, unwrapped.
func (p *ingestFuzzPub) drain(t *testing.T) {
	t.Helper()
	media, rtx := p.ssrcs[0], p.ssrcs[1]
	p.d.mu.Lock()
	mq, rq := p.d.queues[media], p.d.queues[rtx]
	p.d.mu.Unlock()
	size := func(q *ingestQueue) int {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.n
	}
	buf := make([]byte, 1600)
	for {
		// Repairs the reader skips: no apt, no media read yet.
		for len(p.queued[rtx]) > 0 && p.queued[rtx][0].noAPT && !p.seenPT {
			p.queued[rtx] = p.queued[rtx][1:]
		}
		if size(mq) == 0 && size(rq) == 0 {
			break
		}
		if size(rq) > 0 && len(p.queued[rtx]) == 0 {
			// Only probes (or skipped repairs) left: the reader reads
			// past them, and would wait for media.
			if size(mq) == 0 {
				for size(rq) > 0 {
					if n, _, err := p.reader.repair(p.reader.rtx.Load(), buf); n != 0 || err != nil {
						t.Fatalf("a probe read as %d bytes (%v)", n, err)
					}
				}
				break
			}
		}
		n, attrs, err := p.reader.Read(buf, nil)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		from, repaired := media, attrs != nil && attrs.Get(webrtc.AttributeRtxSsrc) != nil
		if repaired {
			from = rtx
		}
		if len(p.queued[from]) == 0 {
			t.Fatalf("SSRC %d: the reader gave a packet nobody counted taken:\n% x", from, buf[:n])
		}
		want := p.queued[from][0]
		if !bytes.Equal(buf[:n], want.plain) {
			t.Fatalf("SSRC %d: read\n% x\nwant\n% x", from, buf[:n], want.plain)
		}
		if repaired {
			if got := attrs.Get(webrtc.AttributeRtxSsrc); got != rtx {
				t.Fatalf("a repair's RTX SSRC attribute %v, want %d", got, rtx)
			}
		} else {
			if len(p.queued[rtx]) > 0 {
				t.Fatalf("a media packet read while %d repairs were queued", len(p.queued[rtx]))
			}
			p.seenPT = true
		}
		p.queued[from] = p.queued[from][1:]
	}
	for _, ssrc := range p.ssrcs {
		if len(p.queued[ssrc]) > 0 {
			t.Fatalf("SSRC %d: %d packets counted taken never came out", ssrc, len(p.queued[ssrc]))
		}
	}
}

// check holds between ops: each publisher knows only addresses it may,
// and its queues are bounded.
func (rig *ingestFuzzRig) check(t *testing.T) {
	t.Helper()
	for i, p := range rig.pubs {
		for _, a := range p.d.addrs.load() {
			if !p.allowed[a] {
				t.Fatalf("publisher %d learnt %v, which sent it nothing that decrypts", i, a)
			}
		}
		p.d.mu.Lock()
		for ssrc, q := range p.d.queues {
			q.mu.Lock()
			n, slots := q.n, len(q.slots)
			q.mu.Unlock()
			if n > slots || slots > ingestQueueMax {
				p.d.mu.Unlock()
				t.Fatalf("publisher %d SSRC %d: %d packets in %d slots (max %d)", i, ssrc, n, slots, ingestQueueMax)
			}
		}
		p.d.mu.Unlock()
	}
}
