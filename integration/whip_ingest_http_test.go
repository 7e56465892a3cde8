package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"whipgate/certs/certstest"
	"whipgate/cmd"
	"whipgate/ingest/h264synth"
	"whipgate/whip/problem"
	"whipgate/whip/rtc"
)

// TestWHIPIngestHTTP checks every status and header rule of the WHIP
// endpoint and session resource (RFC 9725, and what OBS, FFmpeg and
// browsers need) against one gateway with two ICE servers and two
// configured streams.
func TestWHIPIngestHTTP(t *testing.T) {
	ice := startLoopbackTURN(t)
	app := startGateway(t, func(c *cmd.Config) {
		c.TestSource = nil
		c.WebRTC.ICEServers = []rtc.ICEServer{
			{URLs: []string{ice.stun}},
			{URLs: []string{ice.turn}, Username: ice.user, Credential: ice.pass},
		}
		c.Streams = map[string]cmd.StreamConfig{
			"keyed": {PublishToken: "s3cret"},
			"take":  {Takeover: true},
		}
	})
	base := app.URL()
	av := publishOptions{video: h264Video, audio: true}

	t.Run("201 Location ETag Link", func(t *testing.T) {
		p := postOffer(t, base+"/whip/created", av).requireCreated()
		if p.resp.StatusCode != http.StatusCreated {
			t.Fatalf("status %d, want exactly 201", p.resp.StatusCode)
		}
		// OBS gives up on the POST after 8 s.
		if p.took > 8*time.Second {
			t.Fatalf("POST answered after %v; OBS gives up after 8 s", p.took)
		}
		if ct := p.resp.Header.Get("Content-Type"); ct != "application/sdp" {
			t.Fatalf("Content-Type %q, want application/sdp", ct)
		}
		loc, err := url.Parse(p.resource)
		if err != nil || !loc.IsAbs() || loc.Scheme+"://"+loc.Host != base || !strings.HasPrefix(loc.Path, "/session/") {
			t.Fatalf("Location %q: want an absolute URL under %s/session/", p.resource, base)
		}
		if !regexp.MustCompile(`^"[^"]+"$`).MatchString(p.etag) {
			t.Fatalf("ETag %q: want a strong entity tag", p.etag)
		}
		links := p.resp.Header.Values("Link")
		want := []string{
			fmt.Sprintf(`<%s>; rel="ice-server"`, ice.stun),
			fmt.Sprintf(`<%s>; rel="ice-server"; username="%s"; credential="%s"; credential-type="password"`, ice.turn, ice.user, ice.pass),
		}
		if strings.Join(links, "\n") != strings.Join(want, "\n") {
			t.Fatalf("Link lines:\n%s\nwant one line per ICE server:\n%s", strings.Join(links, "\n"), strings.Join(want, "\n"))
		}
		if got := p.resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "Location") || !strings.Contains(got, "Link") {
			t.Fatalf("Access-Control-Expose-Headers %q: browsers could not read Location and Link", got)
		}
		// All candidates, gathered before answering: host, and a relay
		// candidate from the configured TURN server.
		if !strings.Contains(p.answer, " typ host") || !strings.Contains(p.answer, " typ relay") {
			t.Fatalf("answer lacks host or relay candidates:\n%s", p.answer)
		}
		if strings.Count(p.answer, "a=recvonly") != 2 || strings.Contains(p.answer, "a=sendrecv") {
			t.Fatalf("answer sections are not all recvonly:\n%s", p.answer)
		}
		t.Logf("201 in %v; Location %s; ETag %s", p.took.Round(time.Millisecond), p.resource, p.etag)
	})

	t.Run("public URL in Location", func(t *testing.T) {
		other := startGateway(t, func(c *cmd.Config) { c.TestSource = nil; c.PublicURL = "https://box.example:8443/" })
		p := postOffer(t, other.URL()+"/whip/pub", av)
		if p.resp.StatusCode != http.StatusCreated || !strings.HasPrefix(p.resource, "https://box.example:8443/session/") {
			t.Fatalf("status %d Location %q, want 201 and a Location under the public URL", p.resp.StatusCode, p.resource)
		}
	})

	t.Run("charset parameter", func(t *testing.T) {
		o := av
		o.contentType = "application/sdp; charset=utf-8"
		postOffer(t, base+"/whip/charset", o).requireCreated()
	})

	t.Run("415 wrong content type", func(t *testing.T) {
		resp, body := do(t, http.MethodPost, base+"/whip/x", "text/plain", offerFor(t, webrtc.RTPTransceiverDirectionSendonly, webrtc.RTPCodecTypeVideo), nil)
		requireProblem(t, resp, body, http.StatusUnsupportedMediaType, "Content-Type must be application/sdp")
	})

	t.Run("400 malformed SDP", func(t *testing.T) {
		resp, body := do(t, http.MethodPost, base+"/whip/x", "application/sdp", "v=0\r\nthis is not SDP\r\n", nil)
		requireProblem(t, resp, body, http.StatusBadRequest, "malformed SDP offer")
		noICE := regexp.MustCompile(`(?m)^a=ice-(ufrag|pwd):.*\r\n`).ReplaceAllString(offerFor(t, webrtc.RTPTransceiverDirectionSendonly, webrtc.RTPCodecTypeVideo), "")
		resp, body = do(t, http.MethodPost, base+"/whip/x", "application/sdp", noICE, nil)
		requireProblem(t, resp, body, http.StatusBadRequest, "has no a=ice-ufrag")
	})

	t.Run("422 two video tracks", func(t *testing.T) {
		resp, body := do(t, http.MethodPost, base+"/whip/x", "application/sdp",
			offerFor(t, webrtc.RTPTransceiverDirectionSendonly, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeVideo), nil)
		requireProblem(t, resp, body, http.StatusUnprocessableEntity, "at most one audio and one video track")
	})

	t.Run("422 two audio tracks", func(t *testing.T) {
		resp, body := do(t, http.MethodPost, base+"/whip/x", "application/sdp",
			offerFor(t, webrtc.RTPTransceiverDirectionSendonly, webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeAudio), nil)
		requireProblem(t, resp, body, http.StatusUnprocessableEntity, "at most one audio and one video track")
	})

	t.Run("401 stream key", func(t *testing.T) {
		p := postOffer(t, base+"/whip/keyed", av)
		requireProblem(t, p.resp, p.answer, http.StatusUnauthorized, "needs an Authorization: Bearer token")
		if !strings.HasPrefix(p.resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("401 without a Bearer WWW-Authenticate challenge")
		}
		o := av
		o.token = "wrong"
		p = postOffer(t, base+"/whip/keyed", o)
		requireProblem(t, p.resp, p.answer, http.StatusUnauthorized, "wrong Bearer token")
		o.token = "s3cret"
		p = publish(t, base+"/whip/keyed", o)
		// The session resource needs the stream key too.
		resp, body := do(t, http.MethodDelete, p.resource, "", "", nil)
		requireProblem(t, resp, body, http.StatusUnauthorized, "Bearer")
		if resp, _ := do(t, http.MethodDelete, p.resource, "", "", map[string]string{"Authorization": "Bearer s3cret"}); resp.StatusCode != http.StatusOK {
			t.Fatalf("DELETE with the stream key: %d, want 200", resp.StatusCode)
		}
	})

	t.Run("404 unknown session", func(t *testing.T) {
		for _, m := range []string{http.MethodPatch, http.MethodDelete} {
			resp, body := do(t, m, base+"/session/0123456789abcdef0123456789abcdef", "application/trickle-ice-sdpfrag", "a=end-of-candidates\r\n", nil)
			requireProblem(t, resp, body, http.StatusNotFound, "no session")
		}
	})

	t.Run("409 second live publisher", func(t *testing.T) {
		publish(t, base+"/whip/busy", av)
		p := postOffer(t, base+"/whip/busy", av)
		requireProblem(t, p.resp, p.answer, http.StatusConflict, "already has a live publisher")
		if p.resp.Header.Get("Retry-After") == "" {
			t.Fatalf("409 without Retry-After")
		}
	})

	t.Run("takeover replaces", func(t *testing.T) {
		first := publish(t, base+"/whip/take", av)
		second := publish(t, base+"/whip/take", av)
		certstest.Eventually(t, 5*time.Second, "the first publisher's session ends", func() bool {
			_, ok := app.Sessions().Get(sessionID(first.resource))
			return !ok
		})
		if _, ok := app.Sessions().Get(sessionID(second.resource)); !ok {
			t.Fatalf("the new publisher's session is gone")
		}
		if resp, _ := do(t, http.MethodDelete, first.resource, "", "", nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("DELETE of the replaced session: %d, want 404", resp.StatusCode)
		}
	})

	t.Run("PATCH trickle 204", func(t *testing.T) {
		o := av
		o.noCandidates = true
		p := postOffer(t, base+"/whip/trickle", o).requireCreated()
		resp, body := do(t, http.MethodPatch, p.resource, "application/trickle-ice-sdpfrag",
			trickleFrag(p.pc.LocalDescription().SDP), map[string]string{"If-Match": p.etag})
		if resp.StatusCode != http.StatusNoContent || body != "" || resp.Header.Get("ETag") != "" {
			t.Fatalf("trickle PATCH: %d ETag %q body %q, want 204, no ETag, no body", resp.StatusCode, resp.Header.Get("ETag"), body)
		}
	})

	t.Run("412 wrong If-Match", func(t *testing.T) {
		p := publish(t, base+"/whip/ifmatch", av)
		resp, body := do(t, http.MethodPatch, p.resource, "application/trickle-ice-sdpfrag",
			trickleFrag(p.pc.LocalDescription().SDP), map[string]string{"If-Match": `"not-the-etag"`})
		requireProblem(t, resp, body, http.StatusPreconditionFailed, "does not match")
	})

	t.Run("428 restart without If-Match", func(t *testing.T) {
		p := publish(t, base+"/whip/restart428", av)
		frag := "a=ice-ufrag:newufrag1\r\na=ice-pwd:newpasswordnewpassword12\r\n"
		resp, body := do(t, http.MethodPatch, p.resource, "application/trickle-ice-sdpfrag", frag, nil)
		requireProblem(t, resp, body, http.StatusPreconditionRequired, "needs an If-Match")
	})

	t.Run("ICE restart 200 new ETag", func(t *testing.T) {
		testICERestart(t, app)
	})

	t.Run("DELETE 200 then 404", func(t *testing.T) {
		p := publish(t, base+"/whip/deleted", av)
		if resp, body := do(t, http.MethodDelete, p.resource, "", "", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("DELETE: %d %s, want 200 (OBS warns on anything else)", resp.StatusCode, body)
		}
		if s, ok := app.Hub().Stream("deleted"); ok && s.Live() {
			t.Fatalf("stream still live after DELETE")
		}
		for _, m := range []string{http.MethodDelete, http.MethodPatch} {
			resp, body := do(t, m, p.resource, "application/trickle-ice-sdpfrag", "a=end-of-candidates\r\n", nil)
			requireProblem(t, resp, body, http.StatusNotFound, "no session")
		}
	})

	t.Run("GET 2xx empty", func(t *testing.T) {
		p := publish(t, base+"/whip/get", av)
		for _, u := range []string{base + "/whip/get", base + "/whip/nothing-here", p.resource} {
			resp, body := do(t, http.MethodGet, u, "", "", nil)
			if resp.StatusCode/100 != 2 || body != "" {
				t.Fatalf("GET %s: %d %q, want 2xx with no content (RFC 9725 §4.1)", u, resp.StatusCode, body)
			}
		}
	})

	t.Run("OPTIONS CORS Accept-Post", func(t *testing.T) {
		resp, _ := do(t, http.MethodOptions, base+"/whip/any", "", "", map[string]string{
			"Origin":                         "https://studio.example",
			"Access-Control-Request-Method":  "POST",
			"Access-Control-Request-Headers": "authorization, content-type",
		})
		h := resp.Header
		switch {
		case resp.StatusCode/100 != 2:
			t.Fatalf("OPTIONS: %d, want 2xx", resp.StatusCode)
		case h.Get("Accept-Post") != "application/sdp":
			t.Fatalf("Accept-Post %q, want application/sdp", h.Get("Accept-Post"))
		case h.Get("Access-Control-Allow-Origin") == "":
			t.Fatalf("no Access-Control-Allow-Origin")
		case !containsAll(h.Get("Access-Control-Allow-Methods"), "POST", "PATCH", "DELETE", "OPTIONS"):
			t.Fatalf("Access-Control-Allow-Methods %q", h.Get("Access-Control-Allow-Methods"))
		case !containsAll(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization", "content-type", "if-match"):
			t.Fatalf("Access-Control-Allow-Headers %q", h.Get("Access-Control-Allow-Headers"))
		case len(h.Values("Link")) != 0:
			t.Fatalf("a CORS preflight should not carry ICE servers (RFC 9725 §4.6)")
		}
	})

	for _, setup := range []string{"passive", "active"} {
		t.Run("a=setup:"+setup, func(t *testing.T) {
			o := av
			o.munge = func(sdp string) string { return strings.ReplaceAll(sdp, "a=setup:actpass", "a=setup:"+setup) }
			p := postOffer(t, base+"/whip/setup-"+setup, o).requireCreated()
			want := map[string]string{"passive": "a=setup:active", "active": "a=setup:passive"}[setup]
			if !strings.Contains(p.answer, want) {
				t.Fatalf("answer to a=setup:%s lacks %s:\n%s", setup, want, p.answer)
			}
		})
	}

	t.Run("offer without candidates", func(t *testing.T) {
		o := av
		o.noCandidates = true
		p := postOffer(t, base+"/whip/nocands", o).requireCreated()
		if strings.Contains(p.offer, "a=candidate") {
			t.Fatalf("the test posted candidates")
		}
	})

	t.Run("H.264 High 6.1 fmtp", func(t *testing.T) {
		o := av
		o.video.SDPFmtpLine = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64003d"
		p := publish(t, base+"/whip/high61", o)
		if !strings.Contains(p.answer, "H264/90000") {
			t.Fatalf("answer has no H.264:\n%s", p.answer)
		}
	})
}

