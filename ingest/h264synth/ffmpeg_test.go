package h264synth

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

var decodeCases = []struct{ w, h, fps, gop int }{
	{1280, 720, 30, 30},
	{320, 180, 30, 30},
	{640, 360, 30, 30},
	{200, 120, 30, 30}, // 12.5×7.5 macroblocks: cropped right and bottom
	{64, 64, 30, 30},   // the smallest size
	{66, 130, 30, 30},  // cropped by 14 and 14 samples
	{1920, 1080, 30, 30},
	{320, 180, 25, 1},   // IDR after IDR: idr_pic_id must change
	{640, 360, 60, 200}, // frame_num wraps many times in one GOP
}

// TestFFmpegDecodesExactly checks, for several sizes, that ffmpeg decodes
// 90 frames without a single error, that ffprobe sees the exact size, frame
// count and profile, and that every decoded sample equals the rendered
// pattern.
func TestFFmpegDecodesExactly(t *testing.T) {
	ffmpeg, ffprobe := requireFFmpeg(t)
	for _, sz := range decodeCases {
		t.Run(fmt.Sprintf("%dx%d@%d_gop%d", sz.w, sz.h, sz.fps, sz.gop), func(t *testing.T) {
			t.Parallel()
			const frames = 90
			s := encodeStream(t, Config{Width: sz.w, Height: sz.h, FPS: sz.fps, GOP: sz.gop, Label: "main"}, frames)

			var out bytes.Buffer
			cmd := exec.CommandContext(t.Context(), ffmpeg, "-nostdin", "-hide_banner", "-v", "error",
				"-err_detect", "explode", "-i", s.path, "-f", "null", "-")
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil || out.Len() != 0 {
				t.Fatalf("ffmpeg -err_detect explode: %v, output:\n%s", err, out.Bytes())
			}

			got := probeStream(t, ffprobe, s.path)
			want := map[string]string{
				"width":          strconv.Itoa(sz.w),
				"height":         strconv.Itoa(sz.h),
				"profile":        "Constrained Baseline",
				"nb_read_frames": strconv.Itoa(frames),
				"level":          strconv.Itoa(s.enc.levelIDC),
				"r_frame_rate":   fmt.Sprintf("%d/1", sz.fps),
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("ffprobe %s = %q, want %q", k, got[k], v)
				}
			}

			n := decodeFrames(t, ffmpeg, s.path, "yuv420p", sz.w*sz.h*3/2, func(i int, frame []byte) {
				if want := expectedI420(s.enc, uint64(i)); !bytes.Equal(frame, want) {
					t.Fatalf("frame %d differs from the pattern: %s", i, firstDiff(frame, want, sz.w, sz.h))
				}
			})
			if n != frames {
				t.Fatalf("decoded %d frames, want %d", n, frames)
			}
		})
	}
}

// probeStream returns ffprobe's stream entries of the first video stream.
func probeStream(t *testing.T, ffprobe, path string) map[string]string {
	t.Helper()
	out := run(t, ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=width,height,profile,level,nb_read_frames,r_frame_rate",
		"-of", "default=noprint_wrappers=1", path)
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

// decodeFrames decodes path with ffmpeg to raw pixels of pixFmt and calls
// fn for each frame of frameSize bytes; it returns the number of frames.
func decodeFrames(t *testing.T, ffmpeg, path, pixFmt string, frameSize int, fn func(i int, frame []byte)) int {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), ffmpeg, "-nostdin", "-v", "error", "-i", path,
		"-f", "rawvideo", "-pix_fmt", pixFmt, "-")
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Reap ffmpeg even when fn fails the test half-way.
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	buf := make([]byte, frameSize)
	n := 0
	for {
		if _, err := io.ReadFull(stdout, buf); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("read frame %d: %v\n%s", n, err, stderr.Bytes())
		}
		fn(n, buf)
		n++
	}
	if err := cmd.Wait(); err != nil || stderr.Len() != 0 {
		t.Fatalf("ffmpeg decode: %v\n%s", err, stderr.Bytes())
	}
	return n
}

// TestMotionVisible decodes to grey and checks what a viewer sees: the
// square and the counter move between frame 0 and 15, consecutive frames
// always differ in both counters, and the square advances one macroblock a
// frame.
func TestMotionVisible(t *testing.T) {
	ffmpeg, _ := requireFFmpeg(t)
	for _, sz := range []struct{ w, h int }{{1280, 720}, {320, 180}} {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			t.Parallel()
			const frames = 40
			s := encodeStream(t, Config{Width: sz.w, Height: sz.h, GOP: 30}, frames)
			lay := s.enc.lay
			if lay.digits == 0 {
				t.Fatalf("%dx%d has no decimal counter", sz.w, sz.h)
			}
			var grey [][]byte
			decodeFrames(t, ffmpeg, s.path, "gray", sz.w*sz.h, func(_ int, f []byte) {
				grey = append(grey, bytes.Clone(f))
			})
			if len(grey) != frames {
				t.Fatalf("decoded %d frames, want %d", len(grey), frames)
			}

			region := func(f []byte, r rect) []byte {
				var out []byte
				for y := r.y * 16; y < (r.y+r.h)*16; y++ {
					out = append(out, f[y*sz.w+r.x*16:y*sz.w+(r.x+r.w)*16]...)
				}
				return out
			}
			for name, r := range map[string]rect{"track": lay.track, "counter": lay.counter, "binary counter": lay.binary} {
				if bytes.Equal(region(grey[0], r), region(grey[15], r)) {
					t.Errorf("frames 0 and 15 are the same in the %s region", name)
				}
			}
			for i := 1; i < frames; i++ {
				for name, r := range map[string]rect{"counter": lay.counter, "binary counter": lay.binary} {
					if bytes.Equal(region(grey[i-1], r), region(grey[i], r)) {
						t.Errorf("frames %d and %d are the same in the %s region", i-1, i, name)
					}
				}
				// The square's left edge: bright here, dark one macroblock to
				// the left (wrapping), on the track's middle row. ffmpeg
				// stretches limited range to full range for grey.
				y := (lay.track.y*16 + lay.track.h*8) * sz.w
				x := (i % lay.track.w) * 16
				left := (x - 16 + lay.track.w*16) % (lay.track.w * 16)
				if got := grey[i][y+x+8]; got < 200 {
					t.Errorf("frame %d: square missing at x=%d: luma %d", i, x, got)
				}
				if got := grey[i][y+left+8]; got > 50 {
					t.Errorf("frame %d: track at x=%d is %d, want black", i, left, got)
				}
			}
		})
	}
}

// TestDecoderSeesKeyframes checks with ffprobe that the keyframes are IDR
// pictures exactly at the GOP interval and on request, and P pictures
// elsewhere.
func TestDecoderSeesKeyframes(t *testing.T) {
	_, ffprobe := requireFFmpeg(t)
	const frames = 95
	s := encodeStream(t, Config{Width: 320, Height: 180, GOP: 30}, frames, 40)
	out := run(t, ffprobe, "-v", "error", "-select_streams", "v:0",
		"-show_entries", "frame=key_frame,pict_type", "-of", "csv=p=0", s.path)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != frames {
		t.Fatalf("ffprobe lists %d frames, want %d", len(lines), frames)
	}
	for i, l := range lines {
		want := "0,P"
		if i == 0 || i == 30 || i == 40 || i == 70 {
			want = "1,I"
		}
		if l != want {
			t.Errorf("frame %d: key_frame,pict_type = %s, want %s", i, l, want)
		}
	}
}
