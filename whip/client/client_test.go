package client

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"whipgate/internal/rtctest"
	"whipgate/internal/testkit"
	"whipgate/whip/rtc"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// testPeer is a PeerConnection on the shared test transport with one
// H.264 track, created as Publish wants it.
func testPeer(t *testing.T, tr *rtc.Transport, c *Client) (*webrtc.PeerConnection, *webrtc.TrackLocalStaticRTP) {
	t.Helper()
	api, err := tr.NewAPI(rtc.APIOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(c.PeerConfiguration())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	return pc, track
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg, testkit.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// sendUntil writes RTP on track until the target has counted want
// packets of kind, so the test knows media really flows.
func sendUntil(t *testing.T, track *webrtc.TrackLocalStaticRTP, f *testkit.Target, want int64) {
	t.Helper()
	seq := uint16(0)
	testkit.Eventually(t, 10*time.Second, "target receives RTP", func() bool {
		for range 5 {
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, Marker: true},
				Payload: []byte{0x65, 1, 2, 3, 4}}
			seq++
			_ = track.WriteRTP(&pkt)
		}
		for _, s := range f.Sessions() {
			if s.Packets()["video"] >= want {
				return true
			}
		}
		return false
	})
}

func waitConnected(t *testing.T, pc *webrtc.PeerConnection) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, "peer connection connected", func() bool {
		return pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
}

// publishMedia publishes testPeer's track to f with a client on cfg, on a
// transport of its own, and returns once the peer has connected (the
// target learned it from its checks) and f has counted 10 packets. The
// session is closed when the test ends.
func publishMedia(t *testing.T, f *testkit.Target, cfg Config) (*Session, *webrtc.PeerConnection, *webrtc.TrackLocalStaticRTP) {
	t.Helper()
	c := newTestClient(t, cfg)
	pc, track := testPeer(t, rtctest.New(t), c)
	sess, err := c.Publish(t.Context(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sess.Close(context.Background()) })
	waitConnected(t, pc)
	sendUntil(t, track, f, 10)
	return sess, pc, track
}

