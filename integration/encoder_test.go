package integration

import (
	"encoding/json"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"whipgate/certs/certstest"
	"whipgate/cmd"
	"whipgate/hwaccel"
)

// softwareBox loads examples/software-box.yaml onto ephemeral ports.
func softwareBox(t *testing.T, mutate func(*cmd.Config)) *instance {
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
	waitKeyframe(t, app, "box", 15*time.Second)
	for _, tc := range []struct {
		layer string
		w, h  int
	}{{"main", 1280, 720}, {"preview", 320, 180}} {
		v := watch(t, app.URL()+"/whep/box/"+tc.layer)
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
	waitKeyframe(t, app, "box", 15*time.Second)
	v := watch(t, app.URL()+"/whep/box/main")
	aus := v.waitFrames(45, 20*time.Second)
	if v.codec() != "video/H265" {
		t.Fatalf("viewer negotiated %s", v.codec())
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
	waitKeyframe(t, app, "box", 15*time.Second)
	v := watch(t, app.URL()+"/whep/box/preview")
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
	// The operator sees it: the restart counted, the encoder up again, ready.
	certstest.Eventually(t, 10*time.Second, "whipgate_encoder_up 1 after a counted restart", func() bool {
		return metric(t, app, "whipgate_encoder_up") == 1 && metric(t, app, "whipgate_encoder_restarts_total") >= 1 &&
			metric(t, app, `whipgate_encoder_fps{layer="preview"}`) > 0
	})
	if code, r := readyz(t, app); code != http.StatusOK || len(r.Checks) == 0 || r.Checks[0].Name != "encoder" {
		t.Errorf("readyz with the encoder running: %d %+v", code, r)
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
	id := sessionID(v.resource)
	if _, ok := app.Sessions().Get(id); !ok {
		t.Fatal("the viewer's session ended with the encoder")
	}
	// Sequence numbers continue across the restart (no jump a decoder would
	// read as thousands of lost packets).
	pkts, _ := v.packets()
	for i := 1; i < len(pkts); i++ {
		if a, b := pkts[i-1].SequenceNumber, pkts[i].SequenceNumber; b-a > 100 && b-a < 65000 {
			t.Fatalf("sequence jumps from %d to %d", a, b)
		}
	}
}

// freeUDPPorts returns n distinct free UDP ports on 127.0.0.1.
func freeUDPPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var conns []*net.UDPConn
	for range n {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		ports = append(ports, c.LocalAddr().(*net.UDPAddr).Port)
	}
	for _, c := range conns {
		c.Close()
	}
	return ports
}

// TestGStreamerPLIKeyframe: the GStreamer software variant (x264enc →
// rtph264pay → rtpbin → UDP) with a 10 s GOP; a keyframe request through
// the API reaches the encoder as an RTCP PLI and a keyframe arrives long
// before the GOP would bring one.
func TestGStreamerPLIKeyframe(t *testing.T) {
	needTool(t, "gst-launch-1.0", "apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly")
	p := freeUDPPorts(t, 3)
	app := softwareBox(t, func(c *cmd.Config) {
		c.Encoder.Tool = hwaccel.Tool("gstreamer")
		c.Encoder.Layers = c.Encoder.Layers[:1]
		l := &c.Encoder.Layers[0]
		l.Width, l.Height, l.GOP = 640, 360, 300
		l.Transport = hwaccel.TransportRTP
		l.Port, l.RTCPPort, l.FeedbackPort = p[0], p[1], p[2]
	})
	waitKeyframe(t, app, "box", 15*time.Second)
	s, _ := app.Hub().Stream("box")
	keyframes := func() uint64 { return s.Stats().Tracks[0].Keyframes }
	time.Sleep(500 * time.Millisecond) // past the first IDR
	before := keyframes()
	resp, body := do(t, "POST", app.URL()+"/api/v1/streams/box/keyframe", "", "", nil)
	if resp.StatusCode != 202 {
		t.Fatalf("keyframe request: %d %s", resp.StatusCode, body)
	}
	asked := time.Now()
	for time.Since(asked) < 5*time.Second {
		if keyframes() > before {
			t.Logf("keyframe %v after the request (GOP is 10 s)", time.Since(asked).Round(time.Millisecond))
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no keyframe within 5 s of the request (GOP 10 s): the PLI did not reach the encoder")
}
