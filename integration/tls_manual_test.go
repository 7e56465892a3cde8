package integration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"whipgate/certs"
	"whipgate/certs/certstest"
	"whipgate/cmd"
)

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
