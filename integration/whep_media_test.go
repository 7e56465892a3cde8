package integration

import (
	"encoding/json"
	"testing"
	"time"
)

// TestWHEPLayersDecode: a pion WHEP viewer per layer of the built-in test
// stream receives 3+ s of video that ffmpeg decodes without a single error
// at the layer's size, starting with a keyframe right away (GOP cache).
func TestWHEPLayersDecode(t *testing.T) {
	app := startGateway(t, nil)
	waitLive(t, app, "test")
	for _, tc := range testSourceLayers {
		t.Run(tc.layer, func(t *testing.T) {
			v := watch(t, app.URL()+"/whep/test/"+tc.layer)
			first := v.waitFrames(1, 5*time.Second)
			if !first[0].key {
				t.Fatalf("first access unit is not a keyframe: the GOP cache should start a viewer at once")
			}
			// The cached keyframe is the newest one, so it is at most one GOP old;
			// it arrives as soon as DTLS is up, not a GOP later.
			if d := first[0].arrived.Sub(v.posted); d > 2*time.Second {
				t.Fatalf("first keyframe %v after POST; the GOP cache should deliver it at once", d)
			}
			aus := v.waitFrames(95, 10*time.Second) // > 3 s at 30 fps
			if span := aus[len(aus)-1].arrived.Sub(aus[0].arrived); span < 2*time.Second {
				t.Logf("note: 95 frames within %v (cached GOP delivered in a burst)", span)
			}
			w, h, n := decodeClean(t, annexB(t, aus))
			if w != tc.w || h != tc.h {
				t.Fatalf("decoded %dx%d, want %dx%d", w, h, tc.w, tc.h)
			}
			if n < 90 {
				t.Fatalf("ffprobe counted %d frames, want >= 90", n)
			}
			requireDirectSRTP(t, app)
			t.Logf("layer %s: %d frames %dx%d decoded cleanly; first keyframe %v after POST",
				tc.layer, n, w, h, first[0].arrived.Sub(v.posted).Round(time.Millisecond))
		})
	}
}

// requireDirectSRTP checks that every WHEP session of app sealed its media
// beneath pion (whip/rtc): what the viewer decoded came that way.
func requireDirectSRTP(t testing.TB, app *instance) {
	t.Helper()
	for id, raw := range sessionDetails(t, app, "whep") {
		var st struct {
			SRTP string `json:"srtp"`
			Sent uint64 `json:"direct_sent"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		if st.SRTP != "direct" || st.Sent == 0 {
			t.Fatalf("WHEP session %s: stats %s; want srtp direct with packets sent", id, raw)
		}
	}
}

// sessionDetails is the API detail of app's sessions of a kind, by ID;
// at least one, or the test fails.
func sessionDetails(t testing.TB, app *instance, kind string) map[string]json.RawMessage {
	t.Helper()
	out := map[string]json.RawMessage{}
	for _, s := range app.Sessions().List() {
		info := s.Info()
		if info.Kind != kind {
			continue
		}
		raw, err := json.Marshal(info.Detail)
		if err != nil {
			t.Fatal(err)
		}
		out[info.ID] = raw
	}
	if len(out) == 0 {
		t.Fatalf("no %s session to check", kind)
	}
	return out
}
