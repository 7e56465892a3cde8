package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/transport/v4"
	"github.com/pion/transport/v4/packetio"
	"github.com/pion/turn/v4"
	"github.com/pion/webrtc/v4"

	"whipgate/certs/certstest"
	"whipgate/cmd"
	"whipgate/internal/testkit"
)

// The kit every integration test starts from: an in-process whipgate, the
// one HTTP helper for requests a test checks by hand, loopback pion peers
// and a loopback STUN/TURN server. Waiting is certstest.Eventually.

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

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

// logSessionsOnFailure logs the API detail of all of app's sessions when
// the test fails: what the server read, re-sent and refused tells a
// failure on the way in from one on the way out.
func logSessionsOnFailure(t testing.TB, app *instance) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, s := range app.Sessions().List() {
			info := s.Info()
			raw, _ := json.Marshal(info.Detail)
			t.Logf("%s session %s: %s", info.Kind, info.ID, raw)
		}
	})
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
	return testkit.NewAPI(t, register, loopbackSettings(t))
}

// loopbackSettings keep a test peer's ICE on IPv4 loopback without mDNS,
// and give it receive buffers a starved reader does not overflow: a test
// peer shares two cores with the server and the other tests, and what it
// loses for lack of CPU is not what a test is about.
//   - Its UDP sockets get 4 MiB (net.core.rmem_max permitting), as
//     whipgate's own gets 8 MiB: with the default ~200 KB a reader starved
//     for a few ms loses part of a keyframe burst, then the burst of its
//     re-sends.
//   - pion's SRTP read buffers get 16 MiB: pion marks a packet in the
//     replay window before it queues it and drops it when its 1 MB
//     buffer is full, and a re-send of it without RTX (the same sequence
//     number) then reads as a replay, for ever.
//
// Both were seen in TestWHIPIngestLateRetransmission (2–3 runs in 25–40
// failing with two busy loops on the two cores; 0 in 40 with both).
func loopbackSettings(t testing.TB) webrtc.SettingEngine {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNet(bigBufferNet{testkit.StdNet(t)})
	se.BufferFactory = func(_ packetio.BufferPacketType, _ uint32) io.ReadWriteCloser {
		b := packetio.NewBuffer()
		b.SetLimitSize(16 << 20)
		return b
	}
	return se
}

// bigBufferNet gives the UDP sockets it opens 4 MiB receive buffers.
type bigBufferNet struct{ transport.Net }

func (n bigBufferNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	if b, ok := c.(interface{ SetReadBuffer(int) error }); ok {
		_ = b.SetReadBuffer(4 << 20)
	}
	return c, nil
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
