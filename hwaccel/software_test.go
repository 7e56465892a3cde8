package hwaccel

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func needTool(t *testing.T, name, install string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found in PATH: install it (%s; .ci/run does this)", name, install)
	}
}

// capture runs cfg under a Supervisor until every pipe layer has delivered
// at least minAUs access units (counted by their access unit delimiters),
// or until limit, and returns everything each layer delivered. A loaded CI
// machine may encode slower than real time, so the test waits for frames,
// not for a fixed time. The encoder is stopped by cancelling Run's context,
// so the files end with whole access units.
func capture(t *testing.T, cfg Config, minAUs int, limit time.Duration) map[string][]byte {
	t.Helper()
	s, err := NewSupervisor(cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	var mu sync.Mutex
	got := map[string][]byte{}
	enough := func() bool {
		for _, l := range cfg.Layers {
			b := got[l.Name]
			// H.264 AUD: 00 00 01 09; H.265 AUD: 00 00 01 46.
			if bytes.Count(b, []byte{0, 0, 1, 9})+bytes.Count(b, []byte{0, 0, 1, 0x46}) < minAUs+1 {
				return false
			}
		}
		return true
	}
	runs := 0
	err = s.Run(ctx, func(ctx context.Context, run *Run) error {
		runs++
		readOutputs(run, func(layer string, chunk []byte) {
			mu.Lock()
			defer mu.Unlock()
			got[layer] = append(got[layer], chunk...)
			if enough() {
				cancel()
			}
		})
		return ctx.Err()
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if runs != 1 {
		t.Errorf("encoder started %d times, want once; status %+v", runs, s.Status())
	}
	return got
}

// checkDecodes has ffmpeg decode b and checks it reports no error and the
// expected size.
func checkDecodes(t *testing.T, name string, b []byte, w, h int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("%s: ffmpeg decode: err %v, output %q", name, err, out)
	}
	out, err = exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
		"-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("%s: ffprobe: %v", name, err)
	}
	if got, want := strings.TrimSpace(string(out)), strconv.Itoa(w)+","+strconv.Itoa(h); got != want {
		t.Errorf("%s: size %s, want %s", name, got, want)
	}
}

// TestSoftwareFFmpegPipes runs the software backend for real: a lavfi test
// pattern encoded into a main and a preview layer at once, on fds 3 and 4.
func TestSoftwareFFmpegPipes(t *testing.T) {
	needTool(t, "ffmpeg", "apt-get install -y ffmpeg")
	for _, main := range []Codec{H264, H265} {
		t.Run(string(main), func(t *testing.T) {
			const gop = 15
			cfg := Config{
				Input: InputConfig{Kind: InputTestSrc, Width: 1280, Height: 720, FPS: 30},
				Layers: []LayerConfig{
					{Name: "main", Codec: main, GOP: gop},
					{Name: "preview", Codec: H264, Width: 320, Height: 180, GOP: gop},
				},
				Watchdog: WatchdogConfig{FirstFrame: -1, Stall: -1},
			}
			got := capture(t, cfg, 3*gop+2, 30*time.Second)
			for _, l := range []struct {
				name  string
				codec Codec
				w, h  int
			}{{"main", main, 1280, 720}, {"preview", H264, 320, 180}} {
				aus, err := accessUnits(l.codec, got[l.name])
				if err != nil {
					t.Fatalf("%s: %v", l.name, err)
				}
				if err := checkGOP(l.codec, aus, gop); err != nil {
					t.Errorf("%s: %v", l.name, err)
				}
				t.Logf("%s: %d bytes, %d access units", l.name, len(got[l.name]), len(aus))
				checkDecodes(t, l.name+"."+string(l.codec), got[l.name], l.w, l.h)
			}
		})
	}
}
