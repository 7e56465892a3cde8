package gateway

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestGOPCacheJoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := NewHub(Config{}, testLog(t))
		defer hub.Close()
		pub := publishH264(t, hub, "cam")
		src := newH264Source(pub, 0)
		for range 35 { // a whole GOP, then the next keyframe and 4 deltas
			src.writeFrame()
		}
		const keyFirst = 20 + 29*5 // source index of the second keyframe's first packet
		if n := keyRequests(pub); n != 0 {
			t.Fatalf("%d keyframe requests with nobody watching", n)
		}
		ts := hub.Streams()[0].Tracks[0]
		stapBytes := len(stapA(nal(0x67, 8), nal(0x68, 4))) + 4
		if want := int(src.index) - keyFirst; ts.GOPCachePackets != want || ts.GOPCacheBytes != (want-1)*1204+stapBytes {
			t.Errorf("GOP cache holds %d packets, %d bytes; want %d packets since the keyframe, %d bytes",
				ts.GOPCachePackets, ts.GOPCacheBytes, want, (want-1)*1204+stapBytes)
		}

		sub := subscribe(t, hub, "cam", "main")
		if n := keyRequests(pub); n != 0 {
			t.Errorf("a subscriber served from the GOP cache sent %d keyframe requests, want 0", n)
		}
		src.writeFrame()
		got := drain(t, sub)
		if len(got) == 0 || !got[0].KeyStart || index(got[0]) != keyFirst {
			t.Fatalf("joiner's first packet: %+v, want the cached keyframe's first packet (source %d) with KeyStart", got[:min(1, len(got))], keyFirst)
		}
		wantRun(t, got, keyFirst, got[0].Seq)
		if len(got) != int(src.index)-keyFirst {
			t.Errorf("joiner got %d packets, want every one from the keyframe on: %d", len(got), int(src.index)-keyFirst)
		}
		for i, o := range got[1:] {
			if o.KeyStart {
				t.Errorf("packet %d (source %d) has KeyStart; only the keyframe's first should", i+1, index(o))
			}
		}
	})
}

// A keyframe whose first packet is an SEI: the cache still starts at the
// frame's first packet, so a joiner gets the whole access unit.
func TestGOPCacheKeepsWholeKeyframe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := NewHub(Config{}, testLog(t))
		defer hub.Close()
		pub := publishH264(t, hub, "cam")
		src := newH264Source(pub, 0)
		for range 3 {
			src.writeFrame()
		}
		keyFirst := src.index
		src.writePacket(nal(0x06, 40), false) // SEI, same timestamp as the keyframe
		src.frame = 0
		src.writeFrame()
		src.writeFrame()

		sub := subscribe(t, hub, "cam", "main")
		got := drain(t, sub)
		if len(got) == 0 || index(got[0]) != keyFirst {
			t.Fatalf("joiner starts at source %v, want the SEI ahead of the keyframe (%d)", got[:min(1, len(got))], keyFirst)
		}
		wantRun(t, got, keyFirst, got[0].Seq)
		if len(got) != int(src.index-keyFirst) || got[0].KeyStart || !got[1].KeyStart {
			t.Errorf("got %d packets, KeyStart %v,%v; want %d packets with KeyStart on the SPS packet", len(got), got[0].KeyStart, got[1].KeyStart, src.index-keyFirst)
		}
	})
}

func TestJoinWithoutGOPCacheWaitsForKeyframe(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bytes int
	}{
		{"disabled", -1},
		// The keyframe (20 × 1204 bytes) fits, the GOP behind it does not.
		{"exceeded", 30000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hub := NewHub(Config{GOPCacheBytes: tc.bytes}, testLog(t))
				defer hub.Close()
				pub := publishH264(t, hub, "cam")
				src := newH264Source(pub, 0)
				for range 8 {
					src.writeFrame()
				}
				if ts := hub.Streams()[0].Tracks[0]; ts.GOPCachePackets != 0 || ts.GOPCacheBytes != 0 {
					t.Errorf("GOP cache holds %d packets, %d bytes; want nothing", ts.GOPCachePackets, ts.GOPCacheBytes)
				}

				sub := subscribe(t, hub, "cam", "main")
				select {
				case i := <-pub.KeyframeRequests():
					if i != 0 {
						t.Errorf("keyframe request for track %d, want 0", i)
					}
				default:
					t.Fatal("no keyframe request reached the publisher when a subscriber joined without a cached GOP")
				}
				time.Sleep(time.Second)
				for range 22 { // the rest of the GOP
					src.writeFrame()
				}
				if got := drain(t, sub); len(got) != 0 {
					t.Fatalf("got %d packets before any keyframe, first is source %d; want none", len(got), index(got[0]))
				}
				keyFirst := src.index
				src.writeFrame()
				src.writeFrame()
				got := drain(t, sub)
				if len(got) == 0 || !got[0].KeyStart || index(got[0]) != keyFirst {
					t.Fatalf("first packet %v, want the new keyframe's first packet (source %d)", got[:min(1, len(got))], keyFirst)
				}
				wantRun(t, got, keyFirst, got[0].Seq)
				if len(got) != 25 {
					t.Errorf("got %d packets, want the keyframe's 20 and a delta's 5", len(got))
				}
			})
		})
	}
}
