package integration

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"whipgate/cmd"
	"whipgate/cmd/config/configtest"
)

// TestREADMECurlLines runs every curl line of the README's API block, as
// written, against a running instance; only the example Sora URL is pointed
// at a second whipgate so the egress can really connect.
func TestREADMECurlLines(t *testing.T) {
	needTool(t, "curl", "apt-get install curl")
	lines := configtest.READMECurlLines(t, "../README.md")

	target := startGateway(t, func(c *cmd.Config) { c.TestSource = nil })
	app := startGateway(t, func(c *cmd.Config) { c.APIToken = "readme-token" })
	waitLive(t, app, "test")
	v := watch(t, app.URL()+"/whep/test/preview")
	v.waitFrames(1, 5*time.Second)
	session := sessionID(v.resource)

	const soraURL = "https://sora.example.com/whip/my-channel"
	covered := map[string]bool{}
	for _, line := range lines {
		run := strings.ReplaceAll(line, soraURL, target.URL()+"/whip/readme-{layer}")
		c := exec.Command("bash", "-c", run)
		c.Env = append(os.Environ(), "WG="+app.URL(), "TOKEN=readme-token", "SESSION="+session)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("README line failed: %s\n%v\n%s", line, err, out)
		}
		for _, route := range []string{"/streams\"", "/streams/test\"", "/keyframe", "/sessions\"", "/sessions/$SESSION", "/egress\"", "/egress/sora", "/metrics"} {
			if strings.Contains(line, route) {
				covered[route] = true
			}
		}
		if strings.Contains(line, "-X POST \"$WG/api/v1/egress\"") {
			waitEgress(t, app, "sora", "connected", 15*time.Second, map[string]string{"Authorization": "Bearer readme-token"})
			waitLive(t, target, "readme-main")
		}
	}
	if len(covered) != 8 {
		t.Fatalf("the README's API block misses routes: covered %v", covered)
	}
}
