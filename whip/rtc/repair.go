package rtc

import (
	"context"
	"time"

	"github.com/pion/webrtc/v4"

	"whipgate/whip/rtc/nack"
)

// A viewer's loss repair, as its session sees it: the NACK responder, and
// the round trip its resend interval follows.

// rttEvery is how often FollowRTT looks at the round trip: ICE measures
// it every 2 s (a consent check on the selected pair).
const rttEvery = time.Second

// Responder is the viewer's NACK responder: nil on an API with pion's.
// Keep it to read its Stats after the PeerConnection closes; the
// transport forgets it then.
func (s *Sender) Responder() *nack.Responder { return s.t.resps.For(s.pc.ID()) }

// FollowRTT gives the viewer's NACK responder the round trip to the
// viewer as ICE measures it, at once and every second, until ctx is done:
// its resend interval follows (nack.Responder.SetRTT).
func (s *Sender) FollowRTT(ctx context.Context) {
	r := s.Responder()
	if r == nil {
		return
	}
	t := time.NewTicker(rttEvery)
	defer t.Stop()
	for {
		if rtt, ok := PeerRTT(s.pc); ok {
			r.SetRTT(rtt)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PeerRTT is the round trip to pc's remote peer as ICE last measured it
// on the selected candidate pair (see Ingest.RTT); false until measured.
func PeerRTT(pc *webrtc.PeerConnection) (time.Duration, bool) { return selectedPairRTT(pc) }
