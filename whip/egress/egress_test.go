package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
	"whipgate/internal/rtctest"
	"whipgate/internal/testkit"
	"whipgate/whip/client"
	"whipgate/whip/rtc"
	"whipgate/whip/rtc/codecs"
)

// startEgress starts an egress of stream "cam" and returns it with a
// stop function that cancels Run and checks it returned nil.
func startEgress(t *testing.T, hub *gateway.Hub, tr *rtc.Transport, cfg Config) (*Egress, func()) {
	t.Helper()
	if cfg.Stream == "" {
		cfg.Stream = "cam"
	}
	e, err := New(cfg, hub, tr, testkit.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := testkit.Returned(t, done, 10*time.Second, "Run returning after cancel"); err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return e, stop
}

// egressToTarget begins most egress tests: a leak check, a hub with a
// synthetic stream "cam" of the given layers (no audio), a test target
// (edit as testkit.NewTarget takes it) and an egress to the target's
// /whip with cfg, its URL filled in.
func egressToTarget(t *testing.T, edit func(*testkit.Target), layers []string, cfg Config) (*Egress, *testkit.Target) {
	t.Helper()
	tr, hub, f := egressRig(t, edit)
	testkit.Synth(t, hub, "cam", layers, false)
	cfg.URL = f.URL("127.0.0.1", "/whip")
	e, _ := startEgress(t, hub, tr, cfg)
	return e, f
}

// egressRig is what an egress test stands on: a leak check, a
// transport, a hub and a test target (edit as testkit.NewTarget takes
// it), made in that order so that their cleanups run in reverse.
func egressRig(t *testing.T, edit func(*testkit.Target)) (*rtc.Transport, *gateway.Hub, *testkit.Target) {
	t.Helper()
	testkit.LeakCheck(t)
	tr := rtctest.New(t)
	hub := newTestHub(t)
	return tr, hub, testkit.NewTarget(t, edit)
}

func newTestHub(t *testing.T) *gateway.Hub {
	hub := gateway.NewHub(gateway.Config{}, testkit.PionLog(t))
	t.Cleanup(hub.Close)
	return hub
}

func waitState(t *testing.T, e *Egress, state string, limit time.Duration) time.Duration {
	t.Helper()
	return testkit.Eventually(t, limit, "egress "+state, func() bool { return e.Status().State == state })
}

// waitPackets waits until the target's sessions together have
// received at least want packets under every key.
func waitPackets(t *testing.T, f *testkit.Target, keys []string, want int64) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, "media at the target", func() bool {
		got := map[string]int64{}
		for _, s := range f.Sessions() {
			for k, v := range s.Packets() {
				got[k] += v
			}
		}
		for _, k := range keys {
			if got[k] < want {
				return false
			}
		}
		return true
	})
}

