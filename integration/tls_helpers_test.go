package integration

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

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