// requireProblem checks an error response: the status, an RFC 9457 body
// that says the same status, and a detail that says what was wrong.
func requireProblem(t testing.TB, resp *http.Response, body string, status int, detail string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	if p.Status != status || p.Title == "" || p.Type == "" || !strings.Contains(p.Detail, detail) {
		t.Fatalf("problem %+v: want status %d and a detail containing %q", p, status, detail)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// sdpValue returns the first a=key: value of an SDP.
func sdpValue(sdp, key string) string {
	m := regexp.MustCompile(`(?m)^a=` + key + `:(\S+)`).FindStringSubmatch(sdp)
	if m == nil {
		return ""
	}
	return m[1]
}

// trickleFrag is an RFC 8840 fragment with the offer's ICE credentials and
// its candidates, as a trickling client sends it.
func trickleFrag(sdp string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", sdpValue(sdp, "ice-ufrag"), sdpValue(sdp, "ice-pwd"))
	fmt.Fprintf(&b, "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:%s\r\n", sdpValue(sdp, "mid"))
	for _, c := range regexp.MustCompile(`(?m)^a=candidate:.*$`).FindAllString(sdp, -1) {
		b.WriteString(strings.TrimRight(c, "\r") + "\r\n")
	}
	b.WriteString("a=end-of-candidates\r\n")
	return b.String()
}

// testICERestart restarts ICE from a publishing pion client the RFC 9725
// way (PATCH with new credentials, If-Match "*") and applies the server's
// fragment: the client goes through ICE checking again, a trickle with the
// old ETag then fails with 412, and media sent after the restart reaches
// a viewer.
func testICERestart(t *testing.T, app *instance) {
	p := postOffer(t, app.URL()+"/whip/restart", publishOptions{video: h264Video}).requireCreated()
	v := watch(t, app.URL()+"/whep/restart")
	enc, err := h264synth.New(h264synth.Config{Width: 160, Height: 96, FPS: 30})
	if err != nil {
		t.Fatal(err)
	}
	video := newSendStream(p.video[0], &codecs.H264Payloader{})
	frames := func(n int) pacedSource {
		return pacedSource{stream: video, interval: time.Second / 30, ticks: 3000, next: func() ([]byte, bool) {
			if n == 0 {
				return nil, false
			}
			n--
			nalus, _ := enc.Next()
			return h264synth.AppendAnnexB(nil, nalus), true
		}}
	}
	playSources(t, frames(15))

	var mu sync.Mutex
	var states []webrtc.ICEConnectionState
	p.pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		mu.Lock()
		states = append(states, s)
		mu.Unlock()
	})
	offer, err := p.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	local := p.pc.LocalDescription().SDP
	if sdpValue(local, "ice-ufrag") == sdpValue(p.offer, "ice-ufrag") {
		t.Fatalf("pion did not make new ICE credentials")
	}
	resp, frag := do(t, http.MethodPatch, p.resource, "application/trickle-ice-sdpfrag", trickleFrag(local), map[string]string{"If-Match": "*"})
	switch {
	case resp.StatusCode != http.StatusOK:
		t.Fatalf("restart PATCH: %d %s, want 200", resp.StatusCode, frag)
	case resp.Header.Get("Content-Type") != "application/trickle-ice-sdpfrag":
		t.Fatalf("restart answer Content-Type %q", resp.Header.Get("Content-Type"))
	case resp.Header.Get("ETag") == "" || resp.Header.Get("ETag") == p.etag:
		t.Fatalf("restart ETag %q, want a new one (old %s)", resp.Header.Get("ETag"), p.etag)
	case sdpValue(frag, "ice-ufrag") == "" || sdpValue(frag, "ice-ufrag") == sdpValue(p.answer, "ice-ufrag"):
		t.Fatalf("restart answer has no new ICE credentials:\n%s", frag)
	case !strings.Contains(frag, "a=candidate:"):
		t.Fatalf("restart answer has no candidates:\n%s", frag)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: applyFrag(p.answer, frag)}); err != nil {
		t.Fatalf("apply the restart answer: %v", err)
	}
	certstest.Eventually(t, 10*time.Second, "ICE checks again and connects after the restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		i := slices.Index(states, webrtc.ICEConnectionStateChecking)
		return i >= 0 && slices.Contains(states[i:], webrtc.ICEConnectionStateConnected)
	})

	stale, body := do(t, http.MethodPatch, p.resource, "application/trickle-ice-sdpfrag", trickleFrag(local), map[string]string{"If-Match": p.etag})
	requireProblem(t, stale, body, http.StatusPreconditionFailed, "does not match")

	playSources(t, frames(15))
	sent := video.frames()
	got := v.waitPackets(sent, nil)
	requireSameFrames(t, "across the ICE restart", sent, groupRTPFrames(got, false))
	mu.Lock()
	t.Logf("restart answered in 200 with ETag %s; client ICE states after it: %v; %d frames intact", resp.Header.Get("ETag"), states, len(sent))
	mu.Unlock()
}

