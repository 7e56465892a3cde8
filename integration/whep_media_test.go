package integration

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/certs/certstest"
	"whipgate/internal/testkit"
)

// What a WHEP player gets from the built-in test stream: every layer, from
// a keyframe at once, decodes at its size; the answer names one codec, as
// the player's offer numbered it.

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

// TestWHEPAnswersOneCodec: a pion player that offers H.264, VP8, VP9 and
// AV1 gets an answer whose video section names only the layer's H.264, as
// the offer numbered it, and its RTX, and it keeps decoding frames of that
// payload type for seconds: once with pion's payload types (our engine's
// own), once with Firefox's, where 106, our H.264, is an RTX.
func TestWHEPAnswersOneCodec(t *testing.T) {
	app := startGateway(t, nil)
	waitLive(t, app, "test")
	for _, tc := range []struct {
		name string
		api  *webrtc.API
	}{
		{"pion payload types", clientAPI(t)},
		{"Firefox payload types", clientAPIWith(t, registerFirefoxCodecs)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := watchWith(t, app.URL()+"/whep/test/main", watchOptions{api: tc.api})
			offer := sectionCodecs(t, v.pc.LocalDescription().SDP)
			for _, want := range []string{"H264", "VP8", "VP9", "AV1"} {
				if !slices.ContainsFunc(offer, func(c sdpCodec) bool { return c.name == want }) {
					t.Fatalf("the player offers no %s: %v", want, offer)
				}
			}
			layer := hubFmtp(t, app, "test", "main")
			answer := sectionCodecs(t, v.answer)
			if len(answer) != 2 || answer[0].name != "H264" || answer[1].name != "rtx" {
				t.Fatalf("answer's video section %v, want the layer's H.264 and its RTX only", answer)
			}
			h264, rtx := answer[0], answer[1]
			if !slices.Contains(offer, h264) || !slices.Contains(offer, rtx) || rtx.fmtp != fmt.Sprintf("apt=%d", h264.pt) {
				t.Fatalf("answer %v does not echo the offer's payload types and fmtp %v", answer, offer)
			}
			if !strings.Contains(h264.fmtp, "profile-level-id="+layer[:4]) || !strings.Contains(h264.fmtp, "packetization-mode=1") {
				t.Fatalf("answered %s for a layer of %s", h264.fmtp, layer)
			}
			// Frames keep coming: 3 s of the stream's own time, whatever
			// the GOP cache sent in a burst first.
			var aus []accessUnit
			certstest.Eventually(t, 10*time.Second, "3 s of video at the player", func() bool {
				aus = v.frames()
				return len(aus) > 0 && aus[len(aus)-1].rtpTS-aus[0].rtpTS >= 3*90000
			})
			if len(aus) < 85 {
				t.Fatalf("%d frames in 3 s of a 30 fps stream", len(aus))
			}
			video, _ := v.packets()
			for _, p := range video {
				if p.PayloadType != h264.pt {
					t.Fatalf("a packet of payload type %d; the answer named %d", p.PayloadType, h264.pt)
				}
			}
			t.Logf("answered %v; %d frames in %d packets of payload type %d", answer, len(aus), len(video), h264.pt)
		})
	}
}

// sdpCodec is one payload type of a media section.
type sdpCodec struct {
	pt   uint8
	name string // "H264", "rtx"
	fmtp string
}

func (c sdpCodec) String() string { return fmt.Sprintf("%d %s %s", c.pt, c.name, c.fmtp) }

// sectionCodecs are the payload types of the first video section of an
// SDP, in order.
func sectionCodecs(t testing.TB, raw string) []sdpCodec {
	t.Helper()
	var d sdp.SessionDescription
	if err := d.UnmarshalString(raw); err != nil {
		t.Fatal(err)
	}
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "video" {
			continue
		}
		var out []sdpCodec
		for _, f := range m.MediaName.Formats {
			var pt uint8
			if _, err := fmt.Sscan(f, &pt); err != nil {
				t.Fatalf("payload type %q: %v", f, err)
			}
			c, err := d.GetCodecForPayloadType(pt)
			if err != nil {
				t.Fatalf("payload type %d: %v", pt, err)
			}
			out = append(out, sdpCodec{pt, c.Name, c.Fmtp})
		}
		return out
	}
	t.Fatalf("no video section:\n%s", raw)
	return nil
}

// hubFmtp is the fmtp of a stream's layer.
func hubFmtp(t testing.TB, app *instance, stream, layer string) string {
	t.Helper()
	s, ok := app.Hub().Stream(stream)
	if !ok {
		t.Fatalf("no stream %q", stream)
	}
	for _, tr := range s.Tracks() {
		if tr.Name == layer {
			_, plid, _ := strings.Cut(tr.Fmtp, "profile-level-id=")
			if len(plid) < 6 {
				t.Fatalf("layer %s: fmtp %q has no profile-level-id", layer, tr.Fmtp)
			}
			return plid[:6]
		}
	}
	t.Fatalf("stream %q has no layer %q", stream, layer)
	return ""
}

// registerFirefoxCodecs registers video codecs under the payload types
// Firefox offers (VP8 120, VP9 121, H.264 126 and 97, AV1 99, each with
// its RTX), and High profile H.264 at 105 with its RTX at 106, the payload
// type our engine gives constrained baseline: an answer that kept our
// numbers instead of the offer's would name an RTX.
func registerFirefoxCodecs(m *webrtc.MediaEngine) error {
	err := testkit.RegisterVideo(m, []testkit.VideoCodec{
		{PT: 120, RTX: 124, Mime: webrtc.MimeTypeVP8},
		{PT: 121, RTX: 125, Mime: webrtc.MimeTypeVP9, Fmtp: "profile-id=0"},
		{PT: 126, RTX: 127, Mime: webrtc.MimeTypeH264, Fmtp: "profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1"},
		{PT: 97, RTX: 98, Mime: webrtc.MimeTypeH264, Fmtp: "profile-level-id=42e01f;level-asymmetry-allowed=1"},
		{PT: 105, RTX: 106, Mime: webrtc.MimeTypeH264, Fmtp: "profile-level-id=64001f;level-asymmetry-allowed=1;packetization-mode=1"},
		{PT: 99, RTX: 100, Mime: webrtc.MimeTypeAV1},
	})
	if err != nil {
		return err
	}
	return m.RegisterCodec(webrtc.RTPCodecParameters{PayloadType: 109,
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "maxplaybackrate=48000;stereo=1;useinbandfec=1"}}, webrtc.RTPCodecTypeAudio)
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
