package rtc

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"

	"github.com/pion/ice/v4"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
)

// Sender is one PeerConnection that sends media on the transport: a
// viewer's (NewSender) or a WHIP client's (NewClientSender). It is the seam
// between a session and what lies beneath pion: its RTP is sealed with the
// session's own SRTP keys and sent in batches where it can be (directSRTP,
// peerBatch).
type Sender struct {
	t      *Transport
	pc     *webrtc.PeerConnection
	direct *directSRTP // nil: pion's path
	socks  sockets     // where it sends beneath pion: the shared port's, or its own
	own    ice.UDPMux  // its own sockets' mux, closed with it; nil on the shared port
	batch  *peerBatch
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
	return &Sender{t: t, pc: pc, direct: direct, socks: t.conns, batch: newPeerBatch(t.conns, pc), log: opt.log(t)}, nil
}

// NewClientSender makes a PeerConnection that offers, as a WHIP client
// does, with conf and the API options api. It never gathers on the shared
// port: two sessions toward one target from there would share a 5-tuple,
// which neither side's ICE mux could tell apart. It gathers on sockets of
// its own instead, bound like the shared port's (the transport's buffers,
// batched sends with UDP GSO), from whose reads it learns the peer's
// ServerHello, so that its media can be sealed beneath pion in either DTLS
// role (api.NoMux is implied).
//
// With opt.PionSRTP or a relay-only policy it is pion's all through: pion
// gathers on sockets of its own and sends a packet per system call. The
// caller adds its tracks and negotiates; once connected, Forward sends.
func (t *Transport) NewClientSender(conf webrtc.Configuration, api APIOptions, opt PeerOptions) (*Sender, error) {
	s := &Sender{t: t, log: opt.log(t)}
	api.NoMux = true
	if !opt.PionSRTP && conf.ICETransportPolicy != webrtc.ICETransportPolicyRelay {
		d := newDirectSRTP(s.log)
		socks, mux, err := t.ownSockets(func(b []byte, _ netip.AddrPort) bool {
			d.keys.Inspect(b)
			return false
		})
		if err != nil {
			s.log.Warn("media goes through pion's path", "why", err)
		} else {
			s.direct, s.socks, s.own = d, socks, mux
			api.direct, api.mux = d, mux
		}
	}
	a, err := t.NewAPI(api)
	if err == nil {
		s.pc, err = a.NewPeerConnection(conf)
	}
	if err != nil {
		if s.own != nil {
			_ = s.own.Close()
		}
		return nil, err
	}
	s.batch = newPeerBatch(s.socks, s.pc)
	return s, nil
}

// PeerConnection is the sender's PeerConnection.
func (s *Sender) PeerConnection() *webrtc.PeerConnection { return s.pc }

// Forward sends sub's packets to writers (pion local tracks of the
// PeerConnection, or pacers in front of them, indexed like the
// subscription's tracks) until ctx is done or the subscription ends. Call
// it once connected (DTLS up): it switches the media to the direct path
// first, for good, and sends each group of packets with one sendmmsg (UDP
// GSO where the kernel has it).
func (s *Sender) Forward(ctx context.Context, sub *gateway.Subscription, writers []RTPWriter) error {
	if s.direct != nil {
		if err := s.Activate(); err != nil {
			s.log.Info("media goes through pion's SRTP path", "why", err)
		}
	}
	defer s.batch.close()
	return forwardBatched(ctx, sub, writers, s.batch)
}

// Activate switches the media to the direct path, for good, where it can;
// an error says why not, and pion's path stays. Call it once connected,
// before the first media packet; Forward does. Calling it again does
// nothing.
func (s *Sender) Activate() error {
	if s.direct == nil {
		return errors.New("webrtc: media on pion's path by configuration")
	}
	return s.direct.activate(s.socks, s.pc)
}

// OpenBatch gathers what is written to the PeerConnection from now on
// (media, re-sends, RTCP) toward the peer, until FlushBatch sends it in one
// sendmmsg: for writers other than Forward, such as a pacer releasing a
// group of packets. Pairs on several goroutines nest; the batch leaves at
// the last FlushBatch. Without a socket of ours to send from, both do
// nothing.
func (s *Sender) OpenBatch() { s.batch.open() }

// FlushBatch ends an OpenBatch. A failed send is loss on the path, like a
// failed sendto: the peer asks for what it missed.
func (s *Sender) FlushBatch() error { return s.batch.flush() }

// SenderSRTP says how a sender's media is sent, for the API.
type SenderSRTP struct {
	// SRTP is "direct" when the media is sealed and sent beneath pion,
	// else "pion".
	SRTP string `json:"srtp"`
	// DirectSent and DirectDropped count packets on the direct path.
	DirectSent    uint64 `json:"direct_sent,omitempty"`
	DirectDropped uint64 `json:"direct_dropped,omitempty"`
	// Batched counts the datagrams sent in batches and BatchCalls the
	// sendmmsg calls they took: their ratio is how well sends batch.
	Batched    uint64 `json:"batched,omitempty"`
	BatchCalls uint64 `json:"batch_calls,omitempty"`
}

// Stats says which path the sender's media takes.
func (s *Sender) Stats() SenderSRTP {
	st := SenderSRTP{SRTP: "pion"}
	if s.direct.isActive() {
		st.SRTP = "direct"
		st.DirectSent, st.DirectDropped = s.direct.stats()
	}
	st.Batched, st.BatchCalls = s.batch.stats()
	return st
}

// Close closes the PeerConnection, and its own sockets if it has any.
func (s *Sender) Close() error {
	err := s.pc.Close()
	_ = s.batch.close()
	if s.own != nil {
		err = errors.Join(err, s.own.Close())
	}
	return err
}
