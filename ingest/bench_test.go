package ingest

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"golang.org/x/sys/unix"

	"whipgate/gateway"
)

// A synthetic stream shaped like the 8K main layer at 100 Mbps: 60 fps, a
// 1 s GOP whose keyframe is 8 times a delta frame (1.49 MB and 187 KB),
// 208 KB per frame on average.
const (
	benchFPS     = 60
	benchGOP     = 60
	benchAvgSize = 100_000_000 / 8 / benchFPS // 208,333 bytes
	benchPSize   = benchAvgSize * benchGOP / (benchGOP - 1 + 8)
	benchKeySize = 8 * benchPSize
)

// benchCodecs are the codecs of the 8K main layer the benchmarks feed.
var benchCodecs = []gateway.Codec{gateway.H264, gateway.H265, gateway.AV1}

// synthGOP returns one GOP of access units as an encoder writes them to
// the pipe, for H.264 and H.265 (Annex-B) or AV1 (an OBU stream).
//
// Annex-B: an AUD, then on the keyframe the parameter sets, then one slice
// (IDR / IDR_W_RADL, or a P / TRAIL_R slice) of random bytes behind a
// header that marks it the picture's first, with emulation prevention
// applied, so every start code the reader finds is a real one.
//
// AV1: a temporal delimiter, then on the keyframe a sequence header, then
// one frame OBU of random bytes, every OBU with its size field.
func synthGOP(codec gateway.Codec, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	gop := make([][]byte, benchGOP)
	for i := range gop {
		key := i == 0
		size := benchPSize
		if key {
			size = benchKeySize
		}
		var au []byte
		switch codec {
		case gateway.H264:
			au = append(au, 0, 0, 0, 1, 0x09, 0xf0)
			hdr := byte(0x41)
			if key {
				hdr = 0x65
				au = append(au, 0, 0, 0, 1, 0x67, 0x64, 0x00, 0x33, 0xac, 0x2c, 0xa4, 0x01, 0xe0, 0x01, 0x0e, 0x80,
					0, 0, 0, 1, 0x68, 0xee, 0x3c, 0xb0)
			}
			au = append(au, 0, 0, 0, 1, hdr, 0x80|byte(rng.Uint32()))
			au = appendRBSP(rng, au, size, 16)
		case gateway.H265:
			au = append(au, 0, 0, 0, 1, 0x46, 0x01, 0x50)
			hdr := byte(0x02) // TRAIL_R
			if key {
				hdr = 0x26 // IDR_W_RADL
				au = append(au, 0, 0, 0, 1, 0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0xb0, 0x00,
					0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0xb7, 0x95, 0x98, 0x09,
					0, 0, 0, 1, 0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0xb0, 0x00, 0x00, 0x03, 0x00, 0x00,
					0x03, 0x00, 0xb7, 0xa0, 0x01, 0xe0, 0x20, 0x02, 0x1c, 0x4d, 0x94, 0xbb, 0xb4, 0xa3, 0x32, 0xaa, 0x80,
					0, 0, 0, 1, 0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40)
			}
			au = append(au, 0, 0, 0, 1, hdr, 0x01, 0x80|byte(rng.Uint32()))
			au = appendRBSP(rng, au, size, 16)
		case gateway.AV1:
			au = append(au, 0x12, 0x00)
			if key {
				au = append(au, 0x0a, 0x0b, 0x00, 0x00, 0x00, 0x2c, 0xcf, 0x7f, 0x0d, 0xbf, 0xff, 0x30, 0x08)
			}
			n := size - len(au) - 4
			au = append(au, 0x32) // OBU_FRAME with obu_size
			au = appendLEB128(au, uint64(n))
			for range n {
				au = append(au, byte(rng.Uint32()))
			}
		}
		gop[i] = au
	}
	return gop
}