func TestClientPublishTrickleAndDelete(t *testing.T) {
	testkit.LeakCheck(t)
	f := testkit.NewTarget(t, nil)
	sess, pc, track := publishMedia(t, f, Config{URL: f.URL("127.0.0.1", "/whip/cam"), Token: "secret"})
	sendUntil(t, track, f, 20)
	testkit.Eventually(t, 5*time.Second, "trickle PATCH", func() bool { return f.Count(http.MethodPatch) > 0 })
	if !sess.Trickle() || !sess.CanRestart() {
		t.Errorf("Trickle %v, CanRestart %v: want both with a strong ETag", sess.Trickle(), sess.CanRestart())
	}
	if err := sess.Close(t.Context()); err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	if err := sess.Close(t.Context()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_ = pc.Close()
	reqs := f.Requests()
	var methods []string
	for _, r := range reqs {
		methods = append(methods, r.Method)
		if r.Auth != "Bearer secret" {
			t.Errorf("%s %s: Authorization %q, want the Bearer token", r.Method, r.Path, r.Auth)
		}
		if r.Method == http.MethodPatch && (r.IfMatch != `"tag-2"` || r.ContentType != "application/trickle-ice-sdpfrag") {
			t.Errorf("trickle PATCH: If-Match %q, Content-Type %q", r.IfMatch, r.ContentType)
		}
	}
	if methods[0] != http.MethodPost || methods[len(methods)-1] != http.MethodDelete || reqs[len(reqs)-1].Path != "/resource/s1" {
		t.Errorf("requests %v, last path %q: want POST first and DELETE /resource/s1 last", methods, reqs[len(reqs)-1].Path)
	}
	if len(f.Sessions()) != 0 {
		t.Error("the target still holds the session after DELETE")
	}
}

// TestClientCancelDuringPOSTDeletes: the caller cancels (a SIGTERM) while
// the POST is out and the target has already made the session; Publish
// waits for the 201 and DELETEs the resource instead of leaving a publisher
// on the target until its ICE timeout.
func TestClientCancelDuringPOSTDeletes(t *testing.T) {
	testkit.LeakCheck(t)
	tr := rtctest.New(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f := testkit.NewTarget(t, func(f *testkit.Target) {
		f.EditAnswer = func(sdp string) string {
			cancel()
			time.Sleep(50 * time.Millisecond) // the client's transport sees the cancel first
			return sdp
		}
	})
	c := newTestClient(t, Config{URL: f.URL("127.0.0.1", "/whip/cam")})
	pc, _ := testPeer(t, tr, c)
	sess, err := c.Publish(ctx, pc)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish = %v, %v; want an error wrapping context.Canceled", sess, err)
	}
	if n := f.Count(http.MethodDelete); n != 1 {
		t.Errorf("target saw %d DELETEs, want 1 for the session the cancelled POST made", n)
	}
	if n := len(f.Sessions()); n != 0 {
		t.Errorf("target still holds %d sessions", n)
	}
}

func TestClientRedirect307KeepsBearerAcrossHosts(t *testing.T) {
	tr := rtctest.New(t)
	// The real endpoint is on "localhost"; the first one redirects there,
	// and its relative Location carries a query (SRS style).
	target := testkit.NewTarget(t, func(f *testkit.Target) {
		f.Token = "tok"
		f.Location = func(id string) string { return "../rtc/v1/whip/?action=delete&session=" + id }
	})
	front := testkit.NewTarget(t, func(f *testkit.Target) {
		f.Before = func(w http.ResponseWriter, r *http.Request) bool {
			http.Redirect(w, r, target.URL("localhost", "/api/whip/cam"), http.StatusTemporaryRedirect)
			return true
		}
	})
	c := newTestClient(t, Config{URL: front.URL("127.0.0.1", "/whip/cam"), Token: "tok"})
	pc, _ := testPeer(t, tr, c)
	sess, err := c.Publish(t.Context(), pc)
	if err != nil {
		t.Fatalf("publish through a cross-host 307: %v", err)
	}
	want := target.URL("localhost", "/api/rtc/v1/whip/?action=delete&session=s1")
	if sess.Resource() != want {
		t.Errorf("resource %q, want %q (relative Location resolved against the URL after the redirect)", sess.Resource(), want)
	}
	if err := sess.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, r := range target.Requests() {
		if r.Auth != "Bearer tok" {
			t.Errorf("%s on the redirected host: Authorization %q, want the Bearer token", r.Method, r.Auth)
		}
		if r.Method == http.MethodDelete && r.Path != "/api/rtc/v1/whip/?action=delete&session=s1" {
			t.Errorf("DELETE went to %q", r.Path)
		}
	}
	if target.Count(http.MethodPost) != 1 || target.Count(http.MethodDelete) != 1 {
		t.Errorf("target saw %d POST and %d DELETE, want 1 and 1", target.Count(http.MethodPost), target.Count(http.MethodDelete))
	}
}

func TestClientRefuses301(t *testing.T) {
	tr := rtctest.New(t)
	target := testkit.NewTarget(t, nil)
	front := testkit.NewTarget(t, func(f *testkit.Target) {
		f.Before = func(w http.ResponseWriter, r *http.Request) bool {
			http.Redirect(w, r, target.URL("127.0.0.1", "/whip"), http.StatusMovedPermanently)
			return true
		}
	})
	c := newTestClient(t, Config{URL: front.URL("127.0.0.1", "/whip")})
	pc, _ := testPeer(t, tr, c)
	_, err := c.Publish(t.Context(), pc)
	if err == nil || !strings.Contains(err.Error(), "301") {
		t.Fatalf("got %v, want an error naming 301", err)
	}
	if !Permanent(err) {
		t.Errorf("a forbidden redirect should count as permanent: %v", err)
	}
	if n := target.Count(http.MethodPost); n != 0 {
		t.Errorf("the 301 was followed: target saw %d POSTs", n)
	}
}

func TestClientNoTokenSendsNoAuthorization(t *testing.T) {
	tr := rtctest.New(t)
	f := testkit.NewTarget(t, nil)
	c := newTestClient(t, Config{URL: f.URL("127.0.0.1", "/whip")})
	pc, _ := testPeer(t, tr, c)
	sess, err := c.Publish(t.Context(), pc)
	if err != nil {
		t.Fatal(err)
	}
	_ = sess.Close(t.Context())
	for _, r := range f.Requests() {
		if r.Auth != "" {
			t.Errorf("%s carried Authorization %q without a token", r.Method, r.Auth)
		}
	}
}

func TestClientToleratesPatch405(t *testing.T) {
	f := testkit.NewTarget(t, func(f *testkit.Target) { f.PatchStatus = http.StatusMethodNotAllowed })
	sess, _, _ := publishMedia(t, f, Config{URL: f.URL("127.0.0.1", "/whip")})
	testkit.Eventually(t, 5*time.Second, "trickle gives up", func() bool { return !sess.Trickle() })
	if n := f.Count(http.MethodPatch); n != 1 {
		t.Errorf("%d PATCHes after a 405, want exactly 1", n)
	}
}

func TestClientETagStar(t *testing.T) {
	f := testkit.NewTarget(t, func(f *testkit.Target) { f.ETag = "*" })
	sess, _, _ := publishMedia(t, f, Config{URL: f.URL("127.0.0.1", "/whip")})
	if sess.CanRestart() {
		t.Error(`ETag "*" taken as ICE restart support`)
	}
	if err := sess.Restart(t.Context()); !errors.Is(err, ErrNoRestart) {
		t.Errorf("Restart: got %v, want ErrNoRestart", err)
	}
	testkit.Eventually(t, 5*time.Second, "trickle PATCH", func() bool { return f.Count(http.MethodPatch) > 0 })
	for _, r := range f.Requests() {
		if r.Method == http.MethodPatch && r.IfMatch != "*" {
			t.Errorf("trickle If-Match %q, want the server's *", r.IfMatch)
		}
	}
}

func TestClientICERestart(t *testing.T) {
	f := testkit.NewTarget(t, nil)
	sess, pc, track := publishMedia(t, f, Config{URL: f.URL("127.0.0.1", "/whip")})
	before := f.Sessions()[0].PC.RemoteDescription().SDP
	if err := sess.Restart(t.Context()); err != nil {
		t.Fatalf("ICE restart: %v", err)
	}
	if sess.Restarts() != 1 {
		t.Errorf("Restarts %d, want 1", sess.Restarts())
	}
	var patch testkit.Request
	for _, r := range f.Requests() {
		if r.Method == http.MethodPatch {
			patch = r
		}
	}
	if patch.IfMatch != "*" {
		t.Errorf("restart If-Match %q, want *", patch.IfMatch)
	}
	after := f.Sessions()[0].PC.RemoteDescription().SDP
	o1, _ := ownOffer(before)
	o2, _ := ownOffer(after)
	if o1.Ufrag == o2.Ufrag {
		t.Error("the target still has the old ufrag: no restart happened")
	}
	waitConnected(t, pc)
	n := f.Sessions()[0].Packets()["video"]
	sendUntil(t, track, f, n+10)
	if err := sess.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if last := f.Requests()[len(f.Requests())-1]; last.Method != http.MethodDelete || last.IfMatch != "" {
		t.Errorf("last request %s with If-Match %q, want DELETE without entity tag", last.Method, last.IfMatch)
	}
}

func TestClient503RetryAfter(t *testing.T) {
	tr := rtctest.New(t)
	f := testkit.NewTarget(t, func(f *testkit.Target) {
		f.Before = func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Retry-After", "7")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
	})
	c := newTestClient(t, Config{URL: f.URL("127.0.0.1", "/whip")})
	pc, _ := testPeer(t, tr, c)
	_, err := c.Publish(t.Context(), pc)
	if got := RetryAfter(err); got != 7*time.Second {
		t.Fatalf("Retry-After %v from %v, want 7s", got, err)
	}
	if Permanent(err) {
		t.Error("503 counted as permanent")
	}
}

func TestClientAnswerMissingRID(t *testing.T) {
	const offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:96 H264/90000\r\n" +
		"a=rid:0 send\r\na=rid:1 send\r\na=simulcast:send 0;1\r\n"
	answer := strings.NewReplacer("sendonly", "recvonly", "send", "recv").Replace(offer)
	if err := clientCheckAnswer(offer, answer); err != nil {
		t.Fatalf("full answer refused: %v", err)
	}
	partial := strings.Replace(strings.Replace(answer, "a=rid:1 recv\r\n", "", 1), "recv 0;1", "recv 0", 1)
	err := clientCheckAnswer(offer, partial)
	if err == nil || !strings.Contains(err.Error(), `"1"`) || !errors.Is(err, ErrProtocol) {
		t.Fatalf("got %v, want a protocol error naming rid 1", err)
	}
	noSim := strings.Replace(strings.Replace(answer, "a=rid:0 recv\r\na=rid:1 recv\r\n", "", 1), "a=simulcast:recv 0;1\r\n", "", 1)
	if err := clientCheckAnswer(offer, noSim); err == nil {
		t.Fatal("an answer ignoring simulcast was accepted")
	}
	rejected := strings.Replace(answer, "m=video 9", "m=video 0", 1)
	if err := clientCheckAnswer(offer, rejected); err == nil {
		t.Fatal("a rejected media section was accepted")
	}
}

func TestClientParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"5", 5 * time.Second}, {"-3", 0}, {"junk", 0}, {"999999", time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
	} {
		if got := clientParseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("Retry-After %q: got %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestClientConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "ftp://x/whip"}, "scheme"},
		{Config{URL: "http:///whip"}, "no host"},
		{Config{URL: "http://x/whip", Token: "a\nb"}, "line break"},
		{Config{URL: "http://x/whip", ICEServers: []rtc.ICEServer{{}}}, "no urls"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error about %s", tc.cfg, err, tc.want)
		}
	}
	if err := (Config{URL: "https://sora.example/whip/ch"}).Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}
