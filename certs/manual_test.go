package certs

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"whipgate/certs/certstest"
)

// writePair writes a fresh self-signed certificate for 127.0.0.1 to the two files and
// returns it parsed.
func writePair(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	certPEM, keyPEM, err := newSelfSigned(wantedSANs(nil, nil), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Key first, as a deploy script might; the loop may see the pair half-replaced.
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return parseCertPEM(t, certPEM)
}

func TestManualReloadsReplacedFilesAndKeepsOldOnBrokenOnes(t *testing.T) {
	checkLeaks(t)
	log, logs := certstest.NewLog(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	a := writePair(t, certFile, keyFile)

	m, err := New(t.Context(), Config{
		Mode: ModeManual, CertFile: certFile, KeyFile: keyFile, ReloadInterval: 10 * time.Millisecond,
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	addr := serveHTTPS(t, m.TLSConfig())
	getOverHTTPS(t, addr, "127.0.0.1", certstest.PoolOf(a))
	served := func() string { return Fingerprint(certstest.ServedLeaf(t, addr, "127.0.0.1", nil)) }
	if served() != Fingerprint(a) || m.Fingerprint() != Fingerprint(a) {
		t.Fatalf("serving %s (Manager says %s), want the file's %s", served(), m.Fingerprint(), Fingerprint(a))
	}

	b := writePair(t, certFile, keyFile)
	certstest.Eventually(t, 10*time.Second, "the replaced certificate is served", func() bool { return served() == Fingerprint(b) })
	if m.Fingerprint() != Fingerprint(b) {
		t.Fatalf("Manager reports %s, want %s", m.Fingerprint(), Fingerprint(b))
	}

	logs.Reset()
	// Atomically, so the loop cannot also see an empty file and report twice.
	if err := writeFileAtomic(certFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	certstest.Eventually(t, 10*time.Second, "an error about the broken file is logged", func() bool {
		return strings.Contains(logs.String(), "level=ERROR msg=\"keeping the previous certificate\"")
	})
	if got := served(); got != Fingerprint(b) {
		t.Fatalf("after a broken file the server sends %s, want the previous %s", got, Fingerprint(b))
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Fatalf("the broken file was reported %d times, want once:\n%s", n, logs)
	}

	// Repairing the files is picked up like any other change.
	c := writePair(t, certFile, keyFile)
	certstest.Eventually(t, 10*time.Second, "the repaired certificate is served", func() bool { return served() == Fingerprint(c) })
}

func TestManualUnusableFilesFailNew(t *testing.T) {
	log, _ := certstest.NewLog(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if _, err := New(t.Context(), Config{Mode: ModeManual, CertFile: certFile, KeyFile: keyFile}, log); err == nil {
		t.Fatal("New succeeded with missing files")
	} else {
		mustContain(t, err.Error(), certFile)
	}
	writePair(t, certFile, keyFile)
	other := filepath.Join(dir, "other-key.pem")
	writePair(t, filepath.Join(dir, "other-cert.pem"), other)
	if _, err := New(t.Context(), Config{Mode: ModeManual, CertFile: certFile, KeyFile: other}, log); err == nil {
		t.Fatal("New succeeded with a key that does not match the certificate")
	} else {
		mustContain(t, err.Error(), "private key does not match")
	}
}
