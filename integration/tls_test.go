package integration

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"whipgate/certs"
	"whipgate/certs/certstest"
	"whipgate/cmd"
)

// TLS, in each mode whipgate has: manual files reloaded while running,
// a self-signed certificate kept across restarts, ACME against Pebble, and
// a browser that plays over HTTPS; the helpers they share come first.

// hostPort is the host:port of a base URL such as app.URL().
func hostPort(t *testing.T, baseURL string) string {
	t.Helper()
	hp, ok := strings.CutPrefix(baseURL, "https://")
	if !ok {
		t.Fatalf("URL %q is not https", baseURL)
	}
	return hp
}

// spkiPin is what Chromium's --ignore-certificate-errors-spki-list takes: the
// base64 SHA-256 of the certificate's SubjectPublicKeyInfo.
func spkiPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// httpsClient trusts only roots and offers HTTP/2. A Transport with its own
// TLSClientConfig does not try HTTP/2 unless told to.
func httpsClient(t *testing.T, roots *x509.CertPool) *http.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// getHTTP2 GETs url with client and fails unless the answer is a 200 over
// HTTP/2 with a verified chain; it returns the response with its body read.
func getHTTP2(t *testing.T, client *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/2.0" {
		t.Fatalf("GET %s: got %s %s, want HTTP/2.0 200", url, resp.Proto, resp.Status)
	}
	if resp.TLS == nil || len(resp.TLS.VerifiedChains) == 0 {
		t.Fatalf("GET %s: no verified chain", url)
	}
	return resp, string(body)
}

// replaceFile writes data beside path and renames it over path, as a careful
// deploy does, so a reader sees the old file or the new one and nothing between.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".new")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestTLSManualReloadWithoutRestart: whipgate in manual mode serves the files'
// certificate; replacing the files changes what the running server sends, and a
// broken file keeps the previous certificate and logs one error.
func TestTLSManualReloadWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	certA, keyA, a := certstest.KeyPair(t)
	replaceFile(t, keyFile, keyA)
	replaceFile(t, certFile, certA)

	app := startGateway(t, func(c *cmd.Config) {
		c.TLS = certs.Config{Mode: certs.ModeManual, CertFile: certFile, KeyFile: keyFile, ReloadInterval: 20 * time.Millisecond}
	})
	logs := app.log
	addr := hostPort(t, app.URL())
	served := func() string { return certs.Fingerprint(certstest.ServedLeaf(t, addr, "", nil)) }
	if got, want := served(), certs.Fingerprint(a); got != want {
		t.Fatalf("serving %s, want the file's %s", got, want)
	}
	getHTTP2(t, httpsClient(t, certstest.PoolOf(a)), app.URL()+"/healthz")

	// Key first, then certificate, each replaced atomically: the loop may see the
	// new key with the old certificate for a moment, which it must ride out.
	certB, keyB, b := certstest.KeyPair(t)
	replaceFile(t, keyFile, keyB)
	replaceFile(t, certFile, certB)
	certstest.Eventually(t, 10*time.Second, "the replaced certificate is served", func() bool {
		return served() == certs.Fingerprint(b)
	})
	if got := app.Certs().Fingerprint(); got != certs.Fingerprint(b) {
		t.Fatalf("the certs manager reports %s, want %s", got, certs.Fingerprint(b))
	}
	// A client that trusts only the new certificate gets the whole service.
	trustB := httpsClient(t, certstest.PoolOf(b))
	getHTTP2(t, trustB, app.URL()+"/api/v1/streams")
	watchWith(t, app.URL()+"/whep/test/preview", watchOptions{client: trustB})

	logs.Reset()
	replaceFile(t, certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"))
	const keepMsg = `level=ERROR msg="keeping the previous certificate"`
	certstest.Eventually(t, 10*time.Second, "an error about the broken file is logged", func() bool {
		return strings.Contains(logs.String(), keepMsg)
	})
	if got := served(); got != certs.Fingerprint(b) {
		t.Fatalf("after a broken file the server sends %s, want the previous %s", got, certs.Fingerprint(b))
	}
	getHTTP2(t, trustB, app.URL()+"/healthz")
	// Let a few more polls pass: the same broken file is reported once, not per poll.
	time.Sleep(100 * time.Millisecond)
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Fatalf("the broken file was reported %d times, want once:\n%s", n, logs)
	}
}

const selfSignedExample = "../examples/tls-self-signed.yaml"

// TestTLSSelfSignedExampleFile: the example says what its comments promise.
func TestTLSSelfSignedExampleFile(t *testing.T) {
	cfg, err := cmd.LoadConfig(selfSignedExample)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8443" || cfg.TLS.Mode != certs.ModeSelfSigned || !cfg.TestSource.On() {
		t.Fatalf("%s: listen %q, tls.mode %q, test source on %v; want 127.0.0.1:8443, self-signed, on",
			selfSignedExample, cfg.Listen, cfg.TLS.Mode, cfg.TestSource.On())
	}
}

// runResult is what one cmd.Run of the example printed.
type runResult struct {
	url, fingerprint, curl string
}