// appendRBSP appends random slice data to au until it is size bytes long:
// a zero one time in zeroIn, more than chance gives, to exercise the
// escapes, which are applied (counting zeros au ends in), then the stop
// bit.
func appendRBSP(rng *rand.Rand, au []byte, size, zeroIn int) []byte {
	zeros := 0
	for zeros < 2 && zeros < len(au) && au[len(au)-1-zeros] == 0 {
		zeros++
	}
	for len(au) < size-1 {
		b := byte(rng.Uint32())
		if rng.IntN(zeroIn) == 0 {
			b = 0
		}
		if zeros >= 2 && b <= 3 {
			au = append(au, 3)
			zeros = 0
		}
		au = append(au, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return append(au, 0x80) // rbsp_stop_one_bit
}

// countingSub drains a subscription and counts frames by marker bits.
type countingSub struct {
	mu      sync.Mutex
	frames  int
	packets int
	gaps    int
	more    chan struct{} // a token after frames went up
}

func (c *countingSub) run(ctx context.Context, sub *gateway.Subscription) {
	outs := make([]gateway.Out, 512)
	var last uint16
	started := false
	for {
		n, err := sub.Next(ctx, outs)
		c.mu.Lock()
		for _, o := range outs[:n] {
			if started && o.Seq != last+1 {
				c.gaps++
			}
			started, last = true, o.Seq
			c.packets++
			if o.Marker {
				c.frames++
			}
		}
		c.mu.Unlock()
		select {
		case c.more <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

func (c *countingSub) count() (frames, packets, gaps int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames, c.packets, c.gaps
}

// benchWindow is how many frames a producer may be ahead of the
// subscriber: about 3,000 packets, well within the hub's queue of 8,192,
// so a subscriber slower than the ingest (it shares two cores with it)
// holds the producer back rather than losing packets.
const benchWindow = 16

// wait blocks until the subscriber has counted frames frames.
func (c *countingSub) wait(ctx context.Context, frames int) {
	for {
		if n, _, _ := c.count(); n >= frames {
			return
		}
		select {
		case <-c.more:
		case <-ctx.Done():
			return
		}
	}
}

// threadClock follows the CPU time of the thread an ingest runs on (its
// goroutine locked to it), sampled in its OnFrame callback, which runs on
// that goroutine: the ingest's own work (reading, packetizing, the hub's
// write), without the producer's or the subscriber's.
type threadClock struct {
	first, last, n atomic.Int64
}

func (c *threadClock) onFrame(string) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return
	}
	if c.n.Add(1) == 1 {
		c.first.Store(ts.Nano())
	}
	c.last.Store(ts.Nano())
}

// report gives the ingest's CPU time per frame, from the first frame's
// callback to the last's.
func (c *threadClock) report(b *testing.B, paced bool) {
	n := c.n.Load()
	if n < 2 {
		return
	}
	perFrame := float64(c.last.Load()-c.first.Load()) / float64(n-1)
	b.ReportMetric(perFrame, "ingest-cpu-ns/frame")
	if paced {
		b.ReportMetric(100*perFrame*benchFPS/1e9, "ingest-cpu-%")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchHub is a hub with one publication of one track and one subscriber
// draining it, as a WHEP viewer's writer would.
type benchHub struct {
	pub *gateway.Publication
	sub *gateway.Subscription
	c   countingSub
}

func newBenchHub(b *testing.B, codec gateway.Codec) *benchHub {
	log := slog.New(slog.DiscardHandler)
	hub := gateway.NewHub(gateway.Config{}, log)
	b.Cleanup(func() { hub.Close() })
	pub, err := hub.Publish("bench", []gateway.TrackInfo{{Name: "main", Codec: codec}}, gateway.PublishOptions{Kind: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pub.Close() })
	sub, err := hub.Subscribe("bench", []string{"main"}, gateway.SubscribeOptions{Kind: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sub.Close() })
	h := &benchHub{pub: pub, sub: sub, c: countingSub{more: make(chan struct{}, 1)}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.c.run(ctx, sub)
	}()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	return h
}

// finish waits for the subscriber to have every frame, stops the timer
// and reports the figures; every frame written must come out whole.
func (h *benchHub) finish(b *testing.B, start time.Time, cpu0 time.Duration) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		frames, _, _ := h.c.count()
		if frames >= b.N || h.sub.Stats().Queued == 0 && time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	frames, packets, gaps := h.c.count()
	st := h.sub.Stats()
	if frames != b.N || gaps != 0 || st.Dropped != 0 {
		b.Fatalf("frames in %d, out %d; %d sequence gaps; subscriber dropped %d packets", b.N, frames, gaps, st.Dropped)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
	b.ReportMetric(float64(packets)/float64(b.N), "pkts/frame")
	b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "cpu-%")
	// CPU time per frame (user+sys, the whole process) holds up better
	// than ns/op on a machine busy with other work.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/frame")
}

// benchBytes sets the bytes per op to the average frame's of the first n.
func benchBytes(b *testing.B, gop [][]byte) {
	var n int64
	for i := range b.N {
		n += int64(len(gop[i%len(gop)]))
	}
	b.SetBytes(n / int64(b.N))
}

// benchPipe pushes b.N frames of codec's stream through an io.Pipe into a
// PipeReader and a hub with one subscriber draining, as fast as they go or
// paced at 60 fps. One op is one frame, so ns/op, B/op and allocs/op are
// per frame; the producer and the subscriber are included.
func benchPipe(b *testing.B, codec gateway.Codec, paced bool) {
	gop := synthGOP(codec, 1)
	h := newBenchHub(b, codec)
	var clock threadClock
	pr, err := NewPipeReader(PipeConfig{Codec: codec, FPS: benchFPS, OnFrame: clock.onFrame}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	pipeR, pipeW := io.Pipe()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer pipeR.Close()
	benchBytes(b, gop)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	wg.Go(func() {
		defer pipeW.Close()
		for i := range b.N {
			if paced {
				time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / benchFPS)))
			}
			// Frames reach the subscriber one behind: the reader ends an
			// access unit when the next one starts.
			h.c.wait(b.Context(), i-benchWindow)
			if _, err := pipeW.Write(gop[i%len(gop)]); err != nil {
				return
			}
		}
	})
	runtime.LockOSThread()
	err = pr.Ingest(b.Context(), pipeR, h.pub, 0)
	runtime.UnlockOSThread()
	if err != nil {
		b.Fatal(err)
	}
	h.finish(b, start, cpu0)
	clock.report(b, paced)
}

// BenchmarkPipeIngest measures the pipe path's capacity per codec: one op
// is one frame of the 100 Mbps stream.
//
//	go test -run '^$' -bench 'PipeIngest$' -benchtime 600x -count 5 ./ingest
func BenchmarkPipeIngest(b *testing.B) {
	for _, c := range benchCodecs {
		b.Run(c.Name(), func(b *testing.B) { benchPipe(b, c, false) })
	}
}

// BenchmarkPipeIngestRealtime paces the same streams at 60 fps, i.e.
// 100 Mbps, and reports the process's CPU use (user+sys, in % of one core)
// for it, the producer and the subscriber included. Run it with a fixed
// count, e.g. -benchtime=600x for 10 s.
func BenchmarkPipeIngestRealtime(b *testing.B) {
	for _, c := range benchCodecs {
		b.Run(c.Name(), func(b *testing.B) { benchPipe(b, c, true) })
	}
}

// BenchmarkRTPIngest sends the same streams as RTP over loopback UDP to an
// RTPReceiver writing into a hub, one frame at a time: the next frame
// leaves once the receiver has written the last one's marker packet, so
// nothing overflows the socket buffer (and the subscriber is at most
// benchWindow frames behind). One op is one frame; the sender's
// system calls are included.
//
//	go test -run '^$' -bench 'RTPIngest$' -benchtime 600x -count 5 ./ingest
func BenchmarkRTPIngest(b *testing.B) {
	for _, c := range benchCodecs {
		b.Run(c.Name(), func(b *testing.B) { benchRTP(b, c, false) })
	}
}

// BenchmarkRTPIngestRealtime sends each frame as a burst at 60 fps, as an
// encoder does, i.e. 100 Mbps; ingest-cpu-% is the receiver's share of a
// core. Run it with a fixed count, e.g. -benchtime=600x for 10 s.
func BenchmarkRTPIngestRealtime(b *testing.B) {
	for _, c := range benchCodecs {
		b.Run(c.Name(), func(b *testing.B) { benchRTP(b, c, true) })
	}
}

func benchRTP(b *testing.B, codec gateway.Codec, paced bool) {
	gop := synthGOP(codec, 1)
	frames := rtpFrames(b, codec, gop)
	h := newBenchHub(b, codec)
	done := make(chan struct{}, 1)
	var clock threadClock
	onFrame := func(layer string) {
		clock.onFrame(layer)
		done <- struct{}{}
	}
	r, err := NewRTPReceiver(RTPConfig{Codec: codec, ReportInterval: -1, OnFrame: onFrame}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	conn, err := net.DialUDP("udp", nil, r.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(b.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		_ = r.Run(ctx, h.pub, 0)
	})

	timeout := time.NewTimer(time.Hour)
	defer timeout.Stop()
	benchBytes(b, gop)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	reads0, datagrams0 := r.rd.Stats()
	var seq uint16
	for i := range b.N {
		if paced {
			time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / benchFPS)))
		}
		h.c.wait(b.Context(), i-benchWindow)
		// The GOP's datagrams again, with the header fields running on.
		ts := uint32(i * clockRate / benchFPS)
		for _, d := range frames[i%len(frames)] {
			binary.BigEndian.PutUint16(d[2:], seq)
			binary.BigEndian.PutUint32(d[4:], ts)
			seq++
			if _, err := conn.Write(d); err != nil {
				b.Fatal(err)
			}
		}
		timeout.Reset(5 * time.Second)
		select {
		case <-done:
		case <-timeout.C:
			b.Fatalf("frame %d: the receiver wrote no marker packet in 5 s (stats %+v)", i, r.Stats())
		}
	}
	h.finish(b, start, cpu0)
	clock.report(b, paced)
	reads, datagrams := r.rd.Stats()
	b.ReportMetric(float64(datagrams-datagrams0)/float64(reads-reads0), "dgrams/read")
	if st := r.Stats(); st.Lost != 0 || st.Late != 0 {
		b.Fatalf("receiver lost %d and dropped %d late packets", st.Lost, st.Late)
	}
}

// rtpFrames packetizes a GOP into RTP datagrams with pion's payloaders
// (setup, not measured); the sender fills in sequence numbers and
// timestamps.
func rtpFrames(b *testing.B, codec gateway.Codec, gop [][]byte) [][][]byte {
	var pl rtp.Payloader
	switch codec {
	case gateway.H264:
		pl = &codecs.H264Payloader{}
	case gateway.H265:
		pl = &codecs.H265Payloader{}
	case gateway.AV1:
		pl = &codecs.AV1Payloader{}
	}
	frames := make([][][]byte, len(gop))
	for i, au := range gop {
		pls := pl.Payload(MTU, au)
		frames[i] = make([][]byte, len(pls))
		for k, p := range pls {
			d, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: dynamicPT, SSRC: 1, Marker: k == len(pls)-1},
				Payload: p}).Marshal()
			if err != nil {
				b.Fatal(err)
			}
			frames[i][k] = d
		}
	}
	return frames
}
