package rtc

import (
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v4"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
	"whipgate/internal/testkit"
	"whipgate/whip/rtc/codecs"
)

// ingestRig is a publisher (a plain pion API) and a server PeerConnection
// reading it through d, connected; got holds the payloads the server's
// track reader read, by sequence number.
type ingestRig struct {
	pub, srv *webrtc.PeerConnection
	track    *webrtc.TrackLocalStaticRTP
	d        *directIngest

	mu  sync.Mutex
	got map[uint16][]byte
	wg  sync.WaitGroup
}

// newIngestRig connects them; declare false leaves the offer's SSRCs
// undeclared. conf is the server's configuration, set the publisher's API.
func newIngestRig(t *testing.T, rtc *Transport, opt APIOptions, conf webrtc.Configuration, declare bool, set func(*webrtc.SettingEngine)) *ingestRig {
	t.Helper()
	return newIngestRigWith(t, rtc, opt, conf, declare, testkit.StdNet(t), set, nil)
}

// newIngestRigOn is newIngestRig with the defaults and the publisher on pubNet.
func newIngestRigOn(t *testing.T, rtc *Transport, pubNet transport.Net) *ingestRig {
	t.Helper()
	return newIngestRigWith(t, rtc, APIOptions{}, webrtc.Configuration{}, true, pubNet, nil, nil)
}

// watched, if set, sees the server's PeerConnection once the ingest
// watches it.
func newIngestRigWith(t *testing.T, rtc *Transport, opt APIOptions, conf webrtc.Configuration, declare bool, pubNet transport.Net,
	set func(*webrtc.SettingEngine), watched func(*webrtc.PeerConnection)) *ingestRig {
	t.Helper()
	in := &ingestRig{d: newDirectIngest(testkit.Log(t)), got: map[uint16][]byte{}}
	opt.ingest = in.d
	api, err := rtc.NewAPI(opt)
	if err != nil {
		t.Fatal(err)
	}
	if in.srv, err = api.NewPeerConnection(conf); err != nil {
		t.Fatal(err)
	}
	if in.pub, err = testkit.PionAPIWith(t, pubNet, set).NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = in.pub.Close()
		_ = in.srv.Close()
		in.d.unwatch(rtc)
		in.wg.Wait()
	})
	if in.track, err = webrtc.NewTrackLocalStaticRTP(codecs.Capability(diTrack), "video", "di"); err != nil {
		t.Fatal(err)
	}
	if _, err := in.pub.AddTransceiverFromTrack(in.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	in.srv.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		in.wg.Go(func() {
			buf := make([]byte, 1600)
			var p rtp.Packet
			for {
				n, _, err := tr.Read(buf)
				if err != nil {
					return
				}
				if p.Unmarshal(buf[:n]) == nil {
					in.mu.Lock()
					in.got[p.SequenceNumber] = append([]byte(nil), p.Payload...)
					in.mu.Unlock()
				}
			}
		})
	})
	negotiateWith(t, in.pub, in.srv, func(offer *webrtc.SessionDescription) {
		if declare {
			parsed, err := offer.Unmarshal()
			if err != nil {
				t.Fatal(err)
			}
			in.d.declare(parsed)
		}
		if err := in.d.watch(rtc, in.srv); err != nil { // as the server does: after Declare, before ICE
			t.Fatal(err)
		}
		if watched != nil {
			watched(in.srv)
		}
	})
	testkit.Eventually(t, 10*time.Second, "connected", func() bool {
		return in.srv.ConnectionState() == webrtc.PeerConnectionStateConnected && in.pub.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	return in
}

// send writes packets first..first+n-1, 1200-byte payloads numbered in
// their first bytes, in groups of 50 paced as a 100 Mbps source, and waits
// until the server's reader has them all. While it waits, the stream goes
// on with a packet every 50 ms, as live video does: a loss among the last
// packets is only seen, and asked for, when a later one arrives.
func (in *ingestRig) send(t *testing.T, first uint16, n int) {
	t.Helper()
	in.sendNeed(t, first, n, n)
}

// sendNeed is send that waits only until need of the n packets arrived.
func (in *ingestRig) sendNeed(t *testing.T, first uint16, n, need int) {
	t.Helper()
	write := func(i int) {
		seq := first + uint16(i)
		payload := make([]byte, 1200)
		payload[0] = 0x41
		binary.BigEndian.PutUint16(payload[1:], seq)
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(i/100) * 3000, Marker: i%100 == 99}, Payload: payload}
		if err := in.track.WriteRTP(&pkt); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		write(i)
		if i%50 == 49 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	next, last := n, time.Now()
	got := 0
	defer func() {
		if t.Failed() {
			t.Logf("%d of packets %d..%d at the server's track reader; %d more sent after them", got, first, first+uint16(n)-1, next-n)
		}
	}()
	testkit.Eventually(t, 5*time.Second, fmt.Sprintf("%d of %d packets at the server's track reader", need, n), func() bool {
		if time.Since(last) > 50*time.Millisecond {
			write(next)
			next, last = next+1, time.Now()
		}
		in.mu.Lock()
		defer in.mu.Unlock()
		got = 0
		for i := range n {
			if p := in.got[first+uint16(i)]; len(p) == 1200 && binary.BigEndian.Uint16(p[1:]) == first+uint16(i) {
				got++
			}
		}
		return got >= need
	})
}

