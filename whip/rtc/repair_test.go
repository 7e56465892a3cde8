package rtc

import (
	"context"
	"testing"
	"time"

	"github.com/pion/rtcp"

	"whipgate/internal/testkit"
	"whipgate/whip/rtc/nack"
)

// A viewer's NACK responder is found from its Sender, follows the round
// trip ICE measures (on loopback, under the floor), and keeps its figures
// once the PeerConnection has closed.
func TestSenderResponderFollowsRTT(t *testing.T) {
	tr := newTestTransport(t)
	api := newTestAPI(t, tr, APIOptions{})
	v := connectViewer(t, api, nil)
	s := &Sender{t: tr, pc: v.pc, log: testkit.Log(t)}
	r := s.Responder()
	if r == nil {
		t.Fatal("no responder for the sender's PeerConnection")
	}
	if got := r.Interval(); got != nack.DefaultResendInterval {
		t.Fatalf("resend interval %v before the round trip is known, want %v", got, nack.DefaultResendInterval)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.FollowRTT(ctx) }()
	testkit.Eventually(t, 10*time.Second, "the round trip measured", func() bool {
		_, ok := PeerRTT(v.pc)
		return ok && r.Interval() == nack.MinResendInterval
	})
	rtt, _ := PeerRTT(v.pc)
	cancel()
	<-done

	sendAll(t, v, newPeerBatch(tr.conns, v.pc), 100, 50, "packets")
	nackFrom(t, v, 120, 1) // 1 was never sent
	testkit.Eventually(t, 5*time.Second, "the NACK answered", func() bool {
		st := r.Stats()
		return st.Resent == 1 && st.Unavailable == 1
	})
	if err := v.pc.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Responder() != nil {
		t.Error("the transport still finds the responder of a closed PeerConnection")
	}
	if st := r.Stats(); st.Resent != 1 {
		t.Errorf("after Close: %+v, want the figures kept", st)
	}
	t.Logf("round trip %v, resend interval %v", rtt, nack.MinResendInterval)
}

// nackFrom has v's viewer ask for seqs of the video stream.
func nackFrom(t *testing.T, v *viewer, seqs ...uint16) {
	t.Helper()
	ssrc := uint32(v.sender.GetParameters().Encodings[0].SSRC)
	nack := &rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}
	if err := v.viewer.WriteRTCP([]rtcp.Packet{nack}); err != nil {
		t.Fatal(err)
	}
}
