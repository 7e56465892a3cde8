package integration

import (
	"bytes"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"whipgate/cmd"
	"whipgate/ingest/h264synth"
)

// TestWHIPIngestCodecs: a pion publisher sends real encoded video (and, for
// H.264, Opus audio) over WHIP; pion WHEP viewers get every frame and every
// audio packet byte for byte, with continuous sequence numbers, and ffmpeg
// decodes what they got without a single error.
func TestWHIPIngestCodecs(t *testing.T) {
	app := startGateway(t, func(c *cmd.Config) { c.TestSource = nil })
	for _, tc := range []struct {
		name string
		mime string
		fmtp string
	}{
		{"H264", webrtc.MimeTypeH264, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		{"H265", webrtc.MimeTypeH265, ""},
		{"AV1", webrtc.MimeTypeAV1, ""},
		{"VP9", webrtc.MimeTypeVP9, "profile-id=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := "codec-" + tc.name
			const w, h, n = 320, 240, 60 // 2 s at 30 fps
			var frames [][]byte
			if tc.mime != webrtc.MimeTypeH264 {
				frames = encodeTestVideo(t, tc.mime, w, h, n)
			}
			pub := publish(t, app.URL()+"/whip/"+stream, publishOptions{
				video: webrtc.RTPCodecCapability{MimeType: tc.mime, ClockRate: 90000, SDPFmtpLine: tc.fmtp},
				audio: tc.mime == webrtc.MimeTypeH264,
			})
			rv := watch(t, app.URL()+"/whep/"+stream)
			if tc.mime == webrtc.MimeTypeH264 {
				runH264AndOpus(t, app.URL()+"/whep/"+stream, pub, rv)
				return
			}
			var payloader rtp.Payloader
			switch tc.mime {
			case webrtc.MimeTypeH265:
				payloader = &codecs.H265Payloader{}
			case webrtc.MimeTypeAV1:
				payloader = &codecs.AV1Payloader{}
			case webrtc.MimeTypeVP9:
				payloader = &codecs.VP9Payloader{}
			}
			video := newSendStream(pub.video[0], payloader)
			playSources(t, pacedSource{stream: video, interval: time.Second / 30, ticks: 3000, next: framesOnce(frames)})
			sent := video.frames()
			got := rv.waitPackets(sent, nil)
			requireSameFrames(t, tc.name, sent, groupRTPFrames(got, false))
			requireContinuous(t, tc.name, got, true)
			if rv.codec() != tc.mime {
				t.Fatalf("viewer negotiated %s, want %s", rv.codec(), tc.mime)
			}
			file := depacketizeToFile(t, tc.mime, got)
			_, _, df := decodeClean(t, file)
			dw, dh := firstFrameSize(t, file)
			if dw != w || dh != h || df != len(frames) {
				t.Fatalf("ffmpeg decoded %d frames of %dx%d, want %d of %dx%d", df, dw, dh, len(frames), w, h)
			}
			t.Logf("%s: %d frames, %d packets identical at the viewer; %d frames decode cleanly; POST took %v",
				tc.name, len(sent), len(got), df, pub.took.Round(time.Millisecond))
		})
	}
}

// runH264AndOpus sends the h264synth pattern (honouring PLI) with Opus
// audio. Two viewers watch: one compares RTP payloads, the other whole
// access units; mid-stream the first sends a burst of PLIs, which must
// reach the publisher merged.
func runH264AndOpus(t *testing.T, url string, pub *publisher, rv *viewer) {
	hv := watch(t, url)
	enc, err := h264synth.New(h264synth.Config{Width: 320, Height: 240, FPS: 30, GOP: 45, Label: "whip"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 75
	var aus []accessUnit
	var plisBefore int64
	video := pub.synthVideo(0, enc, n, &aus)
	nextVideo := video.next
	video.next = func() ([]byte, bool) {
		if len(aus) == 30 {
			plisBefore = pub.pli[0].Load()
			for range 5 {
				if err := rv.sendPLI(); err != nil {
					t.Error(err)
				}
			}
		}
		return nextVideo()
	}
	audio := newSendStream(pub.audio, &codecs.OpusPayloader{})
	opus := encodeOpusPackets(t, 2.5)
	playSources(t, video,
		pacedSource{stream: audio, interval: 20 * time.Millisecond, ticks: 960, next: framesOnce(opus)})

	sentV, sentA := video.stream.frames(), audio.frames()
	gotV := rv.waitPackets(sentV, sentA)
	_, gotA := rv.packets()
	requireSameFrames(t, "H.264", sentV, groupRTPFrames(gotV, false))
	requireSameFrames(t, "Opus", sentA, groupRTPFrames(gotA, true))
	requireContinuous(t, "H.264", gotV, true)
	requireContinuous(t, "Opus", gotA, false)

	got := hv.waitFrames(n, 5*time.Second)
	if len(got) != n {
		t.Fatalf("second viewer assembled %d access units, want %d", len(got), n)
	}
	for k := range aus {
		if !bytes.Equal(got[k].data, aus[k].data) {
			t.Fatalf("access unit %d differs at the viewer (%d bytes, sent %d)", k, len(got[k].data), len(aus[k].data))
		}
	}
	dw, dh, df := decodeClean(t, annexB(t, got))
	if dw != 320 || dh != 240 || df != n {
		t.Fatalf("ffmpeg decoded %d frames of %dx%d, want %d of 320x240", df, dw, dh, n)
	}

	plis := pub.pli[0].Load()
	if plis-plisBefore < 1 {
		t.Fatalf("a viewer's PLI burst never reached the publisher (%d PLIs in all)", plis)
	}
	// One merged request for the burst, and perhaps one for the viewers'
	// first keyframe: anything more would be PLI per viewer or periodic.
	if plis > 3 {
		t.Fatalf("publisher got %d PLIs for one burst of 5; they should be merged", plis)
	}
	t.Logf("H.264+Opus: %d access units and %d Opus packets identical at two viewers; publisher got %d PLI for 5 sent", n, len(sentA), plis)
}
