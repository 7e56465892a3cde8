package ingest

import (
	"os/exec"
	"strings"
	"testing"
)

// ingest sits below cmd and beside whip and whep: it writes into the hub and
// knows nothing of HTTP or PeerConnections.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "whipgate/ingest").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	bad := map[string]string{
		"whipgate/whip":                    "sources write into the hub, not into WebRTC sessions",
		"whipgate/whep":                    "sources write into the hub, not into WebRTC sessions",
		"whipgate/cmd":                     "cmd wires ingest, never the other way",
		"github.com/pion/webrtc/v4":        "a source needs RTP and RTCP, not PeerConnections",
		"net/http":                         "sources have no HTTP surface",
		"github.com/caddyserver/certmagic": "certificates are the certs package's business",
	}
	for _, dep := range strings.Fields(string(out)) {
		if why, ok := bad[dep]; ok {
			t.Errorf("ingest depends on %s: %s", dep, why)
		}
	}
}