var diTrack = gateway.TrackInfo{Name: "main", Codec: gateway.H264}

// A publisher's packets, sealed with either SRTP profile, reach the
// server's track reader through the direct path: all of them, none
// through pion.
func TestDirectIngestReadsBeneathPion(t *testing.T) {
	for name, p := range map[string]dtls.SRTPProtectionProfile{"AEAD_AES_128_GCM": dtls.SRTP_AEAD_AES_128_GCM, "AES128_CM_HMAC_SHA1_80": dtls.SRTP_AES128_CM_HMAC_SHA1_80} {
		t.Run(name, func(t *testing.T) {
			const n = 3000
			in := newIngestRig(t, newTestTransport(t), APIOptions{}, webrtc.Configuration{}, true, func(se *webrtc.SettingEngine) { se.SetSRTPProtectionProfiles(p) })
			in.send(t, 1000, n)
			taken, dropped, bad := in.d.stats()
			if taken < n || dropped != 0 || bad != 0 || !in.d.isActive() {
				t.Fatalf("direct path took %d, dropped %d, failed %d (active %v); want at least %d, 0, 0", taken, dropped, bad, in.d.isActive(), n)
			}
		})
	}
}

// SSRCs the offer did not declare (simulcast by rid) are pion's to find:
// the packets arrive through pion, none our way.
func TestDirectIngestLeavesUndeclaredSSRCs(t *testing.T) {
	in := newIngestRig(t, newTestTransport(t), APIOptions{}, webrtc.Configuration{}, false, nil)
	in.send(t, 1000, 500)
	if taken, _, _ := in.d.stats(); taken != 0 || in.d.isActive() {
		t.Fatalf("direct path took %d packets of an undeclared SSRC", taken)
	}
}

// Over a relay the pair is not on our socket: everything stays pion's.
func TestDirectIngestLeavesRelayedPath(t *testing.T) {
	link, _, _ := testkit.TURN(t)
	conf := webrtc.Configuration{ICEServers: testkit.TURNICEServers(link), ICETransportPolicy: webrtc.ICETransportPolicyRelay}
	in := newIngestRig(t, newTestTransport(t), APIOptions{RelayOnly: true}, conf, true, nil)
	// Media flows; over an in-process TURN server on a loaded machine
	// not necessarily every packet (not what this test is about).
	in.sendNeed(t, 1000, 500, 100)
	if taken, _, _ := in.d.stats(); taken != 0 || in.d.isActive() {
		t.Fatalf("direct path took %d packets over a relay", taken)
	}
}

