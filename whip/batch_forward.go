package whip

import (
	"net/netip"
	"time"

	"github.com/pion/webrtc/v4"
)

// PeerBatch batches one PeerConnection's sends on the shared port: Forward
// opens it around each group of packets it writes. Sessions gathered on
// their own sockets (NoMux) never reach the shared port, so for them it
// queues nothing and costs one map lookup per group.
type PeerBatch struct {
	pc    *webrtc.PeerConnection
	batch *SendBatch
	addr  netip.AddrPort
	next  time.Time // when to ask ICE for the selected pair again
}

// peerBatchRefresh is how often Open looks up the selected pair, which
// pion builds afresh on every call. A stale address is harmless: packets
// to the new one simply go out unbatched until the refresh.
const peerBatchRefresh = 250 * time.Millisecond

// NewPeerBatch returns pc's batch, or nil (which batches nothing) when the
// transport has no single shared socket to batch on.
func (r *RTC) NewPeerBatch(pc *webrtc.PeerConnection) *PeerBatch {
	if r.conn == nil || pc == nil {
		return nil
	}
	return &PeerBatch{pc: pc, batch: r.conn.NewBatch()}
}

// Open starts gathering datagrams toward the selected candidate pair's
// remote address; before a pair is selected it does nothing.
func (p *PeerBatch) Open() {
	if p == nil {
		return
	}
	p.batch.Open(p.remote())
}

// Flush sends the gathered datagrams.
func (p *PeerBatch) Flush() error {
	if p == nil {
		return nil
	}
	return p.batch.Flush()
}

// Close sends anything queued and stops batching; idempotent.
func (p *PeerBatch) Close() error {
	if p == nil {
		return nil
	}
	return p.batch.Close()
}

// Stats returns datagrams sent in batches and the sendmmsg calls they took.
func (p *PeerBatch) Stats() (datagrams, calls uint64) {
	if p == nil {
		return 0, 0
	}
	return p.batch.Stats()
}

// remote is the selected pair's remote address.
func (p *PeerBatch) remote() netip.AddrPort {
	now := time.Now()
	if p.addr.IsValid() && now.Before(p.next) {
		return p.addr
	}
	p.next = now.Add(peerBatchRefresh)
	// Invalid for an mDNS name: sent unbatched.
	p.addr = selectedRemote(p.pc)
	return p.addr
}
