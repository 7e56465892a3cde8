package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

// rules says, per package, which dependencies it must never have and why:
// the architecture of the README, checked. A pattern ending in "/..."
// names every package below it; a package never breaks a rule by itself.
var rules = map[string]map[string]string{
	"whipgate/gateway": {
		"net/http":                    "the hub knows nothing of HTTP",
		"github.com/pion/webrtc/v4":   "the hub knows nothing of PeerConnections",
		"github.com/pion/interceptor": "RTP processing per session belongs to whip and whep",
		"github.com/pion/ice/v4":      "no transport in the hub",
		"whipgate/...":                "the other packages import gateway, not the reverse",
	},
	"whipgate/hwaccel": {"whipgate/...": "encoder pipelines are data and processes: none of ours"},
	"whipgate/certs":   {"whipgate/...": "certificates are a leaf of the module"},
	"whipgate/ingest": {
		"whipgate/whip":                    "sources write into the hub, not into WebRTC sessions",
		"whipgate/whip/rtc":                "sources share the socket layer (whip/rtc/udp), not the WebRTC transport",
		"whipgate/whep":                    "sources write into the hub, not into WebRTC sessions",
		"whipgate/cmd/...":                 "cmd wires ingest, never the other way",
		"github.com/pion/webrtc/v4":        "a source needs RTP and RTCP, not PeerConnections",
		"net/http":                         "sources have no HTTP surface",
		"github.com/caddyserver/certmagic": "certificates are the certs package's business",
	},
	"whipgate/whip/rtc": {
		"net/http":                  "the transport knows no HTTP; the endpoints do",
		"whipgate/whip":             "the WHIP endpoint sits on the transport, not the reverse",
		"whipgate/whep":             "the WHEP endpoint sits on the transport, not the reverse",
		"whipgate/whip/session/...": "sessions sit on the transport",
		"whipgate/whip/client/...":  "the WHIP client sits on the transport",
		"whipgate/whip/egress/...":  "egress sits on the transport",
		"whipgate/cmd/...":          "cmd wires the transport, never the other way",
	},
	"whipgate/whip/rtc/udp": {
		"net/http":            "no HTTP at the socket layer",
		"github.com/pion/...": "the socket knows nothing of WebRTC",
		"whipgate/...":        "a leaf: it imports nothing of whipgate",
	},
	"whipgate/whip/rtc/nack": {
		"net/http":     "no HTTP in an interceptor",
		"whipgate/...": "a leaf: it imports nothing of whipgate",
	},
	"whipgate/whip/rtc/pionlog": {"whipgate/...": "a leaf: it imports nothing of whipgate"},
	"whipgate/whip/rtc/srtpgcm": {
		"net/http":                "no HTTP in the seal",
		"github.com/pion/srtp/v3": "its own seal: pion/srtp is its tests' reference, not its code",
		"whipgate/...":            "a leaf: it imports nothing of whipgate",
	},
	"whipgate/whip/rtc/dtlskeys": {
		"net/http":                  "no HTTP in the handshake's keys",
		"github.com/pion/webrtc/v4": "keys come from DTLS, not from PeerConnections",
		"whipgate/...":              "a leaf: it imports nothing of whipgate",
	},
	"whipgate/whip/rtc/codecs": {
		"net/http":          "codec negotiation knows no HTTP",
		"whipgate/whip/...": "the transport and the endpoints use the codecs, not the reverse",
		"whipgate/whep":     "the endpoints use the codecs, not the reverse",
		"whipgate/cmd/...":  "cmd wires the codecs, never the other way",
	},
	"whipgate/whip/problem": {
		"whipgate/...":        "a leaf every HTTP surface may use",
		"github.com/pion/...": "errors know nothing of WebRTC",
	},
	"whipgate/whip/sdpfrag": {
		"whipgate/...":              "a leaf shared by the WHIP client and the server",
		"net/http":                  "a body format, not an HTTP surface",
		"github.com/pion/webrtc/v4": "a text format, no PeerConnections",
	},
	"whipgate/whip/session": {
		"whipgate/gateway":         "the session resource knows no hub: endpoints give it a run function",
		"whipgate/whip/rtc/...":    "sessions are HTTP resources over a PeerConnection, not transport",
		"whipgate/whip":            "the endpoints sit on the session package, not the reverse",
		"whipgate/whep":            "the endpoints sit on the session package, not the reverse",
		"whipgate/whip/client/...": "the client is not part of the server side",
		"whipgate/whip/egress/...": "egress is not part of the server side",
		"whipgate/cmd/...":         "cmd wires sessions, never the other way",
	},
	"whipgate/whip/client": {
		"whipgate/whip":             "the client needs no WHIP endpoint",
		"whipgate/whep":             "the client needs no WHEP endpoint",
		"whipgate/whip/session/...": "the client needs no server-side session",
		"whipgate/whip/egress/...":  "egress builds on the client, not the reverse",
		"whipgate/cmd/...":          "cmd wires the client, never the other way",
	},
	"whipgate/whip/egress": {
		"whipgate/whip":             "egress is not the WHIP endpoint",
		"whipgate/whep":             "egress is not the WHEP endpoint",
		"whipgate/whip/session/...": "egress has no server-side sessions",
		"whipgate/cmd/...":          "cmd wires egress, never the other way",
	},
	"whipgate/whip": {
		"whipgate/whep":            "WHIP and WHEP share whip/session, not each other",
		"whipgate/cmd/...":         "cmd wires the endpoint, never the other way",
		"whipgate/whip/client/...": "ingest needs no WHIP client",
		"whipgate/whip/egress/...": "ingest needs no egress",
	},
	"whipgate/whep": {
		"whipgate/whip":            "WHEP and WHIP share whip/session, not each other",
		"whipgate/cmd/...":         "cmd wires the endpoint, never the other way",
		"whipgate/whip/client/...": "playback needs no WHIP client",
		"whipgate/whip/egress/...": "playback needs no egress",
	},
	// config nests the library packages' Config types, so it depends on
	// what they do (net/http through whip, whep and certs); it adds none
	// of the app's wiring. Its own files import net/url, not net/http.
	"whipgate/cmd/config": {
		"whipgate/cmd/...":                 "cmd and its programs read the config, never the reverse",
		"github.com/prometheus/...":        "metrics are the app's wiring, in cmd",
		"github.com/go-chi/chi/v5":         "routes are the app's wiring, in cmd",
		"github.com/coreos/go-systemd/...": "telling systemd is the app's lifecycle, in cmd",
	},
	"whipgate/cmd/config/configtest": {"whipgate/...": "a leaf: the tests of every package under cmd import it"},
	"whipgate/internal/testkit": {
		"whipgate/whip/rtc":      "whip/rtc's own tests import the kit",
		"whipgate/whip/rtc/nack": "whip/rtc/nack's own tests import the kit",
		"whipgate/cmd/...":       "a kit for the WebRTC layers, not the app",
	},
}

