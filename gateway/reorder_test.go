package gateway

import (
	"testing"

	"github.com/pion/rtp"
)

// A packet of an older frame arriving late (the ingest's NACK brought it
// back) must not split the current frame, nor pass for a new keyframe.
func TestLatePacketsKeepFramesWhole(t *testing.T) {
	hub := newTestHub(t, Config{})
	pub := publishH264(t, hub, "cam")
	sub := subscribe(t, hub, "cam", "main")
	fu := func(header byte) []byte { return append([]byte{0x7c, header}, make([]byte, 100)...) }
	write := func(seq uint16, ts uint32, payload []byte) {
		pub.WriteRTP(0, &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts}, Payload: payload})
	}
	sps := stapA(nal(0x67, 8), nal(0x68, 4))
	write(1, 0, sps) // keyframe
	write(2, 0, fu(0x85))
	write(3, 0, fu(0x05))
	write(4, 0, fu(0x45))
	write(5, 1500, fu(0x81)) // delta; 6 is lost
	write(7, 1500, fu(0x41))
	write(8, 3000, fu(0x81)) // next delta
	write(6, 1500, fu(0x01)) // 6, retransmitted
	write(1, 0, sps)         // the keyframe's first packet, retransmitted once more
	write(9, 3000, fu(0x41))
	write(10, 4500, nal(0x41, 50))

	tr := hub.Streams()[0].Tracks[0]
	if tr.Frames != 4 || tr.Keyframes != 1 {
		t.Errorf("%d frames, %d keyframes; want 4 and 1", tr.Frames, tr.Keyframes)
	}
	if tr.KeyframePackets != 4 {
		t.Errorf("keyframe of %d packets, want 4", tr.KeyframePackets)
	}
	if tr.GOPCachePackets != 11 {
		t.Errorf("GOP cache of %d packets, want all 11 since the keyframe", tr.GOPCachePackets)
	}
	got := drain(t, sub)
	if len(got) != 11 {
		t.Fatalf("got %d packets, want 11", len(got))
	}
	wantSeq := []uint16{1, 2, 3, 4, 5, 7, 8, 6, 1, 9, 10} // the publisher's order and numbering
	for i, o := range got {
		if o.Seq != wantSeq[i] || o.KeyStart != (i == 0) {
			t.Errorf("packet %d: seq %d KeyStart %v; want seq %d KeyStart %v", i, o.Seq, o.KeyStart, wantSeq[i], i == 0)
		}
	}

	// A joiner starts at the keyframe, not at a late copy of its start.
	late := subscribe(t, hub, "cam", "main")
	if got := drain(t, late); len(got) != 11 || got[0].Seq != 1 || !got[0].KeyStart {
		t.Errorf("joiner got %d packets from seq %d", len(got), got[0].Seq)
	}
}
