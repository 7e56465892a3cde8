package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/turn/v4"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"whipgate/certs/certstest"
	"whipgate/cmd"
	"whipgate/internal/testkit"
)

// The kit every integration test starts from: an in-process whipgate, the
// one HTTP helper for requests a test checks by hand, loopback pion peers
// and a loopback STUN/TURN server. Waiting is certstest.Eventually.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// http.Client keep-alive connections of the default transport.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	)
}

// instance is whipgate running in-process for one test, with its log kept
// for the test to search.
type instance struct {
	*cmd.App
	log *certstest.LogTap
}

// startGateway runs whipgate in-process on ephemeral loopback ports, with
// cmd.DefaultConfig's test source on and TLS off; mutate, if set, changes
// the config (streams, TLS, the test source) before the start. whipgate
// stops when the test ends.
func startGateway(t testing.TB, mutate func(*cmd.Config)) *instance {
	t.Helper()
	cfg := cmd.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.WebRTC.UDPListen = "127.0.0.1:0"
	cfg.StateDir = t.TempDir()
	if mutate != nil {
		mutate(&cfg)
	}
	log, tap := certstest.NewLog(t)
	app, err := cmd.Start(t.Context(), cfg, nil, log)
	if err != nil {
		t.Fatalf("start whipgate: %v", err)
	}
	t.Cleanup(func() {
		if err := app.Close(context.Background()); err != nil {
			t.Errorf("close whipgate: %v", err)
		}
	})
	return &instance{App: app, log: tap}
}

// testSourceLayers are the layers of cmd.DefaultConfig's test source
// (stream "test"), with their picture sizes.
var testSourceLayers = []struct {
	layer string
	w, h  int
}{{"main", 1280, 720}, {"preview", 320, 180}}

// waitLive waits until a stream has a live publisher.
func waitLive(t testing.TB, app *instance, name string) {
	t.Helper()
	certstest.Eventually(t, 5*time.Second, fmt.Sprintf("stream %q goes live", name), func() bool {
		s, ok := app.Hub().Stream(name)
		return ok && s.Live()
	})
}

// waitKeyframe waits until a stream is live and has had a keyframe: real
// encoders take longer to start than the test source.
func waitKeyframe(t testing.TB, app *instance, name string, within time.Duration) {
	t.Helper()
	certstest.Eventually(t, within, fmt.Sprintf("stream %q live with a keyframe", name), func() bool {
		s, ok := app.Hub().Stream(name)
		if !ok || !s.Live() {
			return false
		}
		tr := s.Stats().Tracks
		return len(tr) > 0 && tr[0].Keyframes > 0
	})
}

// sessionDetails is the API detail of app's sessions of a kind, by ID;
// at least one, or the test fails.
func sessionDetails(t testing.TB, app *instance, kind string) map[string]json.RawMessage {
	t.Helper()
	out := map[string]json.RawMessage{}
	for _, s := range app.Sessions().List() {
		info := s.Info()
		if info.Kind != kind {
			continue
		}
		raw, err := json.Marshal(info.Detail)
		if err != nil {
			t.Fatal(err)
		}
		out[info.ID] = raw
	}
	if len(out) == 0 {
		t.Fatalf("no %s session to check", kind)
	}
	return out
}

// sessionID is the last path segment of a session URL.
func sessionID(resource string) string {
	return resource[strings.LastIndexByte(resource, '/')+1:]
}

// do sends one request by hand, for a test of what the server answers
// (statuses, headers, bodies), and returns the response with its body read.
// A "Host" in hdr replaces the Host the URL names.
func do(t testing.TB, method, url, ctype, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	return doWith(t, http.DefaultClient, method, url, ctype, body, hdr)
}

// doWith is do over a client of the test's choosing (HTTPS with a test
// root, say).
func doWith(t testing.TB, client *http.Client, method, url, ctype, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req := certstest.NewRequest(context.Background(), t, method, url, body, hdr)
	if ctype != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, b := certstest.Exchange(t, client, req)
	return resp, string(b)
}

// bearer is the header that sends token, none for "".
func bearer(token string) map[string]string {
	if token == "" {
		return nil
	}
	return map[string]string{"Authorization": "Bearer " + token}
}

// clientAPI is a pion API for test peers on loopback.
func clientAPI(t testing.TB) *webrtc.API {
	t.Helper()
	return clientAPIWith(t, (*webrtc.MediaEngine).RegisterDefaultCodecs)
}

// clientAPIWith is clientAPI with the codecs register registers.
func clientAPIWith(t testing.TB, register func(*webrtc.MediaEngine) error) *webrtc.API {
	t.Helper()
	return testkit.NewAPI(t, register, loopbackSettings())
}

// loopbackSettings keep a test peer's ICE on IPv4 loopback without mDNS.
func loopbackSettings() webrtc.SettingEngine {
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	return se
}

// offerFor is a gathered pion offer with a section per kind in direction
// dir, for requests that need a well-formed offer but no media.
func offerFor(t testing.TB, dir webrtc.RTPTransceiverDirection, kinds ...webrtc.RTPCodecType) string {
	t.Helper()
	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return testkit.OfferFor(t, pc, dir, kinds...)
}

// turnServer is a STUN and a TURN server (one pion/turn server on
// loopback answers both) in whipgate's config form.
type turnServer struct {
	stun, turn, user, pass string
}

func startLoopbackTURN(t testing.TB) turnServer {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("turn listen: %v", err)
	}
	s := turnServer{user: "whip", pass: "p4ss"}
	const realm = "whipgate.test"
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm: realm,
		AuthHandler: func(user, realm string, _ net.Addr) ([]byte, bool) {
			return turn.GenerateAuthKey(s.user, realm, s.pass), user == s.user
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            conn,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1"},
		}},
	})
	if err != nil {
		t.Fatalf("turn server: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	addr := conn.LocalAddr().String()
	s.stun = "stun:" + addr
	s.turn = "turn:" + addr + "?transport=udp"
	return s
}

// needTool fails (never skips) when a program the tests need is missing.
func needTool(t testing.TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: %s (bash .ci/run installs it)", name, install)
	}
	return p
}