// TestDependencyRules checks every package that has rules; a package
// named in rules that no longer exists fails too, so the table stays the
// architecture's.
func TestDependencyRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "whipgate/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		self, deps := fields[0], fields[1:]
		seen[self] = true
		for pattern, why := range rules[self] {
			for _, dep := range deps {
				if dep != self && matches(pattern, dep) {
					t.Errorf("%s depends on %s: %s", self, dep, why)
				}
			}
		}
	}
	for pkg := range rules {
		if !seen[pkg] {
			t.Errorf("rules name %s, which go list does not know", pkg)
		}
	}
}

// matches reports whether pattern (an import path, or one ending in "/..."
// for every package below it) names pkg.
func matches(pattern, pkg string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
	}
	return pkg == pattern
}

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, pkg string
		want         bool
	}{
		{"net/http", "net/http", true},
		{"net/http", "net/http/httptest", false},
		{"whipgate/...", "whipgate/whip/rtc", true},
		{"whipgate/...", "whipgate", true},
		{"whipgate/whip/...", "whipgate/whipx", false},
		{"whipgate/whip", "whipgate/whip/rtc", false},
	} {
		if got := matches(tc.pattern, tc.pkg); got != tc.want {
			t.Errorf("matches(%q, %q) = %v, want %v", tc.pattern, tc.pkg, got, tc.want)
		}
	}
}