// applyFrag makes the answer a client applies after an ICE restart: the
// old answer with the fragment's credentials and candidates.
func applyFrag(answer, frag string) string {
	answer = regexp.MustCompile(`(?m)^a=(candidate:|end-of-candidates).*\r?\n`).ReplaceAllString(answer, "")
	answer = regexp.MustCompile(`(?m)^a=ice-ufrag:.*$`).ReplaceAllString(answer, "a=ice-ufrag:"+sdpValue(frag, "ice-ufrag")+"\r")
	answer = regexp.MustCompile(`(?m)^a=ice-pwd:.*$`).ReplaceAllString(answer, "a=ice-pwd:"+sdpValue(frag, "ice-pwd")+"\r")
	var cands strings.Builder
	for _, c := range regexp.MustCompile(`(?m)^a=candidate:.*$`).FindAllString(frag, -1) {
		cands.WriteString(strings.TrimRight(c, "\r") + "\r\n")
	}
	return answer + cands.String() + "a=end-of-candidates\r\n"
}

// BenchmarkWHIPIngestPost measures a WHIP POST answered with all
// candidates gathered, and its DELETE: OBS gives up on the POST after 8 s,
// FFmpeg after 5 s.
func BenchmarkWHIPIngestPost(b *testing.B) {
	for _, bc := range []struct {
		name string
		ice  bool
	}{{"host", false}, {"stun+turn", true}} {
		b.Run(bc.name, func(b *testing.B) {
			var servers []rtc.ICEServer
			if bc.ice {
				ice := startLoopbackTURN(b)
				servers = []rtc.ICEServer{{URLs: []string{ice.stun}}, {URLs: []string{ice.turn}, Username: ice.user, Credential: ice.pass}}
			}
			app := startGateway(b, func(c *cmd.Config) { c.TestSource = nil; c.WebRTC.ICEServers = servers })
			offer := offerFor(b, webrtc.RTPTransceiverDirectionSendonly, webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo)
			for b.Loop() {
				resp, body := do(b, http.MethodPost, app.URL()+"/whip/bench", "application/sdp", offer, nil)
				if resp.StatusCode != http.StatusCreated {
					b.Fatalf("POST: %d %s", resp.StatusCode, body)
				}
				if resp, _ := do(b, http.MethodDelete, resp.Header.Get("Location"), "", "", nil); resp.StatusCode != http.StatusOK {
					b.Fatalf("DELETE: %d", resp.StatusCode)
				}
			}
		})
	}
}

