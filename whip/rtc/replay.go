package rtc

import (
	"math/bits"

	"github.com/pion/transport/v4/replaydetector"
)

// maxSRTPIndex is the largest SRTP packet index (RFC 3711 §3.3.1: a 32-bit
// rollover counter and the 16-bit sequence number), the bound pion's
// srtp.SRTPReplayProtection gives its detector.
const maxSRTPIndex = 1<<48 - 1

// ringReplay is SRTP replay protection (RFC 3711 §3.3.2) whose cost does
// not grow with its window. pion's detector keeps the window as one big
// integer and shifts all of it for each new packet: with the 8192-packet
// window a WHIP ingest needs (OBS re-sends without RTX, ~600 packets late
// at 8K), that shift was 2.6 % of the server's CPU samples in an egress
// bench, more than any other function of ours. Here a packet's bit lives
// at its index modulo the ring's size, so a new packet clears only the
// bits of the indices it skips and sets its own.
//
// It answers exactly as replaydetector.New(window, maxSRTPIndex) does
// (FuzzRingReplay holds it to that), and implements CheckAccepter, the
// allocation-free interface pion's srtp uses when it can. Not safe for
// concurrent use; an SRTP context reads one SSRC from one goroutine.
type ringReplay struct {
	latest uint64
	window uint64
	mask   uint64   // len(ring)*64 - 1
	ring   []uint64 // a power of two of words, ≥ window bits
}

// newRingReplay makes a detector of window packets (at least 1).
func newRingReplay(window uint) *ringReplay {
	w := max(uint64(window), 1)
	words := uint64(1) << bits.Len64((w+63)/64-1) // words, rounded up to a power of two
	return &ringReplay{window: w, mask: words*64 - 1, ring: make([]uint64, words)}
}

// ringReplayFactory is the srtp.SRTPReplayDetectorFactory argument for a
// window of window packets.
func ringReplayFactory(window uint) func() replaydetector.ReplayDetector {
	return func() replaydetector.ReplayDetector { return newRingReplay(window) }
}

func (d *ringReplay) bit(seq uint64) bool {
	p := seq & d.mask
	return d.ring[p/64]&(1<<(p%64)) != 0
}

func (d *ringReplay) ok(seq uint64) bool {
	if seq > maxSRTPIndex {
		return false
	}
	if seq <= d.latest {
		if d.latest-seq >= d.window || d.bit(seq) {
			return false // too old, or seen
		}
	}
	return true
}

func (d *ringReplay) accept(seq uint64) bool {
	latest := seq == 0
	if seq > d.latest {
		d.clear(d.latest+1, seq)
		d.latest = seq
		latest = true
	}
	if d.latest-seq < d.window { // beyond the window pion's bit falls off too
		p := seq & d.mask
		d.ring[p/64] |= 1 << (p % 64)
	}
	return latest
}

// clear forgets the bits of from..to (inclusive): the indices a new
// latest packet skips, whose places held indices now out of the window.
func (d *ringReplay) clear(from, to uint64) {
	if to-from >= d.mask {
		clear(d.ring)
		return
	}
	for seq := from; seq <= to; {
		p := seq & d.mask
		if p%64 == 0 && to-seq >= 63 {
			d.ring[p/64] = 0 // a whole word
			seq += 64
			continue
		}
		d.ring[p/64] &^= 1 << (p % 64)
		seq++
	}
}

// Check implements replaydetector.ReplayDetector.
func (d *ringReplay) Check(seq uint64) (func() bool, bool) {
	if !d.ok(seq) {
		return func() bool { return false }, false
	}
	return func() bool { return d.accept(seq) }, true
}

// CheckSeq implements replaydetector.CheckAccepter.
func (d *ringReplay) CheckSeq(seq uint64) replaydetector.Token {
	if !d.ok(seq) {
		return replaydetector.Rejected(seq)
	}
	return replaydetector.Passed(seq)
}

// Accept implements replaydetector.CheckAccepter.
func (d *ringReplay) Accept(tok replaydetector.Token) bool {
	if !tok.Passed() {
		return false
	}
	return d.accept(tok.Seq())
}
