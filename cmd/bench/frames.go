package bench

import (
	"math"
	"sync/atomic"
	"time"
)

// H.264 RTP payload layout of the synthetic stream (RFC 6184). Nothing
// decodes it: it only has to look like H.264 to the server's keyframe
// detection (STAP-A with an SPS, FU-A of an IDR) and carry a stamp.
const (
	maxPayload  = 1200              // pion's NACK history refuses more than 1460; 1200 fits any path MTU
	fuHeaderLen = 2                 // FU indicator + FU header
	stampLen    = 2 * stampFieldLen // frame number + send time, unix nanoseconds

	nalSEI  = 6
	nalIDR  = 5
	nalP    = 1
	nalSPS  = 7
	nalPPS  = 8
	nalSTAP = 24
	nalFUA  = 28

	fuStart = 0x80
	fuEnd   = 0x40

	clockRate = 90000
)

// A keyframe's first packet is a STAP-A of a fake SPS, PPS and an SEI that
// holds the stamp, so a decoder-free viewer finds the stamp at a fixed
// offset. The SPS says Constrained Baseline 3.1, like the fmtp.
var (
	fakeSPS = []byte{0x67, 0x42, 0xe0, 0x1f, 0x8c, 0x8d, 0x40, 0x28, 0x02, 0xdd, 0x08}
	fakePPS = []byte{0x68, 0xce, 0x3c, 0x80}
)

// stapStampOffset is where the stamp sits in a keyframe's STAP-A: after the
// STAP-A header, two length-prefixed NALs, the SEI's length and NAL header.
var stapStampOffset = 1 + 2 + len(fakeSPS) + 2 + len(fakePPS) + 2 + 1

// stapLen is the size of a keyframe's first packet.
var stapLen = stapStampOffset + stampLen + 1 // + rbsp trailing bits

// plan is the shape of the synthetic stream: how big each frame is and when
// it is due.
type plan struct {
	fps        int
	interval   time.Duration
	gopFrames  int
	keyBytes   int // payload bytes of a keyframe
	deltaBytes int // payload bytes of any other frame
}

// newPlan sizes frames so that a GOP averages bitrate: a keyframe is factor
// times the average frame (bitrate/fps) and the other frames share the
// rest. A GOP too short for that makes every frame a keyframe of average
// size.
func newPlan(bitrate int64, fps int, gop time.Duration, factor float64) plan {
	avg := float64(bitrate) / 8 / float64(fps)
	p := plan{fps: fps, interval: time.Second / time.Duration(fps)}
	p.gopFrames = max(1, int(math.Round(gop.Seconds()*float64(fps))))
	key := factor * avg
	if p.gopFrames == 1 || key >= avg*float64(p.gopFrames) {
		key = avg
	}
	p.keyBytes = max(stapLen+fuHeaderLen+stampLen, int(math.Round(key)))
	delta := avg
	if p.gopFrames > 1 {
		delta = (avg*float64(p.gopFrames) - key) / float64(p.gopFrames-1)
	}
	p.deltaBytes = max(fuHeaderLen+stampLen, int(math.Round(delta)))
	return p
}

// due is when frame n should go out, counted from the first frame.
func (p plan) due(n int) time.Duration {
	return time.Duration(int64(n) * int64(time.Second) / int64(p.fps))
}

// packets is how many RTP packets a frame of the given kind takes.
func (p plan) packets(key bool) int {
	if key {
		return 1 + ceilDiv(p.keyBytes-stapLen, maxPayload)
	}
	return ceilDiv(p.deltaBytes, maxPayload)
}

func ceilDiv(a, b int) int { return max(1, (a+b-1)/b) }

// tsOf is frame n's RTP timestamp relative to the first frame's.
func tsOf(n uint64, fps int) uint32 { return uint32(n * clockRate / uint64(fps)) }

// frameOf inverts tsOf for a timestamp difference d: tsOf floors n·90000/fps,
// so n is the ceiling of d·fps/90000 (for fps below 90000).
func frameOf(d uint32, fps int) uint64 {
	return (uint64(d)*uint64(fps) + clockRate - 1) / clockRate
}

// stampFieldLen is the bytes of one stamp field: 64 bits, 7 a byte, each
// byte's top bit set. A stamp has no zero byte, so that in an Annex-B
// stream (-box) it can neither make a start code nor need emulation
// prevention, and comes out of the server's packetizer as it went in.
const stampFieldLen = 10

func putStamp(b []byte, frame uint64, sentUnixNano int64) {
	putStampField(b, frame)
	putStampField(b[stampFieldLen:], uint64(sentUnixNano))
}

func putStampField(b []byte, v uint64) {
	for i := stampFieldLen - 1; i >= 0; i-- {
		b[i] = 0x80 | byte(v&0x7f)
		v >>= 7
	}
}

func stampField(b []byte) uint64 {
	var v uint64
	for _, c := range b[:stampFieldLen] {
		v = v<<7 | uint64(c&0x7f)
	}
	return v
}

// readStamp finds the stamp in a frame's first packet: a STAP-A (keyframe)
// or an FU-A with the start bit. Other packets carry none.
func readStamp(payload []byte) (frame uint64, sent int64, ok bool) {
	if len(payload) < fuHeaderLen+stampLen {
		return 0, 0, false
	}
	var s []byte
	switch payload[0] & 0x1f {
	case nalSTAP:
		if len(payload) < stapStampOffset+stampLen {
			return 0, 0, false
		}
		s = payload[stapStampOffset:]
	case nalFUA:
		if payload[1]&fuStart == 0 {
			return 0, 0, false
		}
		s = payload[fuHeaderLen:]
	default:
		return 0, 0, false
	}
	return stampField(s), int64(stampField(s[stampFieldLen:])), true
}

// frameRecord is what the publisher sent as one frame. The publisher sets
// packets before the frame's first packet leaves; viewers read it when
// that packet arrives, so a frame is complete when they have that many.
type frameRecord struct {
	packets   atomic.Int32
	key       atomic.Bool
	sentFirst atomic.Int64 // unix ns, just before the first packet was written
	sentLast  atomic.Int64 // unix ns, once the last packet's write returned
}

// frameTable is the publisher's record of every frame of a run, indexed by
// frame number and shared in memory with the viewers of the same process.
type frameTable struct {
	fps    int
	frames []frameRecord
}

func newFrameTable(fps int, span time.Duration) *frameTable {
	n := int(span.Seconds()*float64(fps)) + 1
	return &frameTable{fps: fps, frames: make([]frameRecord, n)}
}

// window returns the frames whose first packet was sent in [from, to).
func (t *frameTable) window(from, to int64) (first, end int) {
	first, end = -1, -1
	for i := range t.frames {
		s := t.frames[i].sentFirst.Load()
		if s == 0 {
			break
		}
		if s >= from && first < 0 {
			first = i
		}
		if s < to {
			end = i + 1
		}
	}
	if first < 0 || end <= first {
		return 0, 0
	}
	return first, end
}