func TestEgressSessionsModeMediaFlows(t *testing.T) {
	tr, hub, f := egressRig(t, nil)
	testkit.Synth(t, hub, "cam", []string{"main", "preview"}, true)
	e, stop := startEgress(t, hub, tr, Config{ID: "sfu", URL: f.URL("127.0.0.1", "/whip/{layer}"), Token: "tok"})
	waitState(t, e, StateConnected, 10*time.Second)
	waitPackets(t, f, []string{"video", "audio"}, 30)

	st := e.Status()
	if st.ID != "sfu" || st.Mode != ModeSessions || len(st.Sessions) != 2 || st.ConnectedSince == nil {
		t.Fatalf("status %+v: want id sfu, mode sessions, two sessions, connected_since", st)
	}
	paths := map[string]bool{}
	for _, r := range f.Requests() {
		if r.Method == http.MethodPost {
			paths[r.Path] = true
		}
		if r.Auth != "Bearer tok" {
			t.Errorf("%s %s without the Bearer token", r.Method, r.Path)
		}
	}
	if !paths["/whip/main"] || !paths["/whip/preview"] {
		t.Errorf("POSTs to %v, want /whip/main and /whip/preview ({layer} replaced)", paths)
	}
	if st.Sessions[0].Audio != "audio" || st.Sessions[1].Audio != "" {
		t.Errorf("audio in sessions %q, %q: want it in the first only", st.Sessions[0].Audio, st.Sessions[1].Audio)
	}
	for _, s := range f.Sessions() {
		if s.Packets()["video"] == 0 {
			t.Errorf("session %s got no video", s.ID())
		}
	}
	var last Status
	defer func() {
		if t.Failed() {
			t.Logf("last status: %+v", last)
		}
	}()
	for _, s := range f.Sessions() {
		if err := s.SendREMB(5e6); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 5*time.Second, "bitrate, RTT and REMB in the status", func() bool {
		last = e.Status()
		return last.BitrateBps > 0 && last.RTTMs > 0 && last.Sessions[0].Packets > 0 && last.Sessions[0].NACKHistory >= 1024 &&
			last.TargetEstimateBps == 10e6 && last.Sessions[0].EstimateSource == "remb"
	})
	// The target answers as DTLS client (pion's default): the egress is
	// DTLS server, its media sealed beneath pion.
	for _, s := range last.Sessions {
		if s.SRTP != "direct" || s.DirectSent == 0 || s.DirectDropped != 0 {
			t.Errorf("session %v: srtp %q, %d sent beneath pion, %d dropped; want direct, some, none", s.Layers, s.SRTP, s.DirectSent, s.DirectDropped)
		}
	}
	t.Logf("status: %d bps sent, RTT %.2f ms, target estimate %d bps (%s), NACK history %d, pacing %d bps",
		last.BitrateBps, last.RTTMs, last.TargetEstimateBps, last.Sessions[0].EstimateSource, last.Sessions[0].NACKHistory, last.Sessions[0].PacingRateBps)
	stop()
	if n := f.Count(http.MethodDelete); n != 2 {
		t.Errorf("%d DELETEs after stop, want 2", n)
	}
	if st := e.Status(); st.State != StateStopped {
		t.Errorf("state after Run %q, want stopped", st.State)
	}
}

func TestEgressH265MainH264Preview(t *testing.T) {
	tr, hub, f := egressRig(t, nil)
	testkit.SynthTracks(t, hub, "cam", []gateway.TrackInfo{
		{Name: "main", Codec: gateway.H265, Fmtp: "level-id=183;profile-id=1;tier-flag=0;tx-mode=SRST"},
		{Name: "preview", Codec: gateway.H264},
	})
	e, _ := startEgress(t, hub, tr, Config{URL: f.URL("127.0.0.1", "/whip")})
	waitState(t, e, StateConnected, 10*time.Second)
	waitPackets(t, f, []string{"video"}, 40)
	got := map[string]bool{}
	for _, s := range f.Sessions() {
		if s.Packets()["video"] == 0 {
			t.Errorf("session %s received no video", s.ID())
		}
		got[s.Mimes()["video"]] = true
	}
	if !got[webrtc.MimeTypeH265] || !got[webrtc.MimeTypeH264] {
		t.Errorf("the target received %v, want one H265 and one H264 session", got)
	}
}

func TestEgressForwardsPLIToPublisher(t *testing.T) {
	tr, hub, f := egressRig(t, nil)
	pub := testkit.SynthTracks(t, hub, "cam", []gateway.TrackInfo{{Name: "main", Codec: gateway.H264}, {Name: "preview", Codec: gateway.H264}})
	e, _ := startEgress(t, hub, tr, Config{URL: f.URL("127.0.0.1", "/whip"), Mode: ModeSimulcast})
	waitState(t, e, StateConnected, 10*time.Second)
	waitPackets(t, f, []string{"0", "1"}, 20)
	time.Sleep(600 * time.Millisecond) // past the hub's keyframe request rate limit
	for len(pub.KeyframeRequests()) > 0 {
		<-pub.KeyframeRequests() // earlier ones (joining without a GOP)
	}
	if err := f.Sessions()[0].SendPLI(); err != nil {
		t.Fatal(err)
	}
	asked := map[int]bool{}
	timeout := time.After(5 * time.Second)
	for len(asked) < 2 {
		select {
		case i := <-pub.KeyframeRequests():
			asked[i] = true
		case <-timeout:
			t.Fatalf("the publisher was asked for keyframes on tracks %v after PLI on both rids, want 0 and 1", asked)
		}
	}
	if n := e.Status().Sessions[0].KeyframeRequests; n < 2 {
		t.Errorf("status counts %d keyframe requests, want at least 2", n)
	}
}

