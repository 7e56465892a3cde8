package cmd

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"whipgate/whip/problem"
)

func TestAPITrust(t *testing.T) {
	type req struct {
		method, host, remote, origin, site, ctype, body string
	}
	loop := func(r req) req {
		if r.method == "" {
			r.method = http.MethodGet
		}
		if r.host == "" {
			r.host = "127.0.0.1:8080"
		}
		if r.remote == "" {
			r.remote = "127.0.0.1:50000"
		}
		return r
	}
	open := Config{Listen: "127.0.0.1:8080", PublicURL: "https://box.example:8443"}
	withToken := open
	withToken.APIToken = "0123456789abcdef"
	withOrigin := open
	withOrigin.HTTP.AllowedOrigins = []string{"https://panel.example"}
	withHost := open
	withHost.HTTP.AllowedHosts = []string{"box.lan"}
	for _, tc := range []struct {
		name string
		cfg  Config
		r    req
		code int    // 0: trusted
		want string // in the problem's detail
	}{
		{"loopback GET", open, req{}, 0, ""},
		{"curl POST with JSON", open, req{method: "POST", ctype: "application/json", body: "{}"}, 0, ""},
		{"bodiless POST", open, req{method: "POST"}, 0, ""},
		{"localhost by name", open, req{host: "localhost:8080"}, 0, ""},
		{"IPv6 loopback", open, req{host: "[::1]:8080", remote: "[::1]:4000"}, 0, ""},
		{"public_url host", open, req{host: "box.example:8443"}, 0, ""},
		{"configured host", withHost, req{host: "BOX.lan:8080"}, 0, ""},
		{"no token, remote client", open, req{remote: "192.0.2.7:4000"}, http.StatusForbidden, "loopback clients only"},
		{"DNS rebinding", open, req{host: "rebind.evil.example"}, http.StatusMisdirectedRequest, "rebind.evil.example"},
		{"text/plain POST", open, req{method: "POST", ctype: "text/plain", body: "{}"}, http.StatusUnsupportedMediaType, "application/json"},
		{"form POST", open, req{method: "POST", ctype: "application/x-www-form-urlencoded", body: "a=b"}, http.StatusUnsupportedMediaType, "application/json"},
		{"cross-site POST", open, req{method: "POST", site: "cross-site"}, http.StatusForbidden, "cross-site"},
		{"cross-site DELETE", open, req{method: "DELETE", site: "cross-site"}, http.StatusForbidden, "cross-site"},
		{"cross-site GET is read-only", open, req{site: "cross-site"}, 0, ""},
		{"foreign Origin", open, req{method: "DELETE", origin: "https://evil.example"}, http.StatusForbidden, "https://evil.example"},
		{"same Origin", open, req{method: "DELETE", origin: "http://127.0.0.1:8080", site: "same-origin"}, 0, ""},
		{"configured Origin", withOrigin, req{method: "POST", origin: "https://panel.example", site: "cross-site", ctype: "application/json", body: "{}"}, 0, ""},
		{"token: remote clients may try", withToken, req{remote: "192.0.2.7:4000", host: "box.example"}, 0, ""},
		{"token: still no cross-site POST", withToken, req{method: "POST", site: "cross-site", remote: "192.0.2.7:4000"}, http.StatusForbidden, "cross-site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.ApplyDefaults(func(string) string { return "" })
			a := &App{cfg: cfg}
			r := loop(tc.r)
			hr := httptest.NewRequest(r.method, "/api/v1/egress", strings.NewReader(r.body))
			hr.Host, hr.RemoteAddr = r.host, r.remote
			for k, v := range map[string]string{"Origin": r.origin, "Sec-Fetch-Site": r.site, "Content-Type": r.ctype} {
				if v != "" {
					hr.Header.Set(k, v)
				}
			}
			err := a.trusted(hr)
			if tc.code == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			pe, ok := errors.AsType[*problem.Error](err)
			if !ok || pe.Code != tc.code || !strings.Contains(pe.Msg, tc.want) {
				t.Fatalf("got %v, want %d saying %q", err, tc.code, tc.want)
			}
		})
	}
}

func TestTLSWarning(t *testing.T) {
	for _, tc := range []struct {
		listen, mode string
		warn         bool
	}{
		{"0.0.0.0:8443", "self-signed", true},
		{"192.0.2.1:443", "self-signed", true},
		{"127.0.0.1:8443", "self-signed", false},
		{"0.0.0.0:443", "acme", false},
		{"0.0.0.0:443", "manual", false},
	} {
		if got := tlsWarning(tc.listen, tc.mode) != ""; got != tc.warn {
			t.Errorf("listen %s, tls %s: warned %v, want %v", tc.listen, tc.mode, got, tc.warn)
		}
	}
}
