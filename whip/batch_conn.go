package whip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// batchConn is the shared UDP socket as pion's ICE mux sees it. Datagrams
// go out at once, except those to an address with an open SendBatch: they
// are copied into the batch and leave with its Flush in one sendmmsg, runs
// of equal size as one UDP GSO message where the kernel supports it. Per
// packet that is ~0.9 µs of kernel time instead of ~4.2 µs for a sendto
// (DESIGN.md §3).
//
// It implements ice.AddrPortReaderWriter itself: pion adapts only the
// concrete *net.UDPConn, and its allocation-free path must reach WriteTo.
type batchConn struct {
	conn *net.UDPConn
	wb   batchWriter
	log  *slog.Logger
	gso  atomic.Bool

	gate   *readGate        // the RTC's: holds reads while a publisher's burst is inside pion
	ingest *ingestTable     // the RTC's: publishers read beneath pion; nil: none
	gro    *CoalescedReader // nil: the kernel has no UDP_GRO

	open    atomic.Int32 // batches registered; zero skips the map lookup
	mu      sync.RWMutex
	batches map[netip.AddrPort]*SendBatch
}

// batchWriter is ipv4.PacketConn or ipv6.PacketConn (same Message type).
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

func newBatchConn(conn *net.UDPConn, log *slog.Logger, gate *readGate) *batchConn {
	c := &batchConn{conn: conn, log: log, gate: gate, batches: map[netip.AddrPort]*SendBatch{}}
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		c.wb = ipv6.NewPacketConn(conn)
	} else {
		c.wb = ipv4.NewPacketConn(conn)
	}
	if err := EnableGRO(conn); err == nil {
		c.gro = NewCoalescedReader(0)
		log.Info("coalesced UDP receives: UDP_GRO")
	} else {
		log.Info("UDP receives one datagram per read (kernel has no UDP_GRO)", "err", err)
	}
	c.gso.Store(probeGSO(conn))
	if c.gso.Load() {
		log.Info("batched UDP sends: sendmmsg with UDP GSO")
	} else {
		log.Info("batched UDP sends: sendmmsg (kernel has no UDP GSO)")
	}
	return c
}

// probeGSO asks the kernel for the socket's UDP_SEGMENT option, which
// Linux ≥ 4.18 knows (quic-go's test).
func probeGSO(conn *net.UDPConn) bool {
	return sockControl(conn, func(fd int) error {
		_, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		return err
	}) == nil
}

func (c *batchConn) batchFor(addr netip.AddrPort) *SendBatch {
	if c.open.Load() == 0 {
		return nil
	}
	c.mu.RLock()
	b := c.batches[addr]
	c.mu.RUnlock()
	return b
}

// WriteToAddrPort is pion's send path (mux writes, STUN, DTLS, SRTP, SRTCP).
func (c *batchConn) WriteToAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if b := c.batchFor(addr); b != nil {
		if ok, err := b.add(p); ok {
			return len(p), err
		}
	}
	return c.conn.WriteToUDPAddrPort(p, addr)
}

// sealTo sends one datagram of at most n bytes that seal writes into dst
// (len 0, cap ≥ n) and returns: into the open batch to addr, so the sealed
// packet is written where it is sent from, or else at once from scratch.
func (c *batchConn) sealTo(addr netip.AddrPort, n int, scratch []byte, seal func(dst []byte) ([]byte, error)) ([]byte, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if b := c.batchFor(addr); b != nil {
		if ok, err := b.seal(n, seal); ok {
			return scratch, err
		}
	}
	if cap(scratch) < n {
		scratch = make([]byte, 0, n)
	}
	p, err := seal(scratch[:0])
	if err != nil {
		return scratch, err
	}
	_, err = c.conn.WriteToUDPAddrPort(p, addr)
	return scratch, err
}

// WriteTo is WriteToAddrPort for callers holding a net.Addr.
func (c *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return c.conn.WriteTo(p, addr)
	}
	return c.WriteToAddrPort(p, ua.AddrPort())
}

