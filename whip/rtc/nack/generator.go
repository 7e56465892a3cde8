// Package nack is whipgate's loss repair: the NACK generator that asks a
// WHIP publisher again for what did not arrive, the responder that re-sends
// what a viewer or an egress target asks for, and LossLog, the generator's
// bookkeeping for a receiver that reads beneath pion (the bench's viewers).
//
// Both are pion interceptors sized for 8K rates and replace pion's own:
// pion's generator cannot see RTX repairs and asks again and again, and its
// responder copies every sent packet (see the types).
//
// It imports pion's interceptor, rtp and rtcp packages and nothing of
// whipgate.
package nack

import (
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

// whipgate's NACK generator asks a publisher again for the RTP packets that
// did not arrive. It replaces pion's, which cannot see a packet recovered
// through RTX: pion hands those to the track reader past the stream's
// interceptors, so its generator asks for them every interval for as long
// as they stay in its window — ten times a second for 0.8 s at 100 Mbps,
// for minutes on a slow stream — and the resends it draws come in bursts
// that overflow pion's 50-packet RTX queue. The track reader tells this
// generator (Received) what came through RTX.
const (
	// nackTick is how often missing packets are looked for: a packet
	// first goes missing at most this long before it is asked for.
	nackTick = 20 * time.Millisecond
	// nackRetry is how long a request is given to be answered before the
	// packet is asked for again (RTT and the sender's pacing, generously).
	nackRetry = 100 * time.Millisecond
	// nackMaxAsks bounds the requests for one packet: a second of them.
	nackMaxAsks = 10
	// lossAsks unanswered requests make a packet lost for the viewers:
	// by then (~300 ms) a frame waits too long, so the generator says so
	// (OnLost: the ingest asks for a keyframe), and asks on all the same.
	lossAsks = 3
)

// GeneratorFactory builds one generator per PeerConnection and finds it
// again by the PeerConnection (pion builds the interceptors with its ID).
type GeneratorFactory struct {
	size uint16 // receive window in packets, a power of two
	log  *slog.Logger
	byPC pcRegistry[*Generator]
}

func NewGeneratorFactory(size uint16, log *slog.Logger) *GeneratorFactory {
	return &GeneratorFactory{size: windowSize(size), log: log}
}

// windowSize rounds a receive window up to a power of two, 64 to 32768.
func windowSize(size uint16) uint16 {
	n := uint16(64)
	for n < size && n < 1<<15 {
		n <<= 1
	}
	return n
}

func (f *GeneratorFactory) NewInterceptor(id string) (interceptor.Interceptor, error) {
	g := &Generator{factory: f, id: id, size: f.size, streams: map[uint32]*recvLog{}, done: make(chan struct{})}
	// Two PeerConnections that share an ID are neither found (see
	// pcRegistry.add), so neither is told of RTX recoveries — the old
	// behaviour — instead of the wrong one.
	f.byPC.add(id, g)
	return g, nil
}

// For returns the generator of the PeerConnection with the given ID
// (webrtc.PeerConnection.ID); nil when it has none (an API with pion's
// generator) or when two PeerConnections shared the ID.
func (f *GeneratorFactory) For(id string) *Generator {
	if f == nil {
		return nil
	}
	return f.byPC.find(id)
}

// Generator is one PeerConnection's: a receive log per stream that
// asked for NACK feedback, and a goroutine sending the requests.
type Generator struct {
	interceptor.NoOp
	factory *GeneratorFactory
	id      string
	size    uint16

	mu      sync.Mutex
	streams map[uint32]*recvLog
	onLost  func(ssrc uint32)
	writer  interceptor.RTCPWriter
	started bool
	closed  bool
	done    chan struct{}
	wg      sync.WaitGroup
}

// BindRTCPWriter keeps where requests go.
func (g *Generator) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.writer = w
	g.startLocked()
	return w
}

// startLocked starts the requests once there is a stream to ask for and
// somewhere to send them: a WHEP viewer's PeerConnection, which receives
// no media, never ticks.
func (g *Generator) startLocked() {
	if g.started || g.closed || g.writer == nil || len(g.streams) == 0 {
		return
	}
	g.started = true
	w := g.writer
	g.wg.Go(func() { g.loop(w) })
}

// BindRemoteStream logs the sequence numbers of a stream that takes NACKs.
// RTX streams are left alone: their packets reach Received instead.
func (g *Generator) BindRemoteStream(info *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	if !takesNACK(info) {
		return r
	}
	l := newRecvLog(g.size)
	g.mu.Lock()
	g.streams[info.SSRC] = l
	g.startLocked()
	g.mu.Unlock()
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err == nil && n >= 4 {
			// The sequence number straight from the header: no parse, no
			// allocation per packet.
			l.add(uint16(b[2])<<8 | uint16(b[3]))
		}
		return n, a, err
	})
}

