package gateway

import (
	"log/slog"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/rtp"
)

func TestStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := newTestHub(t, Config{})
		pub, err := hub.Publish("cam", []TrackInfo{{Name: "main", Codec: H264, Width: 7680, Height: 4320}}, PublishOptions{Kind: "test", Remote: "10.0.0.7"})
		if err != nil {
			t.Fatal(err)
		}
		src := newH264Source(pub, 0)
		src.tsStep = 1800 // 50 fps
		sub, err := hub.Subscribe("cam", []string{"main"}, SubscribeOptions{Kind: "whep", Remote: "10.0.0.9"})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()

		for range 60 { // 1.2 s at 50 fps; keyframes at frames 0 and 30
			src.writeFrame()
			time.Sleep(20 * time.Millisecond)
		}
		delivered := len(drain(t, sub))

		st := hub.Streams()
		if len(st) != 1 {
			t.Fatalf("Streams() has %d entries, want 1", len(st))
		}
		s := st[0]
		if s.Name != "cam" || !s.Live || s.Publisher == nil || s.Publisher.Kind != "test" || s.Publisher.Remote != "10.0.0.7" || s.Publisher.ID != pub.ID() {
			t.Errorf("stream stats %+v, publisher %+v", s, s.Publisher)
		}
		if len(s.Tracks) != 1 {
			t.Fatalf("%d track stats, want 1", len(s.Tracks))
		}
		tr := s.Tracks[0]
		const pkt = 1204
		stap := len(stapA(nal(0x67, 8), nal(0x68, 4))) + 4
		keyBytes := 19*pkt + stap
		if tr.Name != "main" || tr.Kind != "video" || !tr.Live || tr.Width != 7680 || tr.Subscribers != 1 {
			t.Errorf("track stats %+v", tr)
		}
		if tr.Packets != 2*20+58*5 || tr.Frames != 60 || tr.Keyframes != 2 || tr.Bytes != uint64(2*keyBytes+58*5*pkt) {
			t.Errorf("counters: %d packets, %d bytes, %d frames, %d keyframes; want 330, %d, 60, 2",
				tr.Packets, tr.Bytes, tr.Frames, tr.Keyframes, 2*keyBytes+58*5*pkt)
		}
		if tr.KeyframeBytes != keyBytes || tr.KeyframePackets != 20 {
			t.Errorf("keyframe size %d bytes in %d packets, want %d in 20", tr.KeyframeBytes, tr.KeyframePackets, keyBytes)
		}
		// Over the first second: frames 0..49, two of them keyframes.
		wantBps := float64((2*keyBytes + 48*5*pkt) * 8)
		if math.Abs(float64(tr.BitrateBps)-wantBps) > 0.03*wantBps {
			t.Errorf("bitrate %d bps, want about %.0f", tr.BitrateBps, wantBps)
		}
		if math.Abs(tr.FPS-50) > 1.5 {
			t.Errorf("fps %.2f, want about 50", tr.FPS)
		}
		if want := 20 + 29*5; tr.GOPCachePackets != want {
			t.Errorf("GOP cache %d packets, want %d", tr.GOPCachePackets, want)
		}

		if len(s.Subscribers) != 1 {
			t.Fatalf("%d subscriber stats, want 1", len(s.Subscribers))
		}
		ss := s.Subscribers[0]
		if ss.ID != sub.ID() || ss.Kind != "whep" || ss.Remote != "10.0.0.9" || len(ss.Tracks) != 1 || ss.Tracks[0] != "main" {
			t.Errorf("subscriber stats %+v", ss)
		}
		if ss.Delivered != 330 || delivered != 330 || ss.Dropped != 0 || ss.Skipped != 0 || ss.Queued != 0 {
			t.Errorf("subscriber counters %+v (drained %d), want 330 delivered and nothing else", ss, delivered)
		}
		if pub.ID() == sub.ID() {
			t.Error("publication and subscription share an ID")
		}
	})
}

// TestOversizedKeyframeWarns: a keyframe of more RTP packets than Chrome
// can assemble gets a warning that says what to change, once.
func TestOversizedKeyframeWarns(t *testing.T) {
	var logs strings.Builder
	hub := NewHub(Config{}, slog.New(slog.NewTextHandler(&logs, nil)))
	defer hub.Close()
	pub, err := hub.Publish("s", []TrackInfo{{Name: "main", Codec: H264}}, PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 1000)
	write := func(ts uint32, seq *uint16, n int, key bool) {
		for i := range n {
			payload[0] = 0x41 // non-IDR slice
			if key && i == 0 {
				payload[0] = 0x67 // SPS
			}
			pub.WriteRTP(0, &rtp.Packet{Header: rtp.Header{Timestamp: ts, SequenceNumber: *seq, Marker: i == n-1}, Payload: payload})
			*seq++
		}
	}
	var seq uint16
	write(0, &seq, 2100, true)
	write(3000, &seq, 10, false)
	write(6000, &seq, 2100, true)
	write(9000, &seq, 10, false)
	if n := strings.Count(logs.String(), "keyframe too large for browsers"); n != 1 {
		t.Fatalf("want one warning, got %d:\n%s", n, logs.String())
	}
	if st := hub.Streams()[0].Tracks[0]; st.KeyframePackets != 2100 {
		t.Fatalf("keyframe_packets %d", st.KeyframePackets)
	}
}
