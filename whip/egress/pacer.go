package egress

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"whipgate/whip/rtc"

	"github.com/pion/rtp"
)

// PacerConfig tunes a Pacer. The zero value means the defaults.
type PacerConfig struct {
	// Factor is the pacing rate as a multiple of the input bitrate measured
	// over Window. Default 2.5: a keyframe burst leaves at 2.5× the
	// average rate instead of at line rate, which is what overflows SFU
	// and router queues at 8K bitrates.
	Factor float64 `yaml:"factor" json:"factor"`
	// InitialBps is the input bitrate assumed until the first measurement
	// slot has passed (the hub's measured layer bitrate). Default 0: send
	// unpaced until then.
	InitialBps int64 `yaml:"initial_bps" json:"initial_bps"`
	// Window is how far back the input bitrate is measured. Default 2 s.
	Window time.Duration `yaml:"window" json:"window"`
	// Burst is the token bucket's depth in time at the pacing rate.
	// Default 5 ms (never less than two full-size packets). When the
	// bucket holds less than a quarter of its depth, the pacer waits
	// until that much can leave (or all that is queued, if less) and
	// sends it as one batch.
	Burst time.Duration `yaml:"burst" json:"burst"`
	// QueuePackets bounds the queue; a packet arriving at a full queue is
	// dropped and counted. Default 8192 (0.8 s at 100 Mbps).
	QueuePackets int `yaml:"queue_packets" json:"queue_packets"`
	// MaxPayload is the largest RTP payload passed on; bigger ones are
	// dropped and counted (pion's NACK buffer fails writes above 1460
	// bytes, and 1200 keeps SRTP+UDP+IP inside any path MTU). Default 1200.
	MaxPayload int `yaml:"max_payload" json:"max_payload"`
	// Extensions are set on every packet written (simulcast needs mid
	// and rid on each encoding's packets). Default none.
	Extensions []PacerExtension `yaml:"-" json:"-"`
	// Batch gathers the packets the pacer releases together into one send
	// (a sendmmsg with UDP GSO, rtc.Sender): it is opened before a group
	// is written and flushed before the pacer waits. Default none: each
	// packet leaves as it is written.
	Batch Batcher `yaml:"-" json:"-"`
}

// Batcher gathers what is written between OpenBatch and FlushBatch into
// one send (rtc.Sender is one).
type Batcher interface {
	OpenBatch()
	FlushBatch() error
}

// PacerExtension is a one-byte RTP header extension (RFC 8285).
type PacerExtension struct {
	ID      uint8
	Payload []byte
}

func (c *PacerConfig) applyDefaults() {
	if c.Factor == 0 {
		c.Factor = 2.5
	}
	if c.Window <= 0 {
		c.Window = 2 * time.Second
	}
	if c.Burst <= 0 {
		c.Burst = 5 * time.Millisecond
	}
	if c.QueuePackets <= 0 {
		c.QueuePackets = 8192
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = 1200
	}
}

// Validate checks the configuration.
func (c PacerConfig) Validate() error {
	if math.IsNaN(c.Factor) || math.IsInf(c.Factor, 0) {
		return fmt.Errorf("pacer: factor %v is not a finite number", c.Factor)
	}
	if c.Factor != 0 && c.Factor < 1 {
		return fmt.Errorf("pacer: factor %.2f is below 1, which could never drain the queue", c.Factor)
	}
	if c.InitialBps < 0 {
		return fmt.Errorf("pacer: initial_bps %d is negative", c.InitialBps)
	}
	return nil
}

// pacerSlots is how many slots the measurement window is cut into.
const pacerSlots = 4

// pacerBatch is how many packets the sender takes per lock.
const pacerBatch = 64

type pacerEntry struct {
	payload []byte // shared hub memory: immutable, so kept without a copy
	ts      uint32
	seq     uint16
	marker  bool
}

// PacerStats is a snapshot of a pacer's counters.
type PacerStats struct {
	// Packets and Bytes count what was written on (payload bytes).
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// Dropped counts packets lost to a full queue, Oversize those over
	// MaxPayload, WriteErrors those the writer refused.
	Dropped     uint64 `json:"dropped"`
	Oversize    uint64 `json:"oversize"`
	WriteErrors uint64 `json:"write_errors"`
	Queued      int    `json:"queued"`
	// RateBps is the current pacing rate (0: unpaced, nothing measured).
	RateBps int64 `json:"rate_bps"`
}

