package cmd

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"whipgate/cmd/config"
	"whipgate/whip/egress"
)

// Everything under /api/v1 and /metrics needs the token once one is set;
// /healthz never does.
func TestAPIAuth(t *testing.T) {
	app := startApp(t, func(c *Config) { c.APIToken = "tok" })
	for _, path := range []string{"/api/v1/info", "/api/v1/streams", "/api/v1/sessions", "/api/v1/egress", "/metrics"} {
		for _, tc := range []struct {
			token string
			want  int
		}{{"", http.StatusUnauthorized}, {"wrong", http.StatusUnauthorized}, {"tok", http.StatusOK}} {
			t.Run(path+" token="+tc.token, func(t *testing.T) {
				req, err := http.NewRequestWithContext(t.Context(), "GET", app.URL()+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				if tc.token != "" {
					req.Header.Set("Authorization", "Bearer "+tc.token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Fatalf("got %d, want %d", resp.StatusCode, tc.want)
				}
				if tc.want == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
					t.Fatalf("got a 401 without WWW-Authenticate")
				}
			})
		}
	}
	if code, body := request(t, "GET", app.URL()+"/healthz", "", ""); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz: got %d %q, want 200 \"ok\\n\"", code, body)
	}
}

// On loopback without a token the API is open.
func TestAPIOpenOnLoopbackWithoutToken(t *testing.T) {
	app := startApp(t, nil)
	if code, body := request(t, "GET", app.URL()+"/api/v1/streams", "", ""); code != http.StatusOK {
		t.Fatalf("got %d %s, want 200", code, body)
	}
}

func TestAPIRoutes(t *testing.T) {
	app := startApp(t, func(c *Config) {
		c.APIToken = "tok"
		c.Streams = map[string]StreamConfig{"box": {}}
	})
	for _, tc := range []struct {
		method, path, body string
		want               int
		wantBody           string
	}{
		{"GET", "/api/v1/streams", "", 200, `"name": "box"`},
		{"GET", "/api/v1/streams/box", "", 200, `"name": "box"`},
		{"GET", "/api/v1/streams/nope", "", 404, `no stream \"nope\"`},
		{"POST", "/api/v1/streams/box/keyframe", "", 409, `stream \"box\"`},
		{"POST", "/api/v1/streams/nope/keyframe", "", 404, `no stream \"nope\"`},
		{"GET", "/api/v1/sessions", "", 200, `"sessions": []`},
		{"GET", "/api/v1/sessions/nope", "", 404, `no session \"nope\"`},
		{"DELETE", "/api/v1/sessions/nope", "", 404, `no session \"nope\"`},
		{"GET", "/api/v1/encoder", "", 404, "no encoder configured"},
		{"GET", "/api/v1/egress", "", 200, `"egress": []`},
		{"GET", "/api/v1/egress/nope", "", 404, `no egress \"nope\"`},
		{"DELETE", "/api/v1/egress/nope", "", 404, `no egress \"nope\"`},
		{"POST", "/api/v1/egress", `{`, 400, "bad egress JSON"},
		{"POST", "/api/v1/egress", `{"stream": "box", "url": "http://127.0.0.1:1/whip", "colour": "red"}`, 400, `unknown field \"colour\"`},
		{"POST", "/api/v1/egress", `{"stream": "box", "url": "http://127.0.0.1:1/whip"} {}`, 400, "more than one object"},
		{"POST", "/api/v1/egress", `{"stream": "box"}`, 400, "url is required"},
		{"POST", "/api/v1/egress", `{"stream": "a b", "url": "http://127.0.0.1:1/whip"}`, 400, `stream name \"a b\"`},
		{"POST", "/api/v1/egress", `{"stream": "nope", "url": "http://127.0.0.1:1/whip"}`, 404, `no stream \"nope\"`},
		{"PUT", "/api/v1/streams", "", 405, "method PUT not allowed"},
		{"GET", "/nope", "", 404, "no route for GET /nope"},
		{"GET", "/metrics", "", 200, `whipgate_stream_live{stream="box"} 0`},
		{"GET", "/", "", 200, "<html"},
		{"GET", "/play/box", "", 200, "<html"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			code, body := request(t, tc.method, app.URL()+tc.path, "tok", tc.body)
			if code != tc.want || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("got %d %s\nwant %d and a body containing %s", code, body, tc.want, tc.wantBody)
			}
			// Every error, the handlers' and the router's, is RFC 9457
			// problem+json.
			if code >= 400 {
				var doc struct {
					Type   string `json:"type"`
					Title  string `json:"title"`
					Detail string `json:"detail"`
					Status int    `json:"status"`
				}
				if err := json.Unmarshal([]byte(body), &doc); err != nil || doc.Detail == "" || doc.Status != code || doc.Title == "" {
					t.Fatalf("got error body %s (%v), want problem+json with status %d", body, err, code)
				}
			}
		})
	}
}

