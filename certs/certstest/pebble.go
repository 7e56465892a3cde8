package certstest

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

// pebbleInstall is what ./test.sh runs to install Pebble.
const pebbleInstall = "go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1"

// Pebble is a running Pebble ACME test server on 127.0.0.1.
type Pebble struct {
	// DirURL is the ACME directory.
	DirURL string
	// CARoot is a PEM file that trusts Pebble's own HTTPS listener, for
	// certs.Config.CARoot.
	CARoot string
	// IssuerRoots trusts the certificates Pebble issues, for the clients of
	// a server that got one.
	IssuerRoots *x509.CertPool

	cmd  *exec.Cmd
	out  *LogTap
	done chan struct{}
}

// PebbleOptions shape a Pebble run.
type PebbleOptions struct {
	// AlwaysValid skips challenge validation, for names that do not resolve
	// here.
	AlwaysValid bool
	// HTTPPort and TLSPort are where Pebble's validator connects on
	// 127.0.0.1 for HTTP-01 and TLS-ALPN-01; 0 picks a free port. They
	// matter only without AlwaysValid.
	HTTPPort, TLSPort int
}

// pebbleBinary finds pebble on PATH or in $(go env GOPATH)/bin, failing the
// test with the install command when it is in neither: the ACME tests are
// the only check of that path, so they must not skip.
func pebbleBinary(t testing.TB) string {
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
	t.Fatalf("pebble (the ACME test server) is not on PATH or in $(go env GOPATH)/bin; install it with:\n\t%s\n(./test.sh installs it)", pebbleInstall)
	return ""
}

// StartPebble runs Pebble with a config of its own on ephemeral loopback
// ports and stops it when the test ends. Without AlwaysValid its validator
// really connects, so certificates are for IP identifiers (RFC 8738), which
// need no DNS.
func StartPebble(t testing.TB, o PebbleOptions) *Pebble {
	t.Helper()
	bin := pebbleBinary(t)
	dir := t.TempDir()
	certPEM, keyPEM, leaf := KeyPair(t)
	certPath, keyPath := filepath.Join(dir, "pebble-cert.pem"), filepath.Join(dir, "pebble-key.pem")
	writeFile(t, certPath, certPEM)
	writeFile(t, keyPath, keyPEM)
	if o.HTTPPort == 0 {
		o.HTTPPort = FreePort(t)
	}
	if o.TLSPort == 0 {
		o.TLSPort = FreePort(t)
	}
	acmeAddr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	mgmtAddr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	cfgJSON, err := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress":           acmeAddr,
		"managementListenAddress": mgmtAddr,
		"certificate":             certPath,
		"privateKey":              keyPath,
		"httpPort":                o.HTTPPort,
		"tlsPort":                 o.TLSPort,
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
	writeFile(t, cfgPath, cfgJSON)

	p := &Pebble{
		DirURL: "https://" + acmeAddr + "/dir",
		CARoot: certPath,
		out:    &LogTap{},
		done:   make(chan struct{}),
	}
	p.cmd = exec.Command(bin, "-config", cfgPath)
	p.cmd.Dir = dir
	// No sleeping validator, no nonce rejections to retry, and no authz
	// reuse: every order is validated, so a test of a challenge path cannot
	// pass on an earlier validation.
	p.cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	if o.AlwaysValid {
		p.cmd.Env = append(p.cmd.Env, "PEBBLE_VA_ALWAYS_VALID=1")
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("pebble output:\n%s", p.out)
		}
	})

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: PoolOf(leaf)}}
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
	Eventually(t, 10*time.Second, "pebble serves its directory", func() bool {
		select {
		case <-p.done:
			t.Fatalf("pebble exited early:\n%s", p.out)
		default:
		}
		_, err := get(p.DirURL)
		return err == nil
	})
	rootPEM, err := get("https://" + mgmtAddr + "/roots/0")
	if err != nil {
		t.Fatalf("pebble issuing root: %v", err)
	}
	p.IssuerRoots = x509.NewCertPool()
	if !p.IssuerRoots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble issuing root is not PEM: %q", rootPEM)
	}
	return p
}

// Stop kills Pebble and waits for it; safe to call more than once.
func (p *Pebble) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
