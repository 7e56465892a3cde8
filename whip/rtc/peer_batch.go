package rtc

import (
	"net/netip"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"whipgate/whip/rtc/udp"
)

// peerBatch batches one PeerConnection's sends on its sockets: Forward
// opens it around each group of packets it writes, a pacer around each
// group it releases. Sessions gathered on pion's own sockets never reach
// ours, so for them it queues nothing and costs one map lookup per group.
//
// Opens nest: writers on several goroutines (a pacer per simulcast layer
// and the forwarder) share the one batch toward the peer, and it leaves
// when the last of them flushes.
type peerBatch struct {
	pc    *webrtc.PeerConnection
	socks sockets

	mu     sync.Mutex
	opens  int // open, not yet flushed
	closed bool
	conn   *udp.Conn // the socket of the selected pair's local address
	batch  *udp.SendBatch
	addr   netip.AddrPort
	next   time.Time // when to ask ICE for the selected pair again
	// sent and calls count what batches the peerBatch moved away from sent.
	sent, calls uint64
}

// peerBatchRefresh is how often Open looks up the selected pair, which
// pion builds afresh on every call. A stale address is harmless: packets
// to the new one simply go out unbatched until the refresh.
const peerBatchRefresh = 250 * time.Millisecond

// newPeerBatch returns pc's batch on socks, or nil (which batches
// nothing) when there is no socket of ours to batch on.
func newPeerBatch(socks sockets, pc *webrtc.PeerConnection) *peerBatch {
	if len(socks) == 0 || pc == nil {
		return nil
	}
	return &peerBatch{pc: pc, socks: socks}
}

// Open starts gathering datagrams toward the selected candidate pair's
// remote address; before a pair is selected it does nothing.
func (p *peerBatch) open() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.opens++
	if p.opens == 1 && !p.closed {
		p.batch.Open(p.remote())
	}
}

// Flush ends one Open; the last sends the gathered datagrams.
func (p *peerBatch) flush() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.opens > 0 {
		p.opens--
	}
	if p.opens > 0 {
		return nil
	}
	return p.batch.Flush()
}

// Close sends anything queued and stops batching; idempotent.
func (p *peerBatch) close() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return p.batch.Close()
}

// Stats returns datagrams sent in batches and the sendmmsg calls they took.
func (p *peerBatch) stats() (datagrams, calls uint64) {
	if p == nil {
		return 0, 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	datagrams, calls = p.batch.Stats()
	return datagrams + p.sent, calls + p.calls
}

// remote is the selected pair's remote address; it also keeps the batch
// on the socket of the pair's local address. p.mu is held.
func (p *peerBatch) remote() netip.AddrPort {
	now := time.Now()
	if p.addr.IsValid() && now.Before(p.next) {
		return p.addr
	}
	p.next = now.Add(peerBatchRefresh)
	local, remote := selectedPair(p.pc)
	p.addr = remote // invalid for an mDNS name: sent unbatched
	p.useConn(local)
	return p.addr
}

// useConn moves the batch to the socket that sends from local (connFor).
// With none (a NAT 1:1 address among several) the batch is dropped and
// datagrams leave unbatched. p.mu is held.
func (p *peerBatch) useConn(local netip.Addr) {
	c := p.socks.connFor(local)
	if c == p.conn {
		return
	}
	_ = p.batch.Close()
	sent, calls := p.batch.Stats()
	p.sent, p.calls = p.sent+sent, p.calls+calls
	p.conn, p.batch = c, nil
	if c != nil {
		p.batch = c.NewBatch()
	}
}
