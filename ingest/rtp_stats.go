package ingest

import (
	"time"

	"github.com/pion/rtcp"
)

// recvStats keeps what an RTCP receiver report says about one sender
// (RFC 3550 section 6.4.1 and appendix A.3, A.8).
type recvStats struct {
	started                      bool
	baseSeq                      uint16
	maxSeq                       uint16
	cycles                       uint32
	received                     uint32
	expectedPrior, receivedPrior uint32
	jitter                       float64
	lastTransit                  int64
	lastSR                       uint32 // middle 32 bits of the last SR's NTP time
	lastSRAt                     time.Time
}

// update counts a packet that arrived at arrival (in RTP clock units).
func (s *recvStats) update(seq uint16, ts uint32, arrival int64) {
	transit := arrival - int64(ts)
	if !s.started {
		s.started, s.baseSeq, s.maxSeq, s.lastTransit = true, seq, seq, transit
	}
	if d := seq - s.maxSeq; d != 0 && d < 0x8000 {
		if seq < s.maxSeq {
			s.cycles += 1 << 16
		}
		s.maxSeq = seq
	}
	s.received++
	// Transit times wrap with the 32-bit timestamp; only their difference
	// matters.
	d := float64(int32(transit - s.lastTransit))
	if d < 0 {
		d = -d
	}
	s.lastTransit = transit
	s.jitter += (d - s.jitter) / 16
}

func (s *recvStats) senderReport(sr *rtcp.SenderReport, now time.Time) {
	s.lastSR, s.lastSRAt = uint32(sr.NTPTime>>16), now
}

// report fills in a reception report block and starts a new interval.
func (s *recvStats) report(ssrc uint32, now time.Time) rtcp.ReceptionReport {
	extMax := s.cycles + uint32(s.maxSeq)
	expected := extMax - uint32(s.baseSeq) + 1
	lost := int64(expected) - int64(s.received)
	lost = min(max(lost, 0), 1<<23-1)
	expInt := expected - s.expectedPrior
	recvInt := s.received - s.receivedPrior
	s.expectedPrior, s.receivedPrior = expected, s.received
	var fraction uint8
	if lostInt := int64(expInt) - int64(recvInt); expInt > 0 && lostInt > 0 {
		fraction = uint8(lostInt << 8 / int64(expInt))
	}
	rr := rtcp.ReceptionReport{
		SSRC:               ssrc,
		FractionLost:       fraction,
		TotalLost:          uint32(lost),
		LastSequenceNumber: extMax,
		Jitter:             uint32(s.jitter),
		LastSenderReport:   s.lastSR,
	}
	if s.lastSR != 0 {
		rr.Delay = uint32(now.Sub(s.lastSRAt) * 65536 / time.Second)
	}
	return rr
}