func takesNACK(info *interceptor.StreamInfo) bool {
	for _, fb := range info.RTCPFeedback {
		if fb.Type == "nack" && fb.Parameter == "" {
			return true
		}
	}
	return false
}

func (g *Generator) UnbindRemoteStream(info *interceptor.StreamInfo) {
	g.mu.Lock()
	delete(g.streams, info.SSRC)
	g.mu.Unlock()
}

// Received notes a packet of stream ssrc that came another way (RTX).
func (g *Generator) Received(ssrc uint32, seq uint16) {
	if g == nil {
		return
	}
	g.mu.Lock()
	l := g.streams[ssrc]
	g.mu.Unlock()
	if l != nil {
		l.recovered(seq)
	}
}

// Close stops the requests; idempotent.
func (g *Generator) Close() error {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.done)
	}
	g.mu.Unlock()
	g.wg.Wait()
	g.factory.byPC.remove(g.id, g)
	return nil
}

// OnLost has f called (on the generator's goroutine; it must not block)
// with the SSRC of a stream whose packets just counted as lost: requests
// went unanswered so long that a viewer waits for the frame. The ingest
// asks the publisher for a keyframe.
func (g *Generator) OnLost(f func(ssrc uint32)) {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.onLost = f
	g.mu.Unlock()
}

// GeneratorStats is one stream's loss repair toward its sender.
type GeneratorStats struct {
	// NACKed counts the sequence numbers asked for (each request), Lost
	// those that stayed missing through 3 requests.
	NACKed, Lost uint64
}

// Stats returns stream ssrc's figures; zero for a stream it does not know.
func (g *Generator) Stats(ssrc uint32) GeneratorStats {
	if g == nil {
		return GeneratorStats{}
	}
	g.mu.Lock()
	l := g.streams[ssrc]
	g.mu.Unlock()
	if l == nil {
		return GeneratorStats{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return GeneratorStats{NACKed: l.nacked, Lost: l.lost}
}

func (g *Generator) loop(w interceptor.RTCPWriter) {
	sender := rand.Uint32()
	t := time.NewTicker(nackTick)
	defer t.Stop()
	var seqs []uint16
	var pkts []rtcp.Packet
	var lostNow []uint32
	for {
		select {
		case <-g.done:
			return
		case now := <-t.C:
			pkts, lostNow = pkts[:0], lostNow[:0]
			g.mu.Lock()
			onLost := g.onLost
			for ssrc, l := range g.streams {
				before := l.lostCount()
				if seqs = l.due(now, seqs[:0]); len(seqs) > 0 {
					pkts = append(pkts, &rtcp.TransportLayerNack{SenderSSRC: sender, MediaSSRC: ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)})
				}
				if l.lostCount() != before {
					lostNow = append(lostNow, ssrc)
				}
			}
			g.mu.Unlock()
			if onLost != nil {
				for _, ssrc := range lostNow {
					onLost(ssrc)
				}
			}
			if len(pkts) == 0 {
				continue
			}
			// Outside the lock: the write may wait on the socket.
			if _, err := w.Write(pkts, interceptor.Attributes{}); err != nil {
				g.factory.log.Debug("sending NACK failed", "err", err)
			}
		}
	}
}

// recvLog is one stream's last size sequence numbers: which arrived, and
// for the missing ones, how often and when they were asked for.
type recvLog struct {
	mu    sync.Mutex
	size  uint16
	retry time.Duration // nackRetry, or LossLog's round trip
	end   uint16        // the newest sequence number
	span  int           // numbers at and before end that the log covers (≤ size); 0 before the first
	got   []uint64
	asks  map[uint16]ask

	nacked, lost uint64 // sequence numbers asked for (each time), and counted lost
}

type ask struct {
	n    int
	last time.Time
	lost bool // counted lost (lossAsks went unanswered)
}

func newRecvLog(size uint16) *recvLog {
	return &recvLog{size: size, retry: nackRetry, got: make([]uint64, int(size)/64), asks: map[uint16]ask{}}
}

func (l *recvLog) bit(seq uint16) (int, uint64) {
	i := seq & (l.size - 1)
	return int(i / 64), 1 << (i % 64)
}

func (l *recvLog) has(seq uint16) bool {
	w, b := l.bit(seq)
	return l.got[w]&b != 0
}

func (l *recvLog) set(seq uint16, on bool) {
	w, b := l.bit(seq)
	if on {
		l.got[w] |= b
	} else {
		l.got[w] &^= b
	}
}

func (l *recvLog) lostCount() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// add notes the arrival of seq.
func (l *recvLog) add(seq uint16) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.span == 0 {
		l.end, l.span = seq, 1
		l.set(seq, true)
		return
	}
	ahead := seq - l.end
	switch {
	case ahead == 0:
		return
	case ahead < 1<<15: // newer: the numbers between are missing so far
		if int(ahead) >= int(l.size) {
			// A jump past the window (a restarted sender): start afresh
			// rather than ask for a window of packets.
			clear(l.got)
			clear(l.asks)
			l.end, l.span = seq, 1
			l.set(seq, true)
			return
		}
		for s := l.end + 1; s != seq; s++ {
			l.set(s, false)
		}
		l.end = seq
		l.span = min(l.span+int(ahead), int(l.size))
		l.set(seq, true)
	default: // older: a late or recovered packet, if still in the window
		if int(l.end-seq) < l.span {
			l.set(seq, true)
			delete(l.asks, seq)
		}
	}
}

