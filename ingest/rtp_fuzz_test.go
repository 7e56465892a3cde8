package ingest

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"whipgate/gateway"
)

// FuzzReorder runs the RTP receiver's reorder buffer against a model of
// it that keeps held packets in a map by sequence number: for any window
// (the config allows 1 to 4096) and any arrivals, expiries and sender
// changes, both deliver the same packets with the same payloads, in the
// same order, and count the same losses, late packets and reorderings.
// Each op is 3 bytes: a kind, then a sequence number step (arrivals, from
// first on), a time step (expiry) or nothing (a flush, as a new sender
// causes).
func FuzzReorder(f *testing.F) {
	f.Add(uint16(63), uint16(1000), []byte{0, 0, 0, 0, 0, 2, 0, 0, 1, 0, 0xff, 0xff, 1, 0, 30})
	f.Add(uint16(3), uint16(65534), []byte{0, 0, 0, 0, 0, 2, 0, 0xff, 0xff, 0, 0, 2})
	f.Add(uint16(99), uint16(7), []byte{0, 0, 1, 0, 0, 5, 0, 0, 90, 1, 0, 25, 2, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, window, first uint16, ops []byte) {
		n := int(window)%4096 + 1
		const delay = 20 * time.Millisecond
		type out struct {
			seq     uint16
			payload string
		}
		var got, want []out
		r := newReorder(n, delay, func(p *inPacket) { got = append(got, out{p.seq, string(p.payload)}) })
		m := &reorderModel{window: n, delay: delay, held: map[uint16]inPacket{}}
		m.deliver = func(p inPacket) { want = append(want, out{p.seq, string(p.payload)}) }
		now := time.Unix(1000, 0)
		seq := first
		buf := make([]byte, 3) // reused, as the socket buffer is
		for i := 0; i+3 <= len(ops); i += 3 {
			arg := binary.BigEndian.Uint16(ops[i+1:])
			switch ops[i] % 4 {
			case 0, 1: // a packet, arg after the last one
				seq += arg
				buf[0], buf[1], buf[2] = byte(seq>>8), byte(seq), ops[i]
				p := inPacket{seq: seq, ts: uint32(seq) * 3000, marker: ops[i]&0x10 != 0, payload: buf, at: now}
				r.push(&p)
				p.payload = slices.Clone(buf)
				m.push(p)
			case 2: // time passes; the receiver gives up on what waited too long
				now = now.Add(time.Duration(arg) * time.Millisecond / 16)
				r.expire(now)
				m.expire(now)
			case 3: // a new sender
				r.flush()
				m.flush()
			}
			if !slices.Equal(got, want) {
				t.Fatalf("window %d, after op %d: delivered\n%v\nthe model delivers\n%v", n, i/3, got, want)
			}
			if r.lost.Load() != m.lost || r.late.Load() != m.late || r.reordered.Load() != m.reordered {
				t.Fatalf("window %d, after op %d: lost %d, late %d, reordered %d; the model: %d, %d, %d",
					n, i/3, r.lost.Load(), r.late.Load(), r.reordered.Load(), m.lost, m.late, m.reordered)
			}
		}
	})
}

// reorderModel is the reorder buffer's behaviour written plainly: held
// packets in a map, so that two of them can never share a place.
type reorderModel struct {
	window                int
	delay                 time.Duration
	held                  map[uint16]inPacket
	next                  uint16
	started               bool
	deliver               func(inPacket)
	lost, late, reordered uint64
}

func (m *reorderModel) push(p inPacket) {
	if !m.started {
		m.started, m.next = true, p.seq
	}
	switch d := int(int16(p.seq - m.next)); {
	case d < 0:
		m.late++
	case d == 0:
		m.deliver(p)
		m.next++
		m.drain()
	case d >= m.window:
		m.skipTo(p.seq)
		m.deliver(p)
		m.next++
		m.drain()
	default:
		if _, dup := m.held[p.seq]; dup {
			m.late++
			return
		}
		m.held[p.seq] = p
		m.reordered++
	}
}

func (m *reorderModel) drain() {
	for {
		p, ok := m.held[m.next]
		if !ok {
			return
		}
		delete(m.held, m.next)
		m.deliver(p)
		m.next++
	}
}

func (m *reorderModel) skipTo(seq uint16) {
	gap := int(int16(seq - m.next))
	if gap <= 0 {
		return
	}
	for k := range min(gap, m.window) {
		s := m.next + uint16(k)
		if p, ok := m.held[s]; ok {
			delete(m.held, s)
			m.deliver(p)
		} else {
			m.lost++
		}
	}
	if gap > m.window {
		m.lost += uint64(gap - m.window)
	}
	m.next = seq
	m.drain()
}

func (m *reorderModel) expire(now time.Time) {
	for len(m.held) > 0 {
		oldest, first := time.Time{}, -1
		for s, p := range m.held {
			if oldest.IsZero() || p.at.Before(oldest) {
				oldest = p.at
			}
			if d := int(int16(s - m.next)); first < 0 || d < first {
				first = d
			}
		}
		if now.Sub(oldest) < m.delay {
			return
		}
		m.skipTo(m.next + uint16(first))
	}
}

func (m *reorderModel) flush() {
	for k := 1; k < m.window; k++ {
		s := m.next + uint16(k)
		if p, ok := m.held[s]; ok {
			delete(m.held, s)
			m.deliver(p)
		}
	}
	clear(m.held)
	m.started = false
}

