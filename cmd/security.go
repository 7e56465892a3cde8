package cmd

import (
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"whipgate/whip/problem"
)

// apiTrust decides whom the control API (and /metrics) answers, before the
// token is checked:
//   - without an api_token only a loopback client (403 otherwise) that
//     names a Host this server answers to (421 otherwise), so that a web
//     page the operator visits cannot reach a loopback instance through
//     DNS rebinding;
//   - a state-changing call from a browser on another site is refused
//     (Sec-Fetch-Site: cross-site, or a foreign Origin), unless the origin
//     is configured: the API sends no CORS headers, but a browser sends a
//     form POST or a text/plain fetch cross-site without asking;
//   - a call with a body must say Content-Type: application/json (415).
//
// curl sends no Origin and no Sec-Fetch-Site, so the README's lines work.
func (a *App) apiTrust(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.trusted(r); err != nil {
			problem.Write(w, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *App) trusted(r *http.Request) error {
	if a.conf().APIToken == "" {
		if !remoteLoopback(r.RemoteAddr) {
			return problem.Errorf(http.StatusForbidden, "without an api_token the API answers loopback clients only")
		}
		if hosts := a.apiHosts(); !hostIn(r.Host, hosts) {
			return problem.Errorf(http.StatusMisdirectedRequest, "Host %q is not a name this server answers to without an api_token (allowed: %s; add one with http.allowed_hosts)", r.Host, strings.Join(hosts, ", "))
		}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	origin := r.Header.Get("Origin")
	allowed := origin != "" && slices.Contains(a.cfg.HTTP.AllowedOrigins, origin)
	if !allowed && r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return problem.Errorf(http.StatusForbidden, "a cross-site request may not change state (http.allowed_origins lists the origins that may)")
	}
	if !allowed && origin != "" && !sameOrigin(origin, r) {
		return problem.Errorf(http.StatusForbidden, "origin %q may not change state (http.allowed_origins lists the origins that may)", origin)
	}
	if r.ContentLength != 0 { // -1: a body of unknown length
		ct := r.Header.Get("Content-Type")
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return problem.Errorf(http.StatusUnsupportedMediaType, "a request body must be Content-Type: application/json, got %q", ct)
		}
	}
	return nil
}

// apiHosts are the Host names the API answers to without a token.
func (a *App) apiHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, _, err := net.SplitHostPort(a.cfg.Listen); err == nil && h != "" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
			hosts = append(hosts, h)
		}
	}
	if u, err := url.Parse(a.cfg.PublicURL); err == nil && u.Hostname() != "" {
		hosts = append(hosts, u.Hostname())
	}
	hosts = append(hosts, a.cfg.HTTP.AllowedHosts...)
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// hostIn reports whether a Host header (with or without a port, an IPv6
// address in brackets) names one of hosts.
func hostIn(hostport string, hosts []string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.Trim(h, "[]"), ".")
	for _, x := range hosts {
		if strings.EqualFold(h, x) {
			return true
		}
	}
	return false
}

// remoteLoopback reports whether a request came from a loopback address.
func remoteLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameOrigin reports whether origin is the origin the request was made to.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Scheme == scheme && strings.EqualFold(u.Host, r.Host)
}
