// Package udp is the shared UDP socket of whipgate's WebRTC transport, as
// fast as the kernel allows: sends gathered per session and sent with one
// sendmmsg (runs of equal size as one UDP GSO message), receives coalesced
// by UDP_GRO and read up to 16 messages per recvmmsg, and socket buffers
// sized for 8K keyframe bursts (past the sysctl limits with CAP_NET_ADMIN).
//
// Those are Linux facilities; elsewhere (macOS, the BSDs) the same types do
// plain reads and writes, correctly and a little slower, and say so in the
// log once.
//
// It knows nothing of pion, WebRTC or HTTP and imports nothing of
// whipgate: the transport (whip/rtc) hands it a ReadFilter for the
// datagrams it takes before pion sees them.
package udp

import (
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ReadFilter sees every datagram read from the socket before the socket's
// reader (pion's ICE mux) does, on the reader's goroutine. It returns true
// when it took the datagram, which the reader then never sees. b is valid
// only during the call.
type ReadFilter func(b []byte, from netip.AddrPort) (taken bool)

// Conn is a shared UDP socket as pion's ICE mux sees it. Datagrams go out
// at once, except those to an address with an open SendBatch: they are
// copied into the batch and leave with its Flush in one sendmmsg, runs of
// equal size as one UDP GSO message where the kernel supports it. Per
// packet that is ~0.9 µs of kernel time instead of ~4.2 µs for a sendto
// (DESIGN.md §3).
//
// It implements ice.AddrPortReaderWriter itself: pion adapts only the
// concrete *net.UDPConn, and its allocation-free path must reach WriteTo.
type Conn struct {
	conn   *net.UDPConn
	wb     batchWriter
	raw    syscall.RawConn // batches' raw sendmmsg (nil: wb's)
	v6     bool            // an IPv6 socket
	log    *slog.Logger
	gso    atomic.Bool
	filter ReadFilter
	gro    *CoalescedReader // nil: the kernel has no UDP_GRO

	// batches maps an address to its open batch. Every packet looks it
	// up, from every sender's goroutine: a read lock's shared counter cost
	// more than the lookup (BenchmarkBatchLookup), so readers load an
	// immutable map and the rare writers (a session's batch registered,
	// moved or closed) copy it under mu. nil: no batch at all.
	batches atomic.Pointer[map[netip.AddrPort]*SendBatch]
	mu      sync.Mutex
}

// batchWriter is ipv4.PacketConn or ipv6.PacketConn (same Message type).
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// New wraps conn, switching on what the kernel offers (GRO reads, GSO
// sends) and logging which. filter may be nil.
func New(conn *net.UDPConn, log *slog.Logger, filter ReadFilter) *Conn {
	c := &Conn{conn: conn, log: log, filter: filter}
	c.raw = rawConnOf(conn)
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		c.wb, c.v6 = ipv6.NewPacketConn(conn), true
	} else {
		c.wb = ipv4.NewPacketConn(conn)
	}
	if err := EnableGRO(conn); err == nil {
		c.gro = NewCoalescedReader(0)
		log.Info("coalesced UDP receives: UDP_GRO")
	} else {
		log.Info("UDP receives one datagram per read (no UDP_GRO here)", "err", err)
	}
	c.gso.Store(probeGSO(conn))
	if c.gso.Load() {
		log.Info("batched UDP sends: sendmmsg with UDP GSO")
	} else {
		log.Info("batched UDP sends without UDP GSO (sendmmsg where the system has it)")
	}
	return c
}

func (c *Conn) batchFor(addr netip.AddrPort) *SendBatch {
	m := c.batches.Load()
	if m == nil {
		return nil
	}
	return (*m)[addr]
}

// setBatch registers b under addr, or unregisters addr (b nil), in a new
// copy of the map; c.mu is held.
func (c *Conn) setBatch(addr netip.AddrPort, b *SendBatch) {
	var m map[netip.AddrPort]*SendBatch
	if old := c.batches.Load(); old != nil {
		m = maps.Clone(*old)
	} else {
		m = map[netip.AddrPort]*SendBatch{}
	}
	if b != nil {
		m[addr] = b
	} else {
		delete(m, addr)
	}
	if len(m) == 0 {
		c.batches.Store(nil)
		return
	}
	c.batches.Store(&m)
}

// WriteToAddrPort is pion's send path (mux writes, STUN, DTLS, SRTP, SRTCP).
func (c *Conn) WriteToAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	addr = unmap(addr)
	if b := c.batchFor(addr); b != nil {
		if ok, err := b.add(p); ok {
			return len(p), err
		}
	}
	return c.conn.WriteToUDPAddrPort(p, addr)
}

// SealTo sends one datagram of at most n bytes that seal writes into dst
// (len 0, cap ≥ n) and returns: into the open batch to addr, so the sealed
// packet is written where it is sent from, or else at once from scratch,
// which it returns (grown if it was too small) for the next call.
func (c *Conn) SealTo(addr netip.AddrPort, n int, scratch []byte, seal func(dst []byte) ([]byte, error)) ([]byte, error) {
	addr = unmap(addr)
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
func (c *Conn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return c.conn.WriteTo(p, addr)
	}
	return c.WriteToAddrPort(p, ua.AddrPort())
}

// ReadFromAddrPort is pion's read path: the ICE mux's one reader. A
// datagram the filter takes is not returned.
func (c *Conn) ReadFromAddrPort(p []byte) (int, netip.AddrPort, error) {
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
		if c.filter != nil && c.filter(d, from) {
			continue
		}
		if c.gro == nil {
			return len(d), from, nil
		}
		return copy(p, d), from, nil
	}
}

// ReadFrom is ReadFromAddrPort for callers that want a net.Addr.
func (c *Conn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromAddrPort(p)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// Close closes the socket.
func (c *Conn) Close() error { return c.conn.Close() }

// LocalAddr is the socket's address.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// SetDeadline sets the socket's read deadline; see SetWriteDeadline.
func (c *Conn) SetDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetReadDeadline sets the socket's read deadline (its one reader's).
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline does nothing. pion's UDP mux sets the write deadline to
// now to abort one session's blocked write as that session closes; on a
// socket every session writes to, that fails the others' writes at the
// same moment. A UDP send blocks briefly at most (a full buffer drops), so
// nothing needs aborting.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }

// ReadStats tells how the socket is read: whether with UDP_GRO and
// recvmmsg (coalesced), and then the system calls and datagrams so far.
func (c *Conn) ReadStats() (coalesced bool, calls, datagrams uint64) {
	if c.gro == nil {
		return false, 0, 0
	}
	return true, c.gro.reads.Load(), c.gro.datagrams.Load()
}

// unmap makes an IPv4-mapped IPv6 address plain IPv4, so one peer has one
// key whichever way the kernel reported it.
func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
