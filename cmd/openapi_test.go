package cmd

// openapi.yaml is the HTTP contract. These tests hold it to the code:
//   - it is valid OpenAPI 3.1 and GET /api/v1/openapi.json serves it;
//   - the router's routes and its paths agree, both ways;
//   - real responses of every route, errors included, match it;
//   - so do the README's example calls.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/go-chi/chi/v5"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"whipgate/certs/certstest"
	"whipgate/cmd/apidoc"
	"whipgate/cmd/config"
	"whipgate/cmd/config/configtest"
	"whipgate/internal/testkit"
)

func init() {
	// kin-openapi decodes a body by its media type; these are text. Here,
	// before any test runs: the registry is a map without a lock.
	for _, ct := range []string{"application/sdp", "application/trickle-ice-sdpfrag", "text/event-stream"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
	}
}

// loadDoc is a fresh copy of the embedded document, loaded and validated,
// that a test may change.
func loadDoc(t testing.TB) *openapi3.T {
	t.Helper()
	doc, err := apidoc.Load(t.Context(), openAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// The document is valid OpenAPI 3.1, the API serves it as JSON, and it
// names the routes issue 14 asks for. Every error it lists is a Problem.
func TestOpenAPIDocument(t *testing.T) {
	doc := loadDoc(t)
	if !doc.IsOpenAPI31OrLater() || !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Fatalf("got openapi %q, want 3.1.x", doc.OpenAPI)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatal(err)
	}

	app := startApp(t, func(c *Config) { c.APIToken = "tok" })
	resp, body := requestResp(t, http.MethodGet, app.URL()+"/api/v1/openapi.json", "tok", "")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/json" {
		t.Fatalf("got %d %s, want 200 application/json", resp.StatusCode, ct)
	}
	served, err := apidoc.Load(t.Context(), []byte(body))
	if err != nil {
		t.Fatalf("the served document: %v", err)
	}
	want, _ := json.Marshal(doc)
	got, _ := json.Marshal(served)
	if !bytes.Equal(got, want) {
		t.Errorf("the served document is not openapi.yaml's (%d bytes, want %d)", len(got), len(want))
	}
	// Without the token it is refused like the rest of /api/v1.
	if code, _ := request(t, http.MethodGet, app.URL()+"/api/v1/openapi.json", "", ""); code != http.StatusUnauthorized {
		t.Errorf("without the token: got %d, want 401", code)
	}

	// Issue 14's done-when: it names streams, sessions, egress, encoder
	// and keyframe routes.
	for _, p := range []string{"/api/v1/streams", "/api/v1/streams/{name}", "/api/v1/streams/{name}/keyframe",
		"/api/v1/sessions", "/api/v1/sessions/{id}", "/api/v1/egress", "/api/v1/egress/{id}", "/api/v1/encoder"} {
		if served.Paths.Value(p) == nil {
			t.Errorf("the served document has no %s", p)
		}
	}

	for path, item := range served.Paths.Map() {
		for method, op := range item.Operations() {
			ok2xx := false
			for code, r := range op.Responses.Map() {
				if strings.HasPrefix(code, "2") {
					ok2xx = true
				}
				if code < "400" || path == "/readyz" { // its 503 is a Readiness, not an error
					continue
				}
				mt := r.Value.Content.Get("application/problem+json")
				if mt == nil || mt.Schema == nil || mt.Schema.Ref != "#/components/schemas/Problem" || len(r.Value.Content) != 1 {
					t.Errorf("%s %s %s: an error must be application/problem+json with schema Problem", method, path, code)
				}
			}
			if !ok2xx || op.OperationID == "" {
				t.Errorf("%s %s: want an operationId and a 2xx response", method, path)
			}
		}
	}
}

// routeCheck compares an App's router with a document.
type routeCheck struct {
	app     *App
	handler http.Handler
	session string // the id {id} stands for
}

