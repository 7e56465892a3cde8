package rtc

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// pion hands every received packet through two buffers of a fixed 1 MB (the
// ICE agent's and the DTLS/SRTP mux's) to the goroutine that decrypts it,
// and drops what does not fit. Its ICE mux reads the shared socket as fast
// as the kernel delivers, so a publisher's keyframe burst (1–2 MB at 8K)
// arriving while the cores are busy sending to viewers overflows them,
// although the socket's 8 MiB buffer had room: the bench measured up to 243
// such drops in 10 s. The read gate makes the socket buffer the buffer that
// counts: while a publisher has a window of RTP packets inside pion (read
// from the socket, not yet read from its track), the socket is not read,
// and the burst waits in the kernel.

// ingestWindow is how many of one publisher's RTP packets may be inside
// pion: about 480 KB, so that even twice as many (see Backlog) fit the 1 MB
// buffers.
const ingestWindow = 384

// How long the shared socket waits for a publisher's track readers that
// make no progress: idle in Read (see Backlog), or busy. The socket also
// carries every viewer's RTCP and ICE.
const (
	ingestIdle  = 10 * time.Millisecond
	ingestStall = 20 * time.Millisecond
)

// backlogTick is how often a waiting socket reader looks at its readers.
const backlogTick = time.Millisecond

// Backlog counts one receiver's RTP packets inside pion: counted in when
// its socket reader reads them, out when a track reader reads them from
// pion. The socket reader waits while a window of them is inside.
//
// Packets pion consumes without handing them on (a duplicate its SRTP
// replay check drops, a retransmission on an SSRC nobody reads) would close
// the gate for good. So the count is forgiven when all track readers sit
// idle in Read for a while without progress: pion most likely holds
// nothing for them, whatever the count says. Not at once: a reader also
// waits idle while the goroutine that decrypts for it is starved of CPU,
// with pion's buffers full. Readers that are busy but make no progress for
// the stall (starved, or stuck) are forgiven half a window.
type Backlog struct {
	window int64
	idleFor,
	stall time.Duration

	in, out    atomic.Int64
	forgiven   atomic.Int64
	forgivings atomic.Uint64 // times wait forgave
	// readers counts the track readers, idle those waiting in Read.
	readers, idle atomic.Int32
	waiting       atomic.Bool
	progress      chan struct{}
	timer         *time.Timer // the socket reader's only
}

// NewBacklog returns a backlog that holds the socket while window packets
// are inside pion, without progress for at most idle while the readers
// wait in Read and stall while they are busy.
func NewBacklog(window int, idle, stall time.Duration) *Backlog {
	return &Backlog{window: int64(window), idleFor: idle, stall: stall, progress: make(chan struct{}, 1)}
}

// Received counts an RTP packet read from the socket and, when it fills the
// window, waits until pion has handed packets on. Socket reader only.
func (b *Backlog) Received() {
	b.in.Add(1)
	if b.inside() >= b.window {
		b.wait()
	}
}

func (b *Backlog) inside() int64 { return b.in.Load() - b.out.Load() - b.forgiven.Load() }

func (b *Backlog) wait() {
	if b.timer == nil {
		b.timer = time.NewTimer(time.Hour)
	}
	var idleSince time.Time
	since := time.Now() // of the last progress
	for {
		b.waiting.Store(true)
		if b.inside() < b.window {
			b.waiting.Store(false)
			return
		}
		out := b.out.Load()
		b.timer.Reset(backlogTick)
		select {
		case <-b.progress:
			b.timer.Stop()
			continue
		case <-b.timer.C:
		}
		b.waiting.Store(false)
		now := time.Now()
		switch {
		case b.out.Load() != out:
			since, idleSince = now, time.Time{}
		case !b.allIdle():
			idleSince = time.Time{}
		case idleSince.IsZero():
			idleSince = now
		case now.Sub(idleSince) >= b.idleFor:
			b.forgiven.Store(b.in.Load() - out)
			b.forgivings.Add(1)
			return
		}
		if now.Sub(since) >= b.stall {
			b.forgiven.Store(b.in.Load() - b.out.Load() - b.window/2)
			b.forgivings.Add(1)
			return
		}
	}
}

func (b *Backlog) allIdle() bool {
	n := b.readers.Load()
	return n > 0 && b.idle.Load() == n
}

// StartReader registers a track reader. It calls Reading before each Read,
// Delivered after each packet read and StopReader when it ends.
func (b *Backlog) StartReader() { b.readers.Add(1) }

// StopReader unregisters a track reader that ended in Read.
func (b *Backlog) StopReader() {
	b.readers.Add(-1)
	b.idle.Add(-1)
}

// Reading marks a track reader as waiting in Read.
func (b *Backlog) Reading() { b.idle.Add(1) }

// Delivered counts a packet a track reader read from pion.
func (b *Backlog) Delivered() {
	b.idle.Add(-1)
	b.out.Add(1)
	if b.waiting.Load() && b.inside() < b.window/2 {
		b.signal()
	}
}

// Release opens the gate for good: the receiver is gone.
func (b *Backlog) Release() {
	b.forgiven.Store(b.in.Load() - b.out.Load() + 1<<40)
	b.signal()
}

func (b *Backlog) signal() {
	select {
	case b.progress <- struct{}{}:
	default:
	}
}

// readGate holds the publishers that gate the shared socket's reads.
type readGate struct {
	peers cowList[*gatedPeer]
	stall time.Duration // 0: ingestStall (tests)
}

