package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"whipgate/cmd"
)

// What a stranger on the network sends (issue 13): markup for names,
// requests a web page makes cross-site, a Host that is not ours, bodies
// too large. Each is refused before it creates anything.

// The rules' wording, as the problem details name them.
const (
	streamNameRule = "only letters, digits and -_.~ are allowed"
	ridRule        = "(RFC 8851 rid-id)"
)

// TestHostileNamesRefused: a stream name, a layer or a simulcast rid with
// markup in it (once accepted and shown by the dashboard) is refused with
// 400 problem+json naming the rule, on the WHIP and WHEP endpoints, in an
// offer and in the egress API; afterwards no stream, session or egress
// exists that was not there before.
func TestHostileNamesRefused(t *testing.T) {
	app := startGateway(t, nil)
	waitLive(t, app, "test")
	whep := offerFor(t, webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
	markupRID := strings.NewReplacer("a=rid:1 send", "a=rid:<i> send", "a=simulcast:send 0;1;2", "a=simulcast:send 0;<i>;2")
	egress := func(id, stream string) string {
		return fmt.Sprintf(`{"id": %q, "stream": %q, "url": "http://127.0.0.1:9/whip"}`, id, stream)
	}
	for _, tc := range []struct {
		name, method, path, ctype, body, rule string
	}{
		{"WHIP stream name", "POST", "/whip/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", "application/sdp", obsOffer(t), streamNameRule},
		{"WHEP stream name", "POST", "/whep/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", "application/sdp", whep, streamNameRule},
		{"WHEP layer", "POST", "/whep/test/%3Csvg%3E", "application/sdp", whep, ridRule},
		{"WHEP layer too long", "POST", "/whep/test/main-and-much-more", "application/sdp", whep, "must be 1 to 16 characters " + ridRule},
		{"rid in a WHIP offer", "POST", "/whip/cam", "application/sdp", markupRID.Replace(obsOffer(t)), ridRule},
		{"egress stream", "POST", "/api/v1/egress", "application/json", egress("relay", "<img src=x>"), streamNameRule},
		{"egress id", "POST", "/api/v1/egress", "application/json", egress("<img src=x>", "test"), streamNameRule},
		{"egress layer", "POST", "/api/v1/egress", "application/json", `{"stream": "test", "url": "http://127.0.0.1:9/whip", "layers": ["<svg>"]}`, ridRule},
		{"API stream path", "GET", "/api/v1/streams/%3Cimg%3E", "", "", streamNameRule},
		{"API keyframe path", "POST", "/api/v1/streams/%3Cimg%3E/keyframe", "", "", streamNameRule},
		{"API egress path", "GET", "/api/v1/egress/%3Cimg%3E", "", "", "egress id"},
		{"API egress DELETE", "DELETE", "/api/v1/egress/%3Cimg%3E", "", "", "egress id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, tc.method, app.URL()+tc.path, tc.ctype, tc.body, nil)
			requireProblem(t, resp, body, http.StatusBadRequest, tc.rule)
		})
	}
	if _, ok := app.Hub().Stream("cam"); ok {
		t.Error(`the offer with a markup rid created stream "cam"`)
	}
	if n := len(app.Hub().Streams()); n != 1 {
		t.Errorf("%d streams after the refusals, want only the test stream", n)
	}
	if n := len(app.Sessions().List()); n != 0 {
		t.Errorf("%d sessions after the refusals, want none", n)
	}
	if ids := egressIDs(t, app, nil); len(ids) != 0 {
		t.Errorf("egresses %v after the refusals, want none", ids)
	}
}