// mismatches lists where the router and doc disagree:
//   - a documented (method, path) that chi does not route, or whose handler
//     answers 405;
//   - a routed (method, pattern) that the document leaves out, unless its
//     handler answers 405. chi lists every method for a route registered
//     with Handle (the WHIP/WHEP endpoints, /session/{id}), and those
//     handlers refuse the methods they do not serve.
//
// chi's patterns (/api/v1/egress/{id}) are OpenAPI paths as they are.
func (c *routeCheck) mismatches(t *testing.T, doc *openapi3.T) []string {
	t.Helper()
	// Pages are routes for people, not programs: the document leaves
	// them out.
	pages := map[string]bool{"/": true, "/play/{stream}": true, "/publish/{stream}": true, "/static/*": true, "/favicon.ico": true}
	// These answer every method alike (promhttp serves the metrics to
	// any); only the methods the document lists are the contract.
	anyMethod := map[string]bool{"/metrics": true}
	routed := map[string]map[string]bool{}
	err := chi.Walk(c.handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if !pages[route] {
			if routed[route] == nil {
				routed[route] = map[string]bool{}
			}
			routed[route][method] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	documented := map[string]map[string]bool{}
	for path, item := range doc.Paths.Map() {
		documented[path] = map[string]bool{}
		for method := range item.Operations() {
			documented[path][method] = true
			switch {
			case !routed[path][method]:
				out = append(out, fmt.Sprintf("%s %s is in openapi.yaml, but the router has no such route", method, path))
			case c.probe(t, method, path) == http.StatusMethodNotAllowed:
				out = append(out, fmt.Sprintf("%s %s is in openapi.yaml, but its handler answers 405", method, path))
			}
		}
	}
	for route, methods := range routed {
		for method := range methods {
			if documented[route][method] || anyMethod[route] {
				continue
			}
			if code := c.probe(t, method, route); code != http.StatusMethodNotAllowed {
				out = append(out, fmt.Sprintf("%s %s is routed and answers %d, but openapi.yaml does not describe it", method, route, code))
			}
		}
	}
	sort.Strings(out)
	return out
}

// probe sends method to a path of pattern, in process, from loopback, and
// returns the status. {id} is a live session (a new one once a DELETE has
// ended the last); the request's context is over, so an event stream ends
// at once.
func (c *routeCheck) probe(t *testing.T, method, pattern string) int {
	t.Helper()
	path := strings.NewReplacer("{stream}", "test", "{name}", "test", "{layer}", "main").Replace(pattern)
	if strings.Contains(path, "{id}") {
		if _, ok := c.app.sessions.Get(c.session); !ok {
			c.session = fakeSession(t, c.app, "whep", "test", "").ID
		}
		path = strings.ReplaceAll(path, "{id}", c.session)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	req := httptest.NewRequestWithContext(ctx, method, path, nil)
	req.Host, req.RemoteAddr = "127.0.0.1", "127.0.0.1:1"
	rec := httptest.NewRecorder()
	c.handler.ServeHTTP(rec, req)
	return rec.Code
}

// The router and the document agree, and the check fails when they do
// not: a route left out of the document, one that does not exist, a
// method the handler does not serve.
func TestOpenAPIRoutes(t *testing.T) {
	app := startApp(t, nil)
	c := &routeCheck{app: app, handler: app.routes()}
	if got := c.mismatches(t, loadDoc(t)); len(got) > 0 {
		t.Errorf("the router and openapi.yaml disagree:\n%s", strings.Join(got, "\n"))
	}

	t.Run("mutations", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			mutate func(*openapi3.T)
			want   string
		}{
			{"route left out", func(d *openapi3.T) { d.Paths.Delete("/api/v1/encoder") },
				"GET /api/v1/encoder is routed and answers 404, but openapi.yaml does not describe it"},
			{"method left out", func(d *openapi3.T) { d.Paths.Value("/api/v1/egress/{id}").Patch = nil },
				"PATCH /api/v1/egress/{id} is routed and answers 404"},
			{"WHIP method left out", func(d *openapi3.T) { d.Paths.Value("/whip/{stream}").Options = nil },
				"OPTIONS /whip/{stream} is routed and answers 204"},
			{"route that does not exist", func(d *openapi3.T) {
				d.Paths.Set("/api/v1/nope", &openapi3.PathItem{Get: d.Paths.Value("/api/v1/info").Get})
			}, "GET /api/v1/nope is in openapi.yaml, but the router has no such route"},
			{"method chi does not route", func(d *openapi3.T) {
				item := d.Paths.Value("/api/v1/streams")
				item.Delete = item.Get
			}, "DELETE /api/v1/streams is in openapi.yaml, but the router has no such route"},
			{"method the handler refuses", func(d *openapi3.T) {
				item := d.Paths.Value("/session/{id}")
				item.Put = item.Patch
			}, "PUT /session/{id} is in openapi.yaml, but its handler answers 405"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				doc := loadDoc(t)
				tc.mutate(doc)
				got := c.mismatches(t, doc)
				if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, tc.want) }) {
					t.Errorf("got %q, want a line starting %q", got, tc.want)
				}
			})
		}
	})
}