// runExample runs whipgate's command line on the example with the listen and
// UDP addresses moved to ephemeral ports, waits for the welcome text and
// returns what it printed and a stop function that fails the test unless Run
// returns nil.
func runExample(t *testing.T, stateDir string) (runResult, func()) {
	t.Helper()
	args := []string{"-config", selfSignedExample, "-listen", "127.0.0.1:0", "-udp", "127.0.0.1:0", "-state-dir", stateDir}
	run := certstest.Background(t, func(ctx context.Context, stdout, stderr io.Writer) error {
		return cmd.Run(ctx, args, func(string) string { return "" }, stdout, io.MultiWriter(t.Output(), stderr))
	})
	// The try line comes last of the welcome text.
	r := runResult{curl: run.Line(t, "try: ", 15*time.Second)}
	r.url = run.Line(t, "whipgate is running at ", 0)
	r.fingerprint = run.Line(t, "TLS certificate SHA-256: ", 0)
	if !strings.HasPrefix(r.url, "https://127.0.0.1:") || r.fingerprint == "" {
		t.Fatalf("welcome text gives URL %q and fingerprint %q; want an https URL on 127.0.0.1 and a fingerprint:\n%s",
			r.url, r.fingerprint, run.Stdout.String())
	}
	return r, func() { run.Stop(t) }
}

// TestTLSSelfSignedExampleRun: the example run through the command line serves
// HTTPS over HTTP/2 with the certificate whose fingerprint it printed, and the
// same certificate again after a restart on the same state directory.
func TestTLSSelfSignedExampleRun(t *testing.T) {
	stateDir := t.TempDir()
	first, stop := runExample(t, stateDir)
	leaf := certstest.ServedLeaf(t, hostPort(t, first.url), "", nil)
	if got := certs.Fingerprint(leaf); got != first.fingerprint {
		t.Fatalf("printed fingerprint %s, served certificate %s", first.fingerprint, got)
	}
	if !strings.Contains(first.curl, " -k ") {
		t.Fatalf("printed curl line %q lacks -k, which a self-signed certificate needs", first.curl)
	}
	// A client that has pinned the certificate (trusts exactly it) verifies it
	// for 127.0.0.1 and talks HTTP/2.
	client := httpsClient(t, certstest.PoolOf(leaf))
	_, body := getHTTP2(t, client, first.url+"/api/v1/streams")
	var doc struct {
		Streams []struct {
			Name string `json:"name"`
		} `json:"streams"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || len(doc.Streams) != 1 || doc.Streams[0].Name != "test" {
		t.Fatalf("/api/v1/streams gave %s (%v), want the test stream", body, err)
	}
	if _, page := getHTTP2(t, client, first.url+"/play/test"); !strings.Contains(strings.ToLower(page), "<html") {
		t.Fatalf("/play/test is not a page: %.200q", page)
	}
	v := watchWith(t, first.url+"/whep/test/preview", watchOptions{client: client})
	v.waitFrames(30, 10*time.Second)
	v.close()
	// An idle HTTP/2 connection still open at shutdown costs the server's
	// GOAWAY grace (1 s) before it closes; a browser tab would, a test need not.
	client.CloseIdleConnections()
	stop()

	second, stop := runExample(t, stateDir)
	defer stop()
	if second.fingerprint != first.fingerprint {
		t.Fatalf("after a restart on the same state dir the fingerprint is %s, want the kept %s",
			second.fingerprint, first.fingerprint)
	}
	if got := certs.Fingerprint(certstest.ServedLeaf(t, hostPort(t, second.url), "", nil)); got != first.fingerprint {
		t.Fatalf("after a restart the server sends %s, want the kept %s", got, first.fingerprint)
	}
	getHTTP2(t, httpsClient(t, certstest.PoolOf(leaf)), second.url+"/healthz")
}

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

// TestTLSBrowserPlaysOverHTTPS: headless Chromium, trusting the self-signed
// certificate by its public key only, opens the player over HTTPS and decodes
// frames from WHEP driven by the page's own fetch over that connection.
func TestTLSBrowserPlaysOverHTTPS(t *testing.T) {
	app := startGateway(t, func(c *cmd.Config) { c.TLS = certs.Config{Mode: certs.ModeSelfSigned} })
	if !strings.HasPrefix(app.URL(), "https://") {
		t.Fatalf("URL %s is not https", app.URL())
	}
	waitLive(t, app, "test")
	leaf := certstest.ServedLeaf(t, hostPort(t, app.URL()), "", nil)
	browser := newBrowser(t, chromedp.Flag("ignore-certificate-errors-spki-list", spkiPin(leaf)))
	tab := newTab(t, browser)
	if _, err := chromedp.Run(tab, chromedp.Navigate(app.URL()+"/play/test")); err != nil {
		t.Fatalf("navigate to %s/play/test: %v", app.URL(), err)
	}
	// The page is a secure context only if Chromium accepted the certificate
	// rather than showing an interstitial.
	origin, err := chromedp.Run(tab, chromedp.Evaluate[string]("window.isSecureContext ? location.origin : ''"))
	if err != nil {
		t.Fatal(err)
	}
	if origin != app.URL() {
		t.Fatalf("page origin %q (empty when not a secure context), want %s", origin, app.URL())
	}
	first := waitStats(t, tab, 15*time.Second, func(s pageStats) bool { return s.FramesDecoded > 0 })
	s := waitStats(t, tab, 10*time.Second, func(s pageStats) bool { return s.FramesDecoded > first.FramesDecoded+20 })
	t.Logf("over %s: %+v", app.URL(), s)
}
