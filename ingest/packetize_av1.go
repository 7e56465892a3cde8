package ingest

// AV1 in RTP, as the AOM's RTP payload format for AV1 has it
// (https://aomediacodec.github.io/av1-rtp-spec/): a payload is an
// aggregation header
//
//	|Z|Y| W |N|-|-|-|
//
// and up to three OBU elements, each an OBU without its obu_size (or a
// piece of one), every one but the last behind a LEB128 length. W counts
// the elements; Z says the first continues an OBU from the last packet, Y
// that the last goes on in the next; N marks the first packet of a coded
// video sequence.

const (
	obuSequenceHeader = 1
	obuTileList       = 8
)

// addOBUs adds the OBUs of a temporal unit in the low-overhead format
// (every OBU has its size, but the last may not) that RTP carries: not
// temporal delimiters, tile lists or padding. A malformed OBU ends the
// unit.
func (p *packetizer) addOBUs(b []byte) {
	for off := 0; off < len(b); {
		h := b[off]
		if h&0x80 != 0 { // obu_forbidden_bit
			return
		}
		u := unit{src: b, hn: 1 + int(h>>2&1), typ: h >> 3 & 0x0f}
		if off+u.hn > len(b) {
			return
		}
		u.hdr[0] = h &^ 0x02
		if u.hn == 2 {
			u.hdr[1] = b[off+1]
		}
		u.off = off + u.hn
		u.end = len(b)
		if h&0x02 != 0 { // obu_has_size_field
			size, n := leb128(b[u.off:])
			if n == 0 || size > uint64(len(b)-u.off-n) {
				return
			}
			u.off += n
			u.end = u.off + int(size)
		}
		off = u.end
		switch u.typ {
		case obuTemporalDelimiter, obuTileList, obuPadding:
			continue
		}
		p.addOBU(u)
	}
}

// leb128 decodes a LEB128 number of at most 8 bytes at the start of b and
// returns it with its length, or a length of 0 if there is none.
func leb128(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < maxLEB128Bytes; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}

func appendLEB128(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func leb128Len(v int) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// av1Piece is an OBU element in the packet being built: OBU u's payload
// bytes a to b, behind its header if the element starts the OBU.
type av1Piece struct {
	u    unit
	a, b int
	head bool
}

func (pc *av1Piece) len() int {
	if pc.head {
		return pc.u.hn + pc.b - pc.a
	}
	return pc.b - pc.a
}

// av1Packet is the packet being built.
type av1Packet struct {
	pieces [3]av1Piece
	n      int
	used   int  // payload bytes, counting a length field for every element
	full   bool // its last element is in: the next OBU starts a packet
	z, nb  bool // the aggregation header's Z and N
	ext    byte // the OBU extension's temporal and spatial ids, if hasExt
	hasExt bool
}

// addOBU adds an OBU to the packet being built. A sequence header starts a
// packet (with N set); so does an OBU of other temporal or spatial ids
// than those already in it. An OBU that does not fit whole goes on in the
// next packets, every one filled to the MTU. The packet is held until the
// next OBU comes, or the frame ends, which says whether it is the last.
func (p *packetizer) addOBU(u unit) {
	pk := &p.av1
	ext := u.hdr[1] & 0xf8
	if pk.n > 0 && (pk.full || u.typ == obuSequenceHeader || u.hn == 2 && pk.hasExt && ext != pk.ext) {
		p.flushAV1(false, false)
	}
	pc := av1Piece{u: u, a: u.off, b: u.end, head: true}
	for {
		if pk.n == len(pk.pieces) {
			p.flushAV1(false, false)
		}
		if u.hn == 2 {
			pk.ext, pk.hasExt = ext, true
		}
		if pk.n == 0 && pc.head && u.typ == obuSequenceHeader {
			pk.nb = true
		}
		free, need := p.mtu-pk.used, pc.len()
		if need+leb128Len(need) <= free {
			// Whole, with a length field in case more follows.
			pk.pieces[pk.n] = pc
			pk.n++
			pk.used += need + leb128Len(need)
			return
		}
		if need <= free {
			// Whole, as the packet's last element.
			pk.pieces[pk.n] = pc
			pk.n++
			pk.full = true
			return
		}
		hn := 0
		if pc.head {
			hn = u.hn
		}
		if free < hn+1 {
			p.flushAV1(false, false)
			continue
		}
		// A fragment fills the packet; the rest goes on in the next.
		frag := pc
		frag.b = pc.a + free - hn
		pk.pieces[pk.n] = frag
		pk.n++
		p.flushAV1(true, false)
		pk.z = true
		pc.a, pc.head = frag.b, false
	}
}

// flushAV1 writes the packet being built, if any, and starts the next.
// The last element goes without a length field (W counts the elements),
// its payload bytes as the packet's tail.
func (p *packetizer) flushAV1(y, marker bool) {
	pk := &p.av1
	if pk.n == 0 {
		return
	}
	agg := byte(pk.n) << 4
	if pk.z {
		agg |= 0x80
	}
	if y {
		agg |= 0x40
	}
	if pk.nb {
		agg |= 0x08
	}
	p.pre = append(p.pre, agg)
	for k := range pk.n {
		pc := &pk.pieces[k]
		if k < pk.n-1 {
			p.pre = appendLEB128(p.pre, uint64(pc.len()))
		}
		if pc.head {
			p.pre = append(p.pre, pc.u.hdr[:pc.u.hn]...)
		}
		if k < pk.n-1 {
			p.pre = append(p.pre, pc.u.src[pc.a:pc.b]...)
		} else {
			p.send(pc.u.src, pc.a, pc.b, marker)
		}
	}
	*pk = av1Packet{used: 1} // and let go of the frame
}
