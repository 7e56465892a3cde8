package rtc

import (
	"context"
	"log/slog"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
)

// Sender is one viewer's PeerConnection on the transport: the seam between
// a WHEP session and what lies beneath pion. Its RTP is sealed with the
// session's own SRTP keys and sent in batches where it can be (directSRTP).
type Sender struct {
	t      *Transport
	pc     *webrtc.PeerConnection
	direct *directSRTP // nil: pion's path
	log    *slog.Logger
}

// NewSender makes the PeerConnection for a viewer's offer (not yet
// applied) with conf. The caller adds its tracks, applies the offer to
// PeerConnection() and answers it; once connected, Forward sends.
func (t *Transport) NewSender(offer *sdp.SessionDescription, conf webrtc.Configuration, opt PeerOptions) (*Sender, error) {
	var direct *directSRTP
	if beneath(offer, opt.PionSRTP) {
		direct = newDirectSRTP(opt.log(t))
	}
	pc, err := t.newPeer(conf, APIOptions{direct: direct})
	if err != nil {
		return nil, err
	}
	return &Sender{t: t, pc: pc, direct: direct, log: opt.log(t)}, nil
}

// PeerConnection is the viewer's PeerConnection.
func (s *Sender) PeerConnection() *webrtc.PeerConnection { return s.pc }

// Forward sends sub's packets to writers (pion local tracks of the
// PeerConnection, indexed like the subscription's tracks) until ctx is
// done or the subscription ends. Call it once connected (DTLS up): it
// switches the media to the direct path first, for good, and sends each
// group of packets with one sendmmsg (UDP GSO where the kernel has it).
func (s *Sender) Forward(ctx context.Context, sub *gateway.Subscription, writers []RTPWriter) error {
	if s.direct != nil {
		if err := s.direct.activate(s.t.conns, s.pc); err != nil {
			s.log.Info("media goes through pion's SRTP path", "why", err)
		}
	}
	batch := newPeerBatch(s.t.conns, s.pc)
	defer batch.close()
	return forwardBatched(ctx, sub, writers, batch)
}

// SenderSRTP says how a viewer's media is sent, for the API.
type SenderSRTP struct {
	// SRTP is "direct" when the media is sealed and sent beneath pion,
	// else "pion".
	SRTP string `json:"srtp"`
	// DirectSent and DirectDropped count packets on the direct path.
	DirectSent    uint64 `json:"direct_sent,omitempty"`
	DirectDropped uint64 `json:"direct_dropped,omitempty"`
}

// Stats says which path the viewer's media takes.
func (s *Sender) Stats() SenderSRTP {
	st := SenderSRTP{SRTP: "pion"}
	if s.direct.isActive() {
		st.SRTP = "direct"
		st.DirectSent, st.DirectDropped = s.direct.stats()
	}
	return st
}

// Close closes the PeerConnection.
func (s *Sender) Close() error { return s.pc.Close() }
