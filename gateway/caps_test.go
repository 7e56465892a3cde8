package gateway

import (
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
)

func TestMaxTracksPerStream(t *testing.T) {
	tracks := func(n int) []TrackInfo {
		out := make([]TrackInfo, n)
		for i := range out {
			out[i] = TrackInfo{Name: fmt.Sprintf("r%d", i), Codec: H264}
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		config int
		tracks int
		ok     bool
	}{
		{"default allows 16", 0, 16, true},
		{"default refuses 17", 0, 17, false},
		{"negative is the default", -1, 17, false},
		{"2 allows 2", 2, 2, true},
		{"2 refuses 3", 2, 3, false},
		{"over 255 is 255", 1000, 255, true},
		{"over 255 still refuses 256", 1000, 256, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hub := newTestHub(t, Config{MaxTracksPerStream: tc.config})
			pub, err := hub.Publish("cam", tracks(tc.tracks), PublishOptions{})
			if tc.ok {
				if err != nil {
					t.Fatalf("publish %d tracks: got %v, want success", tc.tracks, err)
				}
				pub.Close()
				return
			}
			if !errors.Is(err, ErrBadTracks) {
				t.Fatalf("publish %d tracks: got %v, want ErrBadTracks", tc.tracks, err)
			}
			if _, ok := hub.Stream("cam"); ok {
				t.Error("a refused publication registered its stream")
			}
		})
	}
}

// gopStats returns the GOP cache figures of a stream's first track.
func gopStats(t *testing.T, hub *Hub, stream string) TrackStats {
	t.Helper()
	s, ok := hub.Stream(stream)
	if !ok {
		t.Fatalf("no stream %q", stream)
	}
	st := s.Stats()
	if len(st.Tracks) == 0 {
		t.Fatalf("stream %q has no tracks", stream)
	}
	return st.Tracks[0]
}

// The hub's GOP caches together stay within MaxGOPBytesTotal: the track
// whose append would pass it drops its own cache, the others keep theirs,
// the publisher's writes go on, and the track caches again from its next
// keyframe once there is room.
func TestMaxGOPBytesTotal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A keyframe is 22,897 bytes (19 × 1204 and a 21-byte STAP-A), a
		// delta frame 6,020 (5 × 1204): room for a keyframe and 4 deltas
		// of one stream and the keyframe of another, no more.
		const limit = 70000
		hub := newTestHub(t, Config{MaxGOPBytesTotal: limit})
		a, b := publishH264(t, hub, "a"), publishH264(t, hub, "b")
		srcA, srcB := newH264Source(a, 0), newH264Source(b, 0)
		srcA.gop, srcB.gop = 5, 10
		watcher := subscribe(t, hub, "b", "main") // b's packets must keep flowing

		for range 5 { // a: a keyframe and 4 deltas
			srcA.writeFrame()
		}
		srcB.writeFrame() // b's keyframe still fits
		const key, delta = 22897, 6020
		if got, want := hub.GOPCacheBytes(), int64(2*key+4*delta); got != want {
			t.Fatalf("hub GOP bytes %d, want %d", got, want)
		}
		srcB.writeFrame() // b's first delta does not fit
		if st := gopStats(t, hub, "b"); st.GOPCacheBytes != 0 || st.GOPDropped != 1 {
			t.Errorf("b: got a cache of %d bytes, dropped %d times; want it dropped once", st.GOPCacheBytes, st.GOPDropped)
		}
		if st := gopStats(t, hub, "a"); st.GOPCacheBytes != key+4*delta || st.GOPDropped != 0 {
			t.Errorf("a: got a cache of %d bytes, dropped %d times; want %d bytes kept", st.GOPCacheBytes, st.GOPDropped, key+4*delta)
		}
		if got, want := hub.GOPCacheBytes(), int64(key+4*delta); got != want {
			t.Errorf("hub GOP bytes %d, want a's %d alone", got, want)
		}
		for range 8 { // the rest of b's GOP: not cached
			srcB.writeFrame()
		}
		if st := gopStats(t, hub, "b"); st.GOPCacheBytes != 0 || st.GOPDropped != 1 {
			t.Errorf("b before its next keyframe: got a cache of %d bytes, dropped %d times; want none, once", st.GOPCacheBytes, st.GOPDropped)
		}
		if got, want := len(drain(t, watcher)), 20+9*5; got != want {
			t.Errorf("b's subscriber got %d packets, want all %d", got, want)
		}

		srcA.writeFrame() // a's next keyframe replaces its GOP
		srcB.writeFrame() // b's next keyframe is cached again
		if got, want := hub.GOPCacheBytes(), int64(2*key); got != want {
			t.Errorf("after both keyframes the hub holds %d GOP bytes, want %d", got, want)
		}
		if st := gopStats(t, hub, "b"); st.GOPCacheBytes != key || st.GOPDropped != 1 {
			t.Errorf("b after its keyframe: got a cache of %d bytes, dropped %d times; want %d, once", st.GOPCacheBytes, st.GOPDropped, key)
		}
		joiner := subscribe(t, hub, "b", "main")
		if got := drainWaiting(t, joiner); len(got) != 20 || !got[0].KeyStart {
			t.Errorf("a joiner of b got %d packets, want b's cached keyframe (20)", len(got))
		}
	})
}

// The hub's count of GOP bytes is the sum of the tracks' caches through
// keyframes, takeovers, drops and ends, and comes back to zero.
func TestGOPBytesAccounting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := NewHub(Config{GOPCacheBytes: 60000}, testLog(t))
		check := func(when string) {
			t.Helper()
			var sum int64
			for _, s := range hub.Streams() {
				for _, tr := range s.Tracks {
					sum += int64(tr.GOPCacheBytes)
				}
			}
			if got := hub.GOPCacheBytes(); got != sum {
				t.Fatalf("%s: hub counts %d GOP bytes, tracks hold %d", when, got, sum)
			}
		}
		if _, err := hub.Pin("cam"); err != nil {
			t.Fatal(err)
		}
		a := publishH264(t, hub, "cam")
		src := newH264Source(a, 0)
		src.gop = 8
		for i := range 20 { // over gop_cache_bytes within each GOP, and keyframes
			src.writeFrame()
			check(fmt.Sprintf("a, frame %d", i))
		}
		if st := gopStats(t, hub, "cam"); st.GOPDropped == 0 {
			t.Error("the test never passed gop_cache_bytes")
		}
		sub := subscribe(t, hub, "cam", "main")
		b, err := hub.Publish("cam", []TrackInfo{{Name: "main", Codec: H264}}, PublishOptions{Takeover: true})
		if err != nil {
			t.Fatal(err)
		}
		check("takeover")
		srcB := newH264Source(b, 0)
		srcB.writeFrame()
		check("b's keyframe")
		b.Close()
		check("b closed, a subscriber stays")
		if got := hub.GOPCacheBytes(); got != 0 {
			t.Errorf("with no publisher the hub holds %d GOP bytes, want 0", got)
		}
		sub.Close()
		c := publishH264(t, hub, "cam")
		newH264Source(c, 0).writeFrame()
		check("c's keyframe")
		hub.Close()
		if got := hub.GOPCacheBytes(); got != 0 {
			t.Errorf("after Close the hub holds %d GOP bytes, want 0", got)
		}
	})
}