func TestEgressReconnectsWhenTargetDropsSession(t *testing.T) {
	e, f := egressToTarget(t, nil, []string{"main"}, Config{})
	waitState(t, e, StateConnected, 10*time.Second)
	waitPackets(t, f, []string{"video"}, 10)

	f.Kill() // closes its peer, no DELETE: the egress must notice by itself
	took := testkit.Eventually(t, 15*time.Second, "a new session at the target", func() bool {
		return f.Count(http.MethodPost) >= 2 && len(f.Sessions()) == 1 && e.Status().State == StateConnected
	})
	t.Logf("reconnected %v after the target dropped the session", took)
	waitPackets(t, f, []string{"video"}, 10)
	st := e.Status()
	if st.Retries < 1 || st.LastError == "" {
		t.Errorf("status %+v: want a retry and the last error", st)
	}
}

func TestEgressICERestartAfterPathLoss(t *testing.T) {
	e, f := egressToTarget(t, func(f *testkit.Target) {
		// The new ICE session finds a working path (a new route, a NAT
		// rebinding): restarting ICE is what brings the media back.
		f.OnRestart = func() { f.Blackhole(false) }
	}, []string{"main"}, Config{})
	waitState(t, e, StateConnected, 10*time.Second)
	waitPackets(t, f, []string{"video"}, 10)

	f.Blackhole(true)
	took := testkit.Eventually(t, 10*time.Second, "recovery by ICE restart", func() bool {
		st := e.Status()
		return st.State == StateConnected && st.Sessions[0].ICERestarts == 1
	})
	t.Logf("connected again %v after the path broke (ICE disconnected after 1.5 s, then one restart)", took)
	n := f.Sessions()[0].Packets()["video"]
	waitPackets(t, f, []string{"video"}, n+10)
	st := e.Status()
	if f.Count(http.MethodPost) != 1 || st.Sessions[0].ICERestarts != 1 {
		t.Errorf("%d POSTs and %d ICE restarts, want 1 and 1 (recovered in place)", f.Count(http.MethodPost), st.Sessions[0].ICERestarts)
	}
	if s := st.Sessions[0]; s.SRTP != "direct" || s.DirectDropped != 0 {
		t.Errorf("after the restart: srtp %q, %d dropped beneath pion; want direct, none", s.SRTP, s.DirectDropped)
	}
}

func TestEgressTargetRestartedOnSamePort(t *testing.T) {
	e, f := egressToTarget(t, nil, []string{"main"}, Config{})
	addr := f.Addr()
	waitState(t, e, StateConnected, 10*time.Second)

	f.Close() // the process dies: HTTP and peers gone
	testkit.Eventually(t, 10*time.Second, "egress notices", func() bool { return e.Status().State != StateConnected })
	time.Sleep(time.Second) // down for a while, so backoff has grown
	f2 := testkit.NewTargetAt(t, addr, nil)
	took := waitState(t, e, StateConnected, 5*time.Second)
	t.Logf("connected again %v after the target came back on %s", took, addr)
	waitPackets(t, f2, []string{"video"}, 10)
}

