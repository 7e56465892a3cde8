package rtc

import (
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"whipgate/internal/testkit"
	"whipgate/whip/rtc/dtlskeys"
)

// A WHIP client's sender seals its media beneath pion in either DTLS role
// the answer gives it: as client from the peer's ServerHello read off its
// own sockets, as server from its own. Every packet reaches a plain pion
// peer through the batch, none through pion.
func TestClientSenderSealsInEitherDTLSRole(t *testing.T) {
	for name, peerRole := range map[string]webrtc.DTLSRole{"client": webrtc.DTLSRoleServer, "server": webrtc.DTLSRoleClient} {
		t.Run("as DTLS "+name, func(t *testing.T) {
			const n = 2000
			testkit.LeakCheck(t)
			rtc := newTestTransport(t)
			s, err := rtc.NewClientSender(webrtc.Configuration{}, APIOptions{}, PeerOptions{Log: testkit.Log(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			if s.direct == nil || len(s.socks) == 0 {
				t.Fatal("no sockets of its own")
			}
			ln := newLossyNet(t, 0) // counts; drops nothing
			var roleErr error
			v := connectPeers(t, s.pc, testkit.PionAPIWith(t, ln, func(se *webrtc.SettingEngine) {
				roleErr = se.SetAnsweringDTLSRole(peerRole)
			}), true)
			if roleErr != nil {
				t.Fatal(roleErr)
			}
			enc := v.sender.GetParameters().Encodings
			ln.rtx.Store(uint32(enc[0].RTX.SSRC))
			ln.ssrc.Store(uint32(enc[0].SSRC))
			if err := s.direct.activate(s.socks, s.pc); err != nil {
				t.Fatal(err)
			}
			if got := s.Stats().SRTP; got != "direct" {
				t.Fatalf("srtp %q after activation, want direct", got)
			}
			if client := s.keys().Client(); client != (name == "client") {
				t.Fatalf("keys derived as DTLS client %v, want %v", client, name == "client")
			}
			sendAll(t, v, s.batch, 1000, n, "all packets at the peer")
			sent, dropped := s.direct.stats()
			if sent < n || dropped != 0 {
				t.Errorf("direct path sent %d, dropped %d; want at least %d and 0", sent, dropped, n)
			}
			if at := uint64(ln.seen.Load() + ln.repairs.Load()); at > sent {
				t.Errorf("%d RTP packets reached the peer, %d of them not through the direct path", at, at-sent)
			}
			if st := s.Stats(); st.Batched < n || st.BatchCalls == 0 || st.BatchCalls > st.Batched/10 {
				datagrams, calls := st.Batched, st.BatchCalls
				t.Errorf("%d datagrams in %d sendmmsg calls (Stats); want at least %d in groups of ~50", datagrams, calls, n)
			}
		})
	}
}

// keys are the handshake secrets of the sender's direct path.
func (s *Sender) keys() *dtlskeys.Secrets { return &s.direct.keys }

// pion_srtp and a relay-only policy keep pion's path: no sockets of its
// own, nothing beneath pion.
func TestClientSenderPionPaths(t *testing.T) {
	rtc := newTestTransport(t)
	for name, tc := range map[string]struct {
		conf webrtc.Configuration
		opt  PeerOptions
	}{
		"pion_srtp":  {opt: PeerOptions{PionSRTP: true}},
		"relay only": {conf: webrtc.Configuration{ICETransportPolicy: webrtc.ICETransportPolicyRelay}},
	} {
		s, err := rtc.NewClientSender(tc.conf, APIOptions{}, tc.opt)
		if err != nil {
			t.Fatal(err)
		}
		if s.direct != nil || s.socks != nil || s.own != nil || s.batch != nil || s.Stats().SRTP != "pion" {
			t.Errorf("%s: direct %v, sockets %d, srtp %q; want pion's path", name, s.direct != nil, len(s.socks), s.Stats().SRTP)
		}
		_ = s.Close()
	}
}

// NoTWCC leaves the transport-wide congestion control header extension
// and feedback out of the offer.
func TestNoTWCCLeavesTransportCCOut(t *testing.T) {
	rtc := newTestTransport(t)
	for _, noTWCC := range []bool{false, true} {
		s, err := rtc.NewClientSender(webrtc.Configuration{}, APIOptions{NoTWCC: noTWCC}, PeerOptions{PionSRTP: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
		offer, err := s.pc.CreateOffer(nil)
		_ = s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if has := strings.Contains(offer.SDP, "transport-wide-cc") || strings.Contains(offer.SDP, "transport-cc"); has == noTWCC {
			t.Errorf("NoTWCC %v: offer names transport-wide CC %v", noTWCC, has)
		}
	}
}
