package egress

import (
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
	"whipgate/internal/rtctest"
	"whipgate/internal/testkit"
	"whipgate/whip/client"
	"whipgate/whip/rtc"
)

// BenchmarkEgressSendPath measures one 1200-byte packet through a
// connected session's track: pion's interceptors (NACK history sized for
// 100 Mbps, reports, and with "bwe" the TWCC sequence numbers and GCC),
// SRTP and the UDP send to a pion target on loopback.
func BenchmarkEgressSendPath(b *testing.B) {
	for _, withBWE := range []bool{false, true} {
		name := "plain"
		if withBWE {
			name = "bwe"
		}
		b.Run(name, func(b *testing.B) {
			tp := rtctest.New(b)
			f := testkit.NewTarget(b, nil)
			c, err := client.New(client.Config{URL: f.URL("127.0.0.1", "/whip")}, testkit.PionLog(b))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			var extra []interceptor.Factory
			if withBWE {
				var bwe egressBWE
				if extra, err = bwe.interceptors(100_000_000, testkit.PionLog(b)); err != nil {
					b.Fatal(err)
				}
			}
			api, err := tp.NewAPI(rtc.APIOptions{NACKHistory: egressNACKHistory(100_000_000, 1200), Interceptors: extra})
			if err != nil {
				b.Fatal(err)
			}
			pc, err := api.NewPeerConnection(c.PeerConfiguration())
			if err != nil {
				b.Fatal(err)
			}
			defer pc.Close()
			capab := rtc.Capability(gateway.TrackInfo{Name: "main", Codec: gateway.H264})
			track, err := webrtc.NewTrackLocalStaticRTP(capab, "video", "bench")
			if err != nil {
				b.Fatal(err)
			}
			tr, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
			if err != nil {
				b.Fatal(err)
			}
			if err := rtc.PreferCodec(tr, capab, true); err != nil {
				b.Fatal(err)
			}
			sess, err := c.Publish(b.Context(), pc)
			if err != nil {
				b.Fatal(err)
			}
			defer sess.Close(b.Context())
			go func() { // drain RTCP so the interceptors see feedback, as the egress does
				for {
					if _, _, err := tr.Sender().ReadRTCP(); err != nil {
						return
					}
				}
			}()
			testkit.Eventually(b, 10*time.Second, "connected", func() bool { return pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
			pkt := rtp.Packet{Header: rtp.Header{Version: 2}, Payload: make([]byte, 1200)}
			pkt.Payload[0] = 0x41
			b.SetBytes(1200)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				pkt.Header = rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i/100) * 3000, Marker: i%100 == 99}
				if err := track.WriteRTP(&pkt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