// contract checks responses against the document.
type contract struct {
	doc    *openapi3.T
	router routers.Router
}

func newContract(t testing.TB, doc *openapi3.T) *contract {
	t.Helper()
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contract{doc: doc, router: r}
}

// do sends a request and checks the answer against the document: its
// status is one the operation lists (and want, unless 0), its headers and
// body match that response, and a request the server took (2xx) is one the
// document allows. A "Host" in hdr sets the request's Host.
func (c *contract) do(t testing.TB, want int, method, url string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req := certstest.NewRequest(t.Context(), t, method, url, body, hdr)
	resp, got := certstest.Exchange(t, http.DefaultClient, req)
	if want != 0 && resp.StatusCode != want {
		t.Errorf("%s %s: got %d %s, want %d", method, url, resp.StatusCode, got, want)
	}
	c.check(t, req, []byte(body), resp.StatusCode, resp.Header, got)
	return resp, string(got)
}

// check validates one exchange against the document and fails t for
// each disagreement.
func (c *contract) check(t testing.TB, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) {
	t.Helper()
	for _, p := range c.problems(t.Context(), req, reqBody, status, header, body) {
		t.Error(p)
	}
}

// problems lists how one exchange disagrees with the document.
func (c *contract) problems(ctx context.Context, req *http.Request, reqBody []byte, status int, header http.Header, body []byte) []string {
	what := fmt.Sprintf("%s %s → %d", req.Method, req.URL.Path, status)
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		return []string{fmt.Sprintf("%s: openapi.yaml has no such operation: %v", what, err)}
	}
	resp := route.Operation.Responses.Status(status)
	if resp == nil {
		return []string{fmt.Sprintf("%s: openapi.yaml does not list status %d for %s %s", what, status, req.Method, route.Path)}
	}
	var out []string
	if len(resp.Value.Content) == 0 && len(body) > 0 {
		out = append(out, fmt.Sprintf("%s: openapi.yaml says no content, got %q", what, body))
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		MultiError:            true,
	}
	in := &openapi3filter.RequestValidationInput{Request: req.Clone(ctx), PathParams: params, Route: route, Options: opts}
	if status/100 == 2 {
		in.Request.Body = io.NopCloser(bytes.NewReader(reqBody))
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			out = append(out, fmt.Sprintf("%s: the server took a request openapi.yaml refuses: %v", what, err))
		}
	}
	res := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
	res.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, res); err != nil {
		out = append(out, fmt.Sprintf("%s: the response does not match openapi.yaml: %v\nbody: %s", what, err, body))
	}
	return out
}

// eventStream is an open GET /api/v1/events whose events' data a
// goroutine collects.
type eventStream struct {
	mu     sync.Mutex
	data   []string
	wg     sync.WaitGroup
	cancel context.CancelFunc
	body   io.Closer
}

// openEvents opens GET url (the event stream), checks its response head
// against the document, and collects its events until stop.
func (c *contract) openEvents(t testing.TB, url string) *eventStream {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	es := &eventStream{cancel: cancel, body: resp.Body}
	t.Cleanup(func() { es.stop() })
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() {
		t.Fatalf("GET %s: no first line", url)
	}
	c.check(t, req, nil, resp.StatusCode, resp.Header, append(sc.Bytes(), '\n'))
	es.wg.Go(func() {
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				es.mu.Lock()
				es.data = append(es.data, d)
				es.mu.Unlock()
			}
		}
	})
	return es
}

// wait waits for an event of type typ.
func (es *eventStream) wait(t testing.TB, typ string, within time.Duration) {
	t.Helper()
	eventually(t, within, typ+" event", func() bool {
		es.mu.Lock()
		defer es.mu.Unlock()
		return slices.ContainsFunc(es.data, func(d string) bool { return strings.HasPrefix(d, `{"type":"`+typ+`"`) })
	})
}

