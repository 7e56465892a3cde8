package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"whipgate/certs"
	"whipgate/cmd"
)

// lockedBuffer collects output written from several goroutines (a logger, a
// child process) for a test to search.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

// startTLSGateway is startGateway with the given TLS config and a copy of the
// log the test can search.
func startTLSGateway(t *testing.T, tc certs.Config) (*cmd.App, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(testOutput(t), logs), nil))
	cfg := cmd.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.WebRTC.UDPListen = "127.0.0.1:0"
	cfg.StateDir = t.TempDir()
	cfg.TLS = tc
	app, err := cmd.Start(t.Context(), cfg, nil, log)
	if err != nil {
		t.Fatalf("start whipgate with tls mode %s: %v", tc.Mode, err)
	}
	t.Cleanup(func() {
		if err := app.Close(context.Background()); err != nil {
			t.Errorf("close whipgate: %v", err)
		}
	})
	return app, logs
}

// hostPort is the host:port of a base URL such as app.URL().
func hostPort(t *testing.T, baseURL string) string {
	t.Helper()
	hp, ok := strings.CutPrefix(baseURL, "https://")
	if !ok {
		t.Fatalf("URL %q is not https", baseURL)
	}
	return hp
}

// servedLeaf completes a handshake with addr without verifying anything and
// returns the leaf the server sent; serverName empty sends no SNI, like a
// client connecting by IP.
func servedLeaf(t *testing.T, addr, serverName string) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
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

// watchOver is watch over an HTTP client of the test's choosing, for WHEP
// over HTTPS (watch uses http.DefaultClient, which trusts only the system roots).
func watchOver(t *testing.T, client *http.Client, url string) (*viewer, *http.Response) {
	t.Helper()
	v, resp := tryWatchWith(t, client, url, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHEP POST %s: got %s %s, want 201", url, resp.Status, v.answer)
	}
	return v, resp
}

// newKeyPair makes a self-signed ECDSA leaf for localhost and 127.0.0.1, the
// kind of certificate a deploy script would drop into manual mode's files.
func newKeyPair(t *testing.T) (certPEM, keyPEM []byte, leaf *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 96))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "whipgate integration test"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), leaf
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

// freeLoopbackPort returns a loopback TCP port that was free a moment ago, for
// configs that need a number before anything listens (Pebble's, ACME ports).
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitUntil polls cond every 10 ms until it holds; the deadline is a hang
// guard, not a speed assertion.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
