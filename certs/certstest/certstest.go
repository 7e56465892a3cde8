// Package certstest is a test kit for the certs package's tests and the
// integration tests: a Pebble ACME server on loopback, throwaway key pairs,
// free ports, a log tap, a waiter, a hand-made HTTP exchange and a command
// line run in the background. It imports nothing of whipgate, so
// certs' own (internal) tests can import it without a cycle.
package certstest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// KeyPair makes a self-signed ECDSA leaf for localhost and 127.0.0.1, valid
// from an hour ago for a day: the kind of certificate a deploy script drops
// into manual mode's files, and what Pebble's own listener serves.
func KeyPair(t testing.TB) (certPEM, keyPEM []byte, leaf *x509.Certificate) {
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
		Subject:               pkix.Name{CommonName: "whipgate test"},
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
	if leaf, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), leaf
}

// PoolOf is a pool that trusts exactly certs.
func PoolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// FreePort returns a loopback TCP port that was free a moment ago, for the
// configs (Pebble's, the ACME ports) that need a number before anything
// listens. It never returns a port it returned before in this process:
// a port closed at once is free again, and the kernel may hand it out on
// the next call (CI saw Pebble's TLS-ALPN-01 port equal its ACME port).
func FreePort(t testing.TB) int {
	t.Helper()
	freePorts.mu.Lock()
	defer freePorts.mu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if !freePorts.given[port] {
			freePorts.given[port] = true
			return port
		}
	}
	t.Fatal("certstest: no free port that was not handed out before")
	return 0
}

// freePorts are the ports FreePort has returned.
var freePorts = struct {
	mu    sync.Mutex
	given map[int]bool
}{given: map[int]bool{}}

// ServedLeaf completes a handshake with addr and returns the leaf the server
// sent. With nil roots it only looks and verifies nothing; serverName empty
// sends no SNI, like a client connecting by IP.
func ServedLeaf(t testing.TB, addr, serverName string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: serverName, RootCAs: roots, InsecureSkipVerify: roots == nil})
	if err != nil {
		t.Fatalf("TLS handshake with %s as %q: %v", addr, serverName, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// LogTap keeps what a logger or a child process writes, for a test to
// search. One from NewLogTap also copies it to the test's output until the
// test's cleanups have run, then stops: pion and certmagic call back on
// their own goroutines after a session or manager is closed, and writing to
// a finished test's output is a data race. The zero value only keeps.
type LogTap struct {
	mu  sync.Mutex
	buf bytes.Buffer
	out io.Writer
}

// NewLogTap returns a LogTap that also writes to t's output until cleanup.
// Cleanups run last-in first-out, so one made before a server still copies
// what the server logs while a later cleanup closes it.
func NewLogTap(t testing.TB) *LogTap {
	l := &LogTap{out: t.Output()}
	t.Cleanup(func() {
		l.mu.Lock()
		l.out = nil
		l.mu.Unlock()
	})
	return l
}

// NewLog is a text logger at Info into a new LogTap.
func NewLog(t testing.TB) (*slog.Logger, *LogTap) {
	tap := NewLogTap(t)
	return slog.New(slog.NewTextHandler(tap, nil)), tap
}

// Write keeps p, and copies it to the test's output while that is open.
func (l *LogTap) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if l.out != nil {
		return l.out.Write(p)
	}
	return len(p), nil
}

// String is everything written since the start or the last Reset.
func (l *LogTap) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Reset forgets what was kept, so a test can look for lines after a point.
func (l *LogTap) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Reset()
}

// Eventually fails the test unless cond holds within the time; within is a
// hang guard, not a speed assertion. It checks at once, then after pauses
// that grow from 10 ms to 100 ms, since a condition may be a field read or
// an HTTP or browser round trip.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for pause := 10 * time.Millisecond; !cond(); pause = min(2*pause, 100*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(pause)
	}
}

// NewRequest is a request with body and the headers in hdr; a "Host" in
// hdr sets the request's Host (net/http sends that, not a Host header).
func NewRequest(ctx context.Context, t testing.TB, method, url, body string, hdr map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if http.CanonicalHeaderKey(k) == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	return req
}

// Exchange sends req over client and returns the response with its body
// read and closed; failing to send or to read fails the test.
func Exchange(t testing.TB, client *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return resp, b
}
