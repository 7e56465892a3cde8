package rtc

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/internal/testkit"
)

// A viewer decrypts what directSRTP seals with either SRTP profile we
// offer: the keys derived from the captured handshake are the session's,
// and every packet leaves through the batch, none through pion.
func TestDirectSRTPReachesPionViewer(t *testing.T) {
	for name, p := range map[string]dtls.SRTPProtectionProfile{"AEAD_AES_128_GCM": dtls.SRTP_AEAD_AES_128_GCM, "AES128_CM_HMAC_SHA1_80": dtls.SRTP_AES128_CM_HMAC_SHA1_80} {
		t.Run(name, func(t *testing.T) {
			const n = 2000
			d, ln, v, batch := connectDirect(t, func(se *webrtc.SettingEngine) { se.SetSRTPProtectionProfiles(p) })
			sendAll(t, v, batch, 1000, n, "all packets at the viewer")
			// Beyond the n packets, the direct path may carry re-sends of
			// what a loaded machine lost in the viewer's socket buffer; any
			// RTP at the viewer it did not count came through pion.
			sent, dropped := d.stats()
			if sent < n || dropped != 0 {
				t.Errorf("direct path sent %d, dropped %d; want at least %d and 0", sent, dropped, n)
			}
			if at := uint64(ln.seen.Load() + ln.repairs.Load()); at > sent {
				t.Errorf("%d RTP packets reached the viewer, %d of them not through the direct path", at, at-sent)
			}
			if sent, _ := batch.stats(); sent < n {
				t.Errorf("%d datagrams through the batch, want at least %d", sent, n)
			}
		})
	}
}

// After an ICE restart onto a new viewer address the direct path follows
// the new pair (same DTLS session, same keys): nothing is dropped or sent
// to the old address.
func TestDirectSRTPFollowsICERestart(t *testing.T) {
	const n = 500
	d, ln, v, batch := connectDirect(t, nil)
	sendAll(t, v, batch, 1000, n, "packets before the restart")
	_, before := selectedPair(v.pc)

	restartICE(t, v.viewer, v.pc)
	testkit.Eventually(t, 10*time.Second, "a new selected pair", func() bool {
		_, now := selectedPair(v.pc)
		return now.IsValid() && now != before && v.pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	sendAll(t, v, batch, 2000, n, "packets after the restart")
	// Re-sends of what a loaded machine lost may come on top of the 2n.
	sent, dropped := d.stats()
	if sent < 2*n || dropped != 0 {
		t.Errorf("direct path sent %d, dropped %d; want at least %d and 0", sent, dropped, 2*n)
	}
	if at := uint64(ln.seen.Load() + ln.repairs.Load()); at > sent {
		t.Errorf("%d RTP packets reached the viewer, %d of them not through the direct path", at, at-sent)
	}
}

// When we are DTLS client (we offered, and the peer answered as server),
// directSRTP never sees our ServerHello: Activate refuses and media keeps
// flowing through pion.
func TestDirectSRTPRefusesAsDTLSClient(t *testing.T) {
	rtc := newTestTransport(t)
	d := newDirectSRTP(testkit.Log(t))
	api := newTestAPI(t, rtc, APIOptions{direct: d})
	pc, track := directSender(t, api, webrtc.Configuration{})
	var roleErr error
	viewerAPI := testkit.PionAPIWith(t, testkit.StdNet(t), func(se *webrtc.SettingEngine) { roleErr = se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer) })
	if roleErr != nil {
		t.Fatal(roleErr)
	}
	viewer, err := viewerAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer viewer.Close()
	var got atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	countRTP(viewer, &wg, &got)
	negotiate(t, pc, viewer)
	defer viewer.Close() // before wg.Wait: ends the reader
	testkit.Eventually(t, 10*time.Second, "connected", func() bool {
		return pc.ConnectionState() == webrtc.PeerConnectionStateConnected && viewer.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	if err := d.activate(rtc.conns, pc); err == nil {
		t.Fatal("Activate succeeded as DTLS client")
	}
	requirePionPath(t, d, track, &got)
}

// A session whose selected pair is relayed (TURN) cannot take direct
// sends from our socket: Activate refuses and media flows through pion.
func TestDirectSRTPRefusesRelayPath(t *testing.T) {
	rtc := newTestTransport(t)
	d := newDirectSRTP(testkit.Log(t))
	api := newTestAPI(t, rtc, APIOptions{direct: d, RelayOnly: true})
	link, _, _ := testkit.TURN(t)
	pc, track := directSender(t, api, webrtc.Configuration{ICEServers: testkit.TURNICEServers(link), ICETransportPolicy: webrtc.ICETransportPolicyRelay})
	viewer := testkit.LoopbackPeer(t)
	var got atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	defer viewer.Close()
	if _, err := viewer.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	countRTP(viewer, &wg, &got)
	negotiate(t, viewer, pc)
	testkit.Eventually(t, 10*time.Second, "connected over the relay", func() bool {
		return pc.ConnectionState() == webrtc.PeerConnectionStateConnected && viewer.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	err := d.activate(rtc.conns, pc)
	if err == nil || !strings.Contains(err.Error(), "relay") {
		t.Fatalf("Activate on a relayed pair: %v; want a refusal naming the relay", err)
	}
	requirePionPath(t, d, track, &got)
}