// cowList is a list read for every datagram without a lock: writers,
// rare, replace it with a copy.
type cowList[T comparable] struct {
	p  atomic.Pointer[[]T]
	mu sync.Mutex // serialises writers
}

// load is the current list; never modify it.
func (l *cowList[T]) load() []T {
	if p := l.p.Load(); p != nil {
		return *p
	}
	return nil
}

func (l *cowList[T]) add(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	next := append(append([]T(nil), l.load()...), v)
	l.p.Store(&next)
}

func (l *cowList[T]) remove(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var next []T
	for _, e := range l.load() {
		if e != v {
			next = append(next, e)
		}
	}
	l.p.Store(&next)
}

// gatedPeer is one publisher on the shared socket.
type gatedPeer struct {
	*Backlog
	pc      *webrtc.PeerConnection
	log     *slog.Logger
	addr    atomic.Pointer[netip.AddrPort]
	lookups atomic.Uint32 // counts delivered packets: one address lookup per 1024

	forgiveSince time.Time // the socket reader's
	forgiveCount int
	closing      atomic.Bool
}

// add registers a publisher's PeerConnection; its address is looked up
// once it delivers packets (see delivered). log may be nil.
func (g *readGate) add(pc *webrtc.PeerConnection, log *slog.Logger) *gatedPeer {
	idle, stall := ingestIdle, ingestStall
	if g.stall != 0 {
		idle, stall = min(idle, g.stall), g.stall
	}
	p := &gatedPeer{Backlog: NewBacklog(ingestWindow, idle, stall), pc: pc, log: log}
	g.peers.add(p)
	return p
}

// remove unregisters p; a reader waiting on it is released.
func (g *readGate) remove(p *gatedPeer) {
	g.peers.remove(p)
	p.Release()
}

// received counts a datagram read from the socket and, when it takes its
// publisher over the window, waits until pion has taken packets out. It
// runs on the socket's one reader goroutine. Only what may be the
// publisher's counts: a packet that failed the session's keys (a, from the
// ingest table) does not, so junk sent in the publisher's name cannot hold
// the socket.
func (g *readGate) received(b []byte, from netip.AddrPort, a auth) {
	peers := g.peers.load()
	// Padding is never handed on by pion (a browser's bandwidth probes are
	// padding-only RTX packets): counting it would only cost stalls.
	if len(peers) == 0 || a == authBad || !IsRTP(b) || b[0]&0x20 != 0 {
		return
	}
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	for _, p := range peers {
		if a := p.addr.Load(); a != nil && *a == from {
			before := p.forgivings.Load()
			p.Received()
			if p.forgivings.Load() != before {
				p.forgave()
			}
			return
		}
	}
}

// A publisher the gate keeps having to forgive (its readers make no
// progress with packets counted in) is broken or being impersonated; it
// is closed, and reconnects, rather than stall the shared socket on and on.
const (
	maxForgivings   = 20
	forgivingWindow = 10 * time.Second
)

// forgave notes one forgiveness, closing the publisher past the limit.
// Socket reader only.
func (p *gatedPeer) forgave() {
	now := time.Now()
	if now.Sub(p.forgiveSince) > forgivingWindow {
		p.forgiveSince, p.forgiveCount = now, 0
	}
	p.forgiveCount++
	if p.forgiveCount < maxForgivings || p.pc == nil || !p.closing.CompareAndSwap(false, true) {
		return
	}
	if p.log != nil {
		p.log.Warn("closing a publisher whose packets keep stalling the shared socket", "forgiven", p.forgiveCount, "within", forgivingWindow)
	}
	go func() { _ = p.pc.Close() }() // not on the socket reader
}

// delivered is Delivered for a publisher's track reader. Every so often it
// looks the publisher's address up again (ICE restarts move it; pion builds
// the selected pair afresh on each call).
func (p *gatedPeer) delivered() {
	p.Delivered()
	if p.lookups.Add(1)%1024 == 1 && p.pc != nil {
		if a := selectedRemote(p.pc); a.IsValid() {
			p.addr.Store(&a)
		}
	}
}

// IsRTP tells RTP from RTCP, DTLS and STUN on a shared socket (RFC 7983,
// RFC 5761): RTP and RTCP start with 128–191, RTCP's packet types are
// 192–223.
func IsRTP(b []byte) bool {
	return len(b) >= 12 && b[0] >= 128 && b[0] <= 191 && (b[1] < 192 || b[1] > 223)
}

// selectedRemote is the remote address of pc's selected candidate pair, or
// the zero AddrPort before one is selected or for an mDNS name.
func selectedRemote(pc *webrtc.PeerConnection) netip.AddrPort {
	_, remote := selectedPair(pc)
	return remote
}

// selectedPair is the local address and the remote address of pc's selected
// candidate pair; zero values before one is selected or for an mDNS name.
func selectedPair(pc *webrtc.PeerConnection) (netip.Addr, netip.AddrPort) {
	sctp := pc.SCTP()
	if sctp == nil {
		return netip.Addr{}, netip.AddrPort{}
	}
	pair, err := sctp.Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Remote == nil || pair.Local == nil {
		return netip.Addr{}, netip.AddrPort{}
	}
	var local netip.Addr
	if ip, err := netip.ParseAddr(pair.Local.Address); err == nil {
		local = ip.Unmap()
	}
	ip, err := netip.ParseAddr(pair.Remote.Address)
	if err != nil {
		return local, netip.AddrPort{}
	}
	return local, netip.AddrPortFrom(ip.Unmap(), pair.Remote.Port)
}
