package egress

import (
	"encoding/binary"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
	"whipgate/internal/rtctest"
	"whipgate/internal/testkit"
	"whipgate/whip/rtc"
)

// An egress to a target that answers as DTLS server, as whipgate does, so
// the egress is DTLS client: its media is sealed beneath pion and sent in
// batches. The target's path loses one media packet in 20; every packet
// arrives all the same, sent again on NACK, and the target's last sender
// report counts exactly what was sent.
//
// The target takes no RTX: pion's NACK generator does not see what RTX
// repairs and asks for it again every 100 ms, until the responder's
// budget is spent on packets already repaired (the same on pion's path;
// whipgate's generator asks once).
func TestEgressDirectRepairsLossAndReports(t *testing.T) {
	testkit.LeakCheck(t)
	tr := rtctest.New(t)
	hub := newTestHub(t)
	var media atomic.Uint32 // the first SSRC seen: the video's
	var dropped atomic.Int64
	var lost sync.Map // sequence numbers dropped once; their re-sends pass
	f := testkit.NewTarget(t, func(f *testkit.Target) {
		f.Settings = func(se *webrtc.SettingEngine) { _ = se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer) }
		f.EditAnswer = withoutRTX
		f.Drop = func(b []byte) bool {
			if !rtc.IsRTP(b) {
				return false
			}
			ssrc := binary.BigEndian.Uint32(b[8:])
			first := media.CompareAndSwap(0, ssrc) // never lost: a receiver NACKs only after one
			seq := binary.BigEndian.Uint16(b[2:])
			if first || ssrc != media.Load() || seq%20 != 0 {
				return false
			}
			if _, again := lost.LoadOrStore(seq, true); again {
				return false
			}
			dropped.Add(1)
			return true
		}
	})
	info := gateway.TrackInfo{Name: "main", Codec: gateway.H264, Fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}
	pub, err := hub.Publish("cam", []gateway.TrackInfo{info}, gateway.PublishOptions{Kind: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	var seq uint16
	var ts uint32
	writeFrames := func(n int) {
		for i := range n {
			pkts := testkit.SynthFrame(gateway.H264, i%15 == 0)
			for k, p := range pkts {
				pub.WriteRTP(0, &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts, Marker: k == len(pkts)-1}, Payload: p})
				seq++
			}
			ts += 3000
			time.Sleep(10 * time.Millisecond)
		}
	}
	writeFrames(1) // the stream is live: the egress starts
	e, _ := startEgress(t, hub, tr, Config{URL: f.URL("127.0.0.1", "/whip")})
	waitState(t, e, StateConnected, 10*time.Second)
	writeFrames(300)

	// Once the egress has sent all the hub handed it, it has all arrived,
	// the losses repaired.
	var sess *testkit.TargetSession
	var got testkit.Received
	var st SessionStatus
	defer func() {
		if t.Failed() {
			ends, _ := seqRunEnds(got.Packets)
			t.Logf("status %+v; target: %d packets in %d runs, %d repaired; %d dropped", st, len(got.Packets), ends, got.Repaired, dropped.Load())
		}
	}()
	testkit.Eventually(t, 10*time.Second, "every packet at the target", func() bool {
		st = e.Status().Sessions[0]
		if ss := f.Sessions(); len(ss) == 1 {
			sess = ss[0]
			got = sess.Received("video")
		}
		stream, _ := hub.Stream("cam")
		subs := stream.Stats().Subscribers
		return len(subs) == 1 && subs[0].Queued == 0 && subs[0].Delivered == st.Packets && uint64(len(got.Packets)) == st.Packets
	})
	ends, last := seqRunEnds(got.Packets)
	if ends != 1 {
		t.Fatalf("the target's sequence numbers form %d runs, want one without gaps", ends)
	}
	if dropped.Load() == 0 || st.NACKed < uint64(dropped.Load()) {
		t.Errorf("%d packets lost on the way, %d NACKed; want losses, all NACKed", dropped.Load(), st.NACKed)
	}
	if resent := int64(st.DirectSent) - int64(st.Packets); st.SRTP != "direct" || resent < dropped.Load() || st.DirectDropped != 0 {
		t.Errorf("srtp %q, %d sent beneath pion (%d of them again), %d dropped; want direct, at least %d again, none dropped",
			st.SRTP, st.DirectSent, resent, st.DirectDropped, dropped.Load())
	}

	// A sender report made after the last packet counts them all.
	reports := len(got.SenderReports)
	testkit.Eventually(t, 5*time.Second, "a sender report after the last packet", func() bool {
		got = sess.Received("video")
		return len(got.SenderReports) > reports
	})
	sr := got.SenderReports[len(got.SenderReports)-1]
	var octets uint32
	for _, p := range got.Packets {
		octets += uint32(p.Size)
	}
	if uint64(sr.PacketCount) != st.Packets || sr.OctetCount != octets {
		t.Errorf("sender report counts %d packets, %d octets; the target got %d and %d", sr.PacketCount, sr.OctetCount, st.Packets, octets)
	}
	// Its RTP time is the last packet's, moved on by the time since.
	lastTS := got.Packets[last].Timestamp
	if d := int32(sr.RTPTime - lastTS); d < 0 || d > 90000*60 {
		t.Errorf("sender report RTP time %d is %d ticks after the last packet's %d; want at or after it", sr.RTPTime, d, lastTS)
	}
	ntp := time.Unix(int64(sr.NTPTime>>32)-2208988800, int64((sr.NTPTime&0xffffffff)*1e9>>32))
	if ago := time.Since(ntp); ago < 0 || ago > time.Minute {
		t.Errorf("sender report NTP time %v is %v ago", ntp, ago)
	}
}

// withoutRTX takes RTX out of an answer: the payload types of rtx/90000,
// from the m-lines and their attributes.
func withoutRTX(sdp string) string {
	var rtx []string
	for line := range strings.SplitSeq(sdp, "\r\n") {
		if pt, ok := strings.CutPrefix(line, "a=rtpmap:"); ok && strings.HasSuffix(pt, " rtx/90000") {
			rtx = append(rtx, strings.Fields(pt)[0])
		}
	}
	var out []string
	for line := range strings.SplitSeq(sdp, "\r\n") {
		drop := false
		for _, pt := range rtx {
			for _, a := range []string{"a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"} {
				drop = drop || strings.HasPrefix(line, a+pt+" ")
			}
			if strings.HasPrefix(line, "m=") {
				line = strings.TrimSuffix(strings.Replace(line+" ", " "+pt+" ", " ", 1), " ")
			}
		}
		if !drop {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\r\n")
}

// seqRunEnds counts the sequence numbers whose successor is missing, one
// for a contiguous run, and returns the last of them.
func seqRunEnds(pkts map[uint16]testkit.ReceivedPacket) (ends int, last uint16) {
	for s := range pkts {
		if _, ok := pkts[s+1]; !ok {
			ends, last = ends+1, s
		}
	}
	return ends, last
}

// pion_srtp keeps an egress on pion's path: media flows and the status
// says so.
func TestEgressPionSRTP(t *testing.T) {
	e, f := egressToTarget(t, nil, []string{"main"}, Config{PionSRTP: true})
	waitState(t, e, StateConnected, 10*time.Second)
	waitPackets(t, f, []string{"video"}, 30)
	if st := e.Status().Sessions[0]; st.SRTP != "pion" || st.DirectSent != 0 {
		t.Errorf("srtp %q, %d sent beneath pion; want pion, 0", st.SRTP, st.DirectSent)
	}
}
