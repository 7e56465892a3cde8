package h264synth

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// requireTool returns the path of a program the test needs, failing with
// the install step when it is missing.
func requireTool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: %s", name, install)
	}
	return p
}

func requireFFmpeg(t *testing.T) (ffmpeg, ffprobe string) {
	t.Helper()
	return requireTool(t, "ffmpeg", "apt-get install ffmpeg"),
		requireTool(t, "ffprobe", "apt-get install ffmpeg")
}

// stream is an encoded test stream on disk with what the encoder said about
// each frame.
type stream struct {
	path      string
	enc       *Encoder
	frames    int
	keyframes []bool
	nalTypes  [][]byte // nal_unit_type of each NAL unit, per frame
}

// encodeStream encodes frames frames of cfg into an Annex-B file in a
// temporary directory. requestKeyAt lists frames before which
// RequestKeyframe is called.
func encodeStream(t *testing.T, cfg Config, frames int, requestKeyAt ...int) stream {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	s := stream{path: filepath.Join(t.TempDir(), "f.h264"), enc: e, frames: frames}
	var out []byte
	for i := range frames {
		for _, k := range requestKeyAt {
			if k == i {
				e.RequestKeyframe()
			}
		}
		nalus, key := e.Next()
		s.keyframes = append(s.keyframes, key)
		var types []byte
		for _, n := range nalus {
			types = append(types, n[0]&0x1f)
		}
		s.nalTypes = append(s.nalTypes, types)
		out = AppendAnnexB(out, nalus)
	}
	if err := os.WriteFile(s.path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// run runs a program and returns its stdout, failing the test with its
// stderr if it exits non-zero.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.Bytes())
	}
	return stdout.Bytes()
}

// expectedI420 is the picture the decoder must output for frame: the
// rendered pattern expanded to samples and cropped, as planar 4:2:0.
func expectedI420(e *Encoder, frame uint64) []byte {
	p := newPicture(e.cur.w, e.cur.h)
	e.lay.render(&p, frame)
	w, h := e.width, e.height
	out := make([]byte, 0, w*h*3/2)
	for y := range h {
		for x := range w {
			out = append(out, p.mb[(y/16)*p.w+x/16].y)
		}
	}
	for _, cb := range []bool{true, false} {
		for y := range h / 2 {
			for x := range w / 2 {
				c := p.mb[(y/8)*p.w+x/8]
				if cb {
					out = append(out, c.cb)
				} else {
					out = append(out, c.cr)
				}
			}
		}
	}
	return out
}

// firstDiff describes where two I420 frames of w×h first differ.
func firstDiff(got, want []byte, w, h int) string {
	for i := range want {
		if got[i] == want[i] {
			continue
		}
		plane, off, pw := "Y", i, w
		if i >= w*h {
			plane, off, pw = "Cb", i-w*h, w/2
			if off >= w*h/4 {
				plane, off = "Cr", off-w*h/4
			}
		}
		return fmt.Sprintf("%s sample (%d,%d): got %d, want %d", plane, off%pw, off/pw, got[i], want[i])
	}
	return "no difference"
}
