package integration

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

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
		pub := whipPublish(t, app.URL()+"/whip/vp8", publishOptions{video: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}})
		rv := watchPayloads(t, app.URL()+"/whep/vp8", nil)
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
		got := waitAllPackets(t, rv, sent, nil)
		requireSameFrames(t, "VP8", sent, groupRTPFrames(got, false))
		requireContinuous(t, "VP8", got, true)
		_, _, df := decodeClean(t, depacketizeToFile(t, webrtc.MimeTypeVP8, got))
		if df != n {
			t.Fatalf("ffmpeg decoded %d VP8 frames, want %d", df, n)
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

		rv := watchPayloads(t, app.URL()+"/whep/test2", nil)
		ingestWait(t, 5*time.Second, "pion viewer gets video and Opus", func() bool {
			v, a := rv.packets()
			return len(v) > 0 && len(a) > 0
		})
		if rv.codec != webrtc.MimeTypeVP8 {
			t.Fatalf("pion viewer negotiated %s, want VP8", rv.codec)
		}
		t.Logf("publisher page: %+v; player page: %+v", out, in)
	})
}
