package gateway

import (
	"strings"
	"testing"
)

// TestDeps keeps the hub free of transport and of the rest of whipgate:
// dependencies point toward gateway, never out of it.
func TestDeps(t *testing.T) {
	out := run(t, "go", "list", "-deps", "-f", "{{.ImportPath}}", ".")
	bad := map[string]string{
		"net/http":                    "the hub knows nothing of HTTP",
		"github.com/pion/webrtc/v4":   "the hub knows nothing of PeerConnections",
		"github.com/pion/interceptor": "RTP processing per session belongs to whip and whep",
		"github.com/pion/ice/v4":      "no transport in the hub",
	}
	for _, dep := range strings.Fields(string(out)) {
		if why, ok := bad[dep]; ok {
			t.Errorf("gateway depends on %s: %s", dep, why)
		}
		if strings.HasPrefix(dep, "whipgate/") && dep != "whipgate/gateway" {
			t.Errorf("gateway depends on %s: the other packages import gateway, not the reverse", dep)
		}
	}
}
