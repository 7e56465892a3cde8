package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// checkLeaks fails the test if goroutines started during it are still running once all
// of its cleanups are done. Call it first, so its cleanup runs last.
//
// certmagic leaves two of its own behind, which are ignored by name: the rate limiter
// it keeps per CA and account in a package-level map and never stops, and the
// goroutine that refreshes a storage lock file, which notices the release only at its
// next 5 s tick.
func checkLeaks(t *testing.T) {
	t.Helper()
	opts := []goleak.Option{
		goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.(*RingBufferRateLimiter).loop"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"),
	}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// serveHTTPS serves a 200 "ok" over TLS with tc on 127.0.0.1 and returns the address.
// It does not use httptest, whose StartTLS adds its own certificate to the config.
func serveHTTPS(t *testing.T, tc *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveHTTPSOn(t, ln, tc)
}

func serveHTTPSOn(t *testing.T, ln net.Listener, tc *tls.Config) string {
	t.Helper()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}),
		TLSConfig:         tc,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(slog.NewTextHandler(t.Output(), nil), slog.LevelWarn),
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("https server: %v", err)
		}
	})
	return ln.Addr().String()
}

// getOverHTTPS makes a GET to addr as serverName and checks that it was served over
// HTTP/2 with a 200.
func getOverHTTPS(t *testing.T, addr, serverName string, roots *x509.CertPool) {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{ServerName: serverName, RootCAs: roots},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/")
	if err != nil {
		t.Fatalf("GET https://%s as %q: %v", addr, serverName, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "ok" || resp.Proto != "HTTP/2.0" {
		t.Fatalf("GET https://%s: got %s %s %q, want HTTP/2.0 200 \"ok\"", addr, resp.Proto, resp.Status, body)
	}
}

func parseCertPEM(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatalf("no PEM block in %q", certPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func mustContain(t *testing.T, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Fatalf("got %q, want it to contain %q", got, want)
	}
}