// Pacer smooths bursts in front of an RTP writer: a token bucket refilled
// at Factor times the measured input bitrate, drained by Run on its own
// goroutine from a bounded queue. WriteRTP never blocks and allocates
// nothing; it keeps the payload slice (hub payloads never change) and
// copies the few header fields rtc.Sender.Forward sets.
type Pacer struct {
	cfg  PacerConfig
	w    rtc.RTPWriter
	log  *slog.Logger
	exts []rtp.Extension

	mu     sync.Mutex
	ring   []pacerEntry
	head   int
	n      int
	qB     int // payload bytes queued
	closed bool
	inB    uint64 // input bytes accepted, for the rate measurement

	notify chan struct{}
	done   chan struct{}
	once   sync.Once

	packets, bytes, dropped, oversize, writeErrs atomic.Uint64
	rate                                         atomic.Int64
	warnedOversize                               atomic.Bool
}

// NewPacer returns a pacer writing to w. Start it with Run.
func NewPacer(cfg PacerConfig, w rtc.RTPWriter, log *slog.Logger) (*Pacer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if w == nil {
		return nil, fmt.Errorf("pacer: no writer")
	}
	cfg.applyDefaults()
	// rtp.Extension's fields are unexported: build the list once through a
	// template header and reuse it on every packet.
	var tmpl rtp.Header
	for _, e := range cfg.Extensions {
		if err := tmpl.SetExtension(e.ID, e.Payload); err != nil {
			return nil, fmt.Errorf("pacer: extension %d: %w", e.ID, err)
		}
	}
	return &Pacer{
		exts:   tmpl.Extensions,
		cfg:    cfg,
		w:      w,
		log:    log,
		ring:   make([]pacerEntry, cfg.QueuePackets),
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}, nil
}

// WriteRTP queues a packet. It fails only once the pacer is closed
// (io.ErrClosedPipe, which ends rtc.Sender.Forward); a full queue drops the packet.
func (p *Pacer) WriteRTP(pkt *rtp.Packet) error {
	if len(pkt.Payload) > p.cfg.MaxPayload {
		p.oversize.Add(1)
		if p.warnedOversize.CompareAndSwap(false, true) {
			p.log.Warn("dropping RTP payloads over the size limit; fix the packetizer's MTU",
				"size", len(pkt.Payload), "limit", p.cfg.MaxPayload)
		}
		return nil
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return io.ErrClosedPipe
	}
	if p.n == len(p.ring) {
		p.mu.Unlock()
		p.dropped.Add(1)
		return nil
	}
	e := &p.ring[(p.head+p.n)%len(p.ring)]
	e.payload, e.ts, e.seq, e.marker = pkt.Payload, pkt.Timestamp, pkt.SequenceNumber, pkt.Marker
	p.n++
	p.qB += len(pkt.Payload)
	p.inB += uint64(len(pkt.Payload))
	wasEmpty := p.n == 1
	p.mu.Unlock()
	if wasEmpty {
		select {
		case p.notify <- struct{}{}:
		default:
		}
	}
	return nil
}

// Close stops the pacer: Run returns and WriteRTP fails. Queued packets
// are dropped. It is idempotent.
func (p *Pacer) Close() error {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		clear(p.ring)
		p.n, p.qB = 0, 0
		p.mu.Unlock()
		close(p.done)
	})
	return nil
}

// Stats returns a snapshot of the counters.
func (p *Pacer) Stats() PacerStats {
	p.mu.Lock()
	q := p.n
	p.mu.Unlock()
	return PacerStats{
		Packets: p.packets.Load(), Bytes: p.bytes.Load(),
		Dropped: p.dropped.Load(), Oversize: p.oversize.Load(), WriteErrors: p.writeErrs.Load(),
		Queued: q, RateBps: p.rate.Load(),
	}
}

// pacerMeter measures the input bitrate over the last Window in slots; it
// belongs to Run's goroutine.
type pacerMeter struct {
	slotDur   time.Duration
	slotStart time.Time
	slotBase  uint64 // inB at slotStart
	slots     [pacerSlots]uint64
	filled    int
	next      int
}

func (m *pacerMeter) update(now time.Time, inB uint64) {
	for now.Sub(m.slotStart) >= m.slotDur {
		m.slots[m.next] = inB - m.slotBase
		m.next = (m.next + 1) % pacerSlots
		m.filled = min(m.filled+1, pacerSlots)
		m.slotBase = inB
		m.slotStart = m.slotStart.Add(m.slotDur)
		if now.Sub(m.slotStart) >= time.Duration(pacerSlots)*m.slotDur {
			// Idle for a whole window: start afresh rather than loop.
			m.slots = [pacerSlots]uint64{}
			m.filled = pacerSlots
			m.slotStart = now
		}
	}
}