// An egress made through the API is listed, refuses a second one with
// the same id, and goes away with DELETE.
func TestAPIEgressLifecycle(t *testing.T) {
	app := startApp(t, func(c *Config) { c.Streams = map[string]StreamConfig{"box": {}} })
	api := app.URL() + "/api/v1/egress"
	const body = `{"id": "up", "stream": "box", "url": "http://127.0.0.1:1/whip/x"}`
	for _, step := range []struct {
		method, url, body string
		want              int
		wantBody          string
	}{
		{"POST", api, body, 201, `"id": "up"`},
		{"POST", api, body, 409, "up"},
		{"GET", api, "", 200, `"id": "up"`},
		{"GET", api + "/up", "", 200, `"stream": "box"`},
		{"DELETE", api + "/up", "", 204, ""},
		{"GET", api + "/up", "", 404, `no egress \"up\"`},
	} {
		code, got := request(t, step.method, step.url, "", step.body)
		if code != step.want || !strings.Contains(got, step.wantBody) {
			t.Fatalf("%s %s: got %d %s\nwant %d and a body containing %s", step.method, step.url, code, got, step.want, step.wantBody)
		}
	}
}

// With a publisher the keyframe request is accepted.
func TestAPIKeyframeWithPublisher(t *testing.T) {
	app := startApp(t, func(c *Config) { c.TestSource = &config.TestSourceConfig{} })
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := request(t, "POST", app.URL()+"/api/v1/streams/test/keyframe", "", "")
		if code == http.StatusAccepted && strings.Contains(body, `"keyframe": "requested"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d %s, want 202 once the test source publishes", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAPIInfo(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mutate     func(c *Config)
		testSource string // stream, "" for none
		encoder    string // "stream backend", "" for none
		egress     int
	}{
		{name: "bare", mutate: func(c *Config) {}},
		{
			name: "test source and an egress",
			mutate: func(c *Config) {
				c.TestSource = &config.TestSourceConfig{}
				c.Egress = []egress.Config{{ID: "up", Stream: "test", URL: "http://127.0.0.1:1/whip"}}
			},
			testSource: "test",
			egress:     1,
		},
		{
			// The zero hwaccel section is a software encode of a test
			// pattern (ffmpeg).
			name:    "encoder",
			mutate:  func(c *Config) { c.Encoder = &config.EncoderConfig{} },
			encoder: "box software",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := startApp(t, tc.mutate)
			code, body := request(t, "GET", app.URL()+"/api/v1/info", "", "")
			if code != http.StatusOK {
				t.Fatalf("got %d %s, want 200", code, body)
			}
			var doc struct {
				Version       string   `json:"version"`
				Revision      *string  `json:"revision"`
				Time          *string  `json:"time"`
				Modified      *bool    `json:"modified"`
				GoVersion     string   `json:"go_version"`
				UptimeSeconds *float64 `json:"uptime_seconds"`
				Features      struct {
					TLS        string `json:"tls"`
					TestSource *struct {
						Stream string `json:"stream"`
					} `json:"test_source"`
					Encoder *struct {
						Stream  string `json:"stream"`
						Backend string `json:"backend"`
					} `json:"encoder"`
					Egress int `json:"egress"`
				} `json:"features"`
			}
			if err := json.Unmarshal([]byte(body), &doc); err != nil {
				t.Fatalf("%v in %s", err, body)
			}
			want := ReadBuildInfo()
			if doc.Version != want.Version || doc.GoVersion != want.GoVersion || doc.Revision == nil || doc.Time == nil || doc.Modified == nil {
				t.Errorf("got %s, want version %q, go_version %q and revision, time, modified", body, want.Version, want.GoVersion)
			}
			if doc.UptimeSeconds == nil || *doc.UptimeSeconds < 0 || *doc.UptimeSeconds > 60 {
				t.Errorf("got uptime_seconds %v, want a few seconds at most", doc.UptimeSeconds)
			}
			f := doc.Features
			gotSource := ""
			if f.TestSource != nil {
				gotSource = f.TestSource.Stream
			}
			gotEncoder := ""
			if f.Encoder != nil {
				gotEncoder = f.Encoder.Stream + " " + f.Encoder.Backend
			}
			if f.TLS != "off" || gotSource != tc.testSource || gotEncoder != tc.encoder || f.Egress != tc.egress {
				t.Errorf("got features %s, want tls off, test_source %q, encoder %q, %d egress", body, tc.testSource, tc.encoder, tc.egress)
			}
		})
	}
}

// PATCH changes an API-made egress in place: its id stays, the fields given
// replace its own, and the state file keeps the change.
func TestAPIPatchEgress(t *testing.T) {
	app := startApp(t, func(c *Config) {
		c.Streams = map[string]StreamConfig{"box": {}}
		c.Egress = []egress.Config{{ID: "file", Stream: "box", URL: "http://127.0.0.1:9/whip"}}
	})
	api := app.URL() + "/api/v1/egress"
	if code, body := request(t, "POST", api, "", `{"id": "sfu", "stream": "box", "url": "http://127.0.0.1:9/whip", "layers": ["main"]}`); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	code, body := request(t, "PATCH", api+"/sfu", "", `{"url": "http://127.0.0.1:10/whip/{layer}", "token": "new-token"}`)
	if code != http.StatusOK || !strings.Contains(body, "127.0.0.1:10") {
		t.Fatalf("patch: %d %s", code, body)
	}
	cfg, _, _ := app.egress.Given("sfu")
	if cfg.URL != "http://127.0.0.1:10/whip/{layer}" || cfg.Token != "new-token" || !slices.Equal(cfg.Layers, []string{"main"}) {
		t.Fatalf("after the patch: %+v", cfg)
	}
	state, err := os.ReadFile(filepath.Join(app.cfg.StateDir, "egress.json"))
	if err != nil || !strings.Contains(string(state), "127.0.0.1:10") {
		t.Fatalf("state file not saved: %v %s", err, state)
	}
	for _, tc := range []struct {
		path, body string
		want       int
	}{
		{"/sfu", `{"id": "other"}`, http.StatusBadRequest},
		{"/sfu", `{"colour": "red"}`, http.StatusBadRequest},
		{"/sfu", `{"url": "ftp://x"}`, http.StatusBadRequest},
		{"/nope", `{}`, http.StatusNotFound},
		{"/file", `{"token": "x"}`, http.StatusConflict},
	} {
		if code, body := request(t, "PATCH", api+tc.path, "", tc.body); code != tc.want {
			t.Errorf("PATCH %s %s: got %d %s, want %d", tc.path, tc.body, code, body, tc.want)
		}
	}
}

// /debug/pprof/ is there only with http.pprof, and then behind the API's
// token like /metrics.
func TestPprofOnlyWhenAsked(t *testing.T) {
	off := startApp(t, nil)
	if code, _ := request(t, "GET", off.URL()+"/debug/pprof/heap?debug=1", "", ""); code != http.StatusNotFound {
		t.Errorf("without http.pprof: %d, want 404", code)
	}
	on := startApp(t, func(c *Config) { c.APIToken, c.HTTP.Pprof = "tok", true })
	if code, _ := request(t, "GET", on.URL()+"/debug/pprof/heap?debug=1", "", ""); code != http.StatusUnauthorized {
		t.Errorf("with http.pprof, no token: %d, want 401", code)
	}
	if code, body := request(t, "GET", on.URL()+"/debug/pprof/heap?debug=1", "tok", ""); code != http.StatusOK || !strings.Contains(body, "# Mallocs = ") {
		t.Errorf("with http.pprof and the token: %d, want 200 and the heap profile", code)
	}
}
