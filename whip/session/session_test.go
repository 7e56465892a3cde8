package session

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"whipgate/internal/testkit"
	"whipgate/whip/problem"
)

// wantProblem checks err is a problem with code whose message contains
// what.
func wantProblem(t *testing.T, err error, code int, what string) *problem.Error {
	t.Helper()
	pe, ok := errors.AsType[*problem.Error](err)
	if !ok || pe.Code != code || !strings.Contains(pe.Msg, what) {
		t.Fatalf("got %v, want a %d problem saying %q", err, code, what)
	}
	return pe
}

func TestAdmitLimits(t *testing.T) {
	type who struct{ kind, stream, remote string }
	for _, tc := range []struct {
		name   string
		limits Limits
		first  []who // admitted first
		next   who
		want   string // "" admitted
	}{
		{"global cap", Limits{MaxSessions: 2}, []who{{"whep", "a", "10.0.0.1:1"}, {"whip", "b", "10.0.0.2:1"}},
			who{"whep", "c", "10.0.0.3:1"}, "limits.max_sessions"},
		{"pending per client, any port", Limits{MaxPendingPerClient: 2}, []who{{"whep", "a", "10.0.0.1:1"}, {"whep", "a", "10.0.0.1:2"}},
			who{"whip", "b", "10.0.0.1:3"}, "limits.max_pending_per_client"},
		{"other clients still admitted", Limits{MaxPendingPerClient: 2}, []who{{"whep", "a", "10.0.0.1:1"}, {"whep", "a", "10.0.0.1:2"}},
			who{"whep", "a", "10.0.0.2:1"}, ""},
		{"viewers per stream", Limits{MaxViewersPerStream: 1}, []who{{"whep", "a", "10.0.0.1:1"}},
			who{"whep", "a", "10.0.0.2:1"}, "limits.max_viewers_per_stream"},
		{"publishers are not viewers", Limits{MaxViewersPerStream: 1}, []who{{"whep", "a", "10.0.0.1:1"}},
			who{"whip", "a", "10.0.0.2:1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry(tc.limits, testkit.Log(t))
			mk := func(w who) *Session { return &Session{Kind: w.kind, Stream: w.stream, Remote: w.remote} }
			var first []*Session
			for i, w := range tc.first {
				s := mk(w)
				if err := r.Admit(s); err != nil {
					t.Fatalf("first %d: %v", i, err)
				}
				first = append(first, s)
			}
			next := mk(tc.next)
			err := r.Admit(next)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			pe := wantProblem(t, err, http.StatusServiceUnavailable, tc.want)
			if pe.RetryAfter <= 0 {
				t.Error("a limit's 503 has no Retry-After")
			}
			// Giving one back makes room (twice is harmless).
			r.Release(first[0])
			r.Release(first[0])
			if err := r.Admit(next); err != nil {
				t.Fatalf("after a release: %v", err)
			}
		})
	}
}

