package bench

// packetizer cuts synthetic frames into RTP payloads. Every payload buffer
// is allocated once and filled with a fixed pattern; per frame only the
// headers and the stamp are rewritten, so publishing allocates nothing.
type packetizer struct {
	plan plan
	bufs [][]byte // one per packet of the largest frame
	out  [][]byte // the current frame's payloads, slices of bufs
}

func newPacketizer(p plan) *packetizer {
	n := max(p.packets(true), p.packets(false))
	z := &packetizer{plan: p, bufs: make([][]byte, n), out: make([][]byte, 0, n)}
	store := make([]byte, n*maxPayload)
	fillPattern(store)
	for i := range z.bufs {
		z.bufs[i] = store[i*maxPayload : (i+1)*maxPayload : (i+1)*maxPayload]
	}
	return z
}

// frame lays out frame n and returns its payloads, valid until the next
// call. Its size is the plan's (FU headers included), give or take the
// minimum a first fragment needs for the stamp. The stamp's send time is
// written by stamp, once it is known.
func (z *packetizer) frame(n uint64, key bool) [][]byte {
	z.out = z.out[:0]
	size := z.plan.deltaBytes
	nal := byte(nalP)
	nri := byte(0x40) // NRI 2 for reference P frames
	if key {
		size, nal, nri = z.plan.keyBytes, nalIDR, 0x60
		b := z.bufs[0][:stapLen]
		b[0] = 0x60 | nalSTAP
		off := 1
		for _, nalu := range [][]byte{fakeSPS, fakePPS} {
			b[off], b[off+1] = 0, byte(len(nalu))
			off += 2
			off += copy(b[off:], nalu)
		}
		b[off], b[off+1] = 0, byte(1+stampLen+1)
		b[off+2] = nalSEI
		b[len(b)-1] = 0x80
		putStamp(b[stapStampOffset:], n, 0)
		z.out = append(z.out, b)
		size -= stapLen
	}
	count := ceilDiv(size, maxPayload)
	for i := range count {
		l := min(size, maxPayload)
		b := z.bufs[len(z.out)][:max(l, fuHeaderLen+stampLen)]
		b[0] = nri | nalFUA
		b[1] = nal
		if i == 0 {
			// A keyframe's IDR carries the stamp too, so that every
			// start-of-NAL fragment a viewer parses holds a real one.
			b[1] |= fuStart
			putStamp(b[fuHeaderLen:], n, 0)
		}
		if i == count-1 {
			b[1] |= fuEnd
		}
		size -= l
		z.out = append(z.out, b)
	}
	return z.out
}

// stamp writes the send time into the frame's first payload.
func stamp(payloads [][]byte, n uint64, sentUnixNano int64) {
	if b := payloads[0]; b[0]&0x1f == nalSTAP {
		putStamp(b[stapStampOffset:], n, sentUnixNano)
		payloads = payloads[1:]
	}
	putStamp(payloads[0][fuHeaderLen:], n, sentUnixNano)
}