// recovered notes a packet that came another way (RTX). Unlike add it
// never moves the window: pion hands queued RTX packets out before the
// stream's own, so an RTX copy (Chrome pads with them) can be newer than
// the newest packet read so far, and the ones between are not missing,
// only still unread.
func (l *recvLog) recovered(seq uint16) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if back := l.end - seq; back < 1<<15 && int(back) < l.span {
		l.set(seq, true)
		delete(l.asks, seq)
	}
}

// due appends the missing sequence numbers to ask for at now: those never
// asked for, and those whose last request went unanswered for the retry
// time (nackRetry), up to nackMaxAsks requests each.
func (l *recvLog) due(now time.Time, seqs []uint16) []uint16 {
	l.mu.Lock()
	defer l.mu.Unlock()
	// What fell out of the window will not be asked for again.
	for s := range l.asks {
		if int(l.end-s) >= l.span {
			delete(l.asks, s)
		}
	}
	for back := l.span - 1; back >= 1; back-- {
		s := l.end - uint16(back)
		if w, _ := l.bit(s); s%64 == 0 && back >= 64 && l.got[w] == ^uint64(0) {
			back -= 63 // a whole word arrived
			continue
		}
		if l.has(s) {
			continue
		}
		a := l.asks[s]
		if a.n >= lossAsks && !a.lost && now.Sub(a.last) >= l.retry {
			a.lost = true
			l.lost++
			l.asks[s] = a
		}
		if a.n >= nackMaxAsks || (a.n > 0 && now.Sub(a.last) < l.retry) {
			continue
		}
		l.asks[s] = ask{n: a.n + 1, last: now, lost: a.lost}
		l.nacked++
		seqs = append(seqs, s)
	}
	return seqs
}

// LossLog is one received stream's log of sequence numbers, for a receiver
// that reads RTP beneath pion and so has to ask for losses itself: the
// bookkeeping of whipgate's NACK generator (first request nackTick after a
// gap shows, again after nackRetry unanswered, at most nackMaxAsks times),
// or, given the round trip (SetRTT), libwebrtc's NackRequester's: again
// once a round trip has passed since the last request, looked at every
// Interval (its kProcessIntervalMs), at most 10 times (kMaxNackRetries).
// Safe for concurrent use.
type LossLog struct{ l *recvLog }

// NewLossLog returns a log of the last size sequence numbers (rounded up
// to a power of two, 64 to 32768).
func NewLossLog(size uint16) *LossLog {
	return &LossLog{l: newRecvLog(windowSize(size))}
}

// Add notes the arrival of a media packet.
func (l *LossLog) Add(seq uint16) { l.l.add(seq) }

// Recovered notes a packet that came through RTX.
func (l *LossLog) Recovered(seq uint16) { l.l.recovered(seq) }

// Due appends to seqs the sequence numbers to ask for now.
func (l *LossLog) Due(now time.Time, seqs []uint16) []uint16 { return l.l.due(now, seqs) }

// SetRTT has requests repeated once rtt has passed since the last one
// (at the next Due); zero or negative: after nackRetry, 100 ms, as
// libwebrtc does before it knows the round trip.
func (l *LossLog) SetRTT(rtt time.Duration) {
	if rtt <= 0 {
		rtt = nackRetry
	}
	l.l.mu.Lock()
	l.l.retry = rtt
	l.l.mu.Unlock()
}

// Interval is how often a LossLog's Due is meant to be called.
const Interval = nackTick
