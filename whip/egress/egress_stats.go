package egress

import (
	"math"
	"sync/atomic"
	"time"

	"whipgate/whip/rtc"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// egressFeedback gathers what the target reports back over RTCP for one
// session. Written by the RTCP readers, read by Status.
type egressFeedback struct {
	rttBits atomic.Uint64 // float64 milliseconds, NaN before any report
	remb    atomic.Int64  // bps, 0 before any REMB
	nacked  atomic.Uint64 // packets the target asked for again
	keyReqs atomic.Uint64 // PLI + FIR
	reports atomic.Uint64 // receiver reports seen
	last    atomic.Int64  // unix ns of the last RTCP packet; 0 before any
	now     func() time.Time
}

func newEgressFeedback() *egressFeedback {
	f := &egressFeedback{now: time.Now}
	f.rttBits.Store(math.Float64bits(math.NaN()))
	return f
}

// silentFor is how long the target has sent no RTCP at now; 0 before it
// sent any (a target that sends none is never called silent).
func (f *egressFeedback) silentFor(now time.Time) time.Duration {
	last := f.last.Load()
	if last == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, last))
}

// onPacket is rtc.ReadRTCP's onPacket.
func (f *egressFeedback) onPacket(p rtcp.Packet) {
	f.last.Store(f.now().UnixNano())
	switch p := p.(type) {
	case *rtcp.ReceiverReport:
		f.reports.Add(1)
		for _, r := range p.Reports {
			f.onReception(r)
		}
	case *rtcp.SenderReport:
		for _, r := range p.Reports {
			f.onReception(r)
		}
	case *rtcp.ReceiverEstimatedMaximumBitrate:
		f.remb.Store(int64(p.Bitrate))
	case *rtcp.TransportLayerNack:
		for _, pair := range p.Nacks {
			f.nacked.Add(uint64(len(pair.PacketList())))
		}
	}
}

// onReception computes the round trip from a reception report (RFC 3550
// §6.4.1): arrival − LSR − DLSR, all in NTP short format. The SR it refers
// to was stamped by pion's sender-report interceptor from the same clock.
func (f *egressFeedback) onReception(r rtcp.ReceptionReport) {
	if r.LastSenderReport == 0 {
		return
	}
	now := egressNTPShort(f.now())
	d := now - r.LastSenderReport - r.Delay
	if int32(d) < 0 { // clock step or a bogus report
		return
	}
	ms := float64(d) * 1000 / 65536
	f.rttBits.Store(math.Float64bits(ms))
}

// rttMs is the last round trip in ms, or 0 before one is known.
func (f *egressFeedback) rttMs() float64 {
	v := math.Float64frombits(f.rttBits.Load())
	if math.IsNaN(v) {
		return 0
	}
	return v
}

// egressNTPShort is the middle 32 bits of t's NTP timestamp (16.16 seconds).
func egressNTPShort(t time.Time) uint32 {
	const ntpEpochOffset = 2208988800 // seconds from 1900 to 1970
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return uint32(secs<<16) | uint32(frac>>16)
}

// egressCountingWriter passes packets on, counting payload bytes: audio
// skips the pacer, but its bytes count in the sent bitrate.
type egressCountingWriter struct {
	w     rtc.RTPWriter
	bytes atomic.Uint64
}

func (c *egressCountingWriter) WriteRTP(p *rtp.Packet) error {
	c.bytes.Add(uint64(len(p.Payload)))
	return c.w.WriteRTP(p)
}

// egressNACKHistory sizes the NACK responder's history for one sender to
// hold at least a second of packets at bps (payload bitrate) with packets
// of avgPayload bytes: a power of two from 1024 to 32768 (pion's limits).
// 0 means unknown: the transport's default.
func egressNACKHistory(bps int64, avgPayload int) int {
	if bps <= 0 {
		return 0
	}
	if avgPayload <= 0 {
		avgPayload = 1100
	}
	pps := bps/8/int64(avgPayload) + 1
	n := 1024
	for int64(n) < pps && n < 32768 {
		n <<= 1
	}
	return n
}
