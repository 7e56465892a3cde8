package gateway

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestGOPCacheJoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, pub, src := h264Hub(t, Config{})
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
		hub, _, src := h264Hub(t, Config{})
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
				hub, pub, src := h264Hub(t, Config{GOPCacheBytes: tc.bytes})
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

// staleCache publishes "cam" from a source that makes keyframes only on
// request (as browsers do) and writes 3 s of it at 30 fps after one
// keyframe (source index 0): the cache is then 3 s old.
func staleCache(t *testing.T, cfg Config) (*Hub, *Publication, *h264Source) {
	hub, pub, src := h264Hub(t, cfg)
	src.gop = 1 << 30
	src.play(1 + 3*30)
	return hub, pub, src
}

// play writes n frames 1/30 s apart.
func (s *h264Source) play(n int) {
	for i := range n {
		if i > 0 {
			time.Sleep(time.Second / 30)
		}
		s.writeFrame()
	}
}

// A joiner on a cache older than GOPJoinMaxAge is not shown those old
// pictures: it asks for a keyframe and starts on it.
func TestStaleCacheJoinAsksForAKeyframe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, pub, src := staleCache(t, Config{})
		sub := subscribe(t, hub, "cam", "main")
		if n := keyRequests(pub); n != 1 {
			t.Fatalf("a join on a 3 s old cache sent %d keyframe requests, want 1", n)
		}
		src.writeFrame() // a delta: not for the joiner
		src.frame = 0
		keyFirst := src.index
		src.writeFrame() // the publisher's answer
		got := drain(t, sub)
		if len(got) == 0 || !got[0].KeyStart || index(got[0]) != keyFirst {
			t.Fatalf("joiner's first packet %v, want the new keyframe's (source %d)", got[:min(1, len(got))], keyFirst)
		}
	})
}

// A publisher that ignores the request: after GOPKeyWait the joiner starts
// on the old cache after all.
func TestStaleCacheJoinFallsBackToTheCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _, src := staleCache(t, Config{})
		sub := subscribe(t, hub, "cam", "main")
		src.play(20) // 0.67 s: still waiting for the keyframe
		if got := drain(t, sub); len(got) != 0 {
			t.Fatalf("the joiner got %d packets before GOPKeyWait", len(got))
		}
		src.play(15) // past 1 s: the cache, from its keyframe
		got := drain(t, sub)
		if len(got) == 0 || !got[0].KeyStart || index(got[0]) != 0 {
			t.Fatalf("joiner's first packet %v, want the cached keyframe (source 0)", got[:min(1, len(got))])
		}
	})
}

// A cache older than GOPCacheMaxAge is dropped: a joiner asks for a
// keyframe and gets nothing older.
func TestCacheDroppedPastMaxAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, pub, _ := staleCache(t, Config{GOPCacheMaxAge: 2 * time.Second})
		if n := hub.Streams()[0].Tracks[0].GOPCachePackets; n != 0 {
			t.Fatalf("a 3 s old cache holds %d packets past a 2 s gop_cache_max_age", n)
		}
		subscribe(t, hub, "cam", "main")
		if n := keyRequests(pub); n != 1 {
			t.Fatalf("a join on a dropped cache sent %d keyframe requests, want 1", n)
		}
	})
}
