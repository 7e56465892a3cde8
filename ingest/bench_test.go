package ingest

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"whipgate/gateway"
)

// A synthetic stream shaped like the 8K main layer at 100 Mbps: 60 fps, a
// 1 s GOP whose IDR is 8 times a P frame, 208 KB per frame on average.
const (
	benchFPS     = 60
	benchGOP     = 60
	benchAvgSize = 100_000_000 / 8 / benchFPS // 208,333 bytes
	benchPSize   = benchAvgSize * benchGOP / (benchGOP - 1 + 8)
	benchKeySize = 8 * benchPSize
)

// synthGOP returns one GOP of access units: AUD, then SPS, PPS and an IDR
// slice or a P slice. Slices hold random bytes behind a header that says
// first_mb_in_slice = 0, with emulation prevention applied, so every start
// code the reader finds is a real one.
func synthGOP(seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	aud := []byte{0, 0, 0, 1, 0x09, 0xf0}
	params := []byte{0, 0, 0, 1, 0x67, 0x64, 0x00, 0x33, 0xac, 0x2c, 0xa4, 0x01, 0xe0, 0x01, 0x0e, 0x80,
		0, 0, 0, 1, 0x68, 0xee, 0x3c, 0xb0}
	gop := make([][]byte, benchGOP)
	for i := range gop {
		size, hdr := benchPSize, byte(0x41)
		au := append([]byte(nil), aud...)
		if i == 0 {
			size, hdr = benchKeySize, 0x65
			au = append(au, params...)
		}
		au = append(au, 0, 0, 0, 1, hdr, 0x80|byte(rng.Uint32()))
		zeros := 0
		for len(au) < size-1 {
			b := byte(rng.Uint32())
			if rng.IntN(16) == 0 {
				b = 0 // more zeros than chance gives, to exercise the escapes
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
		gop[i] = append(au, 0x80) // rbsp_stop_one_bit
	}
	return gop
}

// countingSub drains a subscription and counts frames by marker bits.
type countingSub struct {
	mu      sync.Mutex
	frames  int
	packets int
	gaps    int
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

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchPipe pushes b.N frames through an io.Pipe into a PipeReader and a
// hub with one subscriber draining, as fast as they go or paced at 60 fps.
// Every frame written must come out.
func benchPipe(b *testing.B, paced bool) {
	gop := synthGOP(1)
	log := slog.New(slog.DiscardHandler)
	hub := gateway.NewHub(gateway.Config{}, log)
	defer hub.Close()
	pr, err := NewPipeReader(PipeConfig{Codec: gateway.H264, FPS: benchFPS}, log)
	if err != nil {
		b.Fatal(err)
	}
	pub, err := hub.Publish("bench", []gateway.TrackInfo{{Name: "main", Codec: gateway.H264}}, gateway.PublishOptions{Kind: "pipe"})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	sub, err := hub.Subscribe("bench", []string{"main"}, gateway.SubscribeOptions{Kind: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()

	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, which runs first
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	var c countingSub
	wg.Go(func() { c.run(ctx, sub) })

	pipeR, pipeW := io.Pipe()
	var bytesIn int64
	for i := range b.N {
		bytesIn += int64(len(gop[i%len(gop)]))
	}
	b.SetBytes(bytesIn / int64(b.N))
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	wg.Go(func() {
		defer pipeW.Close()
		for i := range b.N {
			if paced {
				time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / benchFPS)))
			}
			if _, err := pipeW.Write(gop[i%len(gop)]); err != nil {
				return
			}
		}
	})
	if err := pr.Ingest(ctx, pipeR, pub, 0); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		frames, _, _ := c.count()
		if frames >= b.N || sub.Stats().Queued == 0 && time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	frames, packets, gaps := c.count()
	st := sub.Stats()
	if frames != b.N || gaps != 0 || st.Dropped != 0 {
		b.Fatalf("frames in %d, out %d; %d sequence gaps; subscriber dropped %d packets", b.N, frames, gaps, st.Dropped)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
	b.ReportMetric(float64(packets)/float64(b.N), "pkts/frame")
	b.ReportMetric(float64(b.N-frames), "lost-frames")
	b.ReportMetric(100*cpu.Seconds()/elapsed.Seconds(), "cpu-%")
}

// BenchmarkPipeIngest measures the pipe path's capacity: one op is one
// frame of the 100 Mbps stream.
func BenchmarkPipeIngest(b *testing.B) { benchPipe(b, false) }

// BenchmarkPipeIngestRealtime paces the same stream at 60 fps, i.e.
// 100 Mbps, and reports the process's CPU use (user+sys, in % of one core)
// for it, the producer and the subscriber included. Run it with a fixed
// count, e.g. -benchtime=600x for 10 s.
func BenchmarkPipeIngestRealtime(b *testing.B) { benchPipe(b, true) }