// stop closes the stream and returns the events' data.
func (es *eventStream) stop() []string {
	es.cancel()
	es.body.Close()
	es.wg.Wait()
	es.mu.Lock()
	defer es.mu.Unlock()
	return slices.Clone(es.data)
}

// loopbackPeer is a pion PeerConnection that gathers on IPv4 loopback only.
func loopbackPeer(t testing.TB) *webrtc.PeerConnection {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// viewerOffer is a WHEP viewer's offer: receive video and audio.
func viewerOffer(t testing.TB) (*webrtc.PeerConnection, string) {
	t.Helper()
	pc := loopbackPeer(t)
	return pc, testkit.OfferFor(t, pc, webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
}

// eventually polls cond every 20 ms until it holds, or fails after within.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
	}
}

// Every route answers what the document says, on a box with a test
// source, an encoder, a WHEP viewer, an egress to itself (so WHIP
// sessions too), one from the config file that cannot connect, and a
// reload source.
func TestOpenAPIResponses(t *testing.T) {
	app, cfgPath := reloadApp(t, `
test_source: {}
hwaccel: {}
streams:
  idle: {}
egress:
  - {id: file, stream: idle, url: "http://127.0.0.1:9/whip"}
`)
	c := newContract(t, loadDoc(t))
	api := app.URL() + "/api/v1"
	events := c.openEvents(t, api+"/events")
	js := map[string]string{"Content-Type": "application/json"}
	sdp := map[string]string{"Content-Type": "application/sdp"}
	frag := map[string]string{"Content-Type": "application/trickle-ice-sdpfrag"}

	eventually(t, 5*time.Second, "stream test live", func() bool { s, ok := app.hub.Stream("test"); return ok && s.Live() })
	resp, _ := c.do(t, 201, "POST", api+"/egress", js,
		fmt.Sprintf(`{"id": "relay", "stream": "test", "url": %q, "layers": ["main", "preview"]}`, app.URL()+"/whip/relay-{layer}"))
	if loc := resp.Header.Get("Location"); loc != "/api/v1/egress/relay" {
		t.Errorf("egress Location %q", loc)
	}
	eventually(t, 15*time.Second, "egress relay connected", func() bool {
		e, ok := app.egress.Get("relay")
		return ok && e.Status().State == "connected"
	})
	events.wait(t, "egress", 5*time.Second) // the state watcher looks once a second

	pc, o := viewerOffer(t)
	resp, answer := c.do(t, 201, "POST", app.URL()+"/whep/test/preview", sdp, o)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "viewer connected", func() bool { return pc.ConnectionState() == webrtc.PeerConnectionStateConnected })
	viewer := resp.Header.Get("Location")
	viewerID := viewer[strings.LastIndexByte(viewer, '/')+1:]
	var publisherID string
	for _, s := range app.sessions.List() {
		if s.Kind == "whip" {
			publisherID = s.ID
		}
	}
	if publisherID == "" {
		t.Fatal("the egress to ourselves made no WHIP session")
	}
	kicked := fakeSession(t, app, "whep", "test", "")

	// The check can fail: a real answer against a document that lacks a
	// field the server sends, or the status it answers.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, api+"/streams/test", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, stream := c.do(t, 200, req.Method, req.URL.String(), nil, "")
	for _, tc := range []struct {
		name   string
		mutate func(*openapi3.T)
		want   string
	}{
		{"field left out", func(d *openapi3.T) { delete(d.Components.Schemas["StreamStats"].Value.Properties, "pinned") },
			"additional properties 'pinned' not allowed"},
		{"type changed", func(d *openapi3.T) {
			d.Components.Schemas["TrackStats"].Value.Properties["fps"].Value.Type = &openapi3.Types{"string"}
		}, "/layers/0/fps"},
		{"status left out", func(d *openapi3.T) { d.Paths.Value("/api/v1/streams/{name}").Get.Responses.Delete("200") },
			"openapi.yaml does not list status 200"},
	} {
		t.Run("mutation "+tc.name, func(t *testing.T) {
			doc := loadDoc(t)
			tc.mutate(doc)
			got := newContract(t, doc).problems(t.Context(), req, nil, resp.StatusCode, resp.Header, []byte(stream))
			if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("got %q, want a problem naming %q", got, tc.want)
			}
		})
	}

	for _, tc := range []struct {
		want int
		path string
	}{
		{200, api + "/openapi.json"},
		{200, api + "/info"},
		{200, api + "/streams"},
		{200, api + "/streams/test"},
		{200, api + "/streams/relay-main"},
		{200, api + "/streams/idle"},
		{200, api + "/sessions"},
		{200, api + "/sessions/" + viewerID},
		{200, api + "/sessions/" + publisherID},
		{200, api + "/sessions/" + kicked.ID},
		{200, api + "/encoder"},
		{200, api + "/egress"},
		{200, api + "/egress/relay"},
		{200, api + "/egress/file"},
		{200, app.URL() + "/metrics"},
		{200, app.URL() + "/healthz"},
		{0, app.URL() + "/readyz"}, // 503: the egress from the file cannot connect
		{204, app.URL() + "/whip/anything"},
		{200, app.URL() + "/whep/test"},
		{200, app.URL() + "/whep/test/main"},
		{204, viewer},
	} {
		c.do(t, tc.want, "GET", tc.path, nil, "")
	}
	for _, u := range []string{app.URL() + "/whip/anything", app.URL() + "/whep/test", app.URL() + "/whep/test/main", viewer} {
		c.do(t, 204, "OPTIONS", u, nil, "")
		c.do(t, 0, "HEAD", u, nil, "")
	}

	c.do(t, 202, "POST", api+"/streams/test/keyframe", nil, "")
	c.do(t, 200, "PATCH", api+"/egress/relay", js, `{"pacing_factor": 3}`)
	c.do(t, 204, "PATCH", viewer, frag, "a=end-of-candidates\r\n")
	restart := "a=ice-ufrag:Restart1\r\na=ice-pwd:restartrestartrestartrestart1\r\n"
	c.do(t, 428, "PATCH", viewer, frag, restart)
	c.do(t, 412, "PATCH", viewer, map[string]string{"Content-Type": frag["Content-Type"], "If-Match": `"stale"`}, restart)
	c.do(t, 200, "PATCH", viewer, map[string]string{"Content-Type": frag["Content-Type"], "If-Match": "*"}, restart)

	rewrite(t, cfgPath, `
test_source: {}
hwaccel: {}
streams:
  idle: {}
  added: {}
egress:
  - {id: file, stream: idle, url: "http://127.0.0.1:9/whip"}
`)
	c.do(t, 200, "POST", api+"/reload", nil, "")
	rewrite(t, cfgPath, "streams: {\"a b\": {}}\n")
	c.do(t, 422, "POST", api+"/reload", nil, "")

	c.do(t, 204, "DELETE", api+"/sessions/"+kicked.ID, nil, "")
	c.do(t, 200, "DELETE", viewer, nil, "")
	c.do(t, 204, "DELETE", api+"/egress/relay", nil, "")

	// Errors: problem+json, each a status the document lists.
	_, busy := viewerOffer(t)
	pub := loopbackPeer(t)
	publish := testkit.OfferFor(t, pub, webrtc.RTPTransceiverDirectionSendonly, webrtc.RTPCodecTypeVideo)
	two := testkit.OfferFor(t, loopbackPeer(t), webrtc.RTPTransceiverDirectionSendonly, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeVideo)
	for _, tc := range []struct {
		want                int
		method, path, ctype string
		body                string
	}{
		{404, "GET", api + "/streams/nope", "", ""},
		{404, "POST", api + "/streams/nope/keyframe", "", ""},
		{409, "POST", api + "/streams/idle/keyframe", "", ""},
		{404, "GET", api + "/sessions/nope", "", ""},
		{404, "DELETE", api + "/sessions/nope", "", ""},
		{404, "GET", api + "/egress/nope", "", ""},
		{404, "PATCH", api + "/egress/nope", "application/json", `{}`},
		{409, "PATCH", api + "/egress/file", "application/json", `{"token": "x"}`},
		{404, "DELETE", api + "/egress/nope", "", ""},
		{400, "POST", api + "/egress", "application/json", `{"stream": "idle", "url": "http://127.0.0.1:9/whip", "colour": "red"}`},
		{400, "POST", api + "/egress", "application/json", `{"stream": "idle"}`},
		{404, "POST", api + "/egress", "application/json", `{"stream": "nope", "url": "http://127.0.0.1:9/whip"}`},
		{409, "POST", api + "/egress", "application/json", `{"id": "file", "stream": "idle", "url": "http://127.0.0.1:9/whip"}`},
		{415, "POST", api + "/egress", "text/plain", `{"stream": "idle", "url": "http://127.0.0.1:9/whip"}`},
		{404, "POST", app.URL() + "/whep/nope", "application/sdp", busy},
		{404, "POST", app.URL() + "/whep/test/nolayer", "application/sdp", busy},
		{409, "POST", app.URL() + "/whep/idle", "application/sdp", busy},
		{400, "POST", app.URL() + "/whep/bad!name", "application/sdp", busy},
		{400, "POST", app.URL() + "/whep/test", "application/sdp", "v=0\r\n"},
		{415, "POST", app.URL() + "/whep/test", "text/plain", busy},
		{409, "POST", app.URL() + "/whip/test", "application/sdp", publish},
		{422, "POST", app.URL() + "/whip/two", "application/sdp", two},
		{404, "GET", app.URL() + "/session/nope", "", ""},
		{404, "PATCH", app.URL() + "/session/nope", "application/trickle-ice-sdpfrag", "a=end-of-candidates\r\n"},
		{404, "DELETE", app.URL() + "/session/nope", "", ""},
	} {
		var hdr map[string]string
		if tc.ctype != "" {
			hdr = map[string]string{"Content-Type": tc.ctype}
		}
		c.do(t, tc.want, tc.method, tc.path, hdr, tc.body)
	}

	// Every event the stream carried has the document's Event shape, and
	// each kind the box made happened.
	for _, typ := range []string{"session", "reload"} {
		events.wait(t, typ, 5*time.Second)
	}
	schema := c.doc.Components.Schemas["Event"].Value
	for _, d := range events.stop() {
		var ev any
		if err := json.Unmarshal([]byte(d), &ev); err != nil {
			t.Errorf("event %s: %v", d, err)
			continue
		}
		if err := schema.VisitJSON(ev, openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("event %s does not match the Event schema: %v", d, err)
		}
	}
}

