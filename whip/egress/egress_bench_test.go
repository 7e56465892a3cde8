package egress

import (
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
	"whipgate/internal/rtctest"
	"whipgate/internal/testkit"
	"whipgate/whip/client"
	"whipgate/whip/rtc"
)

// BenchmarkEgressSendPath measures one 1200-byte packet through a
// connected egress session's track, in groups of 32 as the pacer releases
// them: pion's interceptors (NACK history sized for 100 Mbps, reports),
// then either pion's SRTP, ICE connection and a sendto per packet ("pion",
// pion_srtp) or the seal beneath pion and one sendmmsg with UDP GSO per
// group ("direct"), to a pion target on loopback that answers as DTLS
// server, as whipgate does.
//
// The target loses every RTP datagram at its socket, so that what it
// costs is one read a datagram, not pion's receive path. cpu-ns/op is the
// process's CPU time (user and system) per packet: the send path and
// that read.
func BenchmarkEgressSendPath(b *testing.B) {
	for _, path := range []string{"pion", "direct"} {
		b.Run(path, func(b *testing.B) { benchSendPath(b, path == "pion") })
	}
}

func benchSendPath(b *testing.B, pionSRTP bool) {
	tp := rtctest.New(b)
	f := testkit.NewTarget(b, func(f *testkit.Target) {
		f.Settings = func(se *webrtc.SettingEngine) { _ = se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer) }
		f.Drop = rtc.IsRTP
	})
	c, err := client.New(client.Config{URL: f.URL("127.0.0.1", "/whip")}, testkit.PionLog(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	snd, err := tp.NewClientSender(c.PeerConfiguration(),
		rtc.APIOptions{NACKHistory: egressNACKHistory(100_000_000, 1200), NoTWCC: true},
		rtc.PeerOptions{PionSRTP: pionSRTP, Log: testkit.PionLog(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer snd.Close()
	pc := snd.PeerConnection()
	leg := &egressLeg{layers: []string{"main"}}
	tracks, trs, err := leg.addTracks(pc, egressSetup{names: leg.layers, infos: []gateway.TrackInfo{{Name: "main", Codec: gateway.H264}}})
	if err != nil {
		b.Fatal(err)
	}
	track, tr := tracks[0], trs[0]
	sess, err := c.Publish(b.Context(), pc)
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close(b.Context())
	go rtc.ReadRTCP(tr.Sender(), nil, nil) // as the egress does: the interceptors see feedback
	testkit.Eventually(b, 10*time.Second, "connected", func() bool { return pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
	if err := snd.Activate(); err != nil && !pionSRTP {
		b.Fatal(err)
	}
	if got := snd.Stats().SRTP; got != map[bool]string{false: "direct", true: "pion"}[pionSRTP] {
		b.Fatalf("srtp %q", got)
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2}, Payload: make([]byte, 1200)}
	pkt.Payload[0] = 0x41
	b.SetBytes(1200)
	b.ReportAllocs()
	cpu0 := processCPU()
	for i := 0; b.Loop(); i++ {
		if i%32 == 0 {
			snd.OpenBatch()
		}
		pkt.Header = rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i/100) * 3000, Marker: i%100 == 99}
		if err := track.WriteRTP(&pkt); err != nil {
			b.Fatal(err)
		}
		if i%32 == 31 {
			_ = snd.FlushBatch()
		}
	}
	_ = snd.FlushBatch()
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