// egressIDs lists the egresses through the API.
func egressIDs(t testing.TB, app *instance, hdr map[string]string) []string {
	t.Helper()
	resp, body := do(t, http.MethodGet, app.URL()+"/api/v1/egress", "", "", hdr)
	var doc struct {
		Egress []struct {
			ID string `json:"id"`
		} `json:"egress"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &doc) != nil {
		t.Fatalf("GET /api/v1/egress: %d %s", resp.StatusCode, body)
	}
	var ids []string
	for _, e := range doc.Egress {
		ids = append(ids, e.ID)
	}
	return ids
}

// TestAPIRefusesCrossSiteAndForeignHost: an instance on loopback without
// an api_token, as the README starts it. What a web page the operator
// visits can make a browser send is refused — a text/plain POST (415), a
// state change marked cross-site or from a foreign Origin (403), a Host
// that is not ours, as DNS rebinding sends (421) — while the same request
// without the hostile part, as curl sends it, works; an origin in
// http.allowed_origins may.
func TestAPIRefusesCrossSiteAndForeignHost(t *testing.T) {
	const panel = "https://panel.example"
	app := startGateway(t, func(c *cmd.Config) { c.HTTP.AllowedOrigins = []string{panel} })
	waitLive(t, app, "test")
	api := app.URL() + "/api/v1"
	relay := `{"id": "relay", "stream": "test", "url": "http://127.0.0.1:9/whip", "layers": ["preview"]}`
	crossSite := map[string]string{"Sec-Fetch-Site": "cross-site"}
	evil := map[string]string{"Origin": "https://evil.example"}
	rebind := map[string]string{"Host": "rebind.evil.example:" + port(t, app.URL())}

	for _, tc := range []struct {
		name, method, path, ctype, body string
		hdr                             map[string]string
		status                          int
		detail                          string
	}{
		{"text/plain egress POST", "POST", "/egress", "text/plain", relay, nil, 415, "application/json"},
		{"form egress POST", "POST", "/egress", "application/x-www-form-urlencoded", relay, nil, 415, "application/json"},
		{"cross-site egress POST", "POST", "/egress", "application/json", relay, crossSite, 403, "cross-site"},
		{"foreign Origin egress POST", "POST", "/egress", "application/json", relay, evil, 403, "https://evil.example"},
		{"cross-site keyframe", "POST", "/streams/test/keyframe", "", "", crossSite, 403, "cross-site"},
		{"foreign Origin reload", "POST", "/reload", "", "", evil, 403, "https://evil.example"},
		{"rebinding Host", "GET", "/streams", "", "", rebind, 421, "rebind.evil.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, tc.method, api+tc.path, tc.ctype, tc.body, tc.hdr)
			requireProblem(t, resp, body, tc.status, tc.detail)
		})
	}
	resp, body := do(t, "GET", app.URL()+"/metrics", "", "", rebind)
	requireProblem(t, resp, body, http.StatusMisdirectedRequest, "http.allowed_hosts")
	if ids := egressIDs(t, app, nil); len(ids) != 0 {
		t.Fatalf("a refused request created egresses %v", ids)
	}

	// The same calls as curl makes them work, so the refusals above were
	// for the hostile part alone.
	if resp, body := do(t, "POST", api+"/egress", "application/json", relay, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("egress POST as curl sends it: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "DELETE", api+"/egress/relay", "", "", evil)
	requireProblem(t, resp, body, http.StatusForbidden, "https://evil.example")
	if ids := egressIDs(t, app, nil); len(ids) != 1 {
		t.Fatalf("egresses %v after a refused DELETE, want relay still there", ids)
	}
	for _, ok := range []struct {
		method, path string
		hdr          map[string]string
		status       int
	}{
		{"DELETE", "/egress/relay", nil, http.StatusNoContent},
		{"POST", "/streams/test/keyframe", nil, http.StatusAccepted},
		{"POST", "/streams/test/keyframe", map[string]string{"Origin": panel, "Sec-Fetch-Site": "cross-site"}, http.StatusAccepted},
		{"GET", "/streams", map[string]string{"Host": "localhost:" + port(t, app.URL())}, http.StatusOK},
	} {
		if resp, body := do(t, ok.method, api+ok.path, "", "", ok.hdr); resp.StatusCode != ok.status {
			t.Fatalf("%s %s %v: %d %s, want %d", ok.method, ok.path, ok.hdr, resp.StatusCode, body, ok.status)
		}
	}
}

// port is the port of an http://host:port URL.
func port(t testing.TB, url string) string {
	t.Helper()
	m := regexp.MustCompile(`:(\d+)$`).FindStringSubmatch(url)
	if m == nil {
		t.Fatalf("no port in %q", url)
	}
	return m[1]
}

// TestOversizedBodiesRefused: offers and PATCH bodies past the limits
// (limits.max_sdp_bytes, max_candidates, max_formats,
// max_patch_candidates) are refused with 413 or 400 problem+json naming
// the limit, whether the body's length is announced or chunked; the
// session a PATCH was refused for lives on and takes a PATCH within the
// limits.
func TestOversizedBodiesRefused(t *testing.T) {
	app := startGateway(t, nil)
	waitLive(t, app, "test")
	limits := app.Sessions().Limits()
	whep := offerFor(t, webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
	candidates := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "a=candidate:%d 1 udp 2130706431 127.0.0.1 %d typ host\r\n", i+1, 9+i)
		}
		return b.String()
	}
	// padded is sdp with lines appended up to past max_sdp_bytes.
	padded := func(sdp string) string {
		return sdp + strings.Repeat("a=x-pad:"+strings.Repeat("x", 100)+"\r\n", limits.MaxSDPBytes/110+1)
	}
	manyFormats := regexp.MustCompile(`(?m)^(m=video \S+ \S+)(.*)$`).ReplaceAllStringFunc(whep, func(m string) string {
		for pt := 0; pt <= limits.MaxFormats; pt++ {
			m += fmt.Sprintf(" %d", 200+pt%50) // repeats are still counted
		}
		return m
	})

	for _, tc := range []struct {
		name, path, body string
		chunked          bool
		status           int
		limit            string
	}{
		{"WHEP offer past max_sdp_bytes", "/whep/test", padded(whep), false, 413, "limits.max_sdp_bytes"},
		{"WHIP offer past max_sdp_bytes, chunked", "/whip/cam", padded(obsOffer(t)), true, 413, "limits.max_sdp_bytes"},
		{"offer past max_candidates", "/whep/test", whep + candidates(limits.MaxCandidates+1), false, 400, "limits.max_candidates"},
		{"offer past max_formats", "/whep/test", manyFormats, false, 400, "limits.max_formats"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			var body string
			if tc.chunked {
				resp, body = postChunked(t, app.URL()+tc.path, "application/sdp", tc.body)
			} else {
				resp, body = do(t, http.MethodPost, app.URL()+tc.path, "application/sdp", tc.body, nil)
			}
			requireProblem(t, resp, body, tc.status, tc.limit)
		})
	}
	if n := len(app.Sessions().List()); n != 0 {
		t.Fatalf("%d sessions after refused offers, want none", n)
	}

	v := watch(t, app.URL()+"/whep/test/preview")
	frag := fmt.Sprintf("a=ice-ufrag:%s\r\na=ice-pwd:%s\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n", iceUfrag(t, v.pc), icePwd(t, v.pc))
	patch := func(body string) (*http.Response, string) {
		return do(t, http.MethodPatch, v.resource, "application/trickle-ice-sdpfrag", body, map[string]string{"If-Match": v.etag})
	}
	resp, body := patch(padded(frag))
	requireProblem(t, resp, body, http.StatusRequestEntityTooLarge, "limits.max_sdp_bytes")
	resp, body = patch(frag + candidates(limits.MaxPatchCandidates+1))
	requireProblem(t, resp, body, http.StatusRequestEntityTooLarge, "limits.max_patch_candidates")
	if resp, body := patch(frag + candidates(1)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("a PATCH within the limits after the refused ones: %d %s", resp.StatusCode, body)
	}
	if _, ok := app.Sessions().Get(sessionID(v.resource)); !ok {
		t.Fatal("the session ended over a refused PATCH")
	}
}

// postChunked POSTs body without announcing its length, as a client
// streaming it does.
func postChunked(t testing.TB, url, ctype, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, io.MultiReader(strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1 // unknown: sent chunked
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}
