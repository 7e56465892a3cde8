package integration

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"whipgate/certs/certstest"
	"whipgate/cmd"
	"whipgate/ingest/h264synth"
)

// TestWHIPIngestReconnect: a publisher vanishes without DELETE and a new
// one POSTs, twice: once after closing its PeerConnection abruptly, once
// after it just stopped sending (an OBS whose network dropped; the new
// POST gets 409 until the old one is stale; the new one starts mid-GOP, so
// the viewer needs a PLI). One WHEP viewer session lives through both
// switches: its resource stays, its sequence numbers never jump, and every
// frame of each publisher from its first keyframe on arrives and decodes.
func TestWHIPIngestReconnect(t *testing.T) {
	const stale = time.Second
	app := startGateway(t, func(c *cmd.Config) {
		c.TestSource = nil
		c.WHIP.StaleAfter = stale
	})
	url := app.URL() + "/whip/relive"
	opt := publishOptions{video: h264Video}

	// Each publisher draws its own label, so its pictures (and bytes) are
	// its own. run returns the access units sent, each with whether it is
	// an IDR; with skipIDR the publisher's own first IDR is never sent, as
	// when a viewer joins an encoder mid-GOP, so only a PLI gets the
	// viewer a picture.
	run := func(p *publisher, label string, n int, skipIDR bool) []accessUnit {
		enc, err := h264synth.New(h264synth.Config{Width: 320, Height: 240, FPS: 30, GOP: 300, Label: label})
		if err != nil {
			t.Fatal(err)
		}
		if skipIDR {
			enc.Next()
		}
		var aus []accessUnit
		playSources(t, p.synthVideo(0, enc, n, &aus))
		return aus
	}
	// fromKey is what a viewer gets of a publisher it waits on: its access
	// units from the first IDR on.
	fromKey := func(aus []accessUnit) []accessUnit {
		for i, a := range aus {
			if a.key {
				return aus[i:]
			}
		}
		t.Fatalf("the publisher never sent an IDR")
		return nil
	}

	first := publish(t, url, opt)
	v := watch(t, app.URL()+"/whep/relive")
	viewerID := sessionID(v.resource)
	sent := run(first, "one", 30, false)
	v.waitFrames(len(sent), 5*time.Second)

	// 1: the PeerConnection goes away without DELETE.
	first.close()
	second, err := tryPublish(t, url, opt)
	retries := 0
	for deadline := time.Now().Add(5 * time.Second); httpStatus(err) == http.StatusConflict && time.Now().Before(deadline); retries++ {
		time.Sleep(50 * time.Millisecond) // until whipgate has seen the PeerConnection close
		second, err = tryPublish(t, url, opt)
	}
	if err != nil {
		t.Fatalf("POST after the publisher vanished: %v", err)
	}
	second.waitConnected()
	sent = append(sent, fromKey(run(second, "two", 30, false))...)
	v.waitFrames(len(sent), 5*time.Second)

	// 2: the publisher stops sending but its PeerConnection stays up.
	if _, err := tryPublish(t, url, opt); httpStatus(err) != http.StatusConflict {
		t.Fatalf("POST while the publisher is live: %v, want 409", err)
	}
	time.Sleep(stale)
	third := publish(t, url, opt)
	certstest.Eventually(t, 5*time.Second, "the stale publisher's session ends", func() bool {
		_, ok := app.Sessions().Get(sessionID(second.resource))
		return !ok
	})
	thirdSent := run(third, "three", 45, true)
	if thirdSent[0].key {
		t.Fatalf("the third publisher started with an IDR; the test wants it to need a PLI")
	}
	sent = append(sent, fromKey(thirdSent)...)
	got := v.waitFrames(len(sent), 5*time.Second)

	if _, ok := app.Sessions().Get(viewerID); !ok || v.pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
		t.Fatalf("the viewer's session %s did not survive the publisher switches", viewerID)
	}
	if len(got) != len(sent) {
		t.Fatalf("viewer assembled %d access units, publishers sent %d", len(got), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(got[i].data, sent[i].data) {
			t.Fatalf("access unit %d differs at the viewer", i)
		}
	}
	pkts, _ := v.packets()
	for i := 1; i < len(pkts); i++ {
		if a, b := pkts[i-1].SequenceNumber, pkts[i].SequenceNumber; b != a+1 {
			t.Fatalf("viewer sequence number jumps %d -> %d at packet %d", a, b, i)
		}
	}
	for i := 1; i < len(got); i++ {
		if d := int32(got[i].rtpTS - got[i-1].rtpTS); d <= 0 {
			t.Fatalf("viewer timestamp goes back by %d at frame %d", -d, i)
		}
	}
	_, _, n := decodeClean(t, annexB(t, got))
	if n != len(sent) {
		t.Fatalf("ffmpeg decoded %d frames, want %d", n, len(sent))
	}
	if n := third.pli[0].Load(); n != 1 {
		t.Fatalf("the publisher that started mid-GOP got %d PLIs, want 1: the viewer waiting for a keyframe needs one request", n)
	}
	t.Logf("one viewer session (%s) across 3 publishers: %d access units identical, %d packets with continuous sequence numbers, decoded cleanly; %d POSTs got 409 after the abrupt close",
		viewerID, len(got), len(pkts), retries)
}

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
	opt := publishOptions{token: key, video: h264Video}
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