// bps is the measured input bitrate, or 0 before a slot has passed.
func (m *pacerMeter) bps() int64 {
	if m.filled == 0 {
		return 0
	}
	var sum uint64
	for _, b := range m.slots {
		sum += b
	}
	return int64(sum * 8 * uint64(time.Second) / (uint64(m.filled) * uint64(m.slotDur)))
}

// Run sends queued packets at the paced rate until ctx is done or the
// pacer is closed. It returns nil after Close, else ctx's error. What it
// releases without waiting in between leaves as one batch (cfg.Batch).
func (p *Pacer) Run(ctx context.Context) error {
	var (
		pkt    rtp.Packet
		batch  [pacerBatch]pacerEntry
		tokens float64
		timer  = time.NewTimer(time.Hour)
		open   bool // cfg.Batch is open
	)
	timer.Stop()
	defer timer.Stop()
	// release sends the open batch: before every wait, so that nothing
	// released waits with the pacer. A failed send is loss on the path,
	// which the target NACKs, as after a failed sendto.
	release := func() {
		if open {
			open = false
			_ = p.cfg.Batch.FlushBatch()
		}
	}
	defer release()
	now := time.Now()
	last := now
	meter := pacerMeter{slotDur: p.cfg.Window / pacerSlots, slotStart: now}
	exts := p.exts
	minBurst := float64(2 * (p.cfg.MaxPayload + 12))
	for {
		p.mu.Lock()
		inB, queued, queuedB := p.inB, p.n, p.qB
		head := 0
		if queued > 0 {
			head = len(p.ring[p.head].payload)
		}
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return nil
		}
		if queued == 0 {
			release()
			select {
			case <-p.notify:
				continue
			case <-p.done:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}

		now = time.Now()
		meter.update(now, inB)
		in := meter.bps()
		if in == 0 {
			in = p.cfg.InitialBps
		}
		rate := float64(in) * p.cfg.Factor / 8 // bytes per second
		p.rate.Store(int64(rate * 8))
		burst := max(rate*p.cfg.Burst.Seconds(), minBurst)
		if rate > 0 {
			tokens = min(tokens+rate*now.Sub(last).Seconds(), burst)
		}
		last = now

		// Below a quarter of the bucket, wait until that much can leave
		// (or all that is queued, if less), not one packet: a
		// keyframe leaves in a few dozen batches instead of hundreds of
		// one-packet sends and timer wake-ups, at the same rate.
		need := max(float64(head), min(float64(queuedB), burst/4))
		if rate > 0 && tokens < need {
			wait := time.Duration((need - tokens) / rate * float64(time.Second))
			release()
			timer.Reset(max(wait, 200*time.Microsecond))
			select {
			case <-timer.C:
				continue
			case <-p.done:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}

		// Take as many packets as the tokens cover, in one lock.
		p.mu.Lock()
		k := 0
		for k < pacerBatch && p.n > 0 {
			e := &p.ring[p.head]
			size := float64(len(e.payload))
			if rate > 0 {
				if size > tokens && k > 0 {
					break
				}
				tokens -= size
			}
			batch[k] = *e
			*e = pacerEntry{}
			p.head = (p.head + 1) % len(p.ring)
			p.n--
			p.qB -= len(batch[k].payload)
			k++
		}
		p.mu.Unlock()

		if !open && p.cfg.Batch != nil {
			p.cfg.Batch.OpenBatch()
			open = true
		}
		for i := range k {
			e := &batch[i]
			pkt.Header = rtp.Header{Version: 2, Marker: e.marker, SequenceNumber: e.seq, Timestamp: e.ts}
			if len(exts) > 0 {
				pkt.Header.Extension = true
				pkt.Header.ExtensionProfile = rtp.ExtensionProfileOneByte
				// Capacity-capped, so a writer that appends an extension
				// cannot scribble on our template.
				pkt.Header.Extensions = exts[:len(exts):len(exts)]
			}
			pkt.Payload = e.payload
			if err := p.w.WriteRTP(&pkt); err != nil {
				p.writeErrs.Add(1)
			} else {
				p.packets.Add(1)
				p.bytes.Add(uint64(len(e.payload)))
			}
			*e = pacerEntry{}
		}
	}
}

// Interface guards
var _ rtc.RTPWriter = (*Pacer)(nil)
