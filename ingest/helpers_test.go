package ingest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"

	"whipgate/gateway"
	"whipgate/internal/testkit"
)

func testLog(t testing.TB) *slog.Logger { return testkit.LogAt(t, slog.LevelDebug) }

// newTestHub is a hub on the zero Config logging into log, closed when
// the test ends.
func newTestHub(t testing.TB, log *slog.Logger) *gateway.Hub {
	hub := gateway.NewHub(gateway.Config{}, log)
	t.Cleanup(hub.Close)
	return hub
}

// requireTool fails the test when a tool it drives is missing.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	switch name {
	case "ffmpeg", "ffprobe":
		t.Fatalf("%s not found: install it with `apt-get install ffmpeg` (.ci/run does)", name)
	case "gst-launch-1.0":
		t.Fatalf("%s not found: install it with `apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base "+
			"gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly` (.ci/run does)", name)
	}
	t.Fatalf("%s not found", name)
	return ""
}

// sink rebuilds a codec's elementary stream from the packets a subscriber
// gets, checking on the way that sequence numbers have no gaps.
type sink struct {
	codec gateway.Codec
	out   bytes.Buffer

	h264  codecs.H264Packet
	h265  codecs.H265Depacketizer
	av1   codecs.AV1Depacketizer
	vp8   codecs.VP8Packet
	vp9   codecs.VP9Packet
	frame []byte // the VP8/VP9/AV1 frame being gathered

	packets, frames, keyStarts int
	first                      gateway.Out
	lastSeq                    uint16
	lastTS                     uint32
	gaps                       int
	ivfFrames                  []ivfFrame
	keyTimes                   []time.Time // when each keyframe start arrived
	frameTS                    []uint32    // timestamp of each frame
}

type ivfFrame struct {
	ts   uint32
	data []byte
}

func newSink(c gateway.Codec) *sink { return &sink{codec: c} }

func (s *sink) add(o gateway.Out) error {
	if s.packets == 0 {
		s.first = o
	} else {
		if o.Seq != s.lastSeq+1 {
			s.gaps++
		}
		if int32(o.Timestamp-s.lastTS) < 0 {
			return fmt.Errorf("timestamp went back from %d to %d", s.lastTS, o.Timestamp)
		}
	}
	s.packets++
	s.lastSeq, s.lastTS = o.Seq, o.Timestamp
	if o.KeyStart {
		s.keyStarts++
		s.keyTimes = append(s.keyTimes, time.Now())
	}
	var b []byte
	var err error
	switch s.codec {
	case gateway.H264:
		b, err = s.h264.Unmarshal(o.Payload)
	case gateway.H265:
		b, err = s.h265.Unmarshal(o.Payload)
	case gateway.AV1:
		b, err = s.av1.Unmarshal(o.Payload)
	case gateway.VP8:
		b, err = s.vp8.Unmarshal(o.Payload)
	case gateway.VP9:
		b, err = s.vp9.Unmarshal(o.Payload)
	}
	if err != nil {
		return fmt.Errorf("depacketize packet %d (seq %d): %w", s.packets, o.Seq, err)
	}
	switch s.codec {
	case gateway.H264, gateway.H265:
		s.out.Write(b)
	default:
		s.frame = append(s.frame, b...)
	}
	if o.Marker {
		s.frames++
		s.frameTS = append(s.frameTS, o.Timestamp)
		switch s.codec {
		case gateway.AV1:
			s.out.Write([]byte{0x12, 0x00}) // temporal delimiter
			s.out.Write(s.frame)
		case gateway.VP8, gateway.VP9:
			s.ivfFrames = append(s.ivfFrames, ivfFrame{o.Timestamp, s.frame})
		}
		s.frame = nil
	}
	return nil
}

// checkStep fails unless every frame is step ticks after the last.
func (s *sink) checkStep(t testing.TB, step uint32) {
	t.Helper()
	for i := 1; i < len(s.frameTS); i++ {
		if d := s.frameTS[i] - s.frameTS[i-1]; d != step {
			t.Errorf("frame %d is %d ticks after the last, want %d", i, d, step)
			return
		}
	}
}

// keyAfter returns the first keyframe start that arrived after t.
func (s *sink) keyAfter(t time.Time) (time.Time, bool) {
	for _, k := range s.keyTimes {
		if k.After(t) {
			return k, true
		}
	}
	return time.Time{}, false
}

// write stores the stream in a file ffmpeg can read and returns its path.
func (s *sink) write(t testing.TB, name string) string {
	t.Helper()
	var ext string
	switch s.codec {
	case gateway.H264:
		ext = ".h264"
	case gateway.H265:
		ext = ".hevc"
	case gateway.AV1:
		ext = ".obu"
	default:
		ext = ".ivf"
		fourcc := map[gateway.Codec]string{gateway.VP8: "VP80", gateway.VP9: "VP90"}[s.codec]
		var hdr [32]byte
		copy(hdr[0:], "DKIF")
		binary.LittleEndian.PutUint16(hdr[6:], 32)
		copy(hdr[8:], fourcc)
		binary.LittleEndian.PutUint32(hdr[16:], 90000) // time base 1/90000
		binary.LittleEndian.PutUint32(hdr[20:], 1)
		binary.LittleEndian.PutUint32(hdr[24:], uint32(len(s.ivfFrames)))
		s.out.Write(hdr[:])
		for _, f := range s.ivfFrames {
			var fh [12]byte
			binary.LittleEndian.PutUint32(fh[0:], uint32(len(f.data)))
			binary.LittleEndian.PutUint64(fh[4:], uint64(f.ts-s.ivfFrames[0].ts))
			s.out.Write(fh[:])
			s.out.Write(f.data)
		}
	}
	path := filepath.Join(t.TempDir(), name+ext)
	if err := os.WriteFile(path, s.out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// runSource runs src on a goroutine and returns Run's context, for the
// test's own goroutines to end with, and stop, which ends it and fails the
// test unless Run then returns context.Canceled.
func runSource(t testing.TB, src interface{ Run(context.Context) error }) (ctx context.Context, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	return ctx, func() {
		t.Helper()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
	}
}

// drain feeds everything sub delivers into s until ctx is done and the
// queue is empty.
func drain(ctx context.Context, sub *gateway.Subscription, s *sink) error {
	outs := make([]gateway.Out, 256)
	for {
		n, err := sub.Next(ctx, outs)
		for _, o := range outs[:n] {
			if err := s.add(o); err != nil {
				return err
			}
		}
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return err
		}
	}
}

// decodeClean decodes path with ffmpeg and fails on any message it prints.
func decodeClean(t testing.TB, path string) {
	t.Helper()
	requireTool(t, "ffmpeg")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("ffmpeg decode of %s: err %v, output:\n%s", filepath.Base(path), err, out)
	}
}

type probe struct{ width, height, frames int }

// probeVideo reports the size and the number of decoded frames of path.
func probeVideo(t testing.TB, path string) probe {
	t.Helper()
	requireTool(t, "ffprobe")
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=width,height,nb_read_frames", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v: %s", filepath.Base(path), err, out)
	}
	f := strings.Split(strings.TrimSpace(string(out)), ",")
	if len(f) != 3 {
		t.Fatalf("ffprobe %s: unexpected output %q", filepath.Base(path), out)
	}
	var p probe
	for i, dst := range []*int{&p.width, &p.height, &p.frames} {
		if *dst, err = strconv.Atoi(f[i]); err != nil {
			t.Fatalf("ffprobe %s: unexpected output %q", filepath.Base(path), out)
		}
	}
	return p
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