// A target that crashes (no DTLS close, no DELETE: only silence) is seen
// as down within a few seconds, and a target back on its port is POSTed to
// again at once, not after a grown backoff. The figures are logged; the
// bounds are generous (the bench measures).
func TestEgressBackSoonAfterTargetCrash(t *testing.T) {
	e, f := egressToTarget(t, nil, []string{"main"}, Config{})
	addr := f.Addr()
	waitState(t, e, StateConnected, 10*time.Second)
	waitPackets(t, f, []string{"video"}, 10)

	f.Crash()
	noticed := testkit.Eventually(t, 10*time.Second, "the egress shows the target down", func() bool { return e.Status().State != StateConnected })
	t.Logf("shown %s %v after the crash", e.Status().State, noticed)
	time.Sleep(3 * time.Second) // down a while, as a process restarting is
	f2 := testkit.NewTargetAt(t, addr, nil)
	back := testkit.Eventually(t, 10*time.Second, "connected to the restarted target", func() bool { return e.Status().State == StateConnected })
	t.Logf("connected again %v after the target came back", back)
	waitPackets(t, f2, []string{"video"}, 10)
}

// A target whose ETag is "*" (MediaMTX) takes no ICE restart: a lost
// connection is answered with a new POST at once, not after ICE gives up.
func TestEgressWithoutRestartPostsAgain(t *testing.T) {
	e, f := egressToTarget(t, func(f *testkit.Target) { f.ETag = "*" }, []string{"main"}, Config{})
	waitState(t, e, StateConnected, 10*time.Second)
	waitPackets(t, f, []string{"video"}, 10)
	trickled := f.Count(http.MethodPatch) // candidates, not restarts
	f.Blackhole(true)
	testkit.Eventually(t, 10*time.Second, "a second POST", func() bool { return f.Count(http.MethodPost) >= 2 })
	if n := f.Count(http.MethodPatch) - trickled; n != 0 {
		t.Errorf("%d PATCHes after the loss to a target that takes no ICE restart", n)
	}
	f.Blackhole(false)
	waitState(t, e, StateConnected, 10*time.Second)
}