// The trust and token checks answer as the document says: 401 with a
// token set, 421 for a foreign Host and 403 for a cross-site change
// without one, 503 past the event-stream cap.
func TestOpenAPIRefusals(t *testing.T) {
	c := newContract(t, loadDoc(t))
	withToken := startApp(t, func(c *Config) { c.APIToken = "tok" })
	for _, p := range []string{"/api/v1/info", "/api/v1/openapi.json", "/api/v1/streams", "/metrics"} {
		c.do(t, 401, "GET", withToken.URL()+p, nil, "")
		c.do(t, 401, "GET", withToken.URL()+p, map[string]string{"Authorization": "Bearer wrong"}, "")
	}

	app := startApp(t, func(c *Config) { c.HTTP.MaxEventStreams = 1 })
	c.do(t, 421, "GET", app.URL()+"/api/v1/streams", map[string]string{"Host": "rebind.example"}, "")
	c.do(t, 403, "POST", app.URL()+"/api/v1/reload", map[string]string{"Sec-Fetch-Site": "cross-site"}, "")
	c.do(t, 403, "DELETE", app.URL()+"/api/v1/egress/x", map[string]string{"Origin": "https://evil.example"}, "")
	c.do(t, 415, "POST", app.URL()+"/api/v1/streams/x/keyframe", map[string]string{"Content-Type": "text/plain"}, "x")
	c.openEvents(t, app.URL()+"/api/v1/events")
	c.do(t, 503, "GET", app.URL()+"/api/v1/events", nil, "")
}

