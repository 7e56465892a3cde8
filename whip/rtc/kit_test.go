package rtc

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/transport/v4"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
	"whipgate/internal/testkit"
	"whipgate/whip/rtc/codecs"
)

// The test kit of the transport's own tests: a transport on loopback, pion
// viewers connected to it, and offer/answer between two PeerConnections.
// The kit shared with the other layers is internal/testkit.

// newTestTransport is a transport on 127.0.0.1 with quick consent timeouts.
func newTestTransport(t testing.TB) *Transport {
	t.Helper()
	return newTestTransportWith(t, nil)
}

// newTestTransportWith is newTestTransport with set changing its config.
func newTestTransportWith(t testing.TB, set func(*Config)) *Transport {
	t.Helper()
	cfg := Config{UDPListen: "127.0.0.1:0", DisconnectedTimeout: 1500 * time.Millisecond, FailedTimeout: 4 * time.Second}
	if set != nil {
		set(&cfg)
	}
	tr, err := New(cfg, testkit.PionLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// newTestAPI is tr's API with opt, failing the test if NewAPI refuses it.
func newTestAPI(t testing.TB, tr *Transport, opt APIOptions) *webrtc.API {
	t.Helper()
	api, err := tr.NewAPI(opt)
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// viewer is a WHEP-style pair on loopback: a sendonly server PC on the
// shared port of rtc and a plain pion viewer receiving its video.
type viewer struct {
	pc, viewer *webrtc.PeerConnection
	track      *webrtc.TrackLocalStaticRTP
	sender     *webrtc.RTPSender

	mu   sync.Mutex
	got  map[uint16]int // sequence number → payload length, as received
	recv atomic.Int64
	plis atomic.Int64 // PLIs the sender read
	wg   sync.WaitGroup
}

// connectViewer connects a viewer (on network n, nil for the plain one) to a
// server PC built from api, and waits until media can flow.
func connectViewer(t testing.TB, api *webrtc.API, n transport.Net) *viewer {
	t.Helper()
	if n == nil {
		n = testkit.StdNet(t)
	}
	return connectViewerWith(t, api, testkit.PionAPI(t, n))
}

// connectViewerWith is connectViewer with the viewer's own API.
func connectViewerWith(t testing.TB, api, viewerAPI *webrtc.API) *viewer {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	return connectPeers(t, pc, viewerAPI, false)
}

// connectPeers connects a viewer of viewerAPI to the server PC pc (which
// it closes when the test ends), the viewer offering, as WHEP's do, or pc
// (pcOffers), as a WHIP client does, and waits until media can flow.
func connectPeers(t testing.TB, pc *webrtc.PeerConnection, viewerAPI *webrtc.API, pcOffers bool) *viewer {
	t.Helper()
	v := &viewer{pc: pc, got: map[uint16]int{}}
	var err error
	if v.viewer, err = viewerAPI.NewPeerConnection(webrtc.Configuration{}); err != nil {
		_ = pc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = v.viewer.Close()
		_ = v.pc.Close()
		v.wg.Wait()
	})
	capab := codecs.Capability(gateway.TrackInfo{Name: "main", Codec: gateway.H264})
	if v.track, err = webrtc.NewTrackLocalStaticRTP(capab, "video", "bf"); err != nil {
		t.Fatal(err)
	}
	tr, err := v.pc.AddTransceiverFromTrack(v.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	v.sender = tr.Sender()
	v.wg.Go(func() { ReadRTCP(v.sender, func() { v.plis.Add(1) }, nil) })
	if !pcOffers {
		if _, err := v.viewer.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	v.viewer.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		var p rtp.Packet
		buf := make([]byte, 1500)
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			if p.Unmarshal(buf[:n]) != nil {
				continue
			}
			v.mu.Lock()
			v.got[p.SequenceNumber] = len(p.Payload)
			v.mu.Unlock()
			v.recv.Add(1)
		}
	})
	if pcOffers {
		negotiate(t, v.pc, v.viewer)
	} else {
		negotiate(t, v.viewer, v.pc)
	}
	testkit.Eventually(t, 10*time.Second, "connected", func() bool {
		return v.pc.ConnectionState() == webrtc.PeerConnectionStateConnected &&
			v.viewer.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	return v
}

// seqs returns how many of first..first+n-1 arrived.
func (v *viewer) arrived(first uint16, n int) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	c := 0
	for i := range n {
		if _, ok := v.got[first+uint16(i)]; ok {
			c++
		}
	}
	return c
}

// send writes packets first..first+n-1 in groups, each inside batch,
// pausing between groups as a 100 Mbps source would (a viewer's default
// socket buffer holds fewer than 200 packets).
func send(t testing.TB, v *viewer, batch *peerBatch, first uint16, n, group int) {
	t.Helper()
	pkt := rtp.Packet{Header: rtp.Header{Version: 2}, Payload: make([]byte, 1200)}
	pkt.Payload[0] = 0x41
	for i := 0; i < n; {
		batch.open()
		for end := min(n, i+group); i < end; i++ {
			pkt.Header = rtp.Header{Version: 2, SequenceNumber: first + uint16(i), Timestamp: uint32(i/100) * 3000, Marker: i%100 == 99}
			if err := v.track.WriteRTP(&pkt); err != nil {
				t.Fatal(err)
			}
		}
		if err := batch.flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(group) * 100 * time.Microsecond)
	}
}

// sendAll is send in groups of 50 that waits until the viewer has
// packets first..first+n-1, the stream going on meanwhile with a packet
// every 50 ms, as live video does: a loss among the last packets (a loaded
// machine's full socket buffer) is only seen, and asked for, when a later
// packet arrives.
func sendAll(t testing.TB, v *viewer, batch *peerBatch, first uint16, n int, what string) {
	t.Helper()
	send(t, v, batch, first, n, 50)
	next, last := first+uint16(n), time.Now()
	testkit.Eventually(t, 5*time.Second, what, func() bool {
		if time.Since(last) > 50*time.Millisecond {
			send(t, v, batch, next, 1, 1)
			next, last = next+1, time.Now()
		}
		return v.arrived(first, n) == n
	})
}

// directSender is a server PC of api with one sendonly H.264 track, closed
// when the test ends.
func directSender(t *testing.T, api *webrtc.API, conf webrtc.Configuration) (*webrtc.PeerConnection, *webrtc.TrackLocalStaticRTP) {
	t.Helper()
	pc, err := api.NewPeerConnection(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	track, err := webrtc.NewTrackLocalStaticRTP(codecs.Capability(gateway.TrackInfo{Name: "main", Codec: gateway.H264}), "video", "ds")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	return pc, track
}

// connectDirect connects a pion viewer (set, if not nil, changing its
// settings) to a server PC of a new transport whose media directSRTP,
// activated, seals beneath pion and batch sends. The viewer's network ln
// drops nothing: it counts what reaches it of the sender's SSRCs.
func connectDirect(t *testing.T, set func(*webrtc.SettingEngine)) (d *directSRTP, ln *lossyNet, v *viewer, batch *peerBatch) {
	t.Helper()
	rtc := newTestTransport(t)
	d = newDirectSRTP(testkit.Log(t))
	api := newTestAPI(t, rtc, APIOptions{direct: d})
	ln = newLossyNet(t, 0)
	v = connectViewerWith(t, api, testkit.PionAPIWith(t, ln, set))
	enc := v.sender.GetParameters().Encodings
	if len(enc) == 0 {
		t.Fatal("sender has no encodings")
	}
	ln.rtx.Store(uint32(enc[0].RTX.SSRC))
	ln.ssrc.Store(uint32(enc[0].SSRC))
	if err := d.activate(rtc.conns, v.pc); err != nil {
		t.Fatal(err)
	}
	batch = newPeerBatch(rtc.conns, v.pc)
	t.Cleanup(func() { _ = batch.close() })
	return d, ln, v, batch
}

// countRTP counts the RTP packets of viewer's tracks in got, reading on
// goroutines of wg.
func countRTP(viewer *webrtc.PeerConnection, wg *sync.WaitGroup, got *atomic.Int64) {
	viewer.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		wg.Go(func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := tr.Read(buf); err != nil {
					return
				}
				got.Add(1)
			}
		})
	})
}