// An API cannot both send and receive beneath pion.
func TestAPIRefusesDirectAndIngest(t *testing.T) {
	if _, err := newTestTransport(t).NewAPI(APIOptions{direct: newDirectSRTP(testkit.Log(t)), ingest: newDirectIngest(testkit.Log(t))}); err == nil {
		t.Fatal("NewAPI with Direct and Ingest: no error")
	}
}
func TestOffersDTLSServer(t *testing.T) {
	for setup, want := range map[string]bool{"actpass": false, "active": false, "passive": true} {
		raw := "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" +
			"m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=setup:" + setup + "\r\na=rtpmap:96 VP8/90000\r\n"
		var d sdp.SessionDescription
		if err := d.UnmarshalString(raw); err != nil {
			t.Fatal(err)
		}
		if got := OffersDTLSServer(&d); got != want {
			t.Errorf("setup:%s: OffersDTLSServer = %v, want %v", setup, got, want)
		}
	}
}

// Declare takes the SSRCs of plain sections, RTX included, and leaves a
// simulcast section's to pion. It pairs each RTX SSRC with its media SSRC
// (a=ssrc-group:FID) and each RTX payload type of the section with the
// media payload type it repairs (a=fmtp apt), wherever the lines stand.
func TestDirectIngestDeclare(t *testing.T) {
	raw := "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99\r\na=mid:0\r\na=rtpmap:96 H264/90000\r\na=rtpmap:97 rtx/90000\r\n" +
		"a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1\r\na=fmtp:97 apt=96\r\n" +
		"a=rtpmap:98 VP8/90000\r\na=rtpmap:99 rtx/90000\r\na=fmtp:99 rtx-time=3000; apt=98\r\n" +
		"a=ssrc-group:FID 11 12\r\na=ssrc:11 cname:x\r\na=ssrc:12 cname:x\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=rtpmap:96 H264/90000\r\na=rid:h send\r\na=rid:l send\r\na=simulcast:send h;l\r\n" +
		"a=ssrc-group:FID 21 22\r\na=ssrc:21 cname:x\r\na=ssrc:22 cname:x\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:2\r\na=rtpmap:111 opus/48000/2\r\na=ssrc:31 cname:x\r\n" +
		// FID before the lines it refers to, apt after; malformed groups.
		"m=video 9 UDP/TLS/RTP/SAVPF 100 101\r\na=mid:3\r\na=ssrc-group:FID 41 42\r\na=ssrc-group:FID 43\r\n" +
		"a=ssrc-group:FEC-FR 41 44\r\na=ssrc-group:FID 45 45\r\na=ssrc-group:FID x 46\r\n" +
		"a=ssrc:41 cname:x\r\na=ssrc:42 cname:x\r\na=rtpmap:100 VP9/90000\r\na=rtpmap:101 rtx/90000\r\na=fmtp:101 apt=100\r\n" +
		"a=fmtp:102 apt=300\r\na=fmtp:x apt=100\r\n"
	var offer sdp.SessionDescription
	if err := offer.UnmarshalString(raw); err != nil {
		t.Fatal(err)
	}
	d := newDirectIngest(testkit.Log(t))
	d.declare(&offer)
	for ssrc, want := range map[uint32]bool{11: true, 12: true, 21: false, 22: false, 31: true, 41: true, 42: true, 99: false} {
		if got := d.declared[ssrc]; got != want {
			t.Errorf("SSRC %d declared %v, want %v", ssrc, got, want)
		}
	}
	want := map[uint32]repairSSRC{
		12: {media: 11, apt: map[uint8]uint8{97: 96, 99: 98}},
		42: {media: 41, apt: map[uint8]uint8{101: 100}},
	}
	if !maps.EqualFunc(d.repairOf, want, func(a, b repairSSRC) bool { return a.media == b.media && maps.Equal(a.apt, b.apt) }) {
		t.Errorf("repairs declared %v, want %v", d.repairOf, want)
	}
}

// pion tells of the selected pair from a goroutine of its own, and a
// publisher's media can come first (1 in 25 publishers without candidates
// in their offer, on a loaded machine): it is read beneath pion all the
// same. Here pion's callback never comes.
func TestDirectIngestBeforePairCallback(t *testing.T) {
	in := newIngestRigWith(t, newTestTransport(t), APIOptions{}, webrtc.Configuration{}, true, testkit.StdNet(t), nil,
		func(srv *webrtc.PeerConnection) {
			srv.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(func(*webrtc.ICECandidatePair) {})
		})
	in.send(t, 1000, 300)
	if taken, dropped, bad := in.d.stats(); taken < 300 || dropped != 0 || bad != 0 {
		t.Fatalf("the direct path took %d, dropped %d, failed %d; want at least 300, 0, 0", taken, dropped, bad)
	}
}

