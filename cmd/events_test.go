package cmd

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// GET /api/v1/events streams what happens: a session starting and ending,
// an egress changing state, a warning.
func TestEventStream(t *testing.T) {
	app := startApp(t, func(c *Config) { c.Streams = map[string]StreamConfig{"box": {}} })
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, app.URL()+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("got %d %s", resp.StatusCode, ct)
	}
	events := make(chan Event, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev Event
			if json.Unmarshal([]byte(data), &ev) == nil {
				events <- ev
			}
		}
	}()
	expect := func(typ string, match func(map[string]any) bool) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case ev := <-events:
				if d, ok := ev.Data.(map[string]any); ok && ev.Type == typ && match(d) {
					return
				}
			case <-deadline:
				t.Fatalf("no %s event", typ)
			}
		}
	}
	s := fakeSession(t, app, "whep", "box", "")
	expect("session", func(d map[string]any) bool { return d["id"] == s.ID && d["action"] == "started" })
	app.sessions.End(s.ID)
	expect("session", func(d map[string]any) bool { return d["id"] == s.ID && d["action"] == "ended" })
	app.log.Warn("something to see", "stream", "box")
	expect("warning", func(d map[string]any) bool { return d["msg"] == "something to see" && d["stream"] == "box" })
	code, body := request(t, http.MethodPost, app.URL()+"/api/v1/egress", "", `{"id": "up", "stream": "box", "url": "http://127.0.0.1:9/whip"}`)
	if code != http.StatusCreated {
		t.Fatalf("egress: %d %s", code, body)
	}
	expect("egress", func(d map[string]any) bool { return d["id"] == "up" })
}

// Event streams are capped: past http.max_event_streams, 503.
func TestEventStreamsCapped(t *testing.T) {
	app := startApp(t, func(c *Config) { c.HTTP.MaxEventStreams = 1 })
	open := func() *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, app.URL()+"/api/v1/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if r := open(); r.StatusCode != http.StatusOK {
		t.Fatalf("first stream: %d", r.StatusCode)
	}
	if r := open(); r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("second stream: %d, want 503 with Retry-After", r.StatusCode)
	}
}
