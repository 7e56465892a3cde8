package whip

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/transport/v4"
	"github.com/pion/transport/v4/stdnet"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
)

// bfViewer is a WHEP-style pair on loopback: a sendonly server PC on the
// shared port of rtc and a plain pion viewer receiving its video.
type bfViewer struct {
	pc, viewer *webrtc.PeerConnection
	track      *webrtc.TrackLocalStaticRTP
	sender     *webrtc.RTPSender

	mu   sync.Mutex
	got  map[uint16]int // sequence number → payload length, as received
	recv atomic.Int64
	plis atomic.Int64 // PLIs the sender read
	wg   sync.WaitGroup
}

// bfConnect connects a viewer (on network n, nil for the plain one) to a
// server PC built from api, and waits until media can flow.
func bfConnect(t testing.TB, api *webrtc.API, n transport.Net) *bfViewer {
	t.Helper()
	if n == nil {
		var err error
		if n, err = stdnet.NewNet(); err != nil {
			t.Fatal(err)
		}
	}
	return bfConnectWith(t, api, ftNewAPI(t, n))
}

// bfConnectWith is bfConnect with the viewer's own API.
func bfConnectWith(t testing.TB, api, viewerAPI *webrtc.API) *bfViewer {
	t.Helper()
	v := &bfViewer{got: map[uint16]int{}}
	var err error
	if v.pc, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	if v.viewer, err = viewerAPI.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = v.viewer.Close()
		_ = v.pc.Close()
		v.wg.Wait()
	})
	capab := Capability(gateway.TrackInfo{Name: "main", Codec: gateway.H264})
	if v.track, err = webrtc.NewTrackLocalStaticRTP(capab, "video", "bf"); err != nil {
		t.Fatal(err)
	}
	tr, err := v.pc.AddTransceiverFromTrack(v.track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	v.sender = tr.Sender()
	v.wg.Go(func() { ReadRTCP(v.sender, func() { v.plis.Add(1) }, nil) })
	if _, err := v.viewer.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
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
	offer, err := v.viewer.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(v.viewer)
	if err := v.viewer.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := v.pc.SetRemoteDescription(*v.viewer.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := v.pc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done = webrtc.GatheringCompletePromise(v.pc)
	if err := v.pc.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := v.viewer.SetRemoteDescription(*v.pc.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	ftEventually(t, 10*time.Second, "connected", func() bool {
		return v.pc.ConnectionState() == webrtc.PeerConnectionStateConnected &&
			v.viewer.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	return v
}

// seqs returns how many of first..first+n-1 arrived.
func (v *bfViewer) arrived(first uint16, n int) int {
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

// bfSend writes packets first..first+n-1 in groups, each inside batch,
// pausing between groups as a 100 Mbps source would (a viewer's default
// socket buffer holds fewer than 200 packets).
func bfSend(t testing.TB, v *bfViewer, batch *PeerBatch, first uint16, n, group int) {
	t.Helper()
	pkt := rtp.Packet{Header: rtp.Header{Version: 2}, Payload: make([]byte, 1200)}
	pkt.Payload[0] = 0x41
	for i := 0; i < n; {
		batch.Open()
		for end := min(n, i+group); i < end; i++ {
			pkt.Header = rtp.Header{Version: 2, SequenceNumber: first + uint16(i), Timestamp: uint32(i/100) * 3000, Marker: i%100 == 99}
			if err := v.track.WriteRTP(&pkt); err != nil {
				t.Fatal(err)
			}
		}
		if err := batch.Flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(group) * 100 * time.Microsecond)
	}
}

// bfSendAll is bfSend in groups of 50 that waits until the viewer has
// packets first..first+n-1, the stream going on meanwhile with a packet
// every 50 ms, as live video does: a loss among the last packets (a loaded
// machine's full socket buffer) is only seen, and asked for, when a later
// packet arrives.
func bfSendAll(t testing.TB, v *bfViewer, batch *PeerBatch, first uint16, n int, what string) {
	t.Helper()
	bfSend(t, v, batch, first, n, 50)
	next, last := first+uint16(n), time.Now()
	ftEventually(t, 5*time.Second, what, func() bool {
		if time.Since(last) > 50*time.Millisecond {
			bfSend(t, v, batch, next, 1, 1)
			next, last = next+1, time.Now()
		}
		return v.arrived(first, n) == n
	})
}

// Media written inside a PeerBatch reaches a real pion viewer through the
// ICE mux, SRTP and all, and goes out in batches.
func TestPeerBatchThroughPion(t *testing.T) {
	const n = 2000
	_, batch := bfBatchedToViewer(t, ftNewRTC(t), n)
	sent, calls := batch.Stats()
	if sent < n {
		t.Fatalf("got %d datagrams through the batch, want at least %d: the batch did not catch the mux's writes", sent, n)
	}
	if calls > sent/10 {
		t.Errorf("got %d sendmmsg calls for %d datagrams, want groups of ~50", calls, sent)
	}
}

// bfBatchedToViewer connects a viewer to a PC of rtc and sends it n packets
// in groups of 50 through the PC's batch; all of them must arrive.
func bfBatchedToViewer(t *testing.T, rtc *RTC, n int) (*bfViewer, *PeerBatch) {
	t.Helper()
	api, err := rtc.NewAPI(APIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v := bfConnect(t, api, nil)
	batch := rtc.NewPeerBatch(v.pc)
	t.Cleanup(func() { _ = batch.Close() })
	bfSendAll(t, v, batch, 1000, n, "all packets at the viewer")
	return v, batch
}

// BenchmarkPeerSend is one 1200-byte packet through a connected server PC
// (interceptors, SRTP, ICE mux, socket) to a pion viewer on loopback, in
// groups of 32 as Forward sees them, sent one by one or batched.
func BenchmarkPeerSend(b *testing.B) {
	for _, mode := range []string{"sendto", "batched", "direct"} {
		b.Run(mode, func(b *testing.B) {
			rtc := ftNewRTC(b)
			var d *DirectSRTP
			if mode == "direct" {
				d = NewDirectSRTP(ftTestLog(b))
			}
			api, err := rtc.NewAPI(APIOptions{Direct: d})
			if err != nil {
				b.Fatal(err)
			}
			v := bfConnect(b, api, nil)
			if d != nil {
				if err := d.Activate(rtc, v.pc); err != nil {
					b.Fatal(err)
				}
			}
			var batch *PeerBatch
			if mode != "sendto" {
				batch = rtc.NewPeerBatch(v.pc)
				defer batch.Close()
			}
			pkt := rtp.Packet{Header: rtp.Header{Version: 2}, Payload: make([]byte, 1200)}
			pkt.Payload[0] = 0x41
			b.SetBytes(1200)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i%32 == 0 {
					_ = batch.Flush()
					batch.Open()
				}
				pkt.Header = rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i/100) * 3000, Marker: i%100 == 99}
				if err := v.track.WriteRTP(&pkt); err != nil {
					b.Fatal(err)
				}
			}
			_ = batch.Flush()
		})
	}
}

// Listening on every address binds one socket per local address (here two
// loopback ones, so that no test traffic leaves 127.0.0.0/8), each batching
// its sends: a viewer's media leaves in batches from whichever socket ICE
// selected, and a publisher on either is gated.
func TestPeerBatchOnEveryAddress(t *testing.T) {
	rtc, err := NewRTC(RTCConfig{UDPListen: "0.0.0.0:0", listenIPs: func() ([]net.IP, error) {
		return []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2)}, nil
	}}, ftPionLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rtc.Close()
	if len(rtc.conns) != 2 {
		t.Fatalf("%d sockets for two addresses", len(rtc.conns))
	}
	a0, a1 := rtc.conns[0].LocalAddr().(*net.UDPAddr), rtc.conns[1].LocalAddr().(*net.UDPAddr)
	if a0.Port != a1.Port || a0.Port != rtc.Addr().Port {
		t.Errorf("sockets on %v and %v, RTC on %v: want one port", a0, a1, rtc.Addr())
	}
	for _, c := range rtc.conns {
		if c.gate != &rtc.gate {
			t.Errorf("socket %v reads past the RTC's publisher gate", c.LocalAddr())
		}
	}
	const n = 1000
	v, batch := bfBatchedToViewer(t, rtc, n)
	if sent, _ := batch.Stats(); sent < n {
		t.Fatalf("%d datagrams through the batch, want at least %d: the batch sits on another socket than the selected pair's", sent, n)
	}
	local, _ := selectedPair(v.pc)
	if batch.conn == nil || batch.conn.conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr() != local {
		t.Errorf("batch on %v, selected pair's local address %v", batch.conn, local)
	}
}
