package certs

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"whipgate/certs/certstest"
)

// pebbleACME begins an ACME test: the leak check, Pebble started with
// opts, a log, and the config of a Manager that asks Pebble for domain
// over loopback.
func pebbleACME(t *testing.T, opts certstest.PebbleOptions, domain string) (*certstest.Pebble, Config, *slog.Logger) {
	t.Helper()
	checkLeaks(t)
	peb := certstest.StartPebble(t, opts)
	log, _ := certstest.NewLog(t)
	return peb, Config{
		Mode:       ModeACME,
		Domains:    []string{domain},
		CA:         peb.DirURL,
		CARoot:     peb.CARoot,
		Storage:    t.TempDir(),
		HTTPPort:   certstest.FreePort(t),
		HTTPSPort:  certstest.FreePort(t),
		ListenHost: "127.0.0.1",
	}, log
}

// newACME is a Manager for cfg, closed when the test ends.
func newACME(t *testing.T, cfg Config, log *slog.Logger) *Manager {
	t.Helper()
	m, err := New(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// A certificate obtained from a real ACME server is served, verifies for the name, and
// is reused from storage by the next Manager with the CA gone.
func TestACMEObtainThenReuseWithoutCA(t *testing.T) {
	const name = "whipgate.test"
	peb, cfg, log := pebbleACME(t, certstest.PebbleOptions{AlwaysValid: true}, name)

	first, err := New(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveHTTPS(t, first.TLSConfig())
	getOverHTTPS(t, addr, name, peb.IssuerRoots)
	leaf := certstest.ServedLeaf(t, addr, name, peb.IssuerRoots)
	if got, want := Fingerprint(leaf), first.Fingerprint(); got != want {
		t.Fatalf("served leaf %s, Manager reports %s", got, want)
	}
	if leaf.DNSNames[0] != name {
		t.Fatalf("leaf names %v, want %s", leaf.DNSNames, name)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// With Pebble gone, a new order would fail; the certificate must come from storage.
	peb.Stop()
	second, err := New(t.Context(), cfg, log)
	if err != nil {
		t.Fatalf("restart on the same storage without the CA: %v", err)
	}
	defer second.Close()
	addr = serveHTTPS(t, second.TLSConfig())
	if got, want := Fingerprint(certstest.ServedLeaf(t, addr, name, peb.IssuerRoots)), Fingerprint(leaf); got != want {
		t.Fatalf("after restart the server sends %s, want the stored certificate %s", got, want)
	}
}

// The Manager's HTTP listener answers a real HTTP-01 validation and redirects other
// requests to HTTPS.
func TestACMEHTTP01(t *testing.T) {
	httpPort := certstest.FreePort(t)
	// An IP identifier (RFC 8738) lets Pebble's validator connect without DNS.
	peb, cfg, log := pebbleACME(t, certstest.PebbleOptions{HTTPPort: httpPort}, "127.0.0.1")
	cfg.HTTPPort = httpPort
	cfg.DisableTLSALPNChallenge = true
	cfg.Email = "ops@whipgate.test"

	m := newACME(t, cfg, log)
	if got, want := m.HTTPAddr(), fmt.Sprintf("127.0.0.1:%d", httpPort); got != want {
		t.Fatalf("HTTPAddr %s, want %s", got, want)
	}
	if protos := m.TLSConfig().NextProtos; strings.Join(protos, ",") != "h2,http/1.1" {
		t.Fatalf("NextProtos %v with TLS-ALPN-01 disabled, want [h2 http/1.1]", protos)
	}
	addr := serveHTTPS(t, m.TLSConfig())
	// No SNI for an IP; the certificate must still verify for the IP.
	getOverHTTPS(t, addr, "127.0.0.1", peb.IssuerRoots)

	client := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{},
	}
	defer client.CloseIdleConnections()
	resp, err := client.Post("http://"+m.HTTPAddr()+"/whip/main?x=1", "application/sdp", strings.NewReader("v=0"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := fmt.Sprintf("https://127.0.0.1:%d/whip/main?x=1", cfg.HTTPSPort)
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("plain HTTP POST: got %s to %q, want 308 to %q", resp.Status, resp.Header.Get("Location"), want)
	}
}

// A real TLS-ALPN-01 validation, first by certmagic's own temporary listener inside New,
// then, for a forced renewal, by an HTTPS server using TLSConfig on the HTTPS port.
func TestACMETLSALPN01(t *testing.T) {
	httpsPort := certstest.FreePort(t)
	peb, cfg, log := pebbleACME(t, certstest.PebbleOptions{TLSPort: httpsPort}, "127.0.0.1")
	cfg.HTTPSPort = httpsPort
	cfg.DisableHTTPChallenge = true

	m := newACME(t, cfg, log)
	if protos := m.TLSConfig().NextProtos; strings.Join(protos, ",") != "h2,http/1.1,acme-tls/1" {
		t.Fatalf("NextProtos %v, want [h2 http/1.1 acme-tls/1]", protos)
	}
	// Count the validator's handshakes, to show the renewal went through TLSConfig.
	tc := m.TLSConfig()
	var alpnHellos atomic.Int32
	getCert := tc.GetCertificate
	tc.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if slices.Contains(hello.SupportedProtos, "acme-tls/1") {
			alpnHellos.Add(1)
		}
		return getCert(hello)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", httpsPort))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveHTTPSOn(t, ln, tc)
	getOverHTTPS(t, addr, "127.0.0.1", peb.IssuerRoots)

	// The port is ours now, so certmagic cannot listen there itself and Pebble's
	// validator (with no authz reuse) has to complete acme-tls/1 with our server.
	// Pebble 2.10 still reuses a valid authorization 1 % of the time at
	// PEBBLE_AUTHZREUSE=0 (it creates a new one when rand.Intn(100) > 0), and
	// then validates nothing: such a renewal is forced again, up to 3 times.
	for try := 0; try < 3 && alpnHellos.Load() == 0; try++ {
		if err := m.acme.magic.RenewCertSync(t.Context(), "127.0.0.1", true); err != nil {
			t.Fatalf("renewal validated through TLSConfig: %v", err)
		}
	}
	if alpnHellos.Load() == 0 {
		t.Fatal("3 renewals succeeded without an acme-tls/1 handshake on our server")
	}
}

// A CA that cannot be reached fails New with the CA named, and leaves nothing running
// or bound.
func TestACMEUnreachableCAFailsNew(t *testing.T) {
	checkLeaks(t)
	log, _ := certstest.NewLog(t)
	cfg := Config{
		Mode:       ModeACME,
		Domains:    []string{"whipgate.test"},
		CA:         fmt.Sprintf("https://127.0.0.1:%d/dir", certstest.FreePort(t)),
		Storage:    t.TempDir(),
		HTTPPort:   certstest.FreePort(t),
		HTTPSPort:  certstest.FreePort(t),
		ListenHost: "127.0.0.1",
	}
	start := time.Now()
	m, err := New(t.Context(), cfg, log)
	if err == nil {
		m.Close()
		t.Fatal("New succeeded with no CA listening")
	}
	t.Logf("New failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	mustContain(t, err.Error(), cfg.CA)
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.HTTPPort))
	if err != nil {
		t.Fatalf("HTTP port still bound after the failed New: %v", err)
	}
	ln.Close()
}
