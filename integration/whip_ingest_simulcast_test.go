package integration

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"

	"whipgate/cmd"
	"whipgate/ingest/h264synth"
)

// obsOffer is an offer shaped like OBS 32.1's with three simulcast layers
// (PROTOCOL.md §3.1, libdatachannel): ICE and DTLS attributes at session
// level, no candidates, a=group:LS, audio mid 0 Opus PT 111, video mid 1
// H.264 PT 96 with libdatachannel's fixed 42e01f fmtp, rids 0-2 ("0" is
// full size) on one a=simulcast:send line, sdes mid/rid extmaps 1 and 2,
// nack/pli/goog-remb feedback, a=ssrc lines, no RTX, no rtcp-mux-only.
func obsOffer(t testing.TB) string {
	t.Helper()
	var fp [32]byte
	if _, err := rand.Read(fp[:]); err != nil {
		t.Fatal(err)
	}
	hexes := make([]string, len(fp))
	for i, b := range fp {
		hexes[i] = fmt.Sprintf("%02X", b)
	}
	lines := []string{
		"v=0",
		"o=rtc 3877212184 0 IN IP4 127.0.0.1",
		"s=-",
		"t=0 0",
		"a=group:BUNDLE 0 1",
		"a=group:LS 0 1",
		"a=msid-semantic:WMS *",
		"a=setup:actpass",
		"a=ice-ufrag:nxcM",
		"a=ice-pwd:ezjAjgSSLLvbRhUA1zc6Se",
		"a=ice-options:ice2,trickle",
		"a=fingerprint:sha-256 " + strings.Join(hexes, ":"),
		"m=audio 9 UDP/TLS/RTP/SAVPF 111",
		"c=IN IP4 0.0.0.0",
		"a=mid:0",
		"a=sendonly",
		"a=ssrc:3388068600 cname:Yuu1KDxQcc3L5CpY",
		"a=ssrc:3388068600 msid:XmQSKutZo7zYcEQl XmQSKutZo7zYcEQl-audio",
		"a=msid:XmQSKutZo7zYcEQl XmQSKutZo7zYcEQl-audio",
		"a=rtcp-mux",
		"a=rtpmap:111 opus/48000/2",
		"a=fmtp:111 minptime=10;maxaveragebitrate=96000;stereo=1;sprop-stereo=1;useinbandfec=1",
		"m=video 9 UDP/TLS/RTP/SAVPF 96",
		"c=IN IP4 0.0.0.0",
		"a=mid:1",
		"a=sendonly",
		"a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
		"a=extmap:2 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
		"a=rid:0 send",
		"a=rid:1 send",
		"a=rid:2 send",
		"a=simulcast:send 0;1;2",
		"a=ssrc:3388068601 cname:Yuu1KDxQcc3L5CpY",
		"a=ssrc:3388068601 msid:XmQSKutZo7zYcEQl XmQSKutZo7zYcEQl-video",
		"a=ssrc:3388068602 cname:Yuu1KDxQcc3L5CpY",
		"a=ssrc:3388068602 msid:XmQSKutZo7zYcEQl XmQSKutZo7zYcEQl-video",
		"a=ssrc:3388068603 cname:Yuu1KDxQcc3L5CpY",
		"a=ssrc:3388068603 msid:XmQSKutZo7zYcEQl XmQSKutZo7zYcEQl-video",
		"a=msid:XmQSKutZo7zYcEQl XmQSKutZo7zYcEQl-video",
		"a=rtcp-mux",
		"a=rtpmap:96 H264/90000",
		"a=rtcp-fb:96 nack",
		"a=rtcp-fb:96 nack pli",
		"a=rtcp-fb:96 goog-remb",
		"a=fmtp:96 profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1",
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}

// TestWHIPIngestSimulcast: an OBS-shaped simulcast offer is answered the
// way OBS checks it, and a pion publisher sending rids 0, 1 and 2 (pion
// send-side simulcast) delivers three layers, each watched over
// /whep/{stream}/{rid}: every access unit identical, decoded by ffmpeg at
// the layer's own size.
func TestWHIPIngestSimulcast(t *testing.T) {
	app := startGateway(t, func(c *cmd.Config) { c.TestSource = nil })

	t.Run("OBS offer", func(t *testing.T) {
		resp, answer := do(t, http.MethodPost, app.URL()+"/whip/obs", "application/sdp", obsOffer(t), nil)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("OBS offer: %d %s, want exactly 201", resp.StatusCode, answer)
		}
		if resp.Header.Get("Location") == "" {
			t.Fatalf("201 without Location: OBS fails")
		}
		sim := regexp.MustCompile(`(?m)^a=simulcast:.*$`).FindAllString(answer, -1)
		if len(sim) != 1 || strings.TrimSpace(sim[0]) != "a=simulcast:recv 0;1;2" {
			t.Fatalf("answer simulcast lines %q, want exactly one a=simulcast:recv 0;1;2:\n%s", sim, answer)
		}
		// What OBS counts: the layers on the first a=simulcast line.
		if n := strings.Count(sim[0], ";") + 1; n != 3 {
			t.Fatalf("OBS would see %d accepted layers, want 3", n)
		}
		for _, want := range []string{"a=rid:0 recv", "a=rid:1 recv", "a=rid:2 recv", "a=rtpmap:96 H264/90000", "a=rtpmap:111 opus/48000/2"} {
			if !strings.Contains(answer, want) {
				t.Fatalf("answer lacks %q:\n%s", want, answer)
			}
		}
		if strings.Count(answer, "a=recvonly") != 2 || regexp.MustCompile(`(?m)^m=\S+ 0 `).MatchString(answer) {
			t.Fatalf("answer rejects a section or is not recvonly:\n%s", answer)
		}
		if got, want := hubTracks(t, app, "obs"), "0=video/H264 1=video/H264 2=video/H264 audio=audio/opus"; got != want {
			t.Fatalf("hub tracks %q, want %q", got, want)
		}
		if resp, _ := do(t, http.MethodDelete, resp.Header.Get("Location"), "", "", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("DELETE: %d, want 200", resp.StatusCode)
		}
	})

	t.Run("pion publisher three layers", func(t *testing.T) {
		layers := []struct {
			rid  string
			w, h int
		}{{"0", 384, 216}, {"1", 256, 144}, {"2", 128, 72}}
		var rids []string
		for _, l := range layers {
			rids = append(rids, l.rid)
		}
		pub := publish(t, app.URL()+"/whip/sim", publishOptions{
			video: h264Video,
			rids:  rids,
			audio: true,
		})
		if len(pub.video) != 3 {
			t.Fatalf("publisher has %d encodings", len(pub.video))
		}
		if !strings.Contains(pub.answer, "a=simulcast:recv 0;1;2") {
			t.Fatalf("answer does not accept the three layers:\n%s", pub.answer)
		}
		viewers := make([]*viewer, len(layers))
		for i, l := range layers {
			viewers[i] = watch(t, app.URL()+"/whep/sim/"+l.rid)
		}
		const n = 60
		sent := make([][]accessUnit, len(layers))
		var srcs []pacedSource
		for i, l := range layers {
			enc, err := h264synth.New(h264synth.Config{Width: l.w, Height: l.h, FPS: 30, Label: "rid" + l.rid})
			if err != nil {
				t.Fatal(err)
			}
			srcs = append(srcs, pub.synthVideo(i, enc, n, &sent[i]))
		}
		srcs = append(srcs, pacedSource{stream: newSendStream(pub.audio, &codecs.OpusPayloader{}), interval: 20 * time.Millisecond,
			ticks: 960, next: framesOnce(encodeOpusPackets(t, 2))})
		playSources(t, srcs...)

		if got, want := hubTracks(t, app, "sim"), "0=video/H264 1=video/H264 2=video/H264 audio=audio/opus"; got != want {
			t.Fatalf("hub tracks %q, want %q", got, want)
		}
		for i, l := range layers {
			got := viewers[i].waitFrames(n, 5*time.Second)
			if len(got) != n {
				t.Fatalf("layer %s: viewer assembled %d access units, want %d", l.rid, len(got), n)
			}
			for k := range sent[i] {
				if !bytes.Equal(got[k].data, sent[i][k].data) {
					t.Fatalf("layer %s: access unit %d differs at the viewer", l.rid, k)
				}
			}
			w, h, frames := decodeClean(t, annexB(t, got))
			if w != l.w || h != l.h || frames != n {
				t.Fatalf("layer %s: ffmpeg decoded %d frames of %dx%d, want %d of %dx%d", l.rid, frames, w, h, n, l.w, l.h)
			}
			_, audioPkts := viewers[i].packets()
			audio := len(audioPkts)
			if audio == 0 {
				t.Fatalf("layer %s: the viewer got no audio", l.rid)
			}
			t.Logf("layer %s: %d frames %dx%d identical and decoded; %d audio packets", l.rid, frames, w, h, audio)
		}
	})
}

// hubTracks lists a stream's live tracks as "name=codec", in order.
func hubTracks(t testing.TB, app *instance, stream string) string {
	t.Helper()
	s, ok := app.Hub().Stream(stream)
	if !ok {
		t.Fatalf("no stream %q in the hub", stream)
	}
	var names []string
	for _, tr := range s.Tracks() {
		names = append(names, tr.Name+"="+string(tr.Codec))
	}
	return strings.Join(names, " ")
}