// requirePionPath writes on track until the viewer counted 20 packets,
// and requires that none went the direct way.
func requirePionPath(t *testing.T, d *directSRTP, track *webrtc.TrackLocalStaticRTP, got *atomic.Int64) {
	t.Helper()
	pkt := rtp.Packet{Header: rtp.Header{Version: 2}, Payload: []byte{0x41, 1, 2, 3}}
	testkit.Eventually(t, 5*time.Second, "packets through pion", func() bool {
		pkt.SequenceNumber++
		pkt.Marker = true
		_ = track.WriteRTP(&pkt)
		return got.Load() >= 20
	})
	if sent, _ := d.stats(); sent != 0 || d.isActive() {
		t.Errorf("direct path sent %d (active %v) after a refused Activate", sent, d.isActive())
	}
}

// restartICE renegotiates with an ICE restart offered by offerer.
func restartICE(t testing.TB, offerer, answerer *webrtc.PeerConnection) {
	t.Helper()
	renegotiate(t, offerer, answerer, &webrtc.OfferOptions{ICERestart: true}, nil)
}

// negotiate makes offerer's offer and answerer's answer, candidates
// included.
func negotiate(t testing.TB, offerer, answerer *webrtc.PeerConnection) {
	t.Helper()
	negotiateWith(t, offerer, answerer, nil)
}