// FuzzRTPReceive feeds datagrams to an RTP receiver (no socket: receive
// is called as Run calls it): RTP with any header, RTCP, and garbage, from
// two addresses. It must not panic; what it writes on is RTP of its own
// SSRC, a new sequence number each time, with a payload that arrived (not
// what the reused socket buffer holds later); receiver reports marshal;
// and it counts every valid RTP packet from the one sender it hears at a
// time (another is heard only after sourceSilence). Each op is a kind byte, a length
// byte and that many bytes.
func FuzzRTPReceive(f *testing.F) {
	pkt := func(seq uint16, ssrc uint32, marker bool, payload ...byte) []byte {
		b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, SSRC: ssrc, Marker: marker}, Payload: payload}).Marshal()
		return b
	}
	sr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.SenderReport{SSRC: 7, NTPTime: 1 << 40}})
	op := func(kind byte, b []byte) []byte { return append([]byte{kind, byte(len(b))}, b...) }
	f.Add(uint16(64), bytes.Join([][]byte{op(0, pkt(1, 7, false, 1)), op(0, pkt(3, 7, true, 3)), op(0, pkt(2, 7, false, 2)), op(2, sr)}, nil))
	f.Add(uint16(3), bytes.Join([][]byte{op(0, pkt(65534, 7, false, 1)), op(0, pkt(0, 7, false, 3)), op(1, pkt(9, 8, true, 9)), op(3, []byte{40})}, nil))
	padded := pkt(5, 7, true, 1, 2, 3, 0, 0, 3)
	padded[0] |= 0x20
	f.Add(uint16(64), bytes.Join([][]byte{op(0, padded), op(0, []byte{0x80, 0xc8}), op(0, []byte{0x90, 0x60, 0, 1})}, nil))
	f.Fuzz(func(t *testing.T, window uint16, ops []byte) {
		cfg, err := RTPConfig{Codec: gateway.H264, ReorderPackets: int(window)%4096 + 1}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		now := time.Unix(1000, 0)
		r := &RTPReceiver{cfg: cfg, log: slog.New(slog.DiscardHandler), ssrc: 42, rebase: true, clockRef: now}
		r.reo = newReorder(cfg.ReorderPackets, cfg.ReorderDelay, r.deliver)
		w := &recvCheck{t: t, payloads: map[string]bool{}}
		r.w = w
		from := [2]netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:5004"), netip.MustParseAddrPort("[2001:db8::1]:5004")}
		valid := 0
		var source netip.AddrPort // the sender the receiver hears, as it locks
		var heard time.Time
		for i := 0; i+2 <= len(ops); {
			kind, size := ops[i], int(ops[i+1])
			b := ops[i+2 : min(i+2+size, len(ops))]
			i += 2 + size
			switch kind % 4 {
			case 0, 1: // a datagram from one of two addresses
				addr := from[kind%2]
				if addr == source {
					heard = now
				}
				var h rtp.Header
				n, err := h.Unmarshal(b)
				rtpHeader := err == nil && h.Version == 2
				isRTP := len(b) < 2 || b[1] < 192 || b[1] > 223
				if isRTP && addr != source && rtpHeader && (!source.IsValid() || now.Sub(heard) >= sourceSilence) {
					source, heard = addr, now // the receiver locks onto one sender at a time
				}
				if isRTP && addr == source && rtpHeader && (!h.Padding || n < len(b) && b[len(b)-1] > 0 && int(b[len(b)-1]) <= len(b)-n) {
					valid++
					w.payloads[string(payloadOf(b, n, h.Padding))] = true
				}
				buf := slices.Clone(b) // the socket buffer, overwritten after
				r.receive(buf, from[kind%2], now)
				clear(buf)
			case 2: // time passes
				if len(b) > 0 {
					now = now.Add(time.Duration(b[0]) * time.Millisecond)
				}
				r.reo.expire(now)
			case 3: // a receiver report is due
				r.sendReportStats(now)
			}
		}
		if got := r.Stats().Packets; got != uint64(valid) {
			t.Fatalf("counted %d RTP packets, %d were valid", got, valid)
		}
	})
}

func payloadOf(b []byte, n int, padding bool) []byte {
	p := b[n:]
	if padding && len(p) > 0 {
		p = p[:len(p)-int(p[len(p)-1])]
	}
	return p
}

// sendReportStats builds a receiver report as sendReport does, without
// sending it, and checks it.
func (r *RTPReceiver) sendReportStats(now time.Time) {
	if !r.stats.started {
		return
	}
	rr := r.stats.report(r.senderSSRC, now)
	if _, err := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: r.ssrc, Reports: []rtcp.ReceptionReport{rr}}}); err != nil {
		panic(err)
	}
}

// recvCheck is the receiver's TrackWriter in FuzzRTPReceive: it checks
// each packet against what arrived.
type recvCheck struct {
	t        *testing.T
	payloads map[string]bool // every payload that arrived
	lastSeq  uint16
	any      bool
}

func (w *recvCheck) WriteRTP(_ int, p *rtp.Packet) {
	if p.SSRC != 42 || p.Version != 2 {
		w.t.Fatalf("wrote SSRC %d version %d", p.SSRC, p.Version)
	}
	if w.any && p.SequenceNumber == w.lastSeq {
		w.t.Fatalf("sequence number %d written twice in a row", p.SequenceNumber)
	}
	w.lastSeq, w.any = p.SequenceNumber, true
	if !w.payloads[string(p.Payload)] {
		w.t.Fatalf("wrote payload % x, which no sender sent", p.Payload)
	}
}
