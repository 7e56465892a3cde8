package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/certs/certstest"
	"whipgate/cmd"
	"whipgate/whip/rtc"
)

// problemDetail decodes an RFC 9457 body and returns its detail.
func problemDetail(t testing.TB, resp *http.Response, body string) string {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("error Content-Type %q, want application/problem+json; body %s", ct, body)
	}
	var p struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil || p.Status != resp.StatusCode || p.Detail == "" {
		t.Fatalf("bad problem body %q (status %d): %v", body, resp.StatusCode, err)
	}
	return p.Detail
}

func TestWHEPConformance(t *testing.T) {
	app := startGateway(t, func(c *cmd.Config) {
		c.WebRTC.ICEServers = []rtc.ICEServer{
			{URLs: []string{"stun:stun.example.test:3478"}},
			{URLs: []string{"turn:turn.example.test:3478?transport=udp"}, Username: "u", Credential: "p"},
		}
		c.Streams = map[string]cmd.StreamConfig{
			"idle":    {},
			"private": {ViewToken: "s3cret"},
		}
	})
	waitLive(t, app, "test")
	base := app.URL()

	t.Run("201 with Location, ETag and one Link per ICE server", func(t *testing.T) {
		sdp := offerFor(t, webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo)
		resp, body := do(t, "POST", base+"/whep/test", "application/sdp", sdp, nil)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/sdp" {
			t.Fatalf("Content-Type %q", ct)
		}
		if !strings.Contains(body, "a=sendonly") || !strings.Contains(body, "a=candidate:") {
			t.Fatalf("answer is not sendonly with candidates:\n%s", body)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || !loc.IsAbs() {
			t.Fatalf("Location %q is not absolute", resp.Header.Get("Location"))
		}
		id := loc.Path[strings.LastIndex(loc.Path, "/")+1:]
		if len(id) < 32 {
			t.Fatalf("session id %q is too short to be unguessable", id)
		}
		if et := resp.Header.Get("ETag"); !strings.HasPrefix(et, `"`) || len(et) < 10 {
			t.Fatalf("ETag %q is not a strong tag", et)
		}
		links := resp.Header.Values("Link")
		if len(links) != 2 {
			t.Fatalf("want 2 Link header lines, got %q", links)
		}
		if !strings.Contains(links[0], `<stun:stun.example.test:3478>; rel="ice-server"`) ||
			!strings.Contains(links[1], `username="u"`) || !strings.Contains(links[1], `credential="p"`) {
			t.Fatalf("Link lines %q", links)
		}
		if eh := resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(eh, "Location") || !strings.Contains(eh, "ETag") {
			t.Fatalf("CORS expose headers %q", eh)
		}
	})

	t.Run("audio inactive on a video-only stream", func(t *testing.T) {
		offer := offerFor(t, webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
		resp, answer := do(t, "POST", base+"/whep/test/preview", "application/sdp", offer, nil)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST: %d %s", resp.StatusCode, answer)
		}
		defer do(t, "DELETE", resp.Header.Get("Location"), "", "", nil)
		var d sdp.SessionDescription
		if err := d.UnmarshalString(answer); err != nil {
			t.Fatal(err)
		}
		for _, m := range d.MediaDescriptions {
			var codecs []string
			for _, a := range m.Attributes {
				if a.Key == "rtpmap" {
					_, enc, _ := strings.Cut(a.Value, " ")
					name, _, _ := strings.Cut(enc, "/")
					codecs = append(codecs, name)
				}
			}
			_, sendonly := m.Attribute("sendonly")
			_, inactive := m.Attribute("inactive")
			switch m.MediaName.Media {
			case "video":
				if !slices.Contains(codecs, "H264") || !sendonly {
					t.Errorf("video section: codecs %v, sendonly %v; want H264, sendonly", codecs, sendonly)
				}
			case "audio":
				if !inactive || sendonly {
					t.Errorf("the audio section of a stream without audio is not inactive: %v", m.Attributes)
				}
			}
		}
	})

	t.Run("a second session gets another unguessable URL", func(t *testing.T) {
		a, b := watch(t, base+"/whep/test"), watch(t, base+"/whep/test/preview")
		if a.resource == b.resource {
			t.Fatalf("two sessions share %s", a.resource)
		}
	})

	t.Run("PATCH trickle 204 with or without If-Match", func(t *testing.T) {
		v := watch(t, base+"/whep/test")
		frag := "a=ice-ufrag:" + iceUfrag(t, v.pc) + "\r\na=ice-pwd:" + icePwd(t, v.pc) + "\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n"
		resp, body := do(t, "PATCH", v.resource, "application/trickle-ice-sdpfrag", frag, map[string]string{"If-Match": v.etag})
		if resp.StatusCode != http.StatusNoContent || body != "" || resp.Header.Get("ETag") != "" {
			t.Fatalf("trickle with If-Match: %d %q etag %q", resp.StatusCode, body, resp.Header.Get("ETag"))
		}
		resp, body = do(t, "PATCH", v.resource, "application/trickle-ice-sdpfrag", frag, nil)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("trickle without If-Match (tolerated): %d %s", resp.StatusCode, body)
		}
	})

	t.Run("PATCH 412 wrong If-Match, 428 restart without If-Match, 415 wrong type, 400 garbage", func(t *testing.T) {
		v := watch(t, base+"/whep/test")
		restart := "a=ice-ufrag:newufrag1\r\na=ice-pwd:newpasswordnewpasswordxx\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
		resp, body := do(t, "PATCH", v.resource, "application/trickle-ice-sdpfrag", restart, map[string]string{"If-Match": `"nope"`})
		if resp.StatusCode != http.StatusPreconditionFailed {
			t.Fatalf("wrong If-Match: %d %s", resp.StatusCode, body)
		}
		problemDetail(t, resp, body)
		resp, body = do(t, "PATCH", v.resource, "application/trickle-ice-sdpfrag", restart, nil)
		if resp.StatusCode != http.StatusPreconditionRequired {
			t.Fatalf("restart without If-Match: %d %s", resp.StatusCode, body)
		}
		resp, body = do(t, "PATCH", v.resource, "application/sdp", restart, map[string]string{"If-Match": v.etag})
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("wrong type: %d %s", resp.StatusCode, body)
		}
		resp, body = do(t, "PATCH", v.resource, "application/trickle-ice-sdpfrag", "hello world", map[string]string{"If-Match": v.etag})
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("garbage fragment: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("ICE restart 200 with sdpfrag and a new ETag", func(t *testing.T) {
		v := watch(t, base+"/whep/test")
		v.waitFrames(1, 5*time.Second)
		restart := "a=ice-ufrag:newufrag1\r\na=ice-pwd:newpasswordnewpasswordxx\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
		resp, body := do(t, "PATCH", v.resource, "application/trickle-ice-sdpfrag", restart, map[string]string{"If-Match": "*"})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("restart: %d %s", resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/trickle-ice-sdpfrag" {
			t.Fatalf("restart Content-Type %q", ct)
		}
		if et := resp.Header.Get("ETag"); et == "" || et == v.etag {
			t.Fatalf("restart ETag %q, old %q: want a new one", et, v.etag)
		}
		if !strings.Contains(body, "a=ice-ufrag:") || !strings.Contains(body, "a=ice-pwd:") || strings.Contains(body, "a=ice-ufrag:"+answerUfrag(t, v.answer)+"\r") {
			t.Fatalf("restart answer lacks new credentials:\n%s", body)
		}
		// The old tag no longer matches.
		resp, _ = do(t, "PATCH", v.resource, "application/trickle-ice-sdpfrag", "a=end-of-candidates\r\n", map[string]string{"If-Match": v.etag})
		if resp.StatusCode != http.StatusPreconditionFailed {
			t.Fatalf("old ETag after restart: %d, want 412", resp.StatusCode)
		}
	})

	t.Run("DELETE 200 then 404, and the session is gone", func(t *testing.T) {
		v := watch(t, base+"/whep/test")
		v.waitFrames(1, 5*time.Second)
		before := subscribers(t, app, "test")
		resp, body := do(t, "DELETE", v.resource, "", "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
		}
		resp, body = do(t, "DELETE", v.resource, "", "", nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("second DELETE: %d %s", resp.StatusCode, body)
		}
		problemDetail(t, resp, body)
		if after := subscribers(t, app, "test"); after != before-1 {
			t.Fatalf("subscribers %d → %d after DELETE", before, after)
		}
	})

	t.Run("session ends when the viewer closes its PeerConnection", func(t *testing.T) {
		v := watch(t, base+"/whep/test")
		v.waitFrames(1, 5*time.Second)
		id := sessionID(v.resource)
		v.pc.Close() // DTLS close_notify
		certstest.Eventually(t, 10*time.Second, fmt.Sprintf("session %s ends after the viewer left", id), func() bool {
			_, ok := app.Sessions().Get(id)
			return !ok
		})
	})

	t.Run("OPTIONS with CORS and Accept-Post", func(t *testing.T) {
		resp, _ := do(t, "OPTIONS", base+"/whep/test", "", "", map[string]string{"Origin": "http://example.test", "Access-Control-Request-Method": "POST"})
		if resp.StatusCode/100 != 2 || resp.Header.Get("Accept-Post") != "application/sdp" ||
			resp.Header.Get("Access-Control-Allow-Origin") == "" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Fatalf("OPTIONS: %d %v", resp.StatusCode, resp.Header)
		}
	})

	t.Run("GET and HEAD are 2xx and empty", func(t *testing.T) {
		for _, m := range []string{"GET", "HEAD"} {
			resp, body := do(t, m, base+"/whep/test/main", "", "", nil)
			if resp.StatusCode/100 != 2 || body != "" {
				t.Fatalf("%s: %d %q", m, resp.StatusCode, body)
			}
		}
	})

	for _, tc := range []struct {
		name, path, ctype, body string
		hdr                     map[string]string
		want                    int
		detail                  string
	}{
		{"404 unknown stream", "/whep/nosuch", "application/sdp", "", nil, 404, `no stream "nosuch"`},
		{"404 unknown layer", "/whep/test/huge", "application/sdp", "", nil, 404, "layers: main, preview"},
		{"409 no live publisher", "/whep/idle", "application/sdp", "", nil, 409, "no live publisher"},
		{"415 wrong content type", "/whep/test", "text/plain", "v=0", nil, 415, "application/sdp"},
		{"400 malformed SDP", "/whep/test", "application/sdp", "this is not sdp", nil, 400, "malformed SDP"},
		{"400 empty SDP", "/whep/test", "application/sdp", " ", nil, 400, "empty SDP"},
		{"401 without the stream's token", "/whep/private", "application/sdp", "", nil, 401, "Bearer"},
		{"401 with a wrong token", "/whep/private", "application/sdp", "", map[string]string{"Authorization": "Bearer wrong"}, 401, "wrong Bearer"},
		{"405 PUT", "/whep/test", "application/sdp", "", nil, 405, "PUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body
			if body == "" {
				body = offerFor(t, webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo)
			}
			method := "POST"
			if tc.want == 405 {
				method = "PUT"
			}
			resp, got := do(t, method, base+tc.path, tc.ctype, body, tc.hdr)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, got)
			}
			if d := problemDetail(t, resp, got); !strings.Contains(d, tc.detail) {
				t.Fatalf("detail %q does not say %q", d, tc.detail)
			}
			if tc.want == 409 && resp.Header.Get("Retry-After") == "" {
				t.Fatalf("409 without Retry-After")
			}
			if tc.want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("401 without WWW-Authenticate")
			}
		})
	}

	t.Run("201 with the stream's token", func(t *testing.T) {
		// "private" has no publisher: a valid token gets past auth to 409.
		sdp := offerFor(t, webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo)
		resp, body := do(t, "POST", base+"/whep/private", "application/sdp", sdp, map[string]string{"Authorization": "Bearer s3cret"})
		if resp.StatusCode != http.StatusConflict {
			t.Fatalf("with token: %d %s", resp.StatusCode, body)
		}
	})
}

func subscribers(t testing.TB, app *instance, stream string) int {
	t.Helper()
	s, ok := app.Hub().Stream(stream)
	if !ok {
		t.Fatalf("no stream %q", stream)
	}
	return len(s.Stats().Subscribers)
}

func iceUfrag(t testing.TB, pc *webrtc.PeerConnection) string {
	return answerUfrag(t, pc.LocalDescription().SDP)
}

func icePwd(t testing.TB, pc *webrtc.PeerConnection) string {
	t.Helper()
	for _, l := range strings.Split(pc.LocalDescription().SDP, "\r\n") {
		if v, ok := strings.CutPrefix(l, "a=ice-pwd:"); ok {
			return v
		}
	}
	t.Fatal("no ice-pwd")
	return ""
}

func answerUfrag(t testing.TB, sdp string) string {
	t.Helper()
	for _, l := range strings.Split(sdp, "\r\n") {
		if v, ok := strings.CutPrefix(l, "a=ice-ufrag:"); ok {
			return v
		}
	}
	t.Fatal("no ice-ufrag")
	return ""
}
