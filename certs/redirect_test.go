package certs

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"whipgate/certs/certstest"
)

func TestRedirectToHTTPS(t *testing.T) {
	for _, tc := range []struct {
		name, method, host, target string
		httpsPort                  int
		wantCode                   int
		wantLocation               string
	}{
		{"default port", "GET", "box.example", "/watch?s=main", 443, 308, "https://box.example/watch?s=main"},
		{"drops the http port", "GET", "box.example:80", "/", 443, 308, "https://box.example/"},
		{"other https port", "POST", "box.example:8080", "/whip/main", 8443, 308, "https://box.example:8443/whip/main"},
		{"ipv6", "GET", "[2001:db8::1]:80", "/", 443, 308, "https://[2001:db8::1]/"},
		{"ipv6 other port", "GET", "[2001:db8::1]", "/", 8443, 308, "https://[2001:db8::1]:8443/"},
		{"no host", "GET", "", "/", 443, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "http://placeholder"+tc.target, nil)
			r.Host = tc.host
			w := httptest.NewRecorder()
			redirectToHTTPS(tc.httpsPort).ServeHTTP(w, r)
			if w.Code != tc.wantCode || w.Header().Get("Location") != tc.wantLocation {
				t.Fatalf("got %d to %q, want %d to %q", w.Code, w.Header().Get("Location"), tc.wantCode, tc.wantLocation)
			}
		})
	}
}

func TestModeOff(t *testing.T) {
	checkLeaks(t)
	log, _ := certstest.NewLog(t)
	m, err := New(t.Context(), Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	var nilManager *Manager
	for _, m := range []*Manager{m, nilManager} {
		if m.Mode() != ModeOff || m.TLSConfig() != nil || m.Fingerprint() != "" || m.HTTPAddr() != "" {
			t.Fatalf("%v: mode %s, TLSConfig %v, fingerprint %q, HTTPAddr %q; want off, nil and empty",
				m, m.Mode(), m.TLSConfig(), m.Fingerprint(), m.HTTPAddr())
		}
		next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
		w := httptest.NewRecorder()
		m.HTTPHandler(nil).ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		if w.Code != http.StatusNotFound {
			t.Fatalf("HTTPHandler(nil) answered %d, want 404 (no HTTPS to redirect to)", w.Code)
		}
		w = httptest.NewRecorder()
		m.HTTPHandler(next).ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		if w.Code != http.StatusOK {
			t.Fatalf("HTTPHandler(next) answered %d, want next's 200", w.Code)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHTTPHandlerRedirectsInSelfSignedMode(t *testing.T) {
	log, _ := certstest.NewLog(t)
	m, err := New(t.Context(), Config{Mode: ModeSelfSigned, Dir: t.TempDir(), HTTPSPort: 8443}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/x", nil)
	r.Host = "box.lan"
	m.HTTPHandler(nil).ServeHTTP(w, r)
	if w.Code != http.StatusPermanentRedirect || w.Header().Get("Location") != "https://box.lan:8443/x" {
		t.Fatalf("got %d to %q, want 308 to https://box.lan:8443/x", w.Code, w.Header().Get("Location"))
	}
}
