package udp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
)

// NewBatch returns an unregistered batch for one session's sender.
func (c *Conn) NewBatch() *SendBatch {
	// bufs never grows past its capacity: messages point into it.
	return &SendBatch{conn: c, data: make([]byte, 0, batchBytes), bufs: make([][]byte, 0, batchMaxCount),
		msgs: make([]ipv4.Message, 0, batchMaxCount), oob: make([]byte, 0, batchMaxCount*segmentCmsgSpace)}
}

const (
	batchBytes    = 256 << 10 // queued bytes that force a flush
	batchMaxCount = 256       // queued datagrams that force a flush
	gsoMaxBytes   = 65000     // a GSO message's payload stays under 64 KiB
	gsoMaxSegs    = 64        // UDP_MAX_SEGMENTS on every kernel with GSO
)

// SendBatch gathers one session's datagrams between Open and Flush. It
// belongs to the session's sending goroutine; other goroutines writing to
// the same address meanwhile (STUN, DTLS, RTCP) join the batch, in order.
// The zero of *SendBatch (nil) batches nothing, so callers need no checks.
type SendBatch struct {
	conn *Conn

	mu     sync.Mutex
	addr   netip.AddrPort // registered under this address; zero: none
	uaddr  *net.UDPAddr
	open   bool
	data   []byte // queued datagrams, back to back
	sizes  []int
	msgs   []ipv4.Message
	oob    []byte
	bufs   [][]byte
	sent   uint64 // datagrams flushed
	calls  uint64 // sendmmsg calls
	closed bool
	raw    rawSend // room for a raw sendmmsg (Linux)
}

// Open starts gathering datagrams to addr. A batch moves to a new address
// (ICE picked another pair) by registering again.
func (b *SendBatch) Open(addr netip.AddrPort) {
	if b == nil || !addr.IsValid() {
		return
	}
	addr = unmap(addr)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if addr != b.addr {
		// What is queued goes to the address it was written to.
		if err := b.flushLocked(); err != nil {
			b.conn.log.Debug("batched send failed", "err", err)
		}
		b.register(addr)
	}
	b.open = true
}

// register moves the batch to addr in the conn's map; b.mu is held.
func (b *SendBatch) register(addr netip.AddrPort) {
	c := b.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.addr.IsValid() && c.batchFor(b.addr) == b {
		c.setBatch(b.addr, nil)
	}
	b.addr, b.uaddr = netip.AddrPort{}, nil
	if c.batchFor(addr) != nil {
		// Two senders toward one address share a 5-tuple, which ICE
		// never gives two sessions; the second simply sends at once.
		return
	}
	c.setBatch(addr, b)
	b.addr, b.uaddr = addr, net.UDPAddrFromAddrPort(addr)
}

// add queues p if the batch is open, reporting whether it did.
func (b *SendBatch) add(p []byte) (bool, error) {
	return b.seal(len(p), func(dst []byte) ([]byte, error) { return append(dst, p...), nil })
}

// seal queues a datagram of at most n bytes that seal writes straight into
// the batch's buffer, if the batch is open, reporting whether it did.
func (b *SendBatch) seal(n int, seal func(dst []byte) ([]byte, error)) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return false, nil
	}
	if len(b.sizes) >= batchMaxCount || len(b.data)+n > cap(b.data) {
		if err := b.flushLocked(); err != nil {
			b.conn.log.Debug("batched send failed", "err", err)
		}
		if n > cap(b.data) {
			return false, nil // sent at once, after what was queued
		}
	}
	at := len(b.data)
	p, err := seal(b.data[at:at:cap(b.data)])
	if err != nil {
		return true, err
	}
	if len(p) > 0 && &p[0] != &b.data[at : at+1 : cap(b.data)][0] {
		// seal outgrew n and wrote elsewhere: queue a copy if it fits.
		if at+len(p) > cap(b.data) {
			return true, errors.New("udp: sealed datagram larger than announced")
		}
		copy(b.data[at:at+len(p)], p)
	}
	b.data = b.data[:at+len(p)]
	b.sizes = append(b.sizes, len(p))
	return true, nil
}

// Flush sends what was gathered and closes the batch: later writes go out
// at once until the next Open.
func (b *SendBatch) Flush() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open = false
	return b.flushLocked()
}

// Close unregisters the batch, sending anything still queued.
func (b *SendBatch) Close() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open = false
	err := b.flushLocked()
	if !b.closed {
		b.closed = true
		c := b.conn
		c.mu.Lock()
		if b.addr.IsValid() && c.batchFor(b.addr) == b {
			c.setBatch(b.addr, nil)
		}
		c.mu.Unlock()
	}
	return err
}

// Stats returns datagrams sent by flushes and the sendmmsg calls they took.
func (b *SendBatch) Stats() (datagrams, calls uint64) {
	if b == nil {
		return 0, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sent, b.calls
}

// flushLocked builds one message per datagram, or per run of equal-sized
// datagrams with GSO (the last of a run may be shorter), and sends them.
func (b *SendBatch) flushLocked() error {
	if len(b.sizes) == 0 {
		return nil
	}
	defer func() {
		b.data, b.sizes = b.data[:0], b.sizes[:0]
		clear(b.bufs)
	}()
	gso := b.conn.gso.Load()
	err := b.send(gso)
	if err != nil && gso && errors.Is(err, syscall.EIO) {
		// The device cannot checksum-offload segmented sends (quic-go's
		// finding): say so once and stay on plain sendmmsg.
		if b.conn.gso.CompareAndSwap(true, false) {
			b.conn.log.Warn("UDP GSO send failed; falling back to plain sendmmsg", "err", err)
		}
		err = b.send(false)
	}
	if err != nil {
		return fmt.Errorf("udp: batched send to %s: %w", b.addr, err)
	}
	return nil
}

func (b *SendBatch) send(gso bool) error {
	b.msgs, b.bufs, b.oob = b.msgs[:0], b.bufs[:0], b.oob[:0]
	off := 0
	for i := 0; i < len(b.sizes); {
		size := b.sizes[i]
		j, end := i+1, off+size
		if gso {
			for j < len(b.sizes) && b.sizes[j] <= size && j-i < gsoMaxSegs && end+b.sizes[j] <= off+gsoMaxBytes {
				end += b.sizes[j]
				j++
				if b.sizes[j-1] < size {
					break // a shorter datagram ends the run
				}
			}
		}
		b.bufs = append(b.bufs, b.data[off:end])
		m := ipv4.Message{Buffers: b.bufs[len(b.bufs)-1 : len(b.bufs) : len(b.bufs)], Addr: b.uaddr}
		if j-i > 1 {
			at := len(b.oob)
			b.oob = b.oob[:at+segmentCmsgSpace]
			putSegmentCmsg(b.oob[at:], uint16(size))
			m.OOB = b.oob[at:len(b.oob):len(b.oob)]
		}
		b.msgs = append(b.msgs, m)
		off, i = end, j
	}
	for ms := b.msgs; len(ms) > 0; {
		n, err := b.writeBatch(ms)
		b.calls++
		if err != nil {
			return err
		}
		ms = ms[n:]
	}
	b.sent += uint64(len(b.sizes))
	return nil
}
