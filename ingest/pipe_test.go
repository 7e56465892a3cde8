package ingest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"whipgate/gateway"
)

const pipeTestFrames = 60

// ffmpegArgs encodes pipeTestFrames frames of a 640x360 pattern with the
// given codec options to stdout.
func ffmpegArgs(codecArgs ...string) []string {
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-frames:v", strconv.Itoa(pipeTestFrames), "-pix_fmt", "yuv420p"}
	return append(append(args, codecArgs...), "pipe:1")
}

func TestPipeIngestFFmpeg(t *testing.T) {
	requireTool(t, "ffmpeg")
	cases := []struct {
		name  string
		cfg   PipeConfig
		step  uint32 // ticks from frame to frame; 0 for arrival times
		codec []string
	}{
		{"h264-aud", PipeConfig{Codec: gateway.H264, FPS: 30}, 3000,
			[]string{"-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", "30", "-aud", "1", "-f", "h264"}},
		{"h264-slices", PipeConfig{Codec: "h264"}, 0,
			[]string{"-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", "30", "-x264-params", "slices=4", "-f", "h264"}},
		{"h265", PipeConfig{Codec: gateway.H265, FPS: 30}, 3000,
			[]string{"-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "keyint=30:min-keyint=30:bframes=0:repeat-headers=1:log-level=error", "-f", "hevc"}},
		{"av1-ivf", PipeConfig{Codec: gateway.AV1, Container: IVF}, 3000, // from the IVF pts
			[]string{"-c:v", "libsvtav1", "-preset", "12", "-g", "30", "-f", "ivf"}},
		{"av1-obu", PipeConfig{Codec: "av1", FPS: 30}, 3000,
			[]string{"-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-g", "30", "-f", "obu"}},
		{"vp8-ivf", PipeConfig{Codec: gateway.VP8}, 3000,
			[]string{"-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-g", "30", "-b:v", "1M", "-f", "ivf"}},
		{"vp9-ivf", PipeConfig{Codec: gateway.VP9}, 3000,
			[]string{"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "30", "-b:v", "1M", "-f", "ivf"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log := testLog(t)
			var onFrame atomic.Int64
			tc.cfg.OnFrame = func(string) { onFrame.Add(1) }
			pr, err := NewPipeReader(tc.cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			hub := newTestHub(t, log)
			pub, sub := publishOne(t, hub, pr.Config())

			cmd := exec.CommandContext(t.Context(), "ffmpeg", ffmpegArgs(tc.codec...)...)
			cmd.Stderr = os.Stderr
			cmd.Env = append(os.Environ(), "SVT_LOG=1") // SVT-AV1 prints a banner at info level
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			s := newSink(pr.Config().Codec)
			ingested := make(chan error, 1)
			dctx, stop := context.WithCancel(t.Context())
			go func() {
				ingested <- pr.Ingest(t.Context(), stdout, pub, 0)
				stop() // everything written is queued: drain ends once the queue is empty
			}()
			if err := drain(dctx, sub, s); err != nil {
				t.Fatal(err)
			}
			if err := <-ingested; err != nil {
				t.Fatalf("Ingest: %v", err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("ffmpeg: %v", err)
			}
			checkStream(t, tc.name, s, sub, pipeTestFrames)
			if tc.step != 0 {
				s.checkStep(t, tc.step)
			}
			if n := onFrame.Load(); n != int64(s.frames) || pr.Frames() != uint64(n) {
				t.Errorf("OnFrame called %d times, Frames() %d, for %d frames", n, pr.Frames(), s.frames)
			}
		})
	}
}

// publishOne publishes cfg's layer as track 0 of stream "s" and subscribes
// to it.
func publishOne(t *testing.T, hub *gateway.Hub, cfg PipeConfig) (*gateway.Publication, *gateway.Subscription) {
	t.Helper()
	pub, err := hub.Publish("s", []gateway.TrackInfo{{Name: cfg.Layer, Codec: cfg.Codec}}, gateway.PublishOptions{Kind: "pipe"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	sub, err := hub.Subscribe("s", []string{cfg.Layer}, gateway.SubscribeOptions{Kind: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	return pub, sub
}

// checkStream decodes what the subscriber got and checks the frame count.
func checkStream(t *testing.T, name string, s *sink, sub *gateway.Subscription, want int) {
	t.Helper()
	if st := sub.Stats(); st.Dropped != 0 || st.Skipped != 0 {
		t.Errorf("subscriber dropped %d and skipped %d packets", st.Dropped, st.Skipped)
	}
	if s.gaps != 0 {
		t.Errorf("%d sequence gaps", s.gaps)
	}
	if !s.first.KeyStart {
		t.Errorf("the first packet is not a keyframe start")
	}
	path := s.write(t, name)
	decodeClean(t, path)
	p := probeVideo(t, path)
	if p.frames < want-1 || p.frames > want+1 || s.frames < want-1 || s.frames > want+1 {
		t.Errorf("%d frames packetized, %d decoded; want %d ± 1", s.frames, p.frames, want)
	}
	if p.width != 640 || p.height != 360 {
		t.Errorf("decoded %dx%d, want 640x360", p.width, p.height)
	}
	t.Logf("%s: %d packets, %d frames (%d decoded), %d keyframe starts", name, s.packets, s.frames, p.frames, s.keyStarts)
}

// An encoder that writes parameter sets only once still gives a late
// viewer a decodable start: the reader puts the cached SPS and PPS back in
// front of each IDR. The stream is read one byte at a time, so every start
// code straddles a read.
func TestPipeIngestRestoresParameterSets(t *testing.T) {
	requireTool(t, "ffmpeg")
	cmd := exec.CommandContext(t.Context(), "ffmpeg", ffmpegArgs(
		"-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", "20", "-x264-params", "slices=2", "-f", "h264")...)
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	stripped, removed := stripLaterParamSets(raw)
	if removed < 4 {
		t.Fatalf("removed %d parameter sets from the encoder's output; want SPS and PPS of at least 2 later IDRs", removed)
	}

	log := testLog(t)
	pr, err := NewPipeReader(PipeConfig{Codec: gateway.H264, FPS: 30}, log)
	if err != nil {
		t.Fatal(err)
	}
	hub := newTestHub(t, log)
	pub, early := publishOne(t, hub, pr.Config())
	if err := pr.Ingest(t.Context(), iotest.OneByteReader(bytes.NewReader(stripped)), pub, 0); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	// The late viewer starts from the GOP cache, at the last IDR (frame 40).
	late, err := hub.Subscribe("s", []string{"main"}, gateway.SubscribeOptions{Kind: "late"})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	for _, v := range []struct {
		name   string
		sub    *gateway.Subscription
		frames int
	}{{"early", early, pipeTestFrames}, {"late", late, pipeTestFrames - 40}} {
		s := newSink(gateway.H264)
		ctx, stop := context.WithTimeout(t.Context(), 200*time.Millisecond)
		if err := drain(ctx, v.sub, s); err != nil {
			t.Fatal(err)
		}
		stop()
		checkStream(t, v.name, s, v.sub, v.frames)
	}
}

// stripLaterParamSets removes SPS and PPS units after the first of each.
func stripLaterParamSets(b []byte) ([]byte, int) {
	var out []byte
	seen := map[byte]bool{}
	removed := 0
	nals := bytes.Split(b, []byte{0, 0, 1})
	for i, nal := range nals {
		if i == 0 {
			continue // before the first start code
		}
		nal = bytes.TrimRight(nal, "\x00")
		t := nal[0] & 0x1f
		if t == 7 || t == 8 {
			if seen[t] {
				removed++
				continue
			}
			seen[t] = true
		}
		out = append(out, 0, 0, 0, 1)
		out = append(out, nal...)
	}
	return out, removed
}