// After an ICE restart the publisher sends from a new address: the direct
// path follows the new pair (same keys), and what fell between the two
// (handed to pion, whose stream nobody reads) is asked for again.
func TestDirectIngestFollowsICERestart(t *testing.T) {
	in := newIngestRig(t, newTestTransport(t), APIOptions{}, webrtc.Configuration{}, true, nil)
	in.send(t, 1000, 500)
	_, before := selectedPair(in.srv)
	restartICE(t, in.pub, in.srv)
	var after netip.AddrPort
	testkit.Eventually(t, 10*time.Second, "a new selected pair, followed", func() bool {
		_, after = selectedPair(in.srv)
		return after.IsValid() && after != before && in.d.knows(after)
	})
	taken0, _, _ := in.d.stats()
	in.send(t, 2000, 500)
	taken, dropped, bad := in.d.stats()
	if taken-taken0 < 500 || dropped != 0 || bad != 0 {
		t.Fatalf("after the restart (%s → %s) the direct path took %d, dropped %d, failed %d; want at least 500, 0, 0", before, after, taken-taken0, dropped, bad)
	}
}

// divertNet sends the publisher's datagrams, except RTP packets whose
// sequence numbers divert holds: those go out from another socket of the
// same host, as from a second host candidate of the publisher's.
type divertNet struct {
	transport.Net
	side   *net.UDPConn
	divert map[uint16]bool // read-only once sending
	sent   atomic.Int64
}

type divertConn struct {
	transport.UDPConn
	n *divertNet
}

func (c *divertConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if IsRTP(p) && c.n.divert[binary.BigEndian.Uint16(p[2:4])] {
		c.n.sent.Add(1)
		return c.n.side.WriteTo(p, addr)
	}
	return c.UDPConn.WriteTo(p, addr)
}

// A publisher may send its media from an address other than the selected
// pair's (Chromium with two host candidates does): a packet of a declared
// SSRC that decrypts teaches directIngest the address; one that does not
// decrypt is left to pion and teaches nothing.
func TestDirectIngestLearnsAnotherAddress(t *testing.T) {
	side, forger := testkit.LoopbackUDP(t, "udp4"), testkit.LoopbackUDP(t, "udp4")
	dn := &divertNet{side: side, divert: map[uint16]bool{}}
	dn.Net = testkit.WrapNet(testkit.StdNet(t), func(c transport.UDPConn) transport.UDPConn {
		return &divertConn{UDPConn: c, n: dn}
	})
	for s := uint16(1100); s < 1150; s++ {
		dn.divert[s] = true
	}
	rtc := newTestTransport(t)
	in := newIngestRigOn(t, rtc, dn)
	// A packet of the declared SSRC that is not the publisher's.
	ssrc := uint32(in.pub.GetTransceivers()[0].Sender().GetParameters().Encodings[0].SSRC)
	forged := make([]byte, 100)
	forged[0], forged[1] = 0x80, 96
	binary.BigEndian.PutUint32(forged[8:12], ssrc)
	if _, err := forger.WriteTo(forged, rtc.Addr()); err != nil {
		t.Fatal(err)
	}
	in.send(t, 1000, 500)
	if dn.sent.Load() != 50 {
		t.Fatalf("%d packets left from the other socket, want 50", dn.sent.Load())
	}
	sideAddr := side.LocalAddr().(*net.UDPAddr).AddrPort()
	forgerAddr := forger.LocalAddr().(*net.UDPAddr).AddrPort()
	if !in.d.knows(sideAddr) || in.d.knows(forgerAddr) {
		t.Fatalf("knows the other socket %v, the forger %v; want true, false", in.d.knows(sideAddr), in.d.knows(forgerAddr))
	}
	if taken, dropped, bad := in.d.stats(); taken < 500 || dropped != 0 || bad != 0 {
		t.Fatalf("direct path took %d, dropped %d, failed %d; want at least 500, 0, 0", taken, dropped, bad)
	}
}
