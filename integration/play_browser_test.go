package integration

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserPlaysBothLayers: headless Chromium opens the built-in player
// for each layer; frames decode and the decoded size is the layer's.
func TestBrowserPlaysBothLayers(t *testing.T) {
	app := startGateway(t, nil)
	waitLive(t, app, "test")
	browser := newBrowser(t)
	for _, tc := range testSourceLayers {
		t.Run(tc.layer, func(t *testing.T) {
			tab := newTab(t, browser)
			if _, err := chromedp.Run(tab, chromedp.Navigate(app.URL()+"/play/test?layer="+tc.layer)); err != nil {
				t.Fatal(err)
			}
			first := waitStats(t, tab, 15*time.Second, func(s pageStats) bool { return s.FramesDecoded > 0 })
			s := waitStats(t, tab, 10*time.Second, func(s pageStats) bool { return s.FramesDecoded > first.FramesDecoded+20 })
			if s.Width != tc.w || s.Height != tc.h {
				t.Fatalf("decoded %dx%d, want %dx%d", s.Width, s.Height, tc.w, tc.h)
			}
			requireDirectSRTP(t, app)
			t.Logf("%s: %+v", tc.layer, s)
		})
	}
}
