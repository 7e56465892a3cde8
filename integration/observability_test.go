package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"whipgate/certs/certstest"
	"whipgate/cmd"
	"whipgate/whip/egress"
)

// metric reads one sample of /metrics by its name and labels as printed
// (`whipgate_egress_up{egress="up",layer="main"}`); -1 when absent.
func metric(t testing.TB, app *instance, series string) float64 {
	t.Helper()
	_, body := do(t, "GET", app.URL()+"/metrics", "", "", nil)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", series, err)
	}
	return v
}

func readyz(t testing.TB, app *instance) (int, cmd.Readiness) {
	t.Helper()
	resp, body := do(t, "GET", app.URL()+"/readyz", "", "", nil)
	var r cmd.Readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("readyz: %v: %s", err, body)
	}
	return resp.StatusCode, r
}

// With an egress to an unreachable target and one to a working WHIP
// server: whipgate_egress_up is 0 and 1, the failing one's retries count
// up, /readyz is 503 naming it, and turns 200 once it is deleted.
func TestEgressHealthInMetricsAndReadiness(t *testing.T) {
	target := startGateway(t, func(c *cmd.Config) { c.TestSource = nil })
	box := startGateway(t, func(c *cmd.Config) {
		c.ReadyGrace = time.Second
		c.Egress = []egress.Config{
			{ID: "up", Stream: "test", URL: target.URL() + "/whip/relay", Layers: []string{"preview"}},
			// Port 9 (discard) on loopback: nothing answers there.
			{ID: "down", Stream: "test", URL: "http://127.0.0.1:9/whip", Layers: []string{"preview"}},
		}
	})
	waitEgress(t, box, "up", egress.StateConnected, 15*time.Second)
	certstest.Eventually(t, 15*time.Second, "metrics: up=1, down=0 with retries", func() bool {
		return metric(t, box, `whipgate_egress_up{egress="up",layer="preview"}`) == 1 &&
			metric(t, box, `whipgate_egress_up{egress="down",layer="preview"}`) == 0 &&
			metric(t, box, `whipgate_egress_retries_total{egress="down"}`) >= 1
	})
	first := metric(t, box, `whipgate_egress_retries_total{egress="down"}`)
	certstest.Eventually(t, 15*time.Second, "the failing egress's retries count up", func() bool {
		return metric(t, box, `whipgate_egress_retries_total{egress="down"}`) > first
	})
	if v := metric(t, box, `whipgate_egress_state{egress="up",state="connected"}`); v != 1 {
		t.Errorf("egress up: state connected = %v, want 1", v)
	}
	for _, series := range []string{
		`whipgate_build_info`, `whipgate_egress_sent_bytes_total{egress="up",layer="preview"}`,
		`whipgate_egress_rtt_seconds{egress="up",layer="preview"}`, `whipgate_http_requests_total{code="200",route="/metrics"}`,
		`whipgate_stream_viewers{stream="test"}`, `whipgate_ingest_keyframe_requests_sent_total{layer="main",stream="test"}`,
	} {
		if !strings.Contains(series, "{") {
			_, body := do(t, "GET", box.URL()+"/metrics", "", "", nil)
			if !strings.Contains(body, series+"{") {
				t.Errorf("/metrics has no %s", series)
			}
			continue
		}
		if metric(t, box, series) < 0 {
			t.Errorf("/metrics has no %s", series)
		}
	}

	// Not ready once the failing egress has been down past ready_grace.
	var code int
	var r cmd.Readiness
	certstest.Eventually(t, 10*time.Second, "readyz 503 with a failing egress", func() bool {
		code, r = readyz(t, box)
		return code == http.StatusServiceUnavailable
	})
	if r.Ready || len(r.NotReady) != 1 || !strings.Contains(r.NotReady[0], "egress down") {
		t.Fatalf("readyz with a failing egress: %d %+v, want 503 naming egress down only", code, r)
	}
	if resp, body := do(t, "DELETE", box.URL()+"/api/v1/egress/down", "", "", nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	code, r = readyz(t, box)
	if code != http.StatusOK || !r.Ready {
		t.Fatalf("readyz after the failing egress is gone: %d %+v", code, r)
	}
	fmt.Fprintf(t.Output(), "readyz: %+v\n", r)
}
