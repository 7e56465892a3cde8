package ingest

import "bytes"

// Parameter-set kinds, as bits.
const (
	psVPS uint8 = 1 << iota
	psSPS
	psPPS
)

// paramSets caches the latest VPS, SPS and PPS of a stream, to put back
// before a keyframe that comes without them (an encoder that writes them
// only once, or a repeat-headers option left off). One of each is kept:
// encoders on this path use a single parameter set of each kind.
type paramSets struct {
	vps, sps, pps []byte // NAL units without start codes
}

func (c *paramSets) store(kind uint8, nal []byte) {
	// Zero bytes after the last unit belong to the next start code, never to
	// a parameter set, which ends in its stop bit.
	nal = bytes.TrimRight(nal, "\x00")
	switch kind {
	case psVPS:
		c.vps = append(c.vps[:0], nal...)
	case psSPS:
		c.sps = append(c.sps[:0], nal...)
	case psPPS:
		c.pps = append(c.pps[:0], nal...)
	}
}

// missing returns the parameter sets a keyframe needs, lacks, and the cache
// can supply.
func (c *paramSets) missing(have uint8, h265 bool) uint8 {
	var m uint8
	if h265 && have&psVPS == 0 && len(c.vps) > 0 {
		m |= psVPS
	}
	if have&psSPS == 0 && len(c.sps) > 0 {
		m |= psSPS
	}
	if have&psPPS == 0 && len(c.pps) > 0 {
		m |= psPPS
	}
	return m
}

// add adds to pk the parameter sets in kinds as NAL units, in VPS, SPS,
// PPS order.
func (c *paramSets) add(pk *packetizer, kinds uint8) {
	for _, ps := range [...]struct {
		kind uint8
		nal  []byte
	}{{psVPS, c.vps}, {psSPS, c.sps}, {psPPS, c.pps}} {
		if kinds&ps.kind != 0 {
			pk.addNAL(ps.nal, 0, len(ps.nal))
		}
	}
}
