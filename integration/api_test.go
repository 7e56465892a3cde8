package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"whipgate/cmd"
)

func TestAPIStreamsSessionsKeyframe(t *testing.T) {
	app := startGateway(t, func(c *cmd.Config) { c.APIToken = "tok" })
	waitLive(t, app, "test")
	base := app.URL()
	auth := map[string]string{"Authorization": "Bearer tok"}

	resp, body := do(t, "GET", base+"/api/v1/streams", "", "", nil)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(body, `"detail"`) {
		t.Fatalf("without token: %d %s", resp.StatusCode, body)
	}

	resp, body = do(t, "GET", base+"/api/v1/streams", "", "", auth)
	if resp.StatusCode != 200 {
		t.Fatalf("streams: %d %s", resp.StatusCode, body)
	}
	var list struct {
		Streams []struct {
			Name   string `json:"name"`
			Live   bool   `json:"live"`
			Layers []struct {
				Name  string `json:"name"`
				Codec string `json:"codec"`
			} `json:"layers"`
		} `json:"streams"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Streams) != 1 || len(list.Streams[0].Layers) != 2 ||
		list.Streams[0].Layers[0].Codec != "video/H264" {
		t.Fatalf("streams body %s (%v)", body, err)
	}

	v := watch(t, base+"/whep/test/preview")
	v.waitFrames(1, 5*time.Second)
	id := sessionID(v.resource)

	resp, body = do(t, "GET", base+"/api/v1/streams/test", "", "", auth)
	if resp.StatusCode != 200 || !strings.Contains(body, `"bitrate_bps"`) || !strings.Contains(body, `"kind": "whep"`) {
		t.Fatalf("stream: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", base+"/api/v1/streams/nope", "", "", auth)
	if resp.StatusCode != 404 || !strings.Contains(body, `no stream \"nope\"`) {
		t.Fatalf("unknown stream: %d %s", resp.StatusCode, body)
	}

	resp, body = do(t, "POST", base+"/api/v1/streams/test/keyframe", "", "", auth)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("keyframe: %d %s", resp.StatusCode, body)
	}

	resp, body = do(t, "GET", base+"/api/v1/sessions", "", "", auth)
	if resp.StatusCode != 200 || !strings.Contains(body, id) {
		t.Fatalf("sessions: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", base+"/api/v1/sessions/"+id, "", "", auth)
	if resp.StatusCode != 200 || !strings.Contains(body, `"stream": "test"`) || !strings.Contains(body, `"layer": "preview"`) {
		t.Fatalf("session: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "DELETE", base+"/api/v1/sessions/"+id, "", "", auth)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("kick: %d %s", resp.StatusCode, body)
	}
	resp, _ = do(t, "GET", base+"/api/v1/sessions/"+id, "", "", auth)
	if resp.StatusCode != 404 {
		t.Fatalf("kicked session still there: %d", resp.StatusCode)
	}
	resp, _ = do(t, "DELETE", base+"/api/v1/sessions/"+id, "", "", auth)
	if resp.StatusCode != 404 {
		t.Fatalf("second kick: %d", resp.StatusCode)
	}

	resp, body = do(t, "GET", base+"/metrics", "", "", auth)
	if resp.StatusCode != 200 || !strings.Contains(body, `whipgate_layer_bitrate_bps{codec="H264",layer="main",stream="test"}`) ||
		!strings.Contains(body, `whipgate_stream_live{stream="test"} 1`) {
		t.Fatalf("metrics: %d %.2000s", resp.StatusCode, body)
	}
}
