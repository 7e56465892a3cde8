package certs

import (
	"net"
	"net/http"
	"strconv"
	"strings"
)

// redirectToHTTPS sends every request to the same host and path over HTTPS on
// httpsPort. 308 keeps the method and body, so a WHIP POST sent to http:// is
// repeated as a POST rather than turned into a GET.
func redirectToHTTPS(httpsPort int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		} else {
			host = strings.Trim(host, "[]") // a bracketed IPv6 address without a port
		}
		if host == "" {
			http.Error(w, "use HTTPS; this request has no Host to redirect to", http.StatusBadRequest)
			return
		}
		if httpsPort != defaultHTTPSPort {
			host = net.JoinHostPort(host, strconv.Itoa(httpsPort))
		} else if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}
