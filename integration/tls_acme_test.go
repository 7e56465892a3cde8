package integration

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"whipgate/certs"
	"whipgate/certs/certstest"
)

// TestTLSACMEWithPebble: whipgate, configured only through its config file,
// gets a certificate from a real ACME server whose validator connects back to
// the ports whipgate was given; a client trusting only Pebble's issuing root
// plays the test stream over verified HTTP/2, plain HTTP redirects there, and a
// restart with the CA gone serves the stored certificate without a new order.
func TestTLSACMEWithPebble(t *testing.T) {
	bin := buildWhipgate(t)
	httpPort, httpsPort := certstest.FreePort(t), certstest.FreePort(t)
	peb := certstest.StartPebble(t, certstest.PebbleOptions{HTTPPort: httpPort, TLSPort: httpsPort})

	// https_port is left to its default, listen's port: that is where Pebble
	// sends TLS-ALPN-01 validations and where the redirects must point.
	config := filepath.Join(t.TempDir(), "whipgate.yaml")
	replaceFile(t, config, fmt.Appendf(nil, `listen: 127.0.0.1:%d
tls:
  mode: acme
  domains: ["127.0.0.1"]
  ca: %q
  ca_root: %q
  storage: %q
  http_port: %d
  listen_host: 127.0.0.1
test_source: {}
`, httpsPort, peb.DirURL, peb.CARoot, t.TempDir(), httpPort))
	args := []string{"-config", config, "-udp", "127.0.0.1:0", "-state-dir", t.TempDir()}

	first := startWhipgateProcess(t, "first", bin, args...)
	base := fmt.Sprintf("https://127.0.0.1:%d", httpsPort)
	if first.url != base {
		t.Fatalf("whipgate says it runs at %s, want %s", first.url, base)
	}
	if !strings.Contains(first.stderr.String(), `msg="certificate obtained successfully"`) {
		t.Fatalf("first start did not log an obtained certificate")
	}
	client := httpsClient(t, peb.IssuerRoots)
	resp, _ := getHTTP2(t, client, base+"/healthz")
	leaf := resp.TLS.PeerCertificates[0]
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("served certificate is for %v %v, want the IP 127.0.0.1", leaf.DNSNames, leaf.IPAddresses)
	}

	v := watchWith(t, base+"/whep/test/main", watchOptions{client: client})
	v.waitFrames(30, 10*time.Second)
	v.close()

	// Plain HTTP on http_port is answered by the same process with a 308 to HTTPS
	// on listen's port, which the client then follows.
	var hops []string
	follow := &http.Client{
		Transport: client.Transport,
		Timeout:   10 * time.Second,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			hops = append(hops, fmt.Sprintf("%d %s", req.Response.StatusCode, req.URL))
			return nil
		},
	}
	resp, _ = getHTTP2(t, follow, fmt.Sprintf("http://127.0.0.1:%d/play/test?layer=preview", httpPort))
	if want := "308 " + base + "/play/test?layer=preview"; len(hops) != 1 || hops[0] != want {
		t.Fatalf("plain HTTP GET went through %q, want one hop %q", hops, want)
	}
	client.CloseIdleConnections() // see TestTLSSelfSignedExampleRun
	first.stop(t, syscall.SIGINT, 10*time.Second)

	// Without the CA any new order would fail and whipgate would not start.
	peb.Stop()
	second := startWhipgateProcess(t, "second", bin, args...)
	if strings.Contains(second.stderr.String(), `msg="obtaining certificate"`) {
		t.Fatalf("restart started a new order instead of using the stored certificate")
	}
	resp, _ = getHTTP2(t, client, base+"/healthz")
	if got, want := certs.Fingerprint(resp.TLS.PeerCertificates[0]), certs.Fingerprint(leaf); got != want {
		t.Fatalf("after a restart the server sends %s, want the stored %s", got, want)
	}
	client.CloseIdleConnections()
	second.stop(t, syscall.SIGINT, 10*time.Second)
}
