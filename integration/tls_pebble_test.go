package integration

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const pebbleInstall = "go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1"

// pebble is a running Pebble ACME test server on 127.0.0.1.
type pebble struct {
	dirURL string // ACME directory
	caRoot string // PEM file that Pebble's own HTTPS listener is trusted with (tls.ca_root)
	// issuerRoots trusts the certificates Pebble issues, for clients of whipgate.
	issuerRoots *x509.CertPool

	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

// pebbleBinary finds pebble on PATH or in $(go env GOPATH)/bin, failing the test
// with the install command when it is in neither.
func pebbleBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("pebble"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "pebble")
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	t.Fatalf("pebble (the ACME test server) is not on PATH or in $(go env GOPATH)/bin; install it with:\n\t%s\n(bash .ci/run installs it)", pebbleInstall)
	return ""
}

// startPebble runs Pebble on ephemeral loopback ports and stops it when the test
// ends. Its validator really connects: to 127.0.0.1:httpPort for HTTP-01 and to
// 127.0.0.1:tlsPort for TLS-ALPN-01, so certificates are for IP identifiers
// (RFC 8738), which need no DNS.
func startPebble(t *testing.T, httpPort, tlsPort int) *pebble {
	t.Helper()
	bin := pebbleBinary(t)
	dir := t.TempDir()
	certPEM, keyPEM, pebbleLeaf := newKeyPair(t)
	certPath, keyPath := filepath.Join(dir, "pebble-cert.pem"), filepath.Join(dir, "pebble-key.pem")
	replaceFile(t, certPath, certPEM)
	replaceFile(t, keyPath, keyPEM)
	acmeAddr := fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t))
	mgmtAddr := fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t))
	cfgJSON, err := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress":           acmeAddr,
		"managementListenAddress": mgmtAddr,
		"certificate":             certPath,
		"privateKey":              keyPath,
		"httpPort":                httpPort,
		"tlsPort":                 tlsPort,
		"ocspResponderURL":        "",
		"retryAfter":              map[string]int{"authz": 0, "order": 0},
		"keyAlgorithm":            "ecdsa",
		"profiles": map[string]any{
			"default": map[string]any{"description": "test", "validityPeriod": 7776000},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "pebble-config.json")
	replaceFile(t, cfgPath, cfgJSON)

	p := &pebble{
		dirURL: "https://" + acmeAddr + "/dir",
		caRoot: certPath,
		out:    &lockedBuffer{},
		done:   make(chan struct{}),
	}
	p.cmd = exec.Command(bin, "-config", cfgPath)
	p.cmd.Dir = dir
	// No sleeping validator, no nonce rejections to retry, and no authz reuse, so
	// every order is really validated.
	p.cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("pebble output:\n%s", p.out)
		}
	})

	client := httpsClient(t, poolOf(pebbleLeaf))
	get := func(url string) ([]byte, error) {
		resp, err := client.Get(url)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return body, err
	}
	waitUntil(t, 10*time.Second, "pebble to serve its directory", func() bool {
		select {
		case <-p.done:
			t.Fatalf("pebble exited early:\n%s", p.out)
		default:
		}
		_, err := get(p.dirURL)
		return err == nil
	})
	rootPEM, err := get("https://" + mgmtAddr + "/roots/0")
	if err != nil {
		t.Fatalf("pebble issuing root: %v", err)
	}
	p.issuerRoots = x509.NewCertPool()
	if !p.issuerRoots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble issuing root is not PEM: %q", rootPEM)
	}
	return p
}

// stop kills Pebble and waits for it; safe to call more than once.
func (p *pebble) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}
