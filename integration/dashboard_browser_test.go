package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"whipgate/certs"
	"whipgate/certs/certstest"
	"whipgate/cmd"
	"whipgate/whip/egress"
)

// Browser tests of the built-in pages as an operator uses them: the
// dashboard at /, the player's reconnect, layer switch and token field,
// and the publish page's form. Each page runs under the server's CSP; a
// page that throws, logs an error or trips the CSP fails its test.

// pageProblems collects what a tab reports as wrong: uncaught exceptions,
// console.error, the browser's own error log (CSP violations, say), but not
// failed requests, which the pages meet on purpose (a 503 from /readyz, a
// server that restarts).
type pageProblems struct {
	mu   sync.Mutex
	list []string
}

// cspWatch records CSP violations in the page itself as well, in case the
// browser's log words them differently.
const cspWatch = `document.addEventListener("securitypolicyviolation", (e) => {
  (window.cspViolations = window.cspViolations || []).push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});`

// watchPage starts collecting a tab's problems before it navigates.
func watchPage(t testing.TB, tab context.Context) *pageProblems {
	t.Helper()
	ctx, cancel := context.WithCancel(tab)
	msgs := chromedp.Console(ctx)
	if err := chromedp.Do(tab, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspWatch})
		return chromedp.Void{}, err
	}); err != nil {
		cancel()
		t.Fatalf("install the CSP watch: %v", err)
	}
	p := &pageProblems{}
	var wg sync.WaitGroup
	wg.Go(func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") {
				p.mu.Lock()
				p.list = append(p.list, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				p.mu.Unlock()
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return p
}

// check fails the test if the page had a problem so far.
func (p *pageProblems) check(t testing.TB, tab context.Context) {
	t.Helper()
	csp, err := chromedp.Run(tab, chromedp.Evaluate[[]string]("window.cspViolations || []"))
	if err != nil {
		t.Fatalf("read CSP violations: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.list) > 0 || len(csp) > 0 {
		t.Fatalf("the page had problems:\n  console: %s\n  CSP: %s", strings.Join(p.list, "\n  "), strings.Join(csp, "\n  "))
	}
}

// evalUntil evaluates js in the tab until ok accepts its value, and fails
// with the last value when within passes.
func evalUntil[T any](t testing.TB, tab context.Context, within time.Duration, what, js string, ok func(T) bool) T {
	t.Helper()
	var last T
	deadline := time.Now().Add(within)
	for {
		v, err := chromedp.Run(tab, chromedp.Evaluate[T](js))
		if err != nil {
			t.Fatalf("%s: evaluate: %v", what, err)
		}
		last = v
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last %+v", what, within, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// navigate opens url in the tab.
func navigate(t testing.TB, tab context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate to %s: %v", url, err)
	}
}

// saveArtifact writes a test's file (a screenshot) to $WHIPGATE_ARTIFACTS,
// or to a temporary directory, and logs where.
func saveArtifact(t testing.TB, name string, data []byte) {
	t.Helper()
	dir := os.Getenv("WHIPGATE_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("artifact: %s", p)
}

// postEgress creates an egress through the API and returns the status code.
func postEgress(t testing.TB, app *instance, doc map[string]any) (int, string) {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, http.MethodPost, app.URL()+"/api/v1/egress", "application/json", string(b), nil)
	return resp.StatusCode, body
}

// The dashboard's egress rows as the page shows them.
const egressRowsJS = `Array.from(document.querySelectorAll("#egress tr[data-egress]"), (tr) => ({
  id: tr.dataset.egress,
  cells: Array.from(tr.cells, (c) => c.textContent),
  error: (document.querySelector('#egress tr[data-egress-error="' + CSS.escape(tr.dataset.egress) + '"]') || {}).textContent || "",
}))`

type egressRow struct {
	ID    string   `json:"id"`
	Cells []string `json:"cells"`
	Error string   `json:"error"`
}

// state is the row's state cell (id, stream, target, state, …).
func (r egressRow) state() string {
	if len(r.Cells) < 4 {
		return ""
	}
	return r.Cells[3]
}

func findRow(rows []egressRow, id string) (egressRow, bool) {
	i := slices.IndexFunc(rows, func(r egressRow) bool { return r.ID == id })
	if i < 0 {
		return egressRow{}, false
	}
	return rows[i], true
}

// TestDashboardBrowser: the dashboard in Chromium with one egress to a
// working WHIP target (a second whipgate), one to a port where nothing
// listens, one whose id and URL are markup, a viewer, and pinned streams
// with the oddest names the rules allow. The working egress shows
// connected, the dead one its error, the plot moves, markup in
// server-made text stays text, readiness says which egress is down, and
// the page has no console errors. A screenshot is kept as an artifact.
func TestDashboardBrowser(t *testing.T) {
	const oddName = "-._~"
	target := startGateway(t, func(c *cmd.Config) { c.TestSource = nil })
	app := startGateway(t, func(c *cmd.Config) {
		// ".." passes the name rule too, but no URL path can carry it.
		c.Streams = map[string]cmd.StreamConfig{oddName: {}, "..": {}}
		c.ReadyGrace = 100 * time.Millisecond // the dead egress makes the box not ready at once
	})
	waitLive(t, app, "test")
	if code, body := postEgress(t, app, map[string]any{"id": "relay", "stream": "test", "url": target.URL() + "/whip/relay-{layer}"}); code != http.StatusCreated {
		t.Fatalf("POST egress relay: %d %s", code, body)
	}
	if code, body := postEgress(t, app, map[string]any{"id": "dead", "stream": "test", "url": "http://127.0.0.1:9/whip"}); code != http.StatusCreated {
		t.Fatalf("POST egress dead: %d %s", code, body)
	}
	// Markup where the server puts free text: an egress id and a URL path,
	// which come back in last_error.
	const markup = `<img src=x onerror=window.pwned=1>`
	hostileID := markup
	hostileURL := "http://127.0.0.1:9/" + markup
	if code, body := postEgress(t, app, map[string]any{"id": hostileID, "stream": "test", "url": hostileURL, "layers": []string{"preview"}}); code != http.StatusCreated {
		if code != http.StatusBadRequest {
			t.Fatalf("POST egress with markup: %d %s", code, body)
		}
		// Egress ids may be restricted some day; the URL still carries it.
		t.Logf("egress id %q refused (%s); markup goes through the URL only", hostileID, body)
		hostileID = "markup"
		if code, body := postEgress(t, app, map[string]any{"id": hostileID, "stream": "test", "url": hostileURL, "layers": []string{"preview"}}); code != http.StatusCreated {
			t.Fatalf("POST egress with markup in the URL: %d %s", code, body)
		}
	}
	waitEgress(t, app, "relay", egress.StateConnected, 15*time.Second)
	watch(t, app.URL()+"/whep/test/preview") // one viewer

	browser := newBrowser(t, chromedp.WindowSize(1280, 1000))
	tab := newTab(t, browser)
	problems := watchPage(t, tab)
	navigate(t, tab, app.URL()+"/")

	t.Run("egress", func(t *testing.T) {
		rows := evalUntil(t, tab, 15*time.Second, "relay connected and dead failing on the page", egressRowsJS, func(rows []egressRow) bool {
			relay, ok1 := findRow(rows, "relay")
			dead, ok2 := findRow(rows, "dead")
			return ok1 && ok2 && relay.state() == "connected" && dead.Error != "" && dead.state() != "connected"
		})
		relay, _ := findRow(rows, "relay")
		if want := strings.TrimPrefix(target.URL(), "http://"); relay.Cells[2] != want || relay.Cells[5] != "2/2" {
			t.Fatalf("relay row %q: want target %s and 2/2 sessions connected", relay.Cells, want)
		}
		dead, _ := findRow(rows, "dead")
		if !strings.Contains(dead.Error, "127.0.0.1:9") || dead.Cells[2] != "127.0.0.1:9" {
			t.Fatalf("dead row %q, error %q: want its target and its last error", dead.Cells, dead.Error)
		}
		t.Logf("relay %q; dead %q %q", relay.Cells, dead.Cells, dead.Error)
	})

	t.Run("plot and viewers", func(t *testing.T) {
		const pathJS = `(document.querySelector('article[data-stream="test"] path.series') || { getAttribute: () => "" }).getAttribute("d") || ""`
		first := evalUntil(t, tab, 15*time.Second, "a plot with points", pathJS, func(d string) bool { return strings.Count(d, "L") >= 1 })
		start := time.Now()
		moved := evalUntil(t, tab, 15*time.Second, "the plot moves", pathJS, func(d string) bool {
			return d != first && strings.Count(d, "L") > strings.Count(first, "L") && time.Since(start) >= 2*time.Second
		})
		t.Logf("plot %q → %q", first, moved)
		viewers := evalUntil(t, tab, 15*time.Second, "one viewer of preview", `Array.from(document.querySelectorAll('article[data-stream="test"] .viewers tbody tr'), (tr) => tr.cells[1].textContent)`,
			func(v []string) bool { return len(v) == 1 && v[0] == "preview" })
		t.Logf("viewers: %q", viewers)
	})

	t.Run("markup stays text", func(t *testing.T) {
		type shown struct {
			Pwned      bool     `json:"pwned"`
			Images     int      `json:"images"`
			OddName    string   `json:"oddName"`
			OddLink    string   `json:"oddLink"`
			HostileRow []string `json:"hostileRow"`
			Error      string   `json:"error"`
			DotsShown  string   `json:"dotsShown"`
			DotsLinks  int      `json:"dotsLinks"`
		}
		js := fmt.Sprintf(`(() => {
  const card = document.querySelector('article[data-stream="%s"]');
  const row = Array.from(document.querySelectorAll("#egress tr[data-egress]")).find((tr) => tr.dataset.egress === %q);
  const err = Array.from(document.querySelectorAll("#egress tr[data-egress-error]")).find((tr) => tr.dataset.egressError === %q);
  return {
    pwned: window.pwned !== undefined,
    images: document.querySelectorAll("img, [onerror]").length,
    oddName: card ? card.querySelector("h3 a").textContent : "",
    oddLink: card ? card.querySelector("h3 a").getAttribute("href") : "",
    hostileRow: row ? Array.from(row.cells, (c) => c.textContent) : [],
    error: err ? err.textContent : "",
    dotsShown: (document.querySelector('article[data-stream=".."] h3 span') || {}).textContent || "",
    dotsLinks: document.querySelectorAll('article[data-stream=".."] a, a[href^="/play/.."], a[href^="/publish/.."]').length,
  };
})()`, oddName, hostileID, hostileID)
		s := evalUntil(t, tab, 15*time.Second, "the odd stream and the egress with markup on the page", js, func(s shown) bool {
			return s.OddName != "" && s.DotsShown != "" && len(s.HostileRow) > 0 && strings.Contains(s.Error, markup)
		})
		if s.Pwned || s.Images != 0 {
			t.Fatalf("markup became elements: window.pwned set %v, %d img or onerror elements", s.Pwned, s.Images)
		}
		if s.OddName != oddName || s.OddLink != "/play/"+oddName {
			t.Fatalf("stream %q shown as %q linking %q", oddName, s.OddName, s.OddLink)
		}
		if s.DotsShown != ".." || s.DotsLinks != 0 {
			t.Fatalf("stream .. shown as %q with %d links, want the name as text and no link to /play/..", s.DotsShown, s.DotsLinks)
		}
		if s.HostileRow[0] != hostileID {
			t.Fatalf("egress id shown as %q, want %q as text", s.HostileRow[0], hostileID)
		}
		t.Logf("shown as text: id %q, error %q", s.HostileRow[0], s.Error)
	})

	t.Run("box and readiness", func(t *testing.T) {
		type box struct {
			Ready    string   `json:"ready"`
			Class    string   `json:"class"`
			NotReady []string `json:"notReady"`
			Facts    string   `json:"facts"`
		}
		b := evalUntil(t, tab, 15*time.Second, "not ready for the dead egress, and the box facts", `({ready: document.getElementById("ready-state").textContent,
  class: document.getElementById("ready").className, facts: document.getElementById("box").textContent,
  notReady: Array.from(document.querySelectorAll("#not-ready li"), (li) => li.textContent)})`,
			func(b box) bool {
				return strings.Contains(b.Facts, "TLS") && slices.Contains(b.NotReady, "egress dead: reconnecting")
			})
		if b.Class != "ready bad" || b.Ready != "not ready" || slices.ContainsFunc(b.NotReady, func(s string) bool { return strings.Contains(s, "relay") }) {
			t.Fatalf("readiness shown as %+v; want not ready, for the dead egress only", b)
		}
		if !strings.Contains(b.Facts, "up for") || !strings.Contains(b.Facts, "TLSoff") {
			t.Fatalf("box facts %q: want the uptime and TLS off", b.Facts)
		}
		t.Logf("readiness %q %q; box %q", b.Ready, b.NotReady, b.Facts)
	})

	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	saveArtifact(t, "dashboard.png", png)
	problems.check(t, tab)
}

// TestDashboardBrowserTokenEncoderTLS: with an API token, the dashboard
// asks for it; once given, it shows the encoder (ffmpeg's software
// backend: state, pid, fps per layer, the stderr tail on demand) and the
// TLS mode with the certificate's expiry.
func TestDashboardBrowserTokenEncoderTLS(t *testing.T) {
	const token = "dashboard-token-0123456789"
	app := softwareBox(t, func(c *cmd.Config) {
		c.APIToken = token
		c.TLS = certs.Config{Mode: certs.ModeSelfSigned}
	})
	leaf := certstest.ServedLeaf(t, hostPort(t, app.URL()), "", nil)
	browser := newBrowser(t, chromedp.WindowSize(1280, 1000), chromedp.Flag("ignore-certificate-errors-spki-list", spkiPin(leaf)))
	tab := newTab(t, browser)
	problems := watchPage(t, tab)
	navigate(t, tab, app.URL()+"/")
	evalUntil(t, tab, 15*time.Second, "the page asks for the API token", `document.getElementById("msg").hidden ? "" : document.getElementById("msg").textContent`,
		func(m string) bool { return strings.Contains(m, "enter the API token") })

	// Typing and leaving the field is a change event.
	if err := chromedp.Do(tab, chromedp.SendKeys("#token", token)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`document.getElementById("token").dispatchEvent(new Event("change"))`)); err != nil {
		t.Fatal(err)
	}
	type encoderView struct {
		Msg     string   `json:"msg"`
		Stored  bool     `json:"stored"`
		Box     string   `json:"box"`
		Encoder string   `json:"encoder"`
		FPS     []string `json:"fps"`
		Stderr  int      `json:"stderr"`
	}
	const js = `({
  msg: document.getElementById("msg").hidden ? "" : document.getElementById("msg").textContent,
  stored: sessionStorage.getItem("whipgate-token") !== null,
  box: document.getElementById("box").textContent,
  encoder: (document.querySelector("#encoder .facts") || {}).textContent || "",
  fps: Array.from(document.querySelectorAll("#encoder tbody tr"), (tr) => tr.cells[0].textContent + " " + tr.cells[2].textContent),
  stderr: document.querySelector("#encoder pre.stderr") ? document.querySelector("#encoder pre.stderr").textContent.length : -1,
})`
	v := evalUntil(t, tab, 20*time.Second, "the encoder running with fps per layer", js, func(v encoderView) bool {
		return v.Msg == "" && strings.Contains(v.Encoder, "running") && len(v.FPS) == 2 && !strings.HasSuffix(v.FPS[0], " 0.0") && strings.Contains(v.Box, "expires")
	})
	if !v.Stored || !strings.Contains(v.Box, "self-signed") || !strings.Contains(v.Encoder, "software") || !strings.Contains(v.Encoder, "pid") {
		t.Fatalf("dashboard %+v: want the token kept, TLS self-signed with its expiry, the software backend and a pid", v)
	}
	// The stderr tail is there on demand and stays open across polls.
	if err := chromedp.Do(tab, chromedp.Click("#encoder summary")); err != nil {
		t.Fatal(err)
	}
	p0, err := chromedp.Run(tab, chromedp.Evaluate[int]("window.whipgateDashboard.polls"))
	if err != nil {
		t.Fatal(err)
	}
	evalUntil(t, tab, 10*time.Second, "stderr open after two more polls", `(() => { const d = document.querySelector("#encoder details");
  return d && d.open ? window.whipgateDashboard.polls : -1 })()`,
		func(polls int) bool { return polls >= p0+2 })
	summary, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector("#encoder summary").textContent`))
	if err != nil || !strings.HasPrefix(summary, "stderr (") {
		t.Fatalf("stderr summary %q (%v)", summary, err)
	}
	t.Logf("dashboard: %+v; %s", v, summary)
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	saveArtifact(t, "dashboard-encoder.png", png)
	problems.check(t, tab)
}

// freeAddrs finds a free TCP port and a free UDP port on loopback, for a
// whipgate that must come back on the same addresses after a restart.
// (Another process could take them in between; on loopback in a test run,
// nothing does.)
func freeAddrs(t testing.TB) (httpAddr, udpAddr string) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr = ln.Addr().String()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpAddr = pc.LocalAddr().String()
	_ = ln.Close()
	_ = pc.Close()
	return httpAddr, udpAddr
}

// playerView is the player page's state as tests read it.
type playerView struct {
	State         string `json:"state"` // whipgatePlayer.state
	Layer         string `json:"layer"`
	Connects      int    `json:"connects"`
	Overlay       string `json:"overlay"` // "" when hidden
	Dimmed        bool   `json:"dimmed"`
	Width         int    `json:"width"`
	Height        int    `json:"height"`
	FramesDecoded int    `json:"framesDecoded"`
	Error         string `json:"error"`
	Marker        string `json:"marker"` // set by the test: gone after a reload
	Search        string `json:"search"`
}

const playerViewJS = `(() => {
  const p = window.whipgatePlayer || {}, s = window.whipgateStats || {};
  const o = document.getElementById("overlay"), ot = document.getElementById("overlay-text");
  return { state: p.state || "", layer: p.layer || "", connects: p.connects || 0,
    overlay: o.hidden ? "" : ot.textContent, dimmed: document.getElementById("video").classList.contains("stale"),
    width: s.connects === p.connects ? s.width || 0 : 0, height: s.connects === p.connects ? s.height || 0 : 0,
    framesDecoded: s.connects === p.connects ? s.framesDecoded || 0 : 0,
    error: window.whipgateError || "", marker: window.testMarker || "", search: location.search };
})()`

func waitPlayer(t testing.TB, tab context.Context, within time.Duration, what string, ok func(playerView) bool) playerView {
	t.Helper()
	return evalUntil(t, tab, within, what, playerViewJS, ok)
}

// TestPlayBrowserReconnectsAfterRestart: whipgate restarts (same HTTP and
// UDP address) under a playing /play/test?layer=preview; the page says it
// is reconnecting, dims the picture, and plays again by itself.
func TestPlayBrowserReconnectsAfterRestart(t *testing.T) {
	listen, udp := freeAddrs(t)
	state := t.TempDir()
	at := func(c *cmd.Config) { c.Listen, c.WebRTC.UDPListen, c.StateDir = listen, udp, state }
	first := startGateway(t, at)
	waitLive(t, first, "test")
	tab := newTab(t, newBrowser(t))
	problems := watchPage(t, tab)
	navigate(t, tab, first.URL()+"/play/test?layer=preview")
	if _, err := chromedp.Run(tab, chromedp.Evaluate[string](`window.testMarker = "same page"`)); err != nil {
		t.Fatal(err)
	}
	before := waitPlayer(t, tab, 15*time.Second, "playing", func(v playerView) bool {
		return v.State == "playing" && v.FramesDecoded > 20 && v.Overlay == "" && !v.Dimmed
	})

	if err := first.Close(context.Background()); err != nil {
		t.Fatalf("close the first whipgate: %v", err)
	}
	between := waitPlayer(t, tab, 15*time.Second, "reconnecting shown", func(v playerView) bool {
		return v.State == "reconnecting" && strings.Contains(v.Overlay, "reconnecting") && v.Dimmed
	})

	second := startGateway(t, at)
	if second.URL() != first.URL() {
		t.Fatalf("second whipgate at %s, want %s", second.URL(), first.URL())
	}
	waitLive(t, second, "test")
	after := waitPlayer(t, tab, 15*time.Second, "playing again", func(v playerView) bool {
		return v.State == "playing" && v.Connects > before.Connects && v.FramesDecoded > 20 && v.Overlay == "" && !v.Dimmed
	})
	if after.Marker != "same page" || after.Width != 320 || after.Height != 180 || after.Error != "" {
		t.Fatalf("after the restart: %+v; want the same page (no reload) decoding 320x180 without an error", after)
	}
	t.Logf("before %+v\nbetween %+v\nafter %+v", before, between, after)
	problems.check(t, tab)
}

// switchLayer picks a layer in the player's select, as a person does.
func switchLayer(t testing.TB, tab context.Context, layer string) {
	t.Helper()
	js := fmt.Sprintf(`(() => { const s = document.getElementById("layer"); s.value = %q; s.dispatchEvent(new Event("change")); return s.value })()`, layer)
	if got, err := chromedp.Run(tab, chromedp.Evaluate[string](js)); err != nil || got != layer {
		t.Fatalf("select layer %s: got %q, %v", layer, got, err)
	}
}

// TestPlayBrowserSwitchesLayer: the player lists the stream's layers and
// switches main ↔ preview without a reload; the decoded size follows, and
// at 1280x720 the stats are on screen beside the video.
func TestPlayBrowserSwitchesLayer(t *testing.T) {
	app := startGateway(t, nil)
	waitLive(t, app, "test")
	tab := newTab(t, newBrowser(t, chromedp.WindowSize(1280, 720)))
	problems := watchPage(t, tab)
	navigate(t, tab, app.URL()+"/play/test")
	if _, err := chromedp.Run(tab, chromedp.Evaluate[string](`window.testMarker = "same page"`)); err != nil {
		t.Fatal(err)
	}
	main := waitPlayer(t, tab, 15*time.Second, "main playing", func(v playerView) bool { return v.State == "playing" && v.Width == 1280 && v.FramesDecoded > 10 })

	type layout struct {
		Options     []string `json:"options"`
		StatsBottom float64  `json:"statsBottom"`
		StatsRight  float64  `json:"statsRight"`
		StatsRows   int      `json:"statsRows"`
		VideoHeight float64  `json:"videoHeight"`
		W           float64  `json:"w"`
		H           float64  `json:"h"`
	}
	l := evalUntil(t, tab, 10*time.Second, "the layer list", `(() => {
  const r = document.getElementById("stats").getBoundingClientRect();
  return { options: Array.from(document.getElementById("layer").options, (o) => o.value),
    statsBottom: r.bottom, statsRight: r.right, statsRows: document.getElementById("stats").rows.length,
    videoHeight: document.getElementById("video").getBoundingClientRect().height, w: innerWidth, h: innerHeight };
})()`, func(l layout) bool { return len(l.Options) == 2 })
	if !slices.Equal(l.Options, []string{"main", "preview"}) {
		t.Fatalf("layers offered %q, want main and preview", l.Options)
	}
	if l.StatsRows == 0 || l.StatsBottom > l.H || l.StatsRight > l.W || l.VideoHeight < 300 {
		t.Fatalf("layout %+v: want the stats and the video within the %gx%g window", l, l.W, l.H)
	}

	switchLayer(t, tab, "preview")
	preview := waitPlayer(t, tab, 15*time.Second, "preview playing", func(v playerView) bool {
		return v.State == "playing" && v.Layer == "preview" && v.Width == 320 && v.Height == 180 && v.FramesDecoded > 10
	})
	switchLayer(t, tab, "main")
	back := waitPlayer(t, tab, 15*time.Second, "main again", func(v playerView) bool {
		return v.State == "playing" && v.Layer == "main" && v.Width == 1280 && v.Height == 720 && v.FramesDecoded > 10
	})
	if back.Marker != "same page" || back.Search != "?layer=main" || preview.Connects != main.Connects+1 {
		t.Fatalf("after switching: %+v (preview %+v); want the same page, ?layer=main and one session per switch", back, preview)
	}
	t.Logf("main %+v\npreview %+v\nlayout %+v", main, preview, l)
	problems.check(t, tab)
}

// TestPlayBrowserAsksForToken: a stream with a view_token; the player
// shows a token field, keeps the token in sessionStorage for that stream,
// and plays.
func TestPlayBrowserAsksForToken(t *testing.T) {
	const viewToken = "view-token-0123456789"
	app := startGateway(t, func(c *cmd.Config) { c.Streams = map[string]cmd.StreamConfig{"test": {ViewToken: viewToken}} })
	waitLive(t, app, "test")
	tab := newTab(t, newBrowser(t))
	problems := watchPage(t, tab)
	navigate(t, tab, app.URL()+"/play/test?layer=preview")
	asked := waitPlayer(t, tab, 15*time.Second, "the token field", func(v playerView) bool { return v.State == "token" })
	visible, err := chromedp.Run(tab, chromedp.Evaluate[bool](`!document.getElementById("token-form").hidden && document.getElementById("view-token").labels.length === 1`))
	if err != nil || !visible {
		t.Fatalf("token form visible and labelled: %v %v (player %+v)", visible, err, asked)
	}
	if err := chromedp.Do(tab, chromedp.SendKeys("#view-token", viewToken), chromedp.Click("#token-form button")); err != nil {
		t.Fatal(err)
	}
	v := waitPlayer(t, tab, 15*time.Second, "playing with the token", func(v playerView) bool { return v.State == "playing" && v.FramesDecoded > 10 })
	stored, err := chromedp.Run(tab, chromedp.Evaluate[string](`sessionStorage.getItem("whipgate-view-token:test") || ""`))
	if err != nil || stored != viewToken {
		t.Fatalf("sessionStorage has %q (%v), want the view token under the stream's key", stored, err)
	}
	t.Logf("asked %+v; then %+v", asked, v)
	problems.check(t, tab)
}

// TestPublishBrowserLabelledFields: every field of the publish page has
// its label; the camera list comes from enumerateDevices; the stream key
// field publishes to a stream that needs one; the page links the player.
func TestPublishBrowserLabelledFields(t *testing.T) {
	const key = "stream-key-0123456789"
	app := startGateway(t, func(c *cmd.Config) {
		c.TestSource = nil
		c.Streams = map[string]cmd.StreamConfig{"cam": {PublishToken: key}}
	})
	tab := newTab(t, newBrowser(t,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true)))
	problems := watchPage(t, tab)
	navigate(t, tab, app.URL()+"/publish/cam?codec=VP8")
	type field struct {
		ID    string `json:"id"`
		Label string `json:"label"`
		Type  string `json:"type"`
		N     int    `json:"n"` // options of a select
	}
	fields := evalUntil(t, tab, 10*time.Second, "the form with devices listed", `Array.from(document.querySelectorAll("#form input, #form select"), (e) => ({
  id: e.id, label: Array.from(e.labels || [], (l) => l.textContent.trim()).join("|"), type: e.type, n: e.options ? e.options.length : 0 }))`,
		func(fs []field) bool {
			i := slices.IndexFunc(fs, func(f field) bool { return f.ID == "camera" })
			return i >= 0 && fs[i].N > 0
		})
	want := map[string]string{"key": "stream key", "source": "source", "camera": "camera", "mic": "microphone", "codec": "codec", "resolution": "resolution", "bitrate": "bitrate (kbit/s)"}
	for _, f := range fields {
		if f.Label == "" || strings.Contains(f.Label, "|") {
			t.Errorf("field %q has label %q, want exactly one", f.ID, f.Label)
		}
		if w, ok := want[f.ID]; ok && f.Label != w {
			t.Errorf("field %q labelled %q, want %q", f.ID, f.Label, w)
		}
		delete(want, f.ID)
	}
	if len(want) > 0 {
		t.Errorf("fields missing: %v", want)
	}
	if i := slices.IndexFunc(fields, func(f field) bool { return f.ID == "key" }); i < 0 || fields[i].Type != "password" {
		t.Errorf("the stream key is not a password field: %+v", fields)
	}
	link, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("watch").getAttribute("href") + " " + document.getElementById("codec").value`))
	if err != nil || link != "/play/cam VP8" {
		t.Fatalf("watch link and codec %q (%v), want /play/cam VP8", link, err)
	}
	if t.Failed() {
		t.FailNow()
	}

	if err := chromedp.Do(tab, chromedp.SendKeys("#key", key), chromedp.Click("#go")); err != nil {
		t.Fatal(err)
	}
	s := waitStats(t, tab, 15*time.Second, func(s pageStats) bool { return s.State == "connected" && s.FramesEncoded > 0 })
	waitLive(t, app, "cam")
	t.Logf("fields %+v; publishing %+v", fields, s)
	problems.check(t, tab)
}