func TestEgressStartsWhileTargetDown(t *testing.T) {
	testkit.LeakCheck(t)
	tr := rtctest.New(t)
	hub := newTestHub(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there yet
	testkit.Synth(t, hub, "cam", []string{"main"}, false)
	e, _ := startEgress(t, hub, tr, Config{URL: "http://" + addr + "/whip"})
	testkit.Eventually(t, 5*time.Second, "a failed attempt", func() bool {
		st := e.Status()
		return st.Retries >= 1 && strings.Contains(st.LastError, "connection refused")
	})
	if st := e.Status().State; st != StateConnecting && st != StateReconnecting {
		t.Errorf("state %q while the target is down, want connecting or reconnecting", st)
	}
	f := testkit.NewTargetAt(t, addr, nil)
	waitState(t, e, StateConnected, 10*time.Second)
	waitPackets(t, f, []string{"video"}, 10)
}

func TestEgressWaitsForStream(t *testing.T) {
	tr, hub, f := egressRig(t, nil)
	e, _ := startEgress(t, hub, tr, Config{URL: f.URL("127.0.0.1", "/whip"), Layers: []string{"main"}})
	testkit.Eventually(t, 3*time.Second, "waiting for the stream", func() bool {
		st := e.Status()
		return st.State == StateConnecting && strings.Contains(st.LastError, `waiting for stream "cam"`)
	})
	if n := f.Count(http.MethodPost); n != 0 {
		t.Errorf("%d POSTs before the stream exists, want none", n)
	}
	testkit.Synth(t, hub, "cam", []string{"main", "preview"}, false)
	waitState(t, e, StateConnected, 10*time.Second)
	waitPackets(t, f, []string{"video"}, 10)
	if st := e.Status(); len(st.Sessions) != 1 || st.Retries != 0 {
		t.Errorf("status %+v: want the one configured layer and no retries", st)
	}
}

func TestEgressHonoursRetryAfter(t *testing.T) {
	busy := true
	e, f := egressToTarget(t, func(f *testkit.Target) {
		f.Before = func(w http.ResponseWriter, r *http.Request) bool {
			if !busy {
				return false
			}
			busy = false
			w.Header().Set("Retry-After", "1")
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return true
		}
	}, []string{"main"}, Config{})
	waitState(t, e, StateConnected, 10*time.Second)
	var posts []time.Time
	for _, r := range f.Requests() {
		if r.Method == http.MethodPost {
			posts = append(posts, r.At)
		}
	}
	if len(posts) != 2 {
		t.Fatalf("%d POSTs, want 2", len(posts))
	}
	gap := posts[1].Sub(posts[0])
	t.Logf("second POST %v after the 503", gap)
	if gap < time.Second {
		t.Errorf("second POST %v after a 503 with Retry-After: 1, want at least 1s", gap)
	}
}

func TestEgressRetryDelay(t *testing.T) {
	half := func() float64 { return 0.5 }
	busy := &client.HTTPError{Method: "POST", Status: 503, RetryAfter: 7 * time.Second}
	for attempt := 1; attempt < 10; attempt++ {
		if d := egressRetryDelay(busy, attempt, 0, half); d < 7*time.Second || d > 7*time.Second*11/10 {
			t.Errorf("503 Retry-After 7s, attempt %d: waited %v, want 7s..7.7s", attempt, d)
		}
	}
	down := errors.New("connection refused")
	if d := egressRetryDelay(down, 1, 0, half); d != 0 {
		t.Errorf("first retry of an outage: %v, want at once", d)
	}
	// Young outage: growing, but never over a second, so a target that
	// comes back within seconds is found within a second.
	prev := time.Duration(0)
	for attempt := 2; attempt <= 12; attempt++ {
		d := egressRetryDelay(down, attempt, 30*time.Second, func() float64 { return 0.999 })
		if d < prev || d > egressFastCap {
			t.Errorf("attempt %d of a 30 s outage: %v (previous %v), want growing up to %v", attempt, d, prev, egressFastCap)
		}
		prev = d
	}
	// Old outage: backs off to the cap.
	prev = 0
	for attempt := 2; attempt <= 12; attempt++ {
		d := egressRetryDelay(down, attempt, 2*time.Minute, half)
		if d < prev || d > egressBackoffCap {
			t.Errorf("attempt %d of a 2 min outage: %v (previous %v), want growing up to %v", attempt, d, prev, egressBackoffCap)
		}
		prev = d
	}
	if d := egressRetryDelay(down, 20, 2*time.Minute, func() float64 { return 0.999 }); d > egressBackoffCap || d < egressBackoffCap*9/10 {
		t.Errorf("late retry: %v, want near the %v cap", d, egressBackoffCap)
	}
	gone := &client.HTTPError{Method: "PATCH", Status: 404}
	if d := egressRetryDelay(gone, 5, 2*time.Minute, half); d != 0 {
		t.Errorf("404 to a PATCH (the target forgot the session): %v, want a new POST at once", d)
	}
	refused := &client.HTTPError{Method: "POST", Status: 401}
	if d := egressRetryDelay(refused, 1, 0, half); d < egressPermanentBase/2 {
		t.Errorf("401: retry after %v, want at least %v (slow for permanent errors)", d, egressPermanentBase/2)
	}
	if d := egressRetryDelay(refused, 30, time.Hour, half); d > egressPermanentCap {
		t.Errorf("401 late: %v over the %v cap", d, egressPermanentCap)
	}
	if d := egressRetryDelay(&client.HTTPError{Method: "POST", Status: 404}, 1, 0, half); d < egressPermanentBase/2 {
		t.Errorf("404 to the POST (a wrong endpoint): %v, want a slow retry", d)
	}
}

func TestEgressPermanentErrorFails(t *testing.T) {
	e, _ := egressToTarget(t, func(f *testkit.Target) { f.Token = "right" }, []string{"main"}, Config{Token: "wrong"})
	waitState(t, e, StateFailed, 5*time.Second)
	st := e.Status()
	if !strings.Contains(st.LastError, "401") || st.Sessions[0].NextRetry == nil {
		t.Fatalf("status %+v: want last_error naming 401 and a next retry", st)
	}
	if wait := time.Until(*st.Sessions[0].NextRetry); wait < 10*time.Second {
		t.Errorf("next retry in %v after a 401, want a slow retry", wait)
	}
}

func TestEgressSimulcast(t *testing.T) {
	tr, hub, f := egressRig(t, nil)
	testkit.Synth(t, hub, "cam", []string{"main", "preview"}, true)
	e, stop := startEgress(t, hub, tr, Config{URL: f.URL("127.0.0.1", "/whip"), Mode: ModeSimulcast, RIDStyle: RIDStyleSora})
	waitState(t, e, StateConnected, 10*time.Second)
	// Sora style: r0 is the lowest layer (preview), r1 main.
	waitPackets(t, f, []string{"r0", "r1", "audio"}, 20)
	st := e.Status()
	if len(st.Sessions) != 1 || strings.Join(st.Sessions[0].RIDs, ",") != "r1,r0" || strings.Join(st.Sessions[0].Layers, ",") != "main,preview" {
		t.Fatalf("sessions %+v: want one session, layers main,preview as rids r1,r0", st.Sessions)
	}
	if s := st.Sessions[0]; s.SRTP != "direct" || s.DirectSent == 0 {
		t.Errorf("srtp %q, %d sent beneath pion; want direct: two pacers and the audio share one batch", s.SRTP, s.DirectSent)
	}
	stop()
	if f.Count(http.MethodDelete) != 1 {
		t.Errorf("%d DELETEs, want 1", f.Count(http.MethodDelete))
	}
}

func TestEgressSimulcastMissingRIDFails(t *testing.T) {
	e, f := egressToTarget(t, func(f *testkit.Target) {
		// A target that takes only one layer: the rid and the simulcast
		// line lose "1".
		f.EditAnswer = func(sdp string) string {
			sdp = strings.Replace(sdp, "a=rid:1 recv\r\n", "", 1)
			return strings.Replace(sdp, "recv 0;1", "recv 0", 1)
		}
	}, []string{"main", "preview"}, Config{Mode: ModeSimulcast})
	waitState(t, e, StateFailed, 5*time.Second)
	st := e.Status()
	if !strings.Contains(st.LastError, `not ["1"]`) {
		t.Errorf("last_error %q: want it to name the missing rid 1", st.LastError)
	}
	testkit.Eventually(t, 3*time.Second, "DELETE of the refused session", func() bool { return f.Count(http.MethodDelete) == 1 })
}

func TestEgressRelayOnlyOverTURN(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			testkit.LeakCheck(t)
			tr := rtctest.New(t)
			hub := newTestHub(t)
			udpLink, tcpLink, auths := testkit.TURN(t)
			link := udpLink
			if transport == "tcp" {
				link = tcpLink
			}
			f := testkit.NewTarget(t, func(f *testkit.Target) { f.Links = []string{link} })
			testkit.Synth(t, hub, "cam", []string{"main"}, false)
			e, _ := startEgress(t, hub, tr, Config{URL: f.URL("127.0.0.1", "/whip"), RelayOnly: true})
			waitState(t, e, StateConnected, 10*time.Second)
			waitPackets(t, f, []string{"video"}, 20)
			pair := e.Status().Sessions[0].CandidatePair
			if !strings.HasPrefix(pair, "relay ") {
				t.Errorf("selected pair %q, want a relay local candidate", pair)
			}
			if s := e.Status().Sessions[0]; s.SRTP != "pion" || s.DirectSent != 0 {
				t.Errorf("srtp %q, %d sent beneath pion; a relay path keeps pion's", s.SRTP, s.DirectSent)
			}
			if auths(transport) == 0 {
				t.Errorf("the TURN server saw no authenticated request over %s", transport)
			}
			if other := map[string]string{"udp": "tcp", "tcp": "udp"}[transport]; auths(other) != 0 {
				t.Errorf("the TURN server saw %d requests over %s, want none", auths(other), other)
			}
			t.Logf("TURN %s: pair %s", transport, pair)
		})
	}
}

