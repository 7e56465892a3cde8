package certs

import (
	"crypto/tls"
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
	caRoot string // PEM file Pebble's own HTTPS listener is trusted with (Config.CARoot)
	// issuerRoots trusts the certificates Pebble issues, for clients of our server.
	issuerRoots *x509.CertPool

	cmd  *exec.Cmd
	out  *logBuffer
	done chan struct{}
}

type pebbleOptions struct {
	// alwaysValid skips challenge validation, for names that do not resolve here.
	alwaysValid bool
	// httpPort and tlsPort are where Pebble's validator connects for HTTP-01 and
	// TLS-ALPN-01; they matter only without alwaysValid.
	httpPort, tlsPort int
}

// pebbleBinary finds pebble on PATH or in $(go env GOPATH)/bin, failing the test with
// the install command when it is in neither.
func pebbleBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("pebble"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "pebble")
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	t.Fatalf("pebble (the ACME test server) is not on PATH or in $(go env GOPATH)/bin; install it with:\n\t%s", pebbleInstall)
	return ""
}

// startPebble runs Pebble with a config of its own on ephemeral loopback ports and
// stops it when the test ends. Its HTTPS certificate is one of our self-signed ones.
func startPebble(t *testing.T, o pebbleOptions) *pebble {
	t.Helper()
	bin := pebbleBinary(t)
	dir := t.TempDir()

	certPEM, keyPEM, err := newSelfSigned(wantedSANs(nil, nil), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, "pebble-cert.pem"), filepath.Join(dir, "pebble-key.pem")
	if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if o.httpPort == 0 {
		o.httpPort = freePort(t)
	}
	if o.tlsPort == 0 {
		o.tlsPort = freePort(t)
	}
	acmeAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	mgmtAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           acmeAddr,
		"managementListenAddress": mgmtAddr,
		"certificate":             certPath,
		"privateKey":              keyPath,
		"httpPort":                o.httpPort,
		"tlsPort":                 o.tlsPort,
		"ocspResponderURL":        "",
		"retryAfter":              map[string]int{"authz": 0, "order": 0},
		"keyAlgorithm":            "ecdsa",
		"profiles": map[string]any{
			"default": map[string]any{"description": "test", "validityPeriod": 7776000},
		},
	}}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "pebble-config.json")
	if err := os.WriteFile(cfgPath, cfgJSON, 0o600); err != nil {
		t.Fatal(err)
	}

	p := &pebble{
		dirURL: "https://" + acmeAddr + "/dir",
		caRoot: certPath,
		out:    &logBuffer{},
		done:   make(chan struct{}),
	}
	p.cmd = exec.Command(bin, "-config", cfgPath)
	p.cmd.Dir = dir
	// No authz reuse: every order is validated, so a test of a challenge path cannot
	// pass on an earlier validation.
	p.cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	if o.alwaysValid {
		p.cmd.Env = append(p.cmd.Env, "PEBBLE_VA_ALWAYS_VALID=1")
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("pebble output:\n%s", p.out)
		}
	})

	trustPebble := x509.NewCertPool()
	trustPebble.AppendCertsFromPEM(certPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trustPebble}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
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
	waitFor(t, "pebble to serve its directory", func() bool {
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
		t.Fatalf("pebble root: %v", err)
	}
	p.issuerRoots = x509.NewCertPool()
	if !p.issuerRoots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble root is not PEM: %q", rootPEM)
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
	p.cmd.Process.Kill()
	<-p.done
}
