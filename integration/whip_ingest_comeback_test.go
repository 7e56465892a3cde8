package integration

import (
	"net/http"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"whipgate/cmd"
	"whipgate/ingest/h264synth"
)

// A publisher that holds the stream's key and crashed (its PeerConnection
// silent, no DELETE) comes back a second later: the default configuration
// lets its new POST take the stream over (OBS does not retry a 409), and the
// viewer, whose session lives on, decodes the new publisher's first
// keyframe.
func TestWHIPIngestKeyHolderComesBack(t *testing.T) {
	const key = "stream-key-0123456789"
	app := startGateway(t, func(c *cmd.Config) {
		c.TestSource = nil
		c.Streams = map[string]cmd.StreamConfig{"cam": {PublishToken: key}}
	})
	url := app.URL() + "/whip/cam"
	opt := publishOptions{token: key, video: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}}
	send := func(p *publisher, label string, n int) {
		enc, err := h264synth.New(h264synth.Config{Width: 320, Height: 240, FPS: 30, GOP: 300, Label: label})
		if err != nil {
			t.Fatal(err)
		}
		var sent []accessUnit
		playSources(t, p.synthVideo(0, enc, n, &sent))
	}

	first := publish(t, url, opt)
	v := watch(t, app.URL()+"/whep/cam")
	send(first, "one", 30)
	v.waitFrames(30, 5*time.Second)

	// The first publisher crashes: it sends nothing more, says nothing.
	if _, err := tryPublish(t, url, opt); httpStatus(err) != http.StatusConflict {
		t.Fatalf("a second POST while the first sends: %v, want 409", err)
	}
	time.Sleep(time.Second)
	second, err := tryPublish(t, url, opt)
	if err != nil {
		t.Fatalf("the key holder coming back 1 s after a crash: %v, want it to take over", err)
	}
	second.waitConnected()
	send(second, "two", 30)
	got := v.waitFrames(31, 10*time.Second)
	if _, _, n := decodeClean(t, annexB(t, got)); n < 31 {
		t.Fatalf("the viewer decoded %d frames across the comeback", n)
	}
}