// shellWords splits a command line as bash would for the forms the
// README uses: words in single quotes (literal), in double quotes or bare
// ($NAME expanded from env).
func shellWords(line string, env map[string]string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	expand := func(s string, i int) int { // s[i] == '$'; returns the index after the name
		j := i + 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || j > i+1 && s[j] >= '0' && s[j] <= '9') {
			j++
		}
		w.WriteString(env[s[i+1:j]])
		return j
	}
	for i := 0; i < len(line); {
		switch ch := line[i]; {
		case ch == ' ' || ch == '\t':
			if inWord {
				words, inWord = append(words, w.String()), false
				w.Reset()
			}
			i++
		case ch == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unclosed ' in %s", line)
			}
			w.WriteString(line[i+1 : i+1+end])
			i, inWord = i+end+2, true
		case ch == '"':
			i, inWord = i+1, true
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '$' {
					i = expand(line, i) - 1
				} else {
					w.WriteByte(line[i])
				}
			}
			if i >= len(line) {
				return nil, fmt.Errorf("unclosed \" in %s", line)
			}
			i++
		case ch == '$':
			i, inWord = expand(line, i), true
		default:
			w.WriteByte(ch)
			i, inWord = i+1, true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// curlRequest reads a README curl line: -X, -H and -d, the URL, and the