// negotiateWith is negotiate that shows the offer to onOffer (if not
// nil) before the answerer applies it.
func negotiateWith(t testing.TB, offerer, answerer *webrtc.PeerConnection, onOffer func(*webrtc.SessionDescription)) {
	t.Helper()
	renegotiate(t, offerer, answerer, nil, onOffer)
}

// renegotiate is one offer (with opts) and answer, candidates included.
// A restart waits for gathering at most testkit.AwaitGathering's bound.
func renegotiate(t testing.TB, offerer, answerer *webrtc.PeerConnection, opts *webrtc.OfferOptions, onOffer func(*webrtc.SessionDescription)) {
	t.Helper()
	await := func(gathered <-chan struct{}) { <-gathered }
	if opts != nil && opts.ICERestart {
		await = testkit.AwaitGathering
	}
	setOffer(t, offerer, opts, await)
	if onOffer != nil {
		onOffer(offerer.LocalDescription())
	}
	answerOffer(t, offerer, answerer, nil, await)
}

// setOffer sets a new offer (with opts) on offerer and waits for its
// candidates with await.
func setOffer(t testing.TB, offerer *webrtc.PeerConnection, opts *webrtc.OfferOptions, await func(<-chan struct{})) {
	t.Helper()
	offer, err := offerer.CreateOffer(opts)
	if err != nil {
		t.Fatal(err)
	}
	testkit.SetLocal(t, offerer, offer, await)
}

// answerOffer applies offerer's offer to answerer and answerer's answer,
// its candidates gathered with await, to offerer. prepare, if not nil,
// runs once the offer is applied, before the answer is made.
func answerOffer(t testing.TB, offerer, answerer *webrtc.PeerConnection, prepare func(), await func(<-chan struct{})) {
	t.Helper()
	if err := answerer.SetRemoteDescription(*offerer.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare()
	}
	answer, err := answerer.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	testkit.SetLocal(t, answerer, answer, await)
	if err := offerer.SetRemoteDescription(*answerer.LocalDescription()); err != nil {
		t.Fatal(err)
	}
}
