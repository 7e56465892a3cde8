package integration

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"whipgate/cmd"
)

// TestWHIPIngestPublishPolicy: listening beyond loopback, publishing
// without a stream key is refused (403) unless open_publish is set, which
// logs a warning at start; a stream with a key takes it. (The default
// loopback run accepts any stream without a key: every other ingest test
// relies on that.) The gateway listens on 0.0.0.0 but the test talks to it
// over loopback only.
func TestWHIPIngestPublishPolicy(t *testing.T) {
	opt := publishOptions{video: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}}
	wide := func(open bool) func(*cmd.Config) {
		return func(c *cmd.Config) {
			c.Listen = "0.0.0.0:0"
			c.TestSource = nil
			c.TLS.Mode = "off"
			c.APIToken = "api-secret"
			c.OpenPublish = open
			c.Streams = map[string]cmd.StreamConfig{"keyed": {PublishToken: "k3y"}}
		}
	}
	const warning = "open_publish: anyone who can reach this server may publish"

	app := startGateway(t, wide(false))
	if strings.Contains(app.log.String(), warning) {
		t.Fatalf("warned about open_publish without it")
	}
	p := postOffer(t, app.URL()+"/whip/free", opt)
	requireProblem(t, p.resp, p.answer, http.StatusForbidden, "open_publish")
	keyed := opt
	keyed.token = "k3y"
	publish(t, app.URL()+"/whip/keyed", keyed)
	p = postOffer(t, app.URL()+"/whip/keyed", opt)
	requireProblem(t, p.resp, p.answer, http.StatusUnauthorized, "Bearer")

	open := startGateway(t, wide(true))
	if !strings.Contains(open.log.String(), warning) {
		t.Fatalf("open_publish beyond loopback started without a warning; log:\n%s", open.log)
	}
	publish(t, open.URL()+"/whip/free", opt)
	p = postOffer(t, open.URL()+"/whip/keyed", opt)
	requireProblem(t, p.resp, p.answer, http.StatusUnauthorized, "Bearer")
}