// ReadFromAddrPort is pion's read path: the ICE mux's one reader. A
// publisher's RTP read beneath pion (DirectIngest) is taken on the way and
// not returned.
func (c *batchConn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
	for {
		var d []byte
		var from netip.AddrPort
		if c.gro == nil {
			n, addr, err := c.conn.ReadFromUDPAddrPort(p)
			if err != nil {
				return n, addr, err
			}
			d, from = p[:n], addr
		} else {
			var err error
			if d, from, _, err = c.gro.Next(c.conn); err != nil {
				return 0, from, err
			}
		}
		if c.gate != nil {
			c.gate.received(d, from)
		}
		if c.ingest != nil && c.ingest.take(d, from) {
			continue
		}
		if c.gro == nil {
			return len(d), from, nil
		}
		return copy(p, d), from, nil
	}
}

func (c *batchConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromAddrPort(p)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}
func (c *batchConn) Close() error                       { return c.conn.Close() }
func (c *batchConn) LocalAddr() net.Addr                { return c.conn.LocalAddr() }
func (c *batchConn) SetDeadline(t time.Time) error      { return c.conn.SetDeadline(t) }
func (c *batchConn) SetReadDeadline(t time.Time) error  { return c.conn.SetReadDeadline(t) }
func (c *batchConn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// NewBatch returns an unregistered batch for one session's sender.
func (c *batchConn) NewBatch() *SendBatch {
	// bufs never grows past its capacity: messages point into it.
	return &SendBatch{conn: c, data: make([]byte, 0, batchBytes), bufs: make([][]byte, 0, batchMaxCount),
		msgs: make([]ipv4.Message, 0, batchMaxCount), oob: make([]byte, 0, batchMaxCount*unix.CmsgSpace(2))}
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
	conn *batchConn

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
}

// Open starts gathering datagrams to addr. A batch moves to a new address
// (ICE picked another pair) by registering again.
func (b *SendBatch) Open(addr netip.AddrPort) {
	if b == nil || !addr.IsValid() {
		return
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if addr != b.addr {
		b.register(addr)
	}
	b.open = true
}

// register moves the batch to addr in the conn's map; b.mu is held.
func (b *SendBatch) register(addr netip.AddrPort) {
	c := b.conn
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.addr.IsValid() && c.batches[b.addr] == b {
		delete(c.batches, b.addr)
		c.open.Add(-1)
	}
	b.addr, b.uaddr = netip.AddrPort{}, nil
	if _, taken := c.batches[addr]; taken {
		// Two senders toward one address share a 5-tuple, which ICE
		// never gives two sessions; the second simply sends at once.
		return
	}
	c.batches[addr] = b
	c.open.Add(1)
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
			return true, errors.New("whip: sealed datagram larger than announced")
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
		if b.addr.IsValid() && c.batches[b.addr] == b {
			delete(c.batches, b.addr)
			c.open.Add(-1)
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
		return fmt.Errorf("whip: batched send to %s: %w", b.addr, err)
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
			b.oob = b.oob[:at+unix.CmsgSpace(2)]
			putSegmentCmsg(b.oob[at:], uint16(size))
			m.OOB = b.oob[at:len(b.oob):len(b.oob)]
		}
		b.msgs = append(b.msgs, m)
		off, i = end, j
	}
	for ms := b.msgs; len(ms) > 0; {
		n, err := b.conn.wb.WriteBatch(ms, 0)
		b.calls++
		if err != nil {
			return err
		}
		ms = ms[n:]
	}
	b.sent += uint64(len(b.sizes))
	return nil
}

// putSegmentCmsg writes a UDP_SEGMENT control message (segment size).
func putSegmentCmsg(oob []byte, size uint16) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.IPPROTO_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	d := oob[unix.CmsgLen(0):]
	*(*uint16)(unsafe.Pointer(&d[0])) = size
}
