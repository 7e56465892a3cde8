package integration

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds Debian's Chromium; the test fails (never skips) without it.
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("chromium not found: apt-get install chromium (bash .ci/run installs it)")
	return ""
}

// newBrowser starts headless Chromium with the flags WebRTC on loopback
// needs (TOOLING.md) plus any extra ones, and returns a tab's context.
func newBrowser(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	}
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if _, err := chromedp.Run(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// newTab opens another tab in the same browser.
func newTab(t testing.TB, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	return ctx
}

// pageStats is what the built-in pages publish as window.whipgateStats.
type pageStats struct {
	State         string  `json:"state"`
	Width         int     `json:"width"`
	Height        int     `json:"height"`
	FPS           float64 `json:"fps"`
	FramesDecoded int     `json:"framesDecoded"`
	FramesEncoded int     `json:"framesEncoded"`
	Kbps          int     `json:"kbps"`
	Codec         string  `json:"codec"`
	PacketsLost   int     `json:"packetsLost"`
}

// waitStats polls the page until ok accepts its stats.
func waitStats(t testing.TB, ctx context.Context, within time.Duration, ok func(pageStats) bool) pageStats {
	t.Helper()
	deadline := time.Now().Add(within)
	var last pageStats
	for time.Now().Before(deadline) {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[pageStats]("window.whipgateStats || {}"))
		if err != nil {
			t.Fatalf("read page stats: %v", err)
		}
		last = s
		if ok(s) {
			return s
		}
		if e, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("window.whipgateError || ''")); e != "" {
			t.Fatalf("page error: %s", e)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("page stats never satisfied the test within %v; last: %+v", within, last)
	return last
}
