package h264synth

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestOpenH264DecodesExactly decodes with Cisco's OpenH264 (through
// GStreamer), a second decoder written independently of ffmpeg's, and
// checks every sample against the pattern.
func TestOpenH264DecodesExactly(t *testing.T) {
	gst := requireTool(t, "gst-launch-1.0", "apt-get install gstreamer1.0-tools gstreamer1.0-plugins-bad")
	// Widths whose chroma rows are a multiple of 4 bytes, so that GStreamer's
	// I420 has no row padding.
	for _, sz := range []struct{ w, h int }{{1280, 720}, {320, 180}, {200, 120}} {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			t.Parallel()
			const frames = 45
			s := encodeStream(t, Config{Width: sz.w, Height: sz.h, GOP: 30, Label: "preview"}, frames, 20)
			raw := filepath.Join(t.TempDir(), "out.yuv")
			var out bytes.Buffer
			cmd := exec.CommandContext(t.Context(), gst, "-q",
				"filesrc", "location="+s.path, "!", "h264parse", "!", "openh264dec", "!",
				"video/x-raw,format=I420", "!", "filesink", "location="+raw)
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("gst-launch-1.0 openh264dec (apt-get install gstreamer1.0-plugins-bad): %v\n%s", err, out.Bytes())
			}
			data, err := os.ReadFile(raw)
			if err != nil {
				t.Fatal(err)
			}
			size := sz.w * sz.h * 3 / 2
			if len(data) != frames*size {
				t.Fatalf("decoded %d bytes, want %d frames of %d", len(data), frames, size)
			}
			for i := range frames {
				frame := data[i*size : (i+1)*size]
				if want := expectedI420(s.enc, uint64(i)); !bytes.Equal(frame, want) {
					t.Fatalf("frame %d differs from the pattern: %s", i, firstDiff(frame, want, sz.w, sz.h))
				}
			}
		})
	}
}