// flags that change nothing here (-sS, --fail-with-body). Another flag is
// an error, so a new kind of line is noticed.
func curlRequest(line string, env map[string]string) (method, url string, hdr map[string]string, body string, err error) {
	words, err := shellWords(line, env)
	if err != nil {
		return "", "", nil, "", err
	}
	hdr = map[string]string{}
	next := func(i int) (string, error) {
		if i+1 >= len(words) {
			return "", fmt.Errorf("%s needs a value", words[i])
		}
		return words[i+1], nil
	}
	for i := 1; i < len(words); i++ {
		var v string
		switch wd := words[i]; wd {
		case "-sS", "-s", "-S", "--fail-with-body":
			continue
		case "-X", "-H", "-d":
			if v, err = next(i); err != nil {
				return "", "", nil, "", err
			}
			i++
			switch wd {
			case "-X":
				method = v
			case "-H":
				k, val, _ := strings.Cut(v, ":")
				hdr[strings.TrimSpace(k)] = strings.TrimSpace(val)
			case "-d":
				body = v
			}
		default:
			if strings.HasPrefix(wd, "-") || url != "" {
				return "", "", nil, "", fmt.Errorf("curl %s: not understood here", wd)
			}
			url = wd
		}
	}
	switch {
	case method == "" && body != "":
		method = http.MethodPost
	case method == "":
		method = http.MethodGet
	}
	return method, url, hdr, body, nil
}

func TestShellWords(t *testing.T) {
	env := map[string]string{"WG": "http://h:1", "TOKEN": "t"}
	got, err := shellWords(`curl -H "Authorization: Bearer $TOKEN" -d '{"a": "$WG"}' "$WG/x" $WG/y`, env)
	want := []string{"curl", "-H", "Authorization: Bearer t", "-d", `{"a": "$WG"}`, "http://h:1/x", "http://h:1/y"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("got %q %v, want %q", got, err, want)
	}
}

// The README's example calls, run in process against a whipgate as the
// README describes it (a token, the test source, a viewer), answer what
// the document says, and send what it allows.
func TestOpenAPIREADMEExamples(t *testing.T) {
	lines := configtest.READMECurlLines(t, "../README.md")
	app := startApp(t, func(c *Config) {
		c.APIToken = "readme-token"
		c.TestSource = &config.TestSourceConfig{}
	})
	c := newContract(t, loadDoc(t))
	eventually(t, 5*time.Second, "stream test live", func() bool { s, ok := app.hub.Stream("test"); return ok && s.Live() })
	_, o := viewerOffer(t)
	resp, _ := c.do(t, 201, "POST", app.URL()+"/whep/test/preview", map[string]string{"Content-Type": "application/sdp"}, o)
	loc := resp.Header.Get("Location")
	env := map[string]string{"WG": app.URL(), "TOKEN": "readme-token", "SESSION": loc[strings.LastIndexByte(loc, '/')+1:]}

	// As integration/readme_api_test.go does: the example Sora URL points
	// at a WHIP endpoint that answers (this whipgate's own).
	const soraURL = "https://sora.example.com/whip/my-channel"
	for _, line := range lines {
		method, url, hdr, body, err := curlRequest(strings.ReplaceAll(line, soraURL, app.URL()+"/whip/readme-{layer}"), env)
		if err != nil {
			t.Fatalf("README line %s: %v", line, err)
		}
		resp, got := c.do(t, 0, method, url, hdr, body)
		if resp.StatusCode >= 400 {
			t.Errorf("README line %s: got %d %s (curl --fail-with-body fails)", line, resp.StatusCode, got)
		}
	}
}