func TestEgressConfigValidate(t *testing.T) {
	ok := Config{Stream: "cam", URL: "https://sora.example/whip/ch"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Stream = "" }, "stream is required"},
		{func(c *Config) { c.URL = "" }, "url is required"},
		{func(c *Config) { c.URL = "rtmp://x/live" }, "scheme must be http or https"},
		{func(c *Config) { c.Mode = "mesh" }, `unknown mode "mesh"`},
		{func(c *Config) { c.RIDStyle = "webrtc" }, `unknown rid_style "webrtc"`},
		{func(c *Config) { c.Target = "janus" }, `unknown target "janus"`},
		{func(c *Config) { c.Mode, c.URL = ModeSimulcast, "https://x/{layer}" }, "cannot contain {layer}"},
		{func(c *Config) { c.RIDStyle, c.Layers = RIDStyleSora, []string{"a", "b", "c", "d"} }, "three rids"},
		{func(c *Config) { c.Layers = []string{"main", "main"} }, "listed twice"},
		{func(c *Config) { c.Layers = []string{"<svg>"} }, `layer name "<svg>": only letters`},
		{func(c *Config) { c.Stream = "a/b" }, `stream name "a/b"`},
		{func(c *Config) { c.ID = "<img>" }, `egress id "<img>"`},
		{func(c *Config) { c.PacingFactor = 0.5 }, "pacing_factor"},
		{func(c *Config) { c.ICEServers = []rtc.ICEServer{{URLs: []string{"http://x"}}} }, "scheme must be stun"},
		{func(c *Config) { c.ICEServers = []rtc.ICEServer{{URLs: []string{"turn:x"}}} }, "needs username and credential"},
		{func(c *Config) { c.RelayOnly, c.ICEServers = true, []rtc.ICEServer{{URLs: []string{"stun:x"}}} }, "relay_only needs a TURN server"},
	} {
		c := ok
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", err, tc.want)
		}
	}
	c := ok
	c.applyDefaults()
	if c.ID != "cam" || c.Mode != ModeSessions || c.RIDStyle != RIDStyleOBS || c.PacingFactor != 2.5 || c.Target != TargetSora {
		t.Errorf("defaults %+v: want id cam, sessions, obs, 2.5, sora (from the host)", c)
	}
}

