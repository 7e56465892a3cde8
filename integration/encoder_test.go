package integration

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"whipgate/cmd"
	"whipgate/hwaccel"
)

// softwareBox loads examples/software-box.yaml onto ephemeral ports.
func softwareBox(t *testing.T, mutate func(*cmd.Config)) *cmd.App {
	t.Helper()
	needTool(t, "ffmpeg", "apt-get install ffmpeg")
	cfg, err := cmd.LoadConfig("../examples/software-box.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Encoder == nil || cfg.Encoder.Stream != "box" || cfg.Listen != "127.0.0.1:8080" {
		t.Fatalf("examples/software-box.yaml no longer says stream box on 127.0.0.1:8080: %+v", cfg)
	}
	return startGateway(t, func(c *cmd.Config) {
		*c = cfg
		c.Listen = "127.0.0.1:0"
		c.WebRTC.UDPListen = "127.0.0.1:0"
		c.StateDir = t.TempDir()
		if mutate != nil {
			mutate(c)
		}
	})
}

// TestSoftwareBoxDecodes: the software backend runs for real (ffmpeg lavfi →
// x264 main 1280x720 + preview 320x180 on pipes) → pipe ingest → pion WHEP
// viewers, and ffmpeg decodes what they received without an error.
func TestSoftwareBoxDecodes(t *testing.T) {
	app := softwareBox(t, nil)
	waitLiveWithin(t, app, "box", 15*time.Second)
	for _, tc := range []struct {
		layer string
		w, h  int
	}{{"main", 1280, 720}, {"preview", 320, 180}} {
		v := watch(t, app.URL()+"/whep/box/"+tc.layer, nil)
		aus := v.waitFrames(45, 15*time.Second)
		if w, h, n := decodeClean(t, annexB(t, aus)); w != tc.w || h != tc.h || n < 30 {
			t.Fatalf("%s: decoded %d frames %dx%d, want >= 30 at %dx%d", tc.layer, n, w, h, tc.w, tc.h)
		}
	}
	resp, body := do(t, "GET", app.URL()+"/api/v1/encoder", "", "", nil)
	var st hwaccel.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || resp.StatusCode != 200 || st.State != "running" || st.Backend != "software" {
		t.Fatalf("encoder status %d %s", resp.StatusCode, body)
	}
}

// TestSoftwareBoxH265Main: the same with an H.265 main (x265 with IDR, not
// CRA, and parameter sets on every keyframe).
func TestSoftwareBoxH265Main(t *testing.T) {
	app := softwareBox(t, func(c *cmd.Config) {
		c.Encoder.Layers[0].Codec = hwaccel.H265
		c.Encoder.Layers[0].Width, c.Encoder.Layers[0].Height = 640, 360
	})
	waitLiveWithin(t, app, "box", 15*time.Second)
	v := watch(t, app.URL()+"/whep/box/main", nil)
	aus := v.waitFrames(45, 20*time.Second)
	if v.codec != "video/H265" {
		t.Fatalf("viewer negotiated %s", v.codec)
	}
	if w, h, n := decodeClean(t, annexB(t, aus)); w != 640 || h != 360 || n < 30 {
		t.Fatalf("decoded %d frames %dx%d", n, w, h)
	}
}

// TestEncoderKilledViewerContinues: SIGKILL to the encoder mid-stream; the
// supervisor restarts it, the stream stays, and the same WHEP session
// decodes again from the new encoder's first keyframe.
func TestEncoderKilledViewerContinues(t *testing.T) {
	app := softwareBox(t, nil)
	waitLiveWithin(t, app, "box", 15*time.Second)
	v := watch(t, app.URL()+"/whep/box/preview", nil)
	v.waitFrames(30, 15*time.Second)
	st := app.Encoder().Status()
	if st.PID == 0 {
		t.Fatalf("no encoder pid: %+v", st)
	}
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := len(v.frames())
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if s := app.Encoder().Status(); s.Restarts > 0 && s.PID != st.PID && s.PID != 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := app.Encoder().Status(); s.Restarts == 0 || s.PID == st.PID {
		t.Fatalf("encoder not restarted: %+v", s)
	}
	if _, ok := app.Hub().Stream("box"); !ok {
		t.Fatal("stream box vanished during the restart")
	}
	aus := v.waitFrames(killedAt+45, 20*time.Second)
	after := aus[killedAt:]
	w, h, n := decodeClean(t, annexB(t, after))
	if w != 320 || h != 180 || n < 30 {
		t.Fatalf("after the restart: decoded %d frames %dx%d", n, w, h)
	}
	// Same session throughout.
	id := v.resource[strings.LastIndex(v.resource, "/")+1:]
	if _, ok := app.Sessions().Get(id); !ok {
		t.Fatal("the viewer's session ended with the encoder")
	}
	// Sequence numbers continue across the restart (no jump a decoder would
	// read as thousands of lost packets).
	v.mu.Lock()
	seqs := append([]uint16(nil), v.seqs...)
	v.mu.Unlock()
	for i := 1; i < len(seqs); i++ {
		if d := seqs[i] - seqs[i-1]; d > 100 && d < 65000 {
			t.Fatalf("sequence jumps from %d to %d", seqs[i-1], seqs[i])
		}
	}
}