// A panic in one session's goroutine ends that session, is counted, and
// leaves the other session and the registry working.
func TestPanicEndsOnlyItsSession(t *testing.T) {
	testkit.LeakCheck(t)
	r := NewRegistry(Limits{}, testkit.Log(t))
	start := func(id string) *Session {
		s := &Session{ID: id, Kind: "whep", Stream: "s", Remote: "127.0.0.1:1"}
		if err := r.Admit(s); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(s, testkit.IdlePeer(t), time.Minute, func(ctx context.Context) error {
			<-ctx.Done()
			return context.Cause(ctx)
		}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	victim, bystander := start("victim"), start("bystander")
	victim.Go(func() { panic("injected") })
	select {
	case <-victim.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the session whose goroutine panicked did not end")
	}
	if r.Panics() != 1 {
		t.Errorf("%d panics counted, want 1", r.Panics())
	}
	if _, ok := r.Get("bystander"); !ok {
		t.Fatal("the other session ended too")
	}
	// A panic in run itself is recovered the same way.
	s := &Session{ID: "run", Kind: "whip", Stream: "t", Remote: "127.0.0.1:1"}
	if err := r.Admit(s); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(s, testkit.IdlePeer(t), time.Minute, func(context.Context) error { panic("in run") }); err != nil {
		t.Fatal(err)
	}
	<-s.Done()
	if r.Panics() != 2 {
		t.Errorf("%d panics counted, want 2", r.Panics())
	}
	r.End(bystander.ID)
	r.Close()
}

// A session that does not connect in time ends with ErrNeverConnected.
func TestConnectTimeout(t *testing.T) {
	r := NewRegistry(Limits{}, testkit.Log(t))
	s := &Session{ID: "slow", Kind: "whep", Stream: "s", Remote: "127.0.0.1:1"}
	if err := r.Admit(s); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	if err := r.Start(s, testkit.IdlePeer(t), 50*time.Millisecond, func(ctx context.Context) error {
		<-ctx.Done()
		ended <- context.Cause(ctx)
		return context.Cause(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, ErrNeverConnected) {
			t.Fatalf("ended with %v, want ErrNeverConnected", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not ended by the connect timeout")
	}
	r.Close()
	// Once closed, nothing is admitted.
	wantProblem(t, r.Admit(&Session{Kind: "whep", Remote: "127.0.0.1:2"}), http.StatusServiceUnavailable, "shutting down")
}

func TestCheckBearer(t *testing.T) {
	for _, tc := range []struct {
		header, want string
		ok           bool
	}{
		{"Bearer secret-token-123", "secret-token-123", true},
		{"bearer secret-token-123", "secret-token-123", true}, // RFC 9110: the scheme is case-insensitive
		{"BEARER  secret-token-123 ", "secret-token-123", true},
		{"Basic c2VjcmV0", "secret-token-123", false},
		{"Bearer wrong", "secret-token-123", false},
		{"", "secret-token-123", false},
		{"", "", true},
	} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		err := CheckBearer(r, tc.want)
		if (err == nil) != tc.ok {
			t.Errorf("Authorization %q: err %v, want ok %v", tc.header, err, tc.ok)
		}
	}
}

func TestOfferShapeLimits(t *testing.T) {
	l := Limits{}
	l.ApplyDefaults()
	section := "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\na=fingerprint:sha-256 00\r\na=rtpmap:96 H264/90000\r\n"
	head := "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
	formats := make([]string, 65)
	for i := range formats {
		formats[i] = "96"
	}
	for _, tc := range []struct {
		name, body, want string
	}{
		{"nine sections", head + strings.Repeat(section, 9), "limits.max_media_sections"},
		{"65 formats", head + "m=video 9 UDP/TLS/RTP/SAVPF " + strings.Join(formats, " ") + "\r\n", "limits.max_formats"},
		{"65 candidates", head + section + strings.Repeat("a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n", 65), "limits.max_candidates"},
		{"1025 attributes", head + section + strings.Repeat("a=x\r\n", 1025), "limits.max_attributes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.ParseOffer([]byte(tc.body))
			wantProblem(t, err, http.StatusBadRequest, tc.want)
		})
	}
	if _, err := l.ParseOffer([]byte(head + strings.Repeat(section, 2))); err != nil {
		t.Fatalf("a plain offer: %v", err)
	}
}

func TestReadBodyBounded(t *testing.T) {
	l := Limits{MaxSDPBytes: 10}
	l.ApplyDefaults()
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("x", 11)))
	r.Header.Set("Content-Type", "application/sdp")
	_, err := l.ReadBody(r, "application/sdp")
	wantProblem(t, err, http.StatusRequestEntityTooLarge, "limits.max_sdp_bytes")
	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader("v=0"))
	r.Header.Set("Content-Type", "text/plain")
	_, err = l.ReadBody(r, "application/sdp")
	wantProblem(t, err, http.StatusUnsupportedMediaType, "application/sdp")
}