func TestEgressFeedback(t *testing.T) {
	now := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	f := newEgressFeedback()
	f.now = func() time.Time { return now }
	if f.rttMs() != 0 {
		t.Fatalf("RTT %v before any report, want 0", f.rttMs())
	}
	// An SR sent 250 ms ago, held 100 ms by the receiver: 150 ms round trip.
	lsr := egressNTPShort(now.Add(-250 * time.Millisecond))
	f.onPacket(&rtcp.ReceiverReport{Reports: []rtcp.ReceptionReport{{SSRC: 1, LastSenderReport: lsr, Delay: 65536 / 10}}})
	if got := f.rttMs(); got < 149 || got > 151 {
		t.Errorf("RTT %.2f ms, want 150", got)
	}
	f.onPacket(&rtcp.ReceiverReport{Reports: []rtcp.ReceptionReport{{SSRC: 1}}}) // no SR seen yet: ignored
	if got := f.rttMs(); got < 149 || got > 151 {
		t.Errorf("a report without LSR changed the RTT to %.2f", got)
	}
	f.onPacket(&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: 80e6, SSRCs: []uint32{1}})
	f.onPacket(&rtcp.TransportLayerNack{MediaSSRC: 1, Nacks: []rtcp.NackPair{{PacketID: 10, LostPackets: 0b101}}})
	if f.remb.Load() != 80_000_000 || f.nacked.Load() != 3 {
		t.Errorf("REMB %d, NACKed %d: want 80000000 and 3", f.remb.Load(), f.nacked.Load())
	}
}

