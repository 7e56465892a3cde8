package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"whipgate/certs/certstest"
	"whipgate/cmd"
)

// What a stranger may cost the box (issue 13): a request that never
// finishes, sessions that never connect, a session that panics. Each is
// bounded, and the server goes on serving everyone else.

// TestStalledBodyCutOff: a POST whose body stops arriving is cut off by
// http.read_timeout (1 s here) instead of holding its connection for
// ever, and the server plays to a viewer afterwards.
func TestStalledBodyCutOff(t *testing.T) {
	app := startGateway(t, func(c *cmd.Config) { c.HTTP.ReadTimeout = time.Second })
	waitLive(t, app, "test")
	host := strings.TrimPrefix(app.URL(), "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// 4 KiB announced, a few bytes sent, then nothing.
	if _, err := fmt.Fprintf(conn, "POST /whep/test HTTP/1.1\r\nHost: %s\r\nContent-Type: application/sdp\r\nContent-Length: 4096\r\n\r\nv=0\r\n", host); err != nil {
		t.Fatal(err)
	}
	// A hang guard ten times the read timeout, and short of the 15 s
	// default: a server that never cuts the body off fails here.
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	answered, err := io.ReadAll(conn)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("the stalled request still holds its connection 10 s on (read so far %q)", answered)
	}
	if strings.HasPrefix(string(answered), "HTTP/1.1 2") {
		t.Fatalf("a request with a stalled body was answered %q", answered)
	}
	watch(t, app.URL()+"/whep/test/preview").waitFrames(10, 10*time.Second)
}

// TestPendingSessionsCappedPerClient: 40 WHEP offers from one address
// that never complete ICE (no candidates, and the offerer never answers
// checks) get 16 sessions, limits.max_pending_per_client; the rest 503
// with Retry-After naming the limit. Another address is not held back by
// them. After the connect timeout (default 10 s) they have all ended as
// never connected, and the first address may start sessions again.
func TestPendingSessionsCappedPerClient(t *testing.T) {
	app := startGateway(t, nil)
	waitLive(t, app, "test")
	limit := app.Sessions().Limits().MaxPendingPerClient
	offer := regexp.MustCompile(`(?m)^a=(candidate|end-of-candidates).*\r\n`).ReplaceAllString(
		offerFor(t, webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio), "")
	url := app.URL() + "/whep/test/preview"
	created := 0
	for i := range 40 {
		resp, body := do(t, http.MethodPost, url, "application/sdp", offer, nil)
		switch resp.StatusCode {
		case http.StatusCreated:
			created++
		case http.StatusServiceUnavailable:
			requireProblem(t, resp, body, http.StatusServiceUnavailable, "limits.max_pending_per_client")
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
				t.Fatalf("offer %d: 503 with Retry-After %q, want whole seconds", i, resp.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("offer %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if created != limit {
		t.Fatalf("%d of 40 unconnected sessions created from one address, want %d (limits.max_pending_per_client)", created, limit)
	}
	if resp, body := doWith(t, clientFrom(t, "127.0.0.2"), http.MethodPost, url, "application/sdp", offer, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("another address, while the first is at its limit: %d %s", resp.StatusCode, body)
	}
	certstest.Eventually(t, 30*time.Second, "the unconnected sessions end after the connect timeout", func() bool {
		return len(app.Sessions().List()) == 0
	})
	if n := strings.Count(app.log.String(), "reason=\"never connected\""); n != limit+1 {
		t.Fatalf("%d sessions ended as never connected, want %d", n, limit+1)
	}
	if resp, body := do(t, http.MethodPost, url, "application/sdp", offer, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("the first address once its sessions were freed: %d %s", resp.StatusCode, body)
	}
}

// clientFrom is an HTTP client whose connections come from local address
// ip (another loopback address, such as 127.0.0.2).
func clientFrom(t testing.TB, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestPanicEndsOnlyItsSession: a panic on one viewer's session goroutine
// (injected through the registry's Session.Go, which runs the track and
// RTCP readers) ends that session only: it is gone from the API, the
// panic is logged with its stack and counted in whipgate_panics_total,
// and another viewer of the same layer keeps receiving frames from the
// same process.
func TestPanicEndsOnlyItsSession(t *testing.T) {
	app := startGateway(t, nil)
	waitLive(t, app, "test")
	url := app.URL() + "/whep/test/preview"
	doomed, bystander := watch(t, url), watch(t, url)
	id := sessionID(doomed.resource)
	s, ok := app.Sessions().Get(id)
	if !ok {
		t.Fatalf("no session %s for the viewer", id)
	}
	if v := metric(t, app, `whipgate_panics_total{where="session"}`); v != 0 {
		t.Fatalf("whipgate_panics_total before the panic: %v", v)
	}
	s.Go(func() { panic("injected by TestPanicEndsOnlyItsSession") })

	certstest.Eventually(t, 10*time.Second, "the panicked session ends", func() bool {
		_, ok := app.Sessions().Get(id)
		return !ok
	})
	resp, body := do(t, http.MethodGet, app.URL()+"/api/v1/sessions/"+id, "", "", nil)
	requireProblem(t, resp, body, http.StatusNotFound, id)
	if _, ok := app.Sessions().Get(sessionID(bystander.resource)); !ok {
		t.Fatal("the other viewer's session ended too")
	}
	if v := metric(t, app, `whipgate_panics_total{where="session"}`); v != 1 {
		t.Fatalf("whipgate_panics_total{where=\"session\"} = %v, want 1", v)
	}
	log := app.log.String()
	if !containsAll(log, "panic in a session; ending that session only", "injected by TestPanicEndsOnlyItsSession", "goroutine ") {
		t.Fatalf("the panic is not logged with its stack:\n%s", log)
	}
	n := len(bystander.frames())
	bystander.waitFrames(n+30, 10*time.Second)
}
