package gateway

import (
	"context"
	"encoding/binary"
	"log/slog"
	"testing"
	"time"

	"github.com/pion/rtp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// newTestHub is a hub on cfg that logs into the test's output and is
// closed when the test ends (inside the bubble, under synctest).
func newTestHub(t testing.TB, cfg Config) *Hub {
	hub := NewHub(cfg, testLog(t))
	t.Cleanup(hub.Close)
	return hub
}

// publishH264 publishes one H.264 track, main, on the stream name.
func publishH264(t *testing.T, hub *Hub, name string) *Publication {
	t.Helper()
	pub, err := hub.Publish(name, []TrackInfo{{Name: "main", Codec: H264}}, PublishOptions{Kind: "test"})
	if err != nil {
		t.Fatalf("publish %q: %v", name, err)
	}
	return pub
}

// subscribe subscribes to tracks of the stream name until the test ends.
func subscribe(t *testing.T, hub *Hub, name string, tracks ...string) *Subscription {
	t.Helper()
	sub, err := hub.Subscribe(name, tracks, SubscribeOptions{Kind: "test"})
	if err != nil {
		t.Fatalf("subscribe %q %v: %v", name, tracks, err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

// h264Hub is a hub on cfg with an H.264 publication on stream cam and a
// source for its track.
func h264Hub(t *testing.T, cfg Config) (*Hub, *Publication, *h264Source) {
	t.Helper()
	hub := newTestHub(t, cfg)
	pub := publishH264(t, hub, "cam")
	return hub, pub, newH264Source(pub, 0)
}

// h264Source writes a synthetic H.264 stream in a GOP pattern: a keyframe
// (STAP-A with SPS and PPS, then an FU-A IDR) every gop frames, FU-A
// non-IDR frames in between. Every payload ends with the packet's index in
// the source, so a test can tell exactly which packets a subscriber got.
type h264Source struct {
	pub   *Publication
	track int

	gop          int // frames per GOP; a keyframe starts each
	keyPackets   int // packets in a keyframe, STAP-A included
	deltaPackets int // packets in other frames
	size         int // payload bytes per packet
	tsStep       uint32
	pace         time.Duration // between a frame's packets; 0 writes them back to back

	seq   uint16
	ts    uint32
	frame int
	index uint32

	buf []byte
	pkt rtp.Packet
}

func newH264Source(pub *Publication, track int) *h264Source {
	return &h264Source{
		pub: pub, track: track,
		gop: 30, keyPackets: 20, deltaPackets: 5, size: 1200, tsStep: 1500,
		seq: 1000, ts: 90000,
	}
}

// nextIsKey reports whether the next frame is a keyframe.
func (s *h264Source) nextIsKey() bool { return s.frame%s.gop == 0 }

// writeFrame writes one frame and returns the source indexes of its first
// and last packets.
func (s *h264Source) writeFrame() (first, last uint32) {
	key := s.nextIsKey()
	n := s.deltaPackets
	if key {
		n = s.keyPackets
	}
	first = s.index
	for i := range n {
		if i > 0 && s.pace > 0 {
			time.Sleep(s.pace)
		}
		var p []byte
		switch {
		case key && i == 0:
			p = stapA(nal(0x67, 8), nal(0x68, 4))
		case n == 1:
			p = nal(0x41, s.size)
		default:
			typ := byte(1)
			if key {
				typ = 5
			}
			fu := typ
			if i == 0 || key && i == 1 {
				fu |= 0x80
			}
			if i == n-1 {
				fu |= 0x40
			}
			p = append([]byte{0x7c, fu}, make([]byte, s.size-2)...)
		}
		s.writePacket(p, i == n-1)
	}
	s.frame++
	s.ts += s.tsStep
	return first, s.index - 1
}

func (s *h264Source) writePacket(payload []byte, marker bool) {
	s.buf = append(s.buf[:0], payload...)
	s.buf = binary.BigEndian.AppendUint32(s.buf, s.index)
	s.pkt.Header = rtp.Header{Version: 2, PayloadType: 102, SequenceNumber: s.seq, Timestamp: s.ts, Marker: marker, SSRC: 0x1234}
	s.pkt.Payload = s.buf
	s.pub.WriteRTP(s.track, &s.pkt)
	s.seq++
	s.index++
}

func nal(header byte, size int) []byte {
	b := make([]byte, size)
	b[0] = header
	return b
}

func stapA(nalus ...[]byte) []byte {
	p := []byte{0x78}
	for _, n := range nalus {
		p = binary.BigEndian.AppendUint16(p, uint16(len(n)))
		p = append(p, n...)
	}
	return p
}

// index is the source index a test packet carries in its last four bytes.
func index(o Out) uint32 {
	return binary.BigEndian.Uint32(o.Payload[len(o.Payload)-4:])
}

// readEach calls Next on sub, with room for batch packets, until it fails;
// it hands each call's packets to got and returns Next's error.
func readEach(ctx context.Context, sub *Subscription, batch int, got func([]Out)) error {
	out := make([]Out, batch)
	for {
		n, err := sub.Next(ctx, out)
		if err != nil {
			return err
		}
		got(out[:n])
	}
}

// drainWaiting is drain for a subscriber that joined with a GOP cache,
// which Next hands out paced: it waits for packets until none came for
// a second (fake time under synctest).
func drainWaiting(t testing.TB, sub *Subscription) []Out {
	t.Helper()
	var all []Out
	out := make([]Out, 64)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		n, err := sub.Next(ctx, out)
		cancel()
		all = append(all, out[:n]...)
		if err != nil || n == 0 {
			return all
		}
	}
}

// drain returns everything queued for sub right now, without waiting.
func drain(t testing.TB, sub *Subscription) []Out {
	t.Helper()
	var all []Out
	out := make([]Out, 64)
	for {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		n, err := sub.Next(ctx, out)
		all = append(all, out[:n]...)
		if err != nil || n == 0 {
			return all
		}
	}
}
