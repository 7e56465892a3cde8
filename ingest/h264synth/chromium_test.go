package h264synth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPage decodes the access units served at /aus with WebCodecs, the
// H.264 decoder the browser uses for WebRTC too, and reports what came out:
// the frame count, the decoded size and the colour under the moving square
// of the last frame.
const chromiumPage = `<!doctype html><script>
async function run() {
  const aus = await (await fetch('/aus')).json();
  const out = {frames: 0, errors: [], width: 0, height: 0, supported: false};
  const cfg = {codec: 'avc1.' + aus.profileLevelId, optimizeForLatency: true};
  out.supported = (await VideoDecoder.isConfigSupported(cfg)).supported;
  let last = null;
  const dec = new VideoDecoder({
    output: f => { out.frames++; out.width = f.displayWidth; out.height = f.displayHeight;
                   if (last) last.close(); last = f; },
    error: e => out.errors.push(String(e)),
  });
  dec.configure(cfg);
  aus.units.forEach((u, i) => {
    const data = Uint8Array.from(atob(u.data), c => c.charCodeAt(0));
    dec.decode(new EncodedVideoChunk({type: u.key ? 'key' : 'delta', timestamp: i * 33333, data}));
  });
  await dec.flush();
  if (last) {
    const c = new OffscreenCanvas(last.displayWidth, last.displayHeight);
    const g = c.getContext('2d');
    g.drawImage(last, 0, 0);
    out.square = Array.from(g.getImageData(aus.squareX, aus.squareY, 1, 1).data);
    out.track = Array.from(g.getImageData(aus.trackX, aus.squareY, 1, 1).data);
    last.close();
  }
  return out;
}
</script>`

// TestChromiumDecodes feeds the stream to Chromium's own H.264 decoder
// through WebCodecs.
func TestChromiumDecodes(t *testing.T) {
	chromium := requireTool(t, "chromium", "apt-get install chromium")
	const w, h, frames = 640, 360, 45
	e, err := New(Config{Width: w, Height: h, GOP: 30, Label: "main"})
	if err != nil {
		t.Fatal(err)
	}
	type unit struct {
		Key  bool   `json:"key"`
		Data []byte `json:"data"`
	}
	var units []unit
	for range frames {
		nalus, key := e.Next()
		units = append(units, unit{key, AppendAnnexB(nil, nalus)})
	}
	// The square of the last frame, and the track one macroblock left of it.
	tr := e.lay.track
	sqX := ((frames - 1) % tr.w) * 16
	aus, err := json.Marshal(map[string]any{
		"profileLevelId": e.ProfileLevelID(),
		"units":          units,
		"squareX":        sqX + 8,
		"trackX":         (sqX - 16 + tr.w*16) % (tr.w * 16),
		"squareY":        tr.y*16 + tr.h*8,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/aus", func(rw http.ResponseWriter, _ *http.Request) { rw.Write(aus) })
	mux.HandleFunc("/", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprint(rw, chromiumPage) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox)
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	type result struct {
		Frames    int      `json:"frames"`
		Errors    []string `json:"errors"`
		Width     int      `json:"width"`
		Height    int      `json:"height"`
		Supported bool     `json:"supported"`
		Square    []int    `json:"square"`
		Track     []int    `json:"track"`
	}
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatalf("chromium: open test page: %v", err)
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[result](`run()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("chromium: decode: %v", err)
	}
	t.Logf("chromium: %+v in %v", got, time.Since(start))
	if !got.Supported {
		t.Errorf("VideoDecoder.isConfigSupported(avc1.%s) = false", e.ProfileLevelID())
	}
	if len(got.Errors) != 0 {
		t.Errorf("decoder errors: %q", got.Errors)
	}
	if got.Frames != frames || got.Width != w || got.Height != h {
		t.Errorf("decoded %d frames of %dx%d, want %d of %dx%d", got.Frames, got.Width, got.Height, frames, w, h)
	}
	bright := func(rgba []int) bool { return len(rgba) == 4 && rgba[0] > 200 && rgba[1] > 200 && rgba[2] > 200 }
	dark := func(rgba []int) bool { return len(rgba) == 4 && rgba[0] < 50 && rgba[1] < 50 && rgba[2] < 50 }
	if !bright(got.Square) || !dark(got.Track) {
		t.Errorf("last frame: square %v, track left of it %v; want white and black", got.Square, got.Track)
	}
}