func TestEgressRIDsAndNACKHistory(t *testing.T) {
	if got := strings.Join(egressRIDs(RIDStyleOBS, 3), ","); got != "0,1,2" {
		t.Errorf("obs rids %s, want 0,1,2", got)
	}
	if got := strings.Join(egressRIDs(RIDStyleSora, 3), ","); got != "r2,r1,r0" {
		t.Errorf("sora rids for layers full..low %s, want r2,r1,r0 (r0 lowest)", got)
	}
	for _, tc := range []struct {
		bps  int64
		avg  int
		want int
	}{
		{0, 0, 0}, {1_000_000, 1000, 1024}, {20_000_000, 1200, 4096}, {100_000_000, 1200, 16384}, {400_000_000, 1200, 32768},
	} {
		if got := egressNACKHistory(tc.bps, tc.avg); got != tc.want {
			t.Errorf("NACK history for %d bps of %d B packets: %d, want %d", tc.bps, tc.avg, got, tc.want)
		}
	}
}

func TestEgressPreferCodecOffersOnlyOurs(t *testing.T) {
	tr := rtctest.New(t)
	api, err := tr.NewAPI(rtc.APIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		codec, fmtp string
		want        []string // rtpmap lines' codec names
		wantFmtp    string
	}{
		{"video/H264", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64003d", []string{"H264/90000", "rtx/90000"}, "profile-level-id=64003d"},
		{"video/H265", "level-id=183;profile-id=1;tier-flag=0;tx-mode=SRST", []string{"H265/90000", "rtx/90000"}, "level-id=183"},
		{"video/AV1", "", []string{"AV1/90000", "rtx/90000"}, ""},
		{"audio/opus", "", []string{"opus/48000/2"}, "useinbandfec=1"},
	} {
		t.Run(tc.codec, func(t *testing.T) {
			pc, err := api.NewPeerConnection(webrtc.Configuration{})
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			codec, _ := gateway.ParseCodec(tc.codec)
			capab := codecs.Capability(gateway.TrackInfo{Name: "x", Codec: codec, Fmtp: tc.fmtp})
			track, err := webrtc.NewTrackLocalStaticRTP(capab, "v", "s")
			if err != nil {
				t.Fatal(err)
			}
			tr, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
			if err != nil {
				t.Fatal(err)
			}
			if err := codecs.PreferCodec(tr, capab, true); err != nil {
				t.Fatal(err)
			}
			offer, err := pc.CreateOffer(nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, line := range strings.Split(offer.SDP, "\r\n") {
				if _, v, ok := strings.Cut(line, "a=rtpmap:"); ok {
					got = append(got, strings.Fields(v)[1])
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("offered %v, want %v", got, tc.want)
			}
			if !strings.Contains(offer.SDP, tc.wantFmtp) {
				t.Errorf("offer lacks %q:\n%s", tc.wantFmtp, offer.SDP)
			}
		})
	}
}

func TestEgressWarnsAboveSoraLimit(t *testing.T) {
	for _, tc := range []struct {
		target string
		bps    int64
		warn   bool
	}{
		{TargetSora, 100_000_000, true}, {TargetSora, 10_000_000, false}, {TargetGeneric, 100_000_000, false},
	} {
		e := &Egress{cfg: Config{Target: tc.target}, log: testkit.Log(t)}
		l := newEgressLeg(e, nil, "https://sora.example/whip/ch", []string{"main"}, nil, "")
		w := l.checkTargetLimits(l.layers, []int64{tc.bps})
		if (w != "") != tc.warn || (tc.warn && !strings.Contains(w, "15 Mbps")) {
			t.Errorf("target %s at %d bps: warning %q, want one: %v", tc.target, tc.bps, w, tc.warn)
		}
	}
}
