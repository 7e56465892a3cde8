package egress

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"whipgate/internal/testkit"

	"github.com/pion/rtp"
)

// pacerRecorder is an rtc.RTPWriter that notes when each packet left.
type pacerRecorder struct {
	mu    sync.Mutex
	times []time.Time
	sizes []int
	seqs  []uint16
	exts  int
}

func (r *pacerRecorder) WriteRTP(p *rtp.Packet) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.times = append(r.times, time.Now())
	r.sizes = append(r.sizes, len(p.Payload))
	r.seqs = append(r.seqs, p.SequenceNumber)
	if string(p.Header.GetExtension(1)) == "0" && string(p.Header.GetExtension(2)) == "r1" {
		r.exts++
	}
	return nil
}

// startPacer runs p in the background and returns a stop function that
// closes it and checks Run's result.
func startPacer(t *testing.T, p *Pacer) func() {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- p.Run(context.Background()) }()
	return func() {
		t.Helper()
		_ = p.Close()
		if err := <-errc; err != nil {
			t.Errorf("Run after Close: got %v, want nil", err)
		}
	}
}

// pacedBurst writes count packets of size bytes at once into a pacer of
// cfg (inside a synctest bubble), lets it drain, and checks that all left
// in order, the last within one 5 ms bucket of when the paced rate
// (cfg.InitialBps × cfg.Factor) allows. It returns the pacer, what left
// it and the rate in bytes a second; stop ends the pacer.
func pacedBurst(t *testing.T, cfg PacerConfig, size, count int) (p *Pacer, rec *pacerRecorder, rate float64, stop func()) {
	t.Helper()
	rec = &pacerRecorder{}
	p, err := NewPacer(cfg, rec, testkit.PionLog(t))
	if err != nil {
		t.Fatal(err)
	}
	stop = startPacer(t, p)
	payload := make([]byte, size)
	start := time.Now()
	for i := range count {
		if err := p.WriteRTP(&rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i)}, Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	synctest.Wait()

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.times) != count {
		t.Fatalf("got %d packets out, want %d", len(rec.times), count)
	}
	for i, s := range rec.seqs {
		if s != uint16(i) {
			t.Fatalf("packet %d has seq %d: order changed", i, s)
		}
	}
	rate = float64(cfg.InitialBps) * cfg.Factor / 8
	want := time.Duration(float64(count*size) / rate * float64(time.Second))
	got := rec.times[count-1].Sub(start)
	// The bucket starts empty, so the last packet leaves when the
	// bucket has earned all but nothing: within one burst of want.
	burst := 5 * time.Millisecond
	if got < want-burst || got > want+burst {
		t.Errorf("burst of %d×%d B took %v, want %v ± %v (rate %.0f B/s)", count, size, got, want, burst, rate)
	}
	return p, rec, rate, stop
}

func TestPacerBurstLeavesAtConfiguredRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			size   = 1000
			count  = 200
			inBps  = 4_000_000 // the layer's bitrate
			factor = 2.5       // → 10 Mbps = 1.25 MB/s
		)
		p, rec, rate, stop := pacedBurst(t, PacerConfig{Factor: factor, InitialBps: inBps}, size, count)
		defer stop()

		rec.mu.Lock()
		defer rec.mu.Unlock()
		// No 10 ms window carries more than the rate allows plus one bucket.
		burst := 5 * time.Millisecond
		limit := rate*0.010 + rate*burst.Seconds() + 2*(1200+12)
		for i := range rec.times {
			sum := 0
			for j := i; j < len(rec.times) && rec.times[j].Sub(rec.times[i]) < 10*time.Millisecond; j++ {
				sum += rec.sizes[j]
			}
			if float64(sum) > limit {
				t.Fatalf("%d bytes left within 10 ms of packet %d, limit %.0f", sum, i, limit)
			}
		}
		if st := p.Stats(); st.Packets != count || st.Bytes != count*size || st.Dropped != 0 || st.RateBps != int64(rate*8) {
			t.Errorf("stats %+v: want %d packets, %d bytes, no drops, rate %d", st, count, count*size, int64(rate*8))
		}
	})
}

// flushCounter is a Batcher that counts the batches a pacer sends.
type flushCounter struct{ opened, flushed int }

func (f *flushCounter) OpenBatch()        { f.opened++ }
func (f *flushCounter) FlushBatch() error { f.flushed++; return nil }

