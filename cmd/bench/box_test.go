package bench

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/rtp"

	"whipgate/gateway"
	"whipgate/ingest"
)

// rtpRecorder keeps the payloads a PipeReader writes, and where each
// frame (marker bit) ends.
type rtpRecorder struct {
	payloads [][]byte
	ends     []int
}

func (r *rtpRecorder) WriteRTP(_ int, pkt *rtp.Packet) {
	r.payloads = append(r.payloads, bytes.Clone(pkt.Payload))
	if pkt.Marker {
		r.ends = append(r.ends, len(r.payloads))
	}
}

// The box feed's access units, through the server's own pipe reader,
// come out as the tally needs them: each frame in as many packets as the
// feed said, its first packet stamped with its number and send time, a
// keyframe's seen as one by the hub.
func TestBoxFramesThroughThePipeReader(t *testing.T) {
	for _, bitrate := range []int64{5e6, 100e6} {
		p := newPlan(bitrate, 60, time.Second, 8)
		a := newAnnexBFrames(p)
		var stream bytes.Buffer
		var want []int
		const frames = 4
		for n := range frames {
			au, packets := a.frame(uint64(n), n%2 == 0, int64(1e18)+int64(n))
			stream.Write(au)
			want = append(want, packets)
		}
		// The reader ends an access unit at the next one's first slice,
		// or at the end of the stream.
		pr, err := ingest.NewPipeReader(ingest.PipeConfig{Codec: gateway.H264, FPS: 60}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		var rec rtpRecorder
		if err := pr.Ingest(t.Context(), &stream, &rec, 0); err != nil {
			t.Fatal(err)
		}
		if len(rec.ends) != frames {
			t.Fatalf("%d bps: %d frames out of the pipe reader, want %d", bitrate, len(rec.ends), frames)
		}
		first := 0
		for n, end := range rec.ends {
			if got := end - first; got != want[n] {
				t.Errorf("%d bps, frame %d: %d packets, the feed said %d", bitrate, n, got, want[n])
			}
			frame, sent, ok := readStamp(rec.payloads[first])
			if !ok || frame != uint64(n) || sent != int64(1e18)+int64(n) {
				t.Errorf("%d bps, frame %d: stamp %d/%d (found %v)", bitrate, n, frame, sent, ok)
			}
			if key := gateway.IsKeyframe(gateway.H264, rec.payloads[first]); key != (n%2 == 0) {
				t.Errorf("%d bps, frame %d: the hub reads keyframe %v", bitrate, n, key)
			}
			first = end
		}
	}
}

// A stamp has no zero byte: in an Annex-B stream it can neither start a
// NAL unit nor need escaping.
func TestStampHasNoZeroByte(t *testing.T) {
	b := make([]byte, stampLen)
	for _, v := range []uint64{0, 1, 0x80, 1 << 63, ^uint64(0)} {
		putStamp(b, v, int64(v>>1))
		if bytes.IndexByte(b, 0) >= 0 {
			t.Errorf("stamp of %d has a zero byte: % x", v, b)
		}
		if f, s := stampField(b), int64(stampField(b[stampFieldLen:])); f != v || s != int64(v>>1) {
			t.Errorf("stamp of %d/%d reads %d/%d", v, v>>1, f, s)
		}
	}
}

// The feed's writes block while nothing reads its FIFOs (a relay that
// died); the end of its context still ends send.
func TestFeedEndsWithNoReader(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{boxMainFIFO, boxPreviewFIFO} {
		if err := makeFIFO(filepath.Join(dir, f)); err != nil {
			t.Skip(err)
		}
	}
	opt := Options{Bitrate: 100e6, PreviewBitrate: 5e6, FPS: 60, GOP: time.Second, KeyframeFactor: 8}
	f, err := startFeed(dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(t.Context())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.send(ctx, sendOptions{}, newFrameTable(60, time.Minute)) }()
	// The first keyframe (1.67 MB) fills the FIFO (1 MiB at most) and
	// its write waits; a moment later the context ends. (Should the
	// write not have begun by then, send ends all the same.)
	time.AfterFunc(200*time.Millisecond, cancel)
	if err := <-done; err != nil {
		t.Errorf("send after its context ended: %v, want nil", err)
	}
}
