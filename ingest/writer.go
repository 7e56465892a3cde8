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
// payloader): a frame is first split into units (NAL units, OBUs) that
// point into it, then cut into packets (packetize_nal.go,
// packetize_av1.go). A payload
// that ends in a piece of the frame (a fragment, a unit sent whole, the last
// unit of an aggregate) is handed to the writer in place, its headers
// written over frame bytes already sent, so the hub's copy into its slab is
// the payload's only one. The frame must therefore be writable and
// otherwise unused while it is packetized; its bytes are put back after
// each packet.
type packetizer struct {
	codec gateway.Codec
	mtu   int // largest payload: MTU, or less in tests
	ssrc  uint32
	seq   uint16
	pkt   rtp.Packet

	units []unit // of the frame being packetized
	pre   []byte // a payload's headers and copied units, in front of its tail
	save  []byte // the frame bytes pre covers while its packet is written
	vp8ID uint16 // VP8 picture ID, counting frames from 0 as pion's payloader did
	vp9   codecs.VP9Payloader
	n     int // packets written of the current frame
}

func newPacketizer(codec gateway.Codec) packetizer {
	return packetizer{
		codec: codec, mtu: MTU, ssrc: rand.Uint32(), seq: uint16(rand.Uint32()),
		pre: make([]byte, 0, MTU), save: make([]byte, MTU),
	}
}

// writeFrame packetizes one frame (an Annex-B access unit, an AV1 temporal
// unit, a VP8 or VP9 frame) with timestamp ts, sets the marker on its last
// packet, and returns how many packets it wrote.
func (p *packetizer) writeFrame(w TrackWriter, track int, frame []byte, ts uint32) int {
	p.units = p.units[:0]
	switch p.codec {
	case gateway.H264, gateway.H265:
		p.addAnnexB(frame)
	case gateway.AV1:
		p.addOBUs(frame)
	case gateway.VP8:
		return p.writeVP8(w, track, frame, ts)
	case gateway.VP9:
		return p.writePayloads(w, track, p.vp9.Payload(uint16(p.mtu), frame), ts)
	}
	return p.writeUnits(w, track, ts)
}

// writeUnits packetizes the units gathered since the last write as one
// frame.
func (p *packetizer) writeUnits(w TrackWriter, track int, ts uint32) int {
	p.n = 0
	switch p.codec {
	case gateway.H264, gateway.H265:
		p.writeNALs(w, track, ts)
	case gateway.AV1:
		p.writeAV1(w, track, ts)
	}
	p.units = p.units[:0]
	return p.n
}

// send writes one packet whose payload is pre followed by src[off:end],
// and empties pre. When src has len(pre) bytes in front of off, pre is
// written over them for the call and they are put back after it;
// otherwise the tail is appended to pre.
func (p *packetizer) send(w TrackWriter, track int, src []byte, off, end int, ts uint32, marker bool) {
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
	p.writePayload(w, track, payload, ts, marker)
	if at >= 0 {
		copy(src[at:off], p.save[:n])
	}
	p.pre = p.pre[:0]
}

func (p *packetizer) writePayload(w TrackWriter, track int, payload []byte, ts uint32, marker bool) {
	p.pkt.Header = rtp.Header{
		Version:        2,
		PayloadType:    dynamicPT,
		SequenceNumber: p.seq,
		Timestamp:      ts,
		SSRC:           p.ssrc,
		Marker:         marker,
	}
	p.pkt.Payload = payload
	w.WriteRTP(track, &p.pkt)
	p.pkt.Payload = nil
	p.seq++
	p.n++
}

// writePayloads writes payloads a pion payloader made, as one frame.
func (p *packetizer) writePayloads(w TrackWriter, track int, payloads [][]byte, ts uint32) int {
	p.n = 0
	for i, pl := range payloads {
		p.writePayload(w, track, pl, ts, i == len(payloads)-1)
	}
	return len(payloads)
}

// writeVP8 packetizes a VP8 frame (RFC 7741): every packet starts with a
// payload descriptor that carries the 15-bit picture ID, as libwebrtc's
// do, so an SFU can rewrite it in place; S marks the frame's first packet.
func (p *packetizer) writeVP8(w TrackWriter, track int, frame []byte, ts uint32) int {
	p.n = 0
	id := p.vp8ID
	p.vp8ID = (id + 1) & 0x7fff
	for off := 0; off < len(frame); {
		n := min(p.mtu-4, len(frame)-off)
		d := byte(0x80) // X: the extension byte follows
		if off == 0 {
			d |= 0x10 // S, partition 0
		}
		p.pre = append(p.pre, d, 0x80, 0x80|byte(id>>8), byte(id)) // I; M and the picture ID
		p.send(w, track, frame, off, off+n, ts, off+n == len(frame))
		off += n
	}
	return p.n
}