// TestPacerReleasesKeyframeInBatches: an 8K keyframe (1390 packets at
// 2.5 × 100 Mbps) leaves in batches of a quarter bucket (~39 KB), not a
// packet or two per timer wake-up, and still at the paced rate.
func TestPacerReleasesKeyframeInBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const size, count = 1200, 1390
		batches := &flushCounter{}
		_, _, rate, stop := pacedBurst(t, PacerConfig{Factor: 2.5, InitialBps: 100_000_000, Batch: batches}, size, count)
		defer stop()
		// 1.67 MB in quarter buckets of 39 KB: 43 batches and the first.
		quarter := rate * (5 * time.Millisecond).Seconds() / 4
		if most := int(float64(count*size)/quarter) + 3; batches.flushed > most || batches.opened != batches.flushed {
			t.Errorf("%d batches opened, %d sent; want at most %d", batches.opened, batches.flushed, most)
		}
	})
}

func TestPacerRateFollowsMeasuredInput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &pacerRecorder{}
		p, err := NewPacer(PacerConfig{Factor: 2}, rec, testkit.PionLog(t))
		if err != nil {
			t.Fatal(err)
		}
		stop := startPacer(t, p)
		defer stop()
		payload := make([]byte, 1000)
		// 100 packets/s of 1000 B = 800 kbps for 3 s.
		for i := range 300 {
			pkt := rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i)}, Payload: payload}
			_ = p.WriteRTP(&pkt)
			time.Sleep(10 * time.Millisecond)
		}
		synctest.Wait()
		if got, want := p.Stats().RateBps, int64(1_600_000); got < want*95/100 || got > want*105/100 {
			t.Errorf("pacing rate %d bps after steady 800 kbps input with factor 2, want about %d", got, want)
		}
	})
}

func TestPacerDropsOversizeAndOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &pacerRecorder{}
		p, err := NewPacer(PacerConfig{QueuePackets: 4, InitialBps: 8000, Factor: 1}, rec, testkit.PionLog(t))
		if err != nil {
			t.Fatal(err)
		}
		big := rtp.Packet{Payload: make([]byte, 1201)}
		if err := p.WriteRTP(&big); err != nil {
			t.Fatal(err)
		}
		small := rtp.Packet{Payload: make([]byte, 100)}
		for range 6 {
			_ = p.WriteRTP(&small)
		}
		st := p.Stats()
		if st.Oversize != 1 || st.Dropped != 2 || st.Queued != 4 {
			t.Errorf("got %+v, want 1 oversize, 2 dropped, 4 queued", st)
		}
		_ = p.Close()
		if err := p.WriteRTP(&small); !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("WriteRTP after Close: got %v, want io.ErrClosedPipe", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

func TestPacerSetsExtensions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &pacerRecorder{}
		exts := []PacerExtension{{ID: 1, Payload: []byte("0")}, {ID: 2, Payload: []byte("r1")}}
		p, err := NewPacer(PacerConfig{Extensions: exts}, rec, testkit.PionLog(t))
		if err != nil {
			t.Fatal(err)
		}
		stop := startPacer(t, p)
		defer stop()
		pkt := rtp.Packet{Payload: []byte{1, 2, 3}}
		for range 3 {
			_ = p.WriteRTP(&pkt)
		}
		synctest.Wait()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if rec.exts != 3 {
			t.Errorf("%d of 3 packets carried the extensions", rec.exts)
		}
	})
}

func TestPacerConfigValidate(t *testing.T) {
	if _, err := NewPacer(PacerConfig{Factor: 0.5}, &pacerRecorder{}, testkit.PionLog(t)); err == nil {
		t.Error("factor 0.5 accepted")
	}
	if _, err := NewPacer(PacerConfig{}, nil, testkit.PionLog(t)); err == nil {
		t.Error("nil writer accepted")
	}
}

type pacerDiscard struct{}

func (pacerDiscard) WriteRTP(*rtp.Packet) error { return nil }

// BenchmarkPacer measures the cost per packet through queue and sender
// (unpaced, so the token bucket never sleeps) into a writer that drops.
func BenchmarkPacer(b *testing.B) {
	p, err := NewPacer(PacerConfig{}, pacerDiscard{}, testkit.PionLog(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	pkt := rtp.Packet{Payload: make([]byte, 1200)}
	b.ReportAllocs()
	b.SetBytes(1200)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		pkt.SequenceNumber = uint16(i)
		_ = p.WriteRTP(&pkt)
		for i%256 == 0 && p.Stats().Queued > 4096 {
			runtime.Gosched() // let the sender catch up rather than measure drops
		}
	}
	b.StopTimer()
	if st := p.Stats(); st.Dropped > 0 {
		b.Errorf("%d packets dropped", st.Dropped)
	}
	cancel()
	<-done
	_ = p.Close()
}
