package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// BenchmarkFanout publishes an 8K-like H.264 stream (1200-byte packets; a
// GOP of 60 frames: a 1,000-packet keyframe burst, then 160-packet frames,
// about 10,400 packets a second at 60 fps) to 1, 8 and 32 subscribers, each
// draining on its own goroutine with Next and a batch of 256. One op is one
// published packet, delivered to every subscriber; ns/pkt/sub is the cost
// per packet per subscriber. The publisher never lets any subscriber fall
// more than half a queue behind, so nothing is dropped and the figure
// includes all the subscribers' work; drops/op reports it if they were.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, subs int) {
	const (
		queue       = 8192
		maxInFlight = queue / 2
	)
	hub := NewHub(Config{QueuePackets: queue}, slog.New(slog.DiscardHandler))
	defer hub.Close()
	pub, err := hub.Publish("cam", []TrackInfo{{Name: "main", Codec: H264}}, PublishOptions{})
	if err != nil {
		b.Fatal(err)
	}
	stream := newBenchStream()

	delivered := make([]atomic.Int64, subs)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range subs {
		sub, err := hub.Subscribe("cam", []string{"main"}, SubscribeOptions{})
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			defer sub.Close()
			_ = readEach(ctx, sub, 256, func(out []Out) { delivered[i].Add(int64(len(out))) })
		})
	}
	// waitFor lets every subscriber catch up to within lag packets of written.
	waitFor := func(written int64, lag int64) {
		for i := range delivered {
			for written-delivered[i].Load() > lag {
				runtime.Gosched()
			}
		}
	}
	var written int64

	b.ReportAllocs()
	b.SetBytes(benchPacketSize)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		frameEnded := stream.writeNext(pub)
		written++
		if frameEnded {
			waitFor(written, maxInFlight)
		}
	}
	waitFor(written, 0)
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&after)

	var drops uint64
	if s, ok := hub.Stream("cam"); ok {
		for _, st := range s.Stats().Subscribers {
			drops += st.Dropped + st.Skipped
		}
	}
	cancel()
	wg.Wait()
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N)/float64(subs), "ns/pkt/sub")
	b.ReportMetric(float64(drops)/float64(b.N), "drops/op")
	// allocs/op rounds down to an integer; this keeps the fraction (the
	// slab's chunks, amortised over the packets cut from them).
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/pkt")
}

// BenchmarkPublish is the publisher's own cost per packet with nobody
// watching: copy into the slab, classify, GOP cache (with its hub-wide
// accounting). The same 8K-like stream as BenchmarkFanout, on one
// goroutine, so it varies less with the machine's load.
func BenchmarkPublish(b *testing.B) {
	hub := NewHub(Config{}, slog.New(slog.DiscardHandler))
	defer hub.Close()
	pub, err := hub.Publish("cam", []TrackInfo{{Name: "main", Codec: H264}}, PublishOptions{})
	if err != nil {
		b.Fatal(err)
	}
	stream := newBenchStream()
	b.ReportAllocs()
	b.SetBytes(benchPacketSize)
	for b.Loop() {
		stream.writeNext(pub)
	}
}

// The 8K-like H.264 stream the benchmarks publish: 1200-byte FU-A
// packets, a GOP of 60 frames at 60 fps, each GOP a 1,000-packet keyframe
// burst and then 160-packet frames.
const (
	benchPacketSize   = 1200
	benchGOP          = 60
	benchKeyPackets   = 1000
	benchFramePackets = 160
)

// benchStream cuts that stream into packets, one per writeNext, without
// allocating: every packet of a kind shares its payload.
type benchStream struct {
	keyFU, deltaFU [3][]byte // fragments of an IDR and of a non-IDR picture: start, middle, end
	pkt            rtp.Packet
	frame, inFrame int
	frameLen       int // packets in the current frame
}

func newBenchStream() *benchStream {
	payload := func(fuIndicator, fuHeader byte) []byte {
		p := make([]byte, benchPacketSize)
		p[0], p[1] = fuIndicator, fuHeader
		return p
	}
	s := &benchStream{
		keyFU:    [3][]byte{payload(0x7c, 0x85), payload(0x7c, 0x05), payload(0x7c, 0x45)},
		deltaFU:  [3][]byte{payload(0x5c, 0x81), payload(0x5c, 0x01), payload(0x5c, 0x41)},
		frameLen: benchKeyPackets,
	}
	s.pkt.Header = rtp.Header{Version: 2, PayloadType: 102, SSRC: 1}
	return s
}

// writeNext writes the stream's next packet to track 0 of pub and reports
// whether it ended a frame.
func (s *benchStream) writeNext(pub *Publication) (frameEnded bool) {
	fu := &s.deltaFU
	if s.frame%benchGOP == 0 {
		fu = &s.keyFU
	}
	switch s.inFrame {
	case 0:
		s.pkt.Payload = fu[0]
	case s.frameLen - 1:
		s.pkt.Payload = fu[2]
	default:
		s.pkt.Payload = fu[1]
	}
	s.pkt.Marker = s.inFrame == s.frameLen-1
	pub.WriteRTP(0, &s.pkt)
	s.pkt.SequenceNumber++
	if s.inFrame++; s.inFrame < s.frameLen {
		return false
	}
	s.frame++
	s.inFrame, s.frameLen = 0, benchFramePackets
	if s.frame%benchGOP == 0 {
		s.frameLen = benchKeyPackets
	}
	s.pkt.Timestamp += 1500
	return true
}
