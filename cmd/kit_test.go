package cmd

// The test kit of package cmd: how a test starts a whipgate and talks to
// it. Every test in the package uses these; keep them few and plain. How a
// test writes a config file, fakes the environment and checks an error is
// configtest's, shared with package config; what Run writes to stdout and
// stderr from its goroutine a test reads from a certstest.LogTap.

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"whipgate/certs/certstest"
	"whipgate/internal/testkit"
	"whipgate/whip/rtc"
)

// testLog writes the app's warnings into the test's output, so a failure
// shows what the server did.
func testLog(t testing.TB) *slog.Logger { return testkit.LogAt(t, slog.LevelWarn) }

// loopbackConfig is a config that binds only ephemeral loopback ports and
// keeps its state in the test's directory, so tests run in parallel and
// leave nothing behind. It runs no test source: a test that wants one says so.
func loopbackConfig(t testing.TB) Config {
	return Config{
		Listen:   "127.0.0.1:0",
		StateDir: t.TempDir(),
		WebRTC:   rtc.Config{UDPListen: "127.0.0.1:0"},
	}
}

// startApp starts whipgate on loopbackConfig, changed by mutate (may be
// nil), and closes it when the test ends.
func startApp(t testing.TB, mutate func(*Config)) *App {
	t.Helper()
	cfg := loopbackConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	app, err := Start(t.Context(), cfg, nil, testLog(t))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := app.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return app
}

// request sends method url with an optional Bearer token and body, and
// returns the status and the body.
func request(t testing.TB, method, url, token, body string) (int, string) {
	t.Helper()
	resp, b := requestResp(t, method, url, token, body)
	return resp.StatusCode, b
}

// requestResp is request for a test that looks at the answer's headers
// too; the body is read and closed.
func requestResp(t testing.TB, method, url, token, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, string(b)
}

// runServer calls Run on a goroutine, as main does, and returns the URL
// its welcome text names, and its stdout. When the test ends, Run's context
// ends and Run must return nil.
func runServer(t testing.TB, args []string, getenv func(string) string) (string, *certstest.LogTap) {
	t.Helper()
	r := certstest.Background(t, func(ctx context.Context, stdout, stderr io.Writer) error {
		return Run(ctx, args, getenv, stdout, stderr)
	})
	return r.Line(t, "whipgate is running at ", 10*time.Second), &r.Stdout
}

// flagConfig is the config the server's command line args asks for with
// the environment getenv, as Run builds it before the defaults; args
// that do not parse fail the test.
func flagConfig(t testing.TB, args []string, getenv func(string) string) (Config, error) {
	t.Helper()
	f := newServerFlags(io.Discard)
	if err := f.parse(args); err != nil {
		t.Fatal(err)
	}
	return f.config(getenv)
}

// waitForEnd is a session's run that only waits to be ended.
func waitForEnd(ctx context.Context) error {
	<-ctx.Done()
	return context.Cause(ctx)
}
