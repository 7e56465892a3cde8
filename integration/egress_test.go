package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"whipgate/certs/certstest"
	"whipgate/cmd"
	"whipgate/gateway"
	"whipgate/whip/egress"
)

// waitEgress polls the API until the egress reaches state.
func waitEgress(t testing.TB, app *instance, id, state string, within time.Duration, hdr ...map[string]string) egress.Status {
	t.Helper()
	var h map[string]string
	if len(hdr) > 0 {
		h = hdr[0]
	}
	var st egress.Status
	certstest.Eventually(t, within, fmt.Sprintf("egress %s is %s", id, state), func() bool {
		resp, body := do(t, "GET", app.URL()+"/api/v1/egress/"+id, "", "", h)
		if resp.StatusCode != 200 {
			return false
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		return st.State == state
	})
	return st
}

// decodeLayer watches a layer on app and checks a clean decode at w×h.
func decodeLayer(t *testing.T, app *instance, path string, w, h int) {
	t.Helper()
	v := watch(t, app.URL()+path)
	aus := v.waitFrames(40, 15*time.Second)
	gw, gh, n := decodeClean(t, annexB(t, aus))
	if gw != w || gh != h || n < 30 {
		t.Fatalf("%s: decoded %d frames %dx%d, want >= 30 at %dx%d", path, n, gw, gh, w, h)
	}
}

// TestEgressSessionsToSecondInstance: whipgate A publishes the test stream's
// two layers (one WHIP session each, from examples/egress.yaml) to whipgate
// B's WHIP ingest; a WHEP viewer on B decodes both.
func TestEgressSessionsToSecondInstance(t *testing.T) {
	b := startGateway(t, func(c *cmd.Config) { c.TestSource = nil })
	ex, err := cmd.LoadConfig("../examples/egress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Egress) != 1 || !strings.Contains(ex.Egress[0].URL, "{layer}") {
		t.Fatalf("examples/egress.yaml changed: %+v", ex.Egress)
	}
	a := startGateway(t, func(c *cmd.Config) {
		c.TestSource, c.Egress = ex.TestSource, ex.Egress
		c.Egress[0].URL = b.URL() + "/whip/relay-{layer}"
	})
	waitEgress(t, a, "relay", egress.StateConnected, 15*time.Second)
	waitLive(t, b, "relay-main")
	waitLive(t, b, "relay-preview")
	decodeLayer(t, b, "/whep/relay-main", 1280, 720)
	decodeLayer(t, b, "/whep/relay-preview", 320, 180)
	// B answers as DTLS server: A is DTLS client, and seals beneath pion
	// with the keys it learnt from B's ServerHello. B lost nothing.
	requireDirectEgress(t, a, "relay")
	for _, name := range []string{"relay-main", "relay-preview"} {
		var st gateway.StreamStats
		_, body := do(t, "GET", b.URL()+"/api/v1/streams/"+name, "", "", nil)
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		for _, tr := range st.Tracks {
			if tr.Packets == 0 || tr.Lost != 0 || tr.NACKsSent != 0 {
				t.Errorf("%s/%s at the target: %d packets, %d NACKed, %d lost; want packets, nothing missed", name, tr.Name, tr.Packets, tr.NACKsSent, tr.Lost)
			}
		}
	}
}

// requireDirectEgress requires every session of an egress to seal its
// media beneath pion, losing nothing there.
func requireDirectEgress(t *testing.T, app *instance, id string) {
	t.Helper()
	st := waitEgress(t, app, id, egress.StateConnected, 5*time.Second)
	for _, s := range st.Sessions {
		if s.SRTP != "direct" || s.DirectSent == 0 || s.DirectDropped != 0 {
			t.Errorf("egress %s session %v: srtp %q, %d sent beneath pion, %d dropped; want direct, some, none",
				id, s.Layers, s.SRTP, s.DirectSent, s.DirectDropped)
		}
	}
}

// TestEgressSimulcastToSecondInstance: one WHIP session with OBS-style rids
// ("0" = main, "1" = preview); B serves each rid as a layer.
func TestEgressSimulcastToSecondInstance(t *testing.T) {
	b := startGateway(t, func(c *cmd.Config) { c.TestSource = nil })
	a := startGateway(t, func(c *cmd.Config) {
		c.Egress = []egress.Config{{ID: "sim", Stream: "test", URL: b.URL() + "/whip/relay", Mode: "simulcast", RIDStyle: "obs"}}
	})
	st := waitEgress(t, a, "sim", egress.StateConnected, 15*time.Second)
	if len(st.Sessions) != 1 {
		t.Fatalf("simulcast egress has %d sessions", len(st.Sessions))
	}
	waitLive(t, b, "relay")
	decodeLayer(t, b, "/whep/relay/0", 1280, 720)
	decodeLayer(t, b, "/whep/relay/1", 320, 180)
	requireDirectEgress(t, a, "sim")
}

// TestEgressAPI: create, list, get and delete over the API, the error
// statuses, and persistence across a restart.
func TestEgressAPI(t *testing.T) {
	b := startGateway(t, func(c *cmd.Config) { c.TestSource = nil })
	state := t.TempDir()
	a := startGateway(t, func(c *cmd.Config) { c.StateDir = state })
	base := a.URL() + "/api/v1/egress"

	for _, tc := range []struct {
		body string
		want int
		says string
	}{
		{`{"stream": "test", "url": `, 400, "bad egress JSON"},
		{`{"stream": "test", "url": "http://127.0.0.1:1/whip/x", "colour": "red"}`, 400, "unknown field"},
		{`{"stream": "test"}`, 400, "url"},
		{`{"stream": "test", "url": "ftp://x/y"}`, 400, "http"},
		{`{"stream": "test", "url": "http://127.0.0.1:1/whip/x", "mode": "carrier-pigeon"}`, 400, "mode"},
		{`{"stream": "nosuch", "url": "http://127.0.0.1:1/whip/x"}`, 404, `no stream \"nosuch\"`},
	} {
		resp, body := do(t, "POST", base, "application/json", tc.body, nil)
		if resp.StatusCode != tc.want || !strings.Contains(body, tc.says) {
			t.Fatalf("POST %s: %d %s, want %d saying %q", tc.body, resp.StatusCode, body, tc.want, tc.says)
		}
	}

	create := `{"id": "to-b", "stream": "test", "url": "` + b.URL() + `/whip/api-{layer}", "token": "", "layers": ["preview"], "mode": "sessions", "rid_style": "obs"}`
	resp, body := do(t, "POST", base, "application/json", create, nil)
	if resp.StatusCode != http.StatusCreated || !strings.Contains(body, `"id": "to-b"`) {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "POST", base, "application/json", create, nil)
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("duplicate id: %d %s", resp.StatusCode, body)
	}
	waitEgress(t, a, "to-b", egress.StateConnected, 15*time.Second)
	waitLive(t, b, "api-preview")
	resp, body = do(t, "GET", base, "", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"to-b"`) {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}

	// Restart A on the same state dir: the egress comes back by itself.
	if err := a.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	a2 := startGateway(t, func(c *cmd.Config) { c.StateDir = state })
	st := waitEgress(t, a2, "to-b", egress.StateConnected, 20*time.Second)
	if st.Stream != "test" || len(st.Layers) != 1 || st.Layers[0] != "preview" {
		t.Fatalf("restored egress %+v", st)
	}

	resp, body = do(t, "DELETE", a2.URL()+"/api/v1/egress/to-b", "", "", nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	// DELETE went upstream: B's publisher is gone.
	certstest.Eventually(t, 5*time.Second, "the target drops the publisher after DELETE", func() bool {
		s, ok := b.Hub().Stream("api-preview")
		return !ok || !s.Live()
	})
	resp, _ = do(t, "GET", a2.URL()+"/api/v1/egress/to-b", "", "", nil)
	if resp.StatusCode != 404 {
		t.Fatalf("deleted egress still there: %d", resp.StatusCode)
	}
	resp, _ = do(t, "DELETE", a2.URL()+"/api/v1/egress/to-b", "", "", nil)
	if resp.StatusCode != 404 {
		t.Fatalf("second delete: %d", resp.StatusCode)
	}
}
