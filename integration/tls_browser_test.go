package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"whipgate/certs"
	"whipgate/certs/certstest"
	"whipgate/cmd"
)

// TestTLSBrowserPlaysOverHTTPS: headless Chromium, trusting the self-signed
// certificate by its public key only, opens the player over HTTPS and decodes
// frames from WHEP driven by the page's own fetch over that connection.
func TestTLSBrowserPlaysOverHTTPS(t *testing.T) {
	app := startGateway(t, func(c *cmd.Config) { c.TLS = certs.Config{Mode: certs.ModeSelfSigned} })
	if !strings.HasPrefix(app.URL(), "https://") {
		t.Fatalf("URL %s is not https", app.URL())
	}
	waitLive(t, app, "test")
	leaf := certstest.ServedLeaf(t, hostPort(t, app.URL()), "", nil)
	browser := newBrowser(t, chromedp.Flag("ignore-certificate-errors-spki-list", spkiPin(leaf)))
	tab := newTab(t, browser)
	if _, err := chromedp.Run(tab, chromedp.Navigate(app.URL()+"/play/test")); err != nil {
		t.Fatalf("navigate to %s/play/test: %v", app.URL(), err)
	}
	// The page is a secure context only if Chromium accepted the certificate
	// rather than showing an interstitial.
	origin, err := chromedp.Run(tab, chromedp.Evaluate[string]("window.isSecureContext ? location.origin : ''"))
	if err != nil {
		t.Fatal(err)
	}
	if origin != app.URL() {
		t.Fatalf("page origin %q (empty when not a secure context), want %s", origin, app.URL())
	}
	first := waitStats(t, tab, 15*time.Second, func(s pageStats) bool { return s.FramesDecoded > 0 })
	s := waitStats(t, tab, 10*time.Second, func(s pageStats) bool { return s.FramesDecoded > first.FramesDecoded+20 })
	t.Logf("over %s: %+v", app.URL(), s)
}
