package hwaccel

import (
	"log/slog"
	"strings"
	"testing"
)

func TestLineWriter(t *testing.T) {
	var got []string
	w := &lineWriter{}
	w.Write([]byte("early\n"))
	w.setEmit(func(l string) { got = append(got, l) })
	w.Write([]byte("one\ntw"))
	w.Write([]byte("o\r\n\nframe=1\rframe=2\r"))
	w.Write([]byte(strings.Repeat("x", 3000)))
	w.Write([]byte("tail"))
	w.flush()
	want := []string{"early", "one", "two", "frame=1", "frame=2", strings.Repeat("x", maxLineBytes), strings.Repeat("x", 3000-maxLineBytes-1) + "xtail"}
	if len(got) < 6 || strings.Join(got[:6], "|") != strings.Join(want[:6], "|") {
		t.Errorf("lines %q", got)
	}
	for _, l := range got {
		if len(l) > maxLineBytes {
			t.Errorf("line of %d bytes", len(l))
		}
	}
}

func TestLineRing(t *testing.T) {
	r := newLineRing(3, 10)
	for _, l := range []string{"a", "bb", "cc", "dd"} {
		r.add(l)
	}
	if got := strings.Join(r.snapshot(), ","); got != "bb,cc,dd" {
		t.Errorf("by lines: %s", got)
	}
	r.add("eeeeeeee") // 2+2+8 > 10 bytes
	if got := strings.Join(r.snapshot(), ","); got != "dd,eeeeeeee" {
		t.Errorf("by bytes: %s", got)
	}
	r.add(strings.Repeat("z", 20)) // one line over the byte limit is kept
	if got := r.snapshot(); len(got) != 1 {
		t.Errorf("oversized line: %q", got)
	}
}

func TestStderrLevel(t *testing.T) {
	cases := map[string]slog.Level{
		"[libx264 @ 0x55] [error] broken":                    slog.LevelError,
		"[fatal] Filter scale has an unconnected output":     slog.LevelError,
		"ERROR: from element /GstPipeline:pipeline0/x264enc": slog.LevelError,
		"x265 [warning]: Source height < 720p":               slog.LevelWarn,
		"WARNING: erroneous pipeline":                        slog.LevelWarn,
		"Redistribute latency...":                            slog.LevelDebug,
		"Svt[info]: SVT [version]":                           slog.LevelDebug,
		"something":                                          slog.LevelInfo,
	}
	for line, want := range cases {
		if got := stderrLevel(line); got != want {
			t.Errorf("%q: %v, want %v", line, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	cases := map[string]string{
		"Unknown encoder 'av1_nvenc'":                                "this ffmpeg has no encoder av1_nvenc",
		"[in#0 @ 0x1] Unknown input format: 'decklink'":              "built without DeckLink",
		"Unknown format 'decklink'":                                  "built without DeckLink",
		"[rtp @ 0x55] Unsupported codec av1":                         "RTP muxer cannot packetize",
		"WARNING: erroneous pipeline: no element \"nvcudah265enc\"":  "GStreamer element nvcudah265enc is not registered",
		"Unrecognized option 'split_encode_mode'.\nOption not found": "does not know the option split_encode_mode",
		"[AVHWDeviceContext @ 0x1] No VA display found for device /dev/dri/renderD128.\nDevice creation failed: -22.": "no working VA-API",
		"Device creation failed: -542398533.":                          "hardware device could not be opened",
		"Error initializing an internal MFX session: unsupported (-3)": "no Intel QSV",
		"cannot create compression session: -12908":                    "VideoToolbox",
		"Cannot load libnvidia-encode.so.1":                            "NVENC runtime missing",
		"Driver does not support the required nvenc API version. Required: 12.1 Found: 11.0\nThe minimum required Nvidia driver for nvenc is 530.41.03 or newer": "driver too old",
		"all fine": "",
	}
	for out, want := range cases {
		got := classify(strings.Split(out, "\n"))
		if want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("%q: %q, want %q", out, got, want)
		}
	}
}