// TestPOSTClientLeavesEarly: a publisher or viewer that hangs up while its
// POST is being answered (OBS stopped, a tab closed) leaves no session
// behind, and the stream it claimed takes the next publisher at once
// instead of answering 409 until the connect timeout.
func TestPOSTClientLeavesEarly(t *testing.T) {
	src := cmd.DefaultConfig().TestSource
	if src == nil {
		t.Fatal("the default config has no test source to watch")
	}
	app := startGateway(t, func(c *cmd.Config) { c.TestSource = src }) // Start fills in src.Stream
	whepOffer := offerFor(t, webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo)
	for _, c := range []struct{ path, offer string }{
		{"/whip/left", offerFor(t, webrtc.RTPTransceiverDirectionSendonly, webrtc.RTPCodecTypeVideo)},
		{"/whep/" + src.Stream, whepOffer},
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(app.URL(), "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", c.path, len(c.offer), c.offer)
		_ = conn.Close()
		line := fmt.Sprintf("path=%s status=%d", c.path, problem.StatusClientClosed)
		certstest.Eventually(t, 5*time.Second, "access log "+line, func() bool { return strings.Contains(app.log.String(), line) })
		if n := len(app.Sessions().List()); n != 0 {
			t.Fatalf("%s: %d sessions left after the client hung up", c.path, n)
		}
	}
	// The next publisher gets 201 (publish fails on anything else).
	publish(t, app.URL()+"/whip/left", publishOptions{video: h264Video})
}
