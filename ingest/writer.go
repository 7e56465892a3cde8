package ingest

import (
	"math/rand/v2"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"

	"whipgate/gateway"
)

// TrackWriter is where a source writes its RTP packets: a
// *gateway.Publication, or anything that forwards to one. WriteRTP must not
// block and must not keep pkt or its payload after it returns.
type TrackWriter interface {
	WriteRTP(track int, pkt *rtp.Packet)
}

// MTU is the largest RTP payload the sources produce. 1200 bytes leaves
// room for SRTP and header extensions on any path, and stays under pion's
// 1460-byte NACK buffer limit.
const MTU = 1200

// dynamicPT is the payload type put on outgoing packets. The hub ignores it:
// every subscriber sets its own negotiated type.
const dynamicPT = 96

// packetizer turns whole frames into RTP packets on one track. Its sequence
// numbers run on across frames and across runs of the source, so subscribers
// never see a jump when an encoder restarts.
//
// For H.264, H.265, AV1 and VP8 it allocates nothing per packet or per
// frame once its buffers have grown (VP9 still goes through pion's
// payloader). A frame's units (NAL units, OBUs) are added one by one
// between begin and end, as views of the buffer they lie in, and cut into
// packets as they come (packetize_nal.go, packetize_av1.go): the
// packetizer holds back only the packet being built, so what it keeps does
// not grow with the number of units in a frame. A payload that ends in a
// piece of the frame (a fragment, a unit sent whole, the last unit of an
// aggregate) is handed to the writer in place, its headers written over
// frame bytes already sent, so the hub's copy into its slab is the
// payload's only one. The frame must therefore be writable and otherwise
// unused while it is packetized; its bytes are put back after each packet.
type packetizer struct {
	codec gateway.Codec
	mtu   int // largest payload: MTU, or less in tests
	ssrc  uint32
	seq   uint16
	pkt   rtp.Packet

	// The frame being written, from begin to end.
	w     TrackWriter
	track int
	ts    uint32
	n     int       // packets written
	nals  []unit    // H.264, H.265: units held for an aggregate, or one unit
	agg   int       // the size of an aggregation packet of nals
	av1   av1Packet // AV1: the packet being built

	pre   []byte // a payload's headers and copied units, in front of its tail
	save  []byte // the frame bytes pre covers while its packet is written
	vp8ID uint16 // VP8 picture ID, counting frames from 0 as pion's payloader did
	vp9   codecs.VP9Payloader
}

func newPacketizer(codec gateway.Codec) packetizer {
	return packetizer{
		codec: codec, mtu: MTU, ssrc: rand.Uint32(), seq: uint16(rand.Uint32()),
		pre: make([]byte, 0, MTU), save: make([]byte, MTU), av1: av1Packet{used: 1},
	}
}

// writeFrame packetizes one frame (an Annex-B access unit, an AV1 temporal
// unit, a VP8 or VP9 frame) with timestamp ts, sets the marker on its last
// packet, and returns how many packets it wrote.
func (p *packetizer) writeFrame(w TrackWriter, track int, frame []byte, ts uint32) int {
	p.begin(w, track, ts)
	switch p.codec {
	case gateway.H264, gateway.H265:
		p.addAnnexB(frame)
	case gateway.AV1:
		p.addOBUs(frame)
	case gateway.VP8:
		p.addVP8(frame)
	case gateway.VP9:
		pls := p.vp9.Payload(uint16(p.mtu), frame)
		for i, pl := range pls {
			p.writePayload(pl, i == len(pls)-1)
		}
	}
	return p.end()
}

// begin starts a frame with timestamp ts, written to track of w.
func (p *packetizer) begin(w TrackWriter, track int, ts uint32) {
	p.w, p.track, p.ts, p.n = w, track, ts, 0
}

// end writes what the frame's last units left held back, the last packet
// with the marker, and returns how many packets the frame took.
func (p *packetizer) end() int {
	switch p.codec {
	case gateway.H264, gateway.H265:
		p.flushNALs(true)
	case gateway.AV1:
		p.flushAV1(false, true)
	}
	p.w = nil
	return p.n
}

// send writes one packet whose payload is pre followed by src[off:end],
// and empties pre. When src has len(pre) bytes in front of off, pre is
// written over them for the call and they are put back after it;
// otherwise the tail is appended to pre.
func (p *packetizer) send(src []byte, off, end int, marker bool) {
	n, at := len(p.pre), -1
	var payload []byte
	if n <= off && n <= len(p.save) {
		at = off - n
		copy(p.save, src[at:off])
		copy(src[at:off], p.pre)
		payload = src[at:end:end]
	} else {
		p.pre = append(p.pre, src[off:end]...)
		payload = p.pre
	}
	p.writePayload(payload, marker)
	if at >= 0 {
		copy(src[at:off], p.save[:n])
	}
	p.pre = p.pre[:0]
}

func (p *packetizer) writePayload(payload []byte, marker bool) {
	p.pkt.Header = rtp.Header{
		Version:        2,
		PayloadType:    dynamicPT,
		SequenceNumber: p.seq,
		Timestamp:      p.ts,
		SSRC:           p.ssrc,
		Marker:         marker,
	}
	p.pkt.Payload = payload
	p.w.WriteRTP(p.track, &p.pkt)
	p.pkt.Payload = nil
	p.seq++
	p.n++
}

// addVP8 packetizes a VP8 frame (RFC 7741): every packet starts with a
// payload descriptor that carries the 15-bit picture ID, as libwebrtc's
// do, so an SFU can rewrite it in place; S marks the frame's first packet.
func (p *packetizer) addVP8(frame []byte) {
	id := p.vp8ID
	p.vp8ID = (id + 1) & 0x7fff
	for off := 0; off < len(frame); {
		n := min(p.mtu-4, len(frame)-off)
		d := byte(0x80) // X: the extension byte follows
		if off == 0 {
			d |= 0x10 // S, partition 0
		}
		p.pre = append(p.pre, d, 0x80, 0x80|byte(id>>8), byte(id)) // I; M and the picture ID
		p.send(frame, off, off+n, off+n == len(frame))
		off += n
	}
}
