package integration

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"whipgate/certs"
	"whipgate/certs/certstest"
	"whipgate/cmd"
)

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
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &certstest.LogTap{}, &certstest.LogTap{}
	args := []string{"-config", selfSignedExample, "-listen", "127.0.0.1:0", "-udp", "127.0.0.1:0", "-state-dir", stateDir}
	done := make(chan error, 1)
	go func() {
		done <- cmd.Run(ctx, args, func(string) string { return "" }, stdout, io.MultiWriter(t.Output(), stderr))
	}()
	stop := func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("cmd.Run returned %v after its context ended", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("cmd.Run still running 10 s after its context ended")
		}
	}

	var r runResult
	deadline := time.Now().Add(15 * time.Second)
	for r.curl == "" {
		select {
		case err := <-done:
			cancel()
			t.Fatalf("cmd.Run %v ended early: %v\nstdout:\n%s", args, err, stdout)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("no welcome text within 15 s; stdout:\n%s", stdout)
		}
		time.Sleep(10 * time.Millisecond)
		for line := range strings.Lines(stdout.String()) {
			line = strings.TrimSpace(line)
			if v, ok := strings.CutPrefix(line, "whipgate is running at "); ok {
				r.url = v
			}
			if v, ok := strings.CutPrefix(line, "TLS certificate SHA-256: "); ok {
				r.fingerprint = v
			}
			if v, ok := strings.CutPrefix(line, "try: "); ok {
				r.curl = v
			}
		}
	}
	if !strings.HasPrefix(r.url, "https://127.0.0.1:") || r.fingerprint == "" {
		stop()
		t.Fatalf("welcome text gives URL %q and fingerprint %q; want an https URL on 127.0.0.1 and a fingerprint:\n%s",
			r.url, r.fingerprint, stdout)
	}
	return r, stop
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
