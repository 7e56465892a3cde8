package integration

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"whipgate/certs/certstest"
	"whipgate/cmd"
)

// TestWHIPIngestBrowser runs real browsers on both sides of WHIP ingest:
// a pion publisher's VP8 is decoded by headless Chromium on /play, and
// Chromium publishing its fake camera from /publish is watched by a second
// Chromium page (and a pion viewer that checks codec and audio).
func TestWHIPIngestBrowser(t *testing.T) {
	app := startGateway(t, func(c *cmd.Config) { c.TestSource = nil })
	browser := newBrowser(t,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true))

	t.Run("pion VP8 to Chromium", func(t *testing.T) {
		const w, h, n = 320, 240, 90
		frames := encodeTestVideo(t, webrtc.MimeTypeVP8, w, h, n)
		pub := publish(t, app.URL()+"/whip/vp8", publishOptions{video: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}})
		rv := watch(t, app.URL()+"/whep/vp8")
		tab := newTab(t, browser)
		if _, err := chromedp.Run(tab, chromedp.Navigate(app.URL()+"/play/vp8")); err != nil {
			t.Fatal(err)
		}
		waitStats(t, tab, 15*time.Second, func(s pageStats) bool { return s.State == "connected" })

		video := newSendStream(pub.video[0], &codecs.VP8Payloader{EnablePictureID: true})
		playSources(t, pacedSource{stream: video, interval: time.Second / 30, ticks: 3000, next: framesOnce(frames)})

		s := waitStats(t, tab, 5*time.Second, func(s pageStats) bool { return s.FramesDecoded >= n*2/3 })
		if s.Width != w || s.Height != h {
			t.Fatalf("Chromium decoded %dx%d, want %dx%d", s.Width, s.Height, w, h)
		}
		sent := video.frames()
		got := rv.waitPackets(sent, nil)
		requireSameFrames(t, "VP8", sent, groupRTPFrames(got, false))
		requireContinuous(t, "VP8", got, true)
		file := depacketizeToFile(t, webrtc.MimeTypeVP8, got)
		_, _, df := decodeClean(t, file)
		if fw, fh := firstFrameSize(t, file); df != n || fw != w || fh != h {
			t.Fatalf("ffmpeg decoded %d VP8 frames of %dx%d, want %d of %dx%d", df, fw, fh, n, w, h)
		}
		t.Logf("Chromium: %+v; pion viewer: %d frames identical, decoded by ffmpeg", s, len(sent))
	})

	t.Run("Chromium publishes, Chromium watches", func(t *testing.T) {
		pubTab := newTab(t, browser)
		if _, err := chromedp.Run(pubTab, chromedp.Navigate(app.URL()+"/publish/test2?autostart=1&codec=VP8")); err != nil {
			t.Fatal(err)
		}
		out := waitStats(t, pubTab, 15*time.Second, func(s pageStats) bool { return s.State == "connected" && s.FramesEncoded > 0 })
		waitLive(t, app, "test2")
		if got, want := hubTracks(t, app, "test2"), "main=video/VP8 audio=audio/opus"; got != want {
			t.Fatalf("hub tracks %q, want %q", got, want)
		}

		playTab := newTab(t, browser)
		if _, err := chromedp.Run(playTab, chromedp.Navigate(app.URL()+"/play/test2")); err != nil {
			t.Fatal(err)
		}
		first := waitStats(t, playTab, 15*time.Second, func(s pageStats) bool { return s.FramesDecoded > 0 })
		in := waitStats(t, playTab, 10*time.Second, func(s pageStats) bool { return s.FramesDecoded >= first.FramesDecoded+30 })
		if in.Codec != webrtc.MimeTypeVP8 || in.Width == 0 {
			t.Fatalf("player decodes %q at %dx%d, want VP8", in.Codec, in.Width, in.Height)
		}

		rv := watch(t, app.URL()+"/whep/test2")
		certstest.Eventually(t, 5*time.Second, "pion viewer gets video and Opus", func() bool {
			v, a := rv.packets()
			return len(v) > 0 && len(a) > 0
		})
		if rv.codec() != webrtc.MimeTypeVP8 {
			t.Fatalf("pion viewer negotiated %s, want VP8", rv.codec())
		}
		// Chromium sends from whichever of its host candidates it prefers,
		// not always the pair pion selected: read beneath pion all the same.
		requireIngestSRTP(t, app, "direct")
		t.Logf("publisher page: %+v; player page: %+v", out, in)
	})

	t.Run("Chromium simulcast r0 r1 r2", func(t *testing.T) {
		tab := newTab(t, browser)
		// The publish page only for its origin and whipgate.js; the
		// simulcast publisher is the browser's own API.
		if _, err := chromedp.Run(tab, chromedp.Navigate(app.URL()+"/publish/bsim")); err != nil {
			t.Fatal(err)
		}
		answer, err := chromedp.Run(tab, chromedp.Evaluate[string](browserSimulcastJS, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("browser simulcast publish: %v", err)
		}
		sim := regexp.MustCompile(`(?m)^a=simulcast:.*$`).FindAllString(answer, -1)
		if len(sim) != 1 || strings.TrimSpace(sim[0]) != "a=simulcast:recv r0;r1;r2" {
			t.Fatalf("answer simulcast lines %q, want one a=simulcast:recv r0;r1;r2", sim)
		}
		if got, want := hubTracks(t, app, "bsim"), "r0=video/VP8 r1=video/VP8 r2=video/VP8 audio=audio/opus"; got != want {
			t.Fatalf("hub tracks %q, want %q", got, want)
		}
		// Chrome starts every layer with a keyframe but holds back the
		// full-size one until its bandwidth estimate allows it (~10 s), so
		// r2 is checked for that keyframe, r0 and r1 for a stream. r2 is
		// watched first: its keyframe may be all its GOP cache holds, and a
		// cache older than hub.gop_cache_max_age (10 s) is dropped.
		widths := map[string]int{}
		for _, rid := range []string{"r2", "r0", "r1"} {
			v := watch(t, app.URL()+"/whep/bsim/"+rid)
			want := 30
			if rid == "r2" {
				want = 1
			}
			// Complete frames only: a keyframe caught half-way (the GOP cache
			// is replayed at a multiple of its pace, not all at once) would
			// leave nothing to decode.
			certstest.Eventually(t, 8*time.Second, rid+" frames at the viewer", func() bool {
				got, _ := v.packets()
				return completeFrames(got) >= want
			})
			got, _ := v.packets()
			f := depacketizeToFile(t, webrtc.MimeTypeVP8, got)
			_, _, frames := decodeClean(t, f)
			w, h := firstFrameSize(t, f)
			widths[rid] = w
			t.Logf("%s: %d frames decode cleanly, the first %dx%d", rid, frames, w, h)
		}
		if !(widths["r0"] < widths["r1"] && widths["r1"] < widths["r2"]) {
			t.Fatalf("layer widths %v: want r0 (1/4 size) < r1 (1/2 size) < r2 (full size)", widths)
		}
	})
}

// browserSimulcastJS publishes the fake camera with three simulcast
// encodings, browser style (rids r0-r2, smallest first), using the page's
// whipgate.js for signalling, and returns the answer.
const browserSimulcastJS = `(async () => {
  const media = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 }, audio: true });
  const pc = new RTCPeerConnection();
  const tr = pc.addTransceiver(media.getVideoTracks()[0], { direction: "sendonly", sendEncodings: [
    { rid: "r0", scaleResolutionDownBy: 4 }, { rid: "r1", scaleResolutionDownBy: 2 }, { rid: "r2" }] });
  const vp8 = RTCRtpSender.getCapabilities("video").codecs.filter((c) => c.mimeType === "video/VP8");
  tr.setCodecPreferences(vp8);
  pc.addTransceiver(media.getAudioTracks()[0], { direction: "sendonly" });
  await pc.setLocalDescription(await pc.createOffer());
  await waitGathering(pc, 1000);
  const { answer } = await signal(location.origin + "/whip/bsim", pc, () => {});
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  window.simulcastPC = pc;
  return answer;
})()`
