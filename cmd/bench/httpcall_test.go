package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// call hands back the status, headers and body of an answer within its
// limit, and refuses a longer one instead of cutting it: the bench reads
// /metrics and profiles from whatever server it is pointed at.
func TestCallBoundsTheAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/sdp" {
			http.Error(w, "want application/sdp", http.StatusUnsupportedMediaType)
			return
		}
		w.Header().Set("Location", "/session/1")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(strings.Repeat("a", 100)))
	}))
	defer srv.Close()
	ctx := context.Background()

	resp, body, err := call(ctx, http.MethodPost, srv.URL, "application/sdp", strings.NewReader("v=0"), 100)
	if err != nil || resp.StatusCode != http.StatusCreated || len(body) != 100 || resp.Header.Get("Location") != "/session/1" {
		t.Fatalf("within the limit: %v, %d bytes, err %v", resp, len(body), err)
	}
	if _, _, err := call(ctx, http.MethodPost, srv.URL, "application/sdp", nil, 99); err == nil || !strings.Contains(err.Error(), "over 99 bytes") {
		t.Fatalf("an answer over the limit: err %v, want one saying so", err)
	}
	resp, _, err = call(ctx, http.MethodPost, srv.URL, "", nil, 1<<10)
	if err != nil || resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("no content type: %v, err %v; want the server's 415", resp, err)
	}
}
