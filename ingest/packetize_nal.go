package ingest

import (
	"encoding/binary"

	"whipgate/gateway"
)

// unit is one NAL unit or OBU of the frame being packetized, as bytes of
// the buffer it lies in, so that a packet can be written in place there.
type unit struct {
	src      []byte
	off, end int // NAL unit: from its header on; OBU: its payload, after obu_size
	// An OBU's header and extension, with obu_has_size_field cleared: RTP
	// carries an OBU's size in the packet, if at all.
	hdr [2]byte
	hn  int
	typ uint8 // OBU type
}

func (u *unit) len() int { return u.end - u.off }

// addAnnexB adds the NAL units of an Annex-B byte stream.
func (p *packetizer) addAnnexB(b []byte) {
	i := indexStartCode(b)
	for i >= 0 {
		off := i + len(startCode)
		next := indexStartCode(b[off:])
		end := len(b)
		if next >= 0 {
			end = off + next
		}
		p.addNAL(b, off, end)
		if next < 0 {
			return
		}
		i = end
	}
}

// addNAL adds the NAL unit at src[off:end], unless RTP does not carry it.
// Zero bytes at its end are the next start code's or trailing_zero_8bits:
// a NAL unit ends in its stop bit, or in 0x03 after a cabac_zero_word.
//
// Units go out as H.264 (RFC 6184, packetization-mode 1) or H.265 (RFC
// 7798, without DONL) packets: as many consecutive units as fit in one
// aggregation packet (STAP-A, AP) go together, a unit that fits alone goes
// as a single NAL unit packet, and a larger one in fragmentation units
// (FU-A, FU) of the largest size. The units that may still gather with the
// next ones are held until it comes, or the frame ends.
func (p *packetizer) addNAL(src []byte, off, end int) {
	for end > off && src[end-1] == 0 {
		end--
	}
	if end-off < 1 {
		return
	}
	hl := 1 // NAL unit header bytes
	if p.codec == gateway.H265 {
		// Access unit delimiters and filler carry nothing a receiver
		// needs; 48 to 63 would read as RTP's own packet types.
		if t := src[off] >> 1 & 0x3f; end-off < 2 || t == 35 || t == 38 || t >= 48 {
			return
		}
		hl = 2
	} else if t := src[off] & 0x1f; t == 0 || t == 9 || t == 12 || t >= 24 {
		return
	}
	u := unit{src: src, off: off, end: end}
	if len(p.nals) > 0 && p.agg+2+u.len() <= p.mtu {
		p.nals = append(p.nals, u)
		p.agg += 2 + u.len()
		return
	}
	p.flushNALs(false)
	p.nals = append(p.nals, u)
	p.agg = hl + 2 + u.len()
}

// flushNALs writes the units held: two or more as an aggregation packet,
// one alone as a single NAL unit packet or in fragments. marker goes on
// the last packet.
func (p *packetizer) flushNALs(marker bool) {
	switch us := p.nals; {
	case len(us) >= 2:
		p.aggregate(us)
		u := &us[len(us)-1]
		p.send(u.src, u.off, u.end, marker)
	case len(us) == 1 && us[0].len() <= p.mtu:
		p.send(us[0].src, us[0].off, us[0].end, marker)
	case len(us) == 1:
		p.fragment(&us[0], marker)
	}
	clear(p.nals) // let go of the frame
	p.nals = p.nals[:0]
}

// aggregate writes into pre a STAP-A or AP of us, but for the last unit's
// bytes, which follow as the packet's tail.
func (p *packetizer) aggregate(us []unit) {
	if p.codec == gateway.H265 {
		// F if any unit has it; the lowest LayerId and TemporalId.
		var f, layer, tid byte = 0, 0x3f, 7
		for _, u := range us {
			h0, h1 := u.src[u.off], u.src[u.off+1]
			f |= h0 & 0x80
			layer = min(layer, (h0&1)<<5|h1>>3)
			tid = min(tid, h1&7)
		}
		p.pre = append(p.pre, f|48<<1|layer>>5, layer<<3|tid)
	} else {
		// F if any unit has it; the highest NRI.
		var f, nri byte
		for _, u := range us {
			f |= u.src[u.off] & 0x80
			nri = max(nri, u.src[u.off]&0x60)
		}
		p.pre = append(p.pre, f|nri|24)
	}
	for k, u := range us {
		p.pre = binary.BigEndian.AppendUint16(p.pre, uint16(u.len()))
		if k < len(us)-1 {
			p.pre = append(p.pre, u.src[u.off:u.end]...)
		}
	}
}

// fragment writes u in fragmentation units: the NAL unit header's type
// replaced with FU-A's (28) or FU's (49), an FU header with the start and
// end bits and the unit's type, then a piece of the unit after its header.
func (p *packetizer) fragment(u *unit, marker bool) {
	h0 := u.src[u.off]
	var h1, typ byte
	hl := 1
	if p.codec == gateway.H265 {
		hl, h1, typ = 2, u.src[u.off+1], h0>>1&0x3f
		h0 = h0&0x81 | 49<<1
	} else {
		typ = h0 & 0x1f
		h0 = h0&0xe0 | 28
	}
	room := p.mtu - hl - 1
	for off := u.off + hl; off < u.end; {
		n := min(room, u.end-off)
		fu := typ
		if off == u.off+hl {
			fu |= 0x80
		}
		if off+n == u.end {
			fu |= 0x40
		}
		p.pre = append(p.pre, h0)
		if hl == 2 {
			p.pre = append(p.pre, h1)
		}
		p.pre = append(p.pre, fu)
		p.send(u.src, off, off+n, marker && off+n == u.end)
		off += n
	}
}
