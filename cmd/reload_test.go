package cmd

import (
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"testing"

	"whipgate/cmd/config"
	"whipgate/cmd/config/configtest"
	"whipgate/internal/testkit"
	"whipgate/whip/session"
)

// reloadApp starts an App whose reload source is the YAML file it returns
// (on top of loopbackConfig's ports and state directory).
func reloadApp(t *testing.T, yaml string) (*App, string) {
	t.Helper()
	path := configtest.WriteFile(t, "whipgate.yaml", yaml)
	base := loopbackConfig(t)
	load := func() (Config, error) {
		c, err := config.Load(path)
		if err != nil {
			return c, err
		}
		c.Listen, c.StateDir, c.WebRTC.UDPListen = base.Listen, base.StateDir, base.WebRTC.UDPListen
		return c, nil
	}
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	app := startApp(t, func(c *Config) { *c = cfg })
	app.setReloadSource(load, nil)
	return app, path
}

func rewrite(t *testing.T, path, yaml string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
}

// fakeSession admits and starts a session on the registry as if a viewer
// or publisher of stream had come with token.
func fakeSession(t *testing.T, app *App, kind, stream, token string) *session.Session {
	t.Helper()
	s := &session.Session{ID: session.NewID(), Kind: kind, Stream: stream, Remote: "127.0.0.1:1", Token: token}
	if err := app.sessions.Admit(s); err != nil {
		t.Fatal(err)
	}
	if err := app.sessions.Start(s, testkit.IdlePeer(t), 1<<62, waitForEnd); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReloadAppliesWhatChanged(t *testing.T) {
	const before = `
streams:
  cam: {view_token: old-view-token-0123, publish_token: publish-token-0123}
  other: {view_token: other-token-012345}
egress:
  - {id: keep, stream: cam, url: "http://127.0.0.1:9/whip"}
  - {id: change, stream: cam, url: "http://127.0.0.1:9/whip"}
  - {id: drop, stream: cam, url: "http://127.0.0.1:9/whip"}
`
	app, path := reloadApp(t, before)
	viewer := fakeSession(t, app, "whep", "cam", "old-view-token-0123")
	publisher := fakeSession(t, app, "whip", "cam", "publish-token-0123")
	bystander := fakeSession(t, app, "whep", "other", "other-token-012345")

	rewrite(t, path, `
log_level: debug
shutdown_grace: 5s
streams:
  cam: {view_token: new-view-token-0123, publish_token: publish-token-0123}
  other: {view_token: other-token-012345}
  added: {}
egress:
  - {id: keep, stream: cam, url: "http://127.0.0.1:9/whip"}
  - {id: change, stream: cam, url: "http://127.0.0.1:10/whip"}
  - {id: new, stream: cam, url: "http://127.0.0.1:9/whip"}
`)
	res, err := app.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"egress", "log_level", "streams"}; !slices.Equal(res.Applied, want) {
		t.Errorf("applied %v, want %v", res.Applied, want)
	}
	if want := []string{"shutdown_grace"}; !slices.Equal(res.NeedsRestart, want) {
		t.Errorf("needs restart %v, want %v", res.NeedsRestart, want)
	}
	if !slices.Equal(res.ClosedSessions, []string{viewer.ID}) {
		t.Errorf("closed %v, want only the viewer whose token changed (%s)", res.ClosedSessions, viewer.ID)
	}
	for _, s := range []*session.Session{publisher, bystander} {
		if _, ok := app.sessions.Get(s.ID); !ok {
			t.Errorf("session %s (%s of %s) ended, but its token did not change", s.ID, s.Kind, s.Stream)
		}
	}
	want := EgressChanges{Started: []string{"new"}, Stopped: []string{"drop"}, Restarted: []string{"change"}}
	if g := res.Egress; !slices.Equal(g.Started, want.Started) || !slices.Equal(g.Stopped, want.Stopped) || !slices.Equal(g.Restarted, want.Restarted) {
		t.Errorf("egress %+v, want %+v", g, want)
	}
	var ids []string
	for _, st := range app.egress.List() {
		ids = append(ids, st.ID)
	}
	if !slices.Equal(ids, []string{"change", "keep", "new"}) {
		t.Errorf("egresses %v after the reload", ids)
	}
	if _, ok := app.hub.Stream("added"); !ok {
		t.Error("a stream the reload added is not registered")
	}
	if app.viewToken("cam") != "new-view-token-0123" {
		t.Error("new POSTs are not checked against the new view token")
	}
}

// An invalid configuration changes nothing.
func TestReloadRefusesInvalid(t *testing.T) {
	app, path := reloadApp(t, "streams: {cam: {view_token: view-token-0123456}}\n")
	rewrite(t, path, "streams: {cam: {view_token: x}}\nlog_level: loud\n")
	if _, err := app.Reload(); err == nil {
		t.Fatal("an invalid configuration was applied")
	}
	if app.viewToken("cam") != "view-token-0123456" {
		t.Error("the old configuration did not stay")
	}
	rewrite(t, path, "streams: [\n")
	if _, err := app.Reload(); err == nil {
		t.Fatal("a file that does not parse was applied")
	}
}

// POST /api/v1/reload answers what the reload did, and 422 when refused.
func TestReloadAPI(t *testing.T) {
	app, path := reloadApp(t, "open_publish: false\n")
	rewrite(t, path, "open_publish: true\n")
	code, body := request(t, http.MethodPost, app.URL()+"/api/v1/reload", "", "")
	if code != http.StatusOK {
		t.Fatalf("got %d %s", code, body)
	}
	var res ReloadResult
	if err := json.Unmarshal([]byte(body), &res); err != nil || !slices.Equal(res.Applied, []string{"open_publish"}) {
		t.Fatalf("got %s (%v), want open_publish applied", body, err)
	}
	rewrite(t, path, "log_format: fancy\n")
	if code, body := request(t, http.MethodPost, app.URL()+"/api/v1/reload", "", ""); code != http.StatusUnprocessableEntity {
		t.Fatalf("an invalid config: got %d %s, want 422", code, body)
	}
}
