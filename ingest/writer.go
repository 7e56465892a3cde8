package ingest

import (
	"math/rand/v2"

	"github.com/pion/rtp"
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
type packetizer struct {
	payloader rtp.Payloader
	ssrc      uint32
	seq       uint16
	pkt       rtp.Packet
}

func newPacketizer() packetizer {
	return packetizer{ssrc: rand.Uint32(), seq: uint16(rand.Uint32())}
}

// writeFrame packetizes one frame with timestamp ts, sets the marker on its
// last packet, and returns how many packets it wrote.
func (p *packetizer) writeFrame(w TrackWriter, track int, frame []byte, ts uint32) int {
	payloads := p.payloader.Payload(MTU, frame)
	p.writePayloads(w, track, payloads, ts)
	return len(payloads)
}

func (p *packetizer) writePayloads(w TrackWriter, track int, payloads [][]byte, ts uint32) {
	for i, pl := range payloads {
		p.pkt.Header = rtp.Header{
			Version:        2,
			PayloadType:    dynamicPT,
			SequenceNumber: p.seq,
			Timestamp:      ts,
			SSRC:           p.ssrc,
			Marker:         i == len(payloads)-1,
		}
		p.pkt.Payload = pl
		w.WriteRTP(track, &p.pkt)
		p.seq++
	}
	p.pkt.Payload = nil
}
