package udp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A socket with UDP_GRO on (Linux ≥ 5.0) may get several datagrams of one
// sender in one read: what a NIC's GRO coalesced, or a sender's UDP GSO
// message on loopback. At 100 Mbps that is one system call and one trip
// through the kernel's receive path per burst instead of per packet.

// EnableGRO asks the kernel for coalesced reads on conn.
func EnableGRO(conn *net.UDPConn) error {
	return SockControl(conn, func(fd int) error {
		return unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1)
	})
}

// CoalescedReader reads a socket with UDP_GRO on one datagram at a time,
// splitting coalesced reads at the segment size the kernel reports (the
// last datagram may be shorter). It belongs to the socket's one reader.
//
// It reads up to readBatch messages per system call (recvmmsg): a sender
// that does not coalesce (OBS, a browser, one datagram per packet) costs a
// system call per datagram otherwise, about 2 µs on this machine's VM
// (BenchmarkBatchConnRead).
type CoalescedReader struct {
	msgs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	bufs  [][]byte // one message each: up to 64 KiB
	oobs  [][]byte // their control messages
	n     int      // messages of the last recvmmsg
	next  int      // the next of them to hand out

	pending []byte // datagrams of the current message not yet returned
	segment int
	from    netip.AddrPort
	oob     []byte // the current message's control messages

	reads, datagrams atomic.Uint64 // system calls, datagrams returned: read by ReadStats
}

// readBatch is how many messages one recvmmsg may return: 1 MiB of buffers.
const readBatch = 16

// mmsghdr is struct mmsghdr of recvmmsg(2); Go pads it as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// NewCoalescedReader returns a reader whose reads also take up to oobSpace
// bytes of other control messages (timestamps, say).
func NewCoalescedReader(oobSpace int) *CoalescedReader {
	r := &CoalescedReader{msgs: make([]mmsghdr, readBatch), iovs: make([]unix.Iovec, readBatch),
		names: make([]unix.RawSockaddrInet6, readBatch), bufs: make([][]byte, readBatch), oobs: make([][]byte, readBatch)}
	for i := range readBatch {
		r.bufs[i] = make([]byte, 1<<16)
		r.oobs[i] = make([]byte, oobSpace+unix.CmsgSpace(4))
		r.iovs[i].Base = &r.bufs[i][0]
	}
	return r
}

// Next returns the next datagram, its sender and the control messages of
// the read that brought it. The datagram is valid until the next call.
func (r *CoalescedReader) Next(conn *net.UDPConn) ([]byte, netip.AddrPort, []byte, error) {
	for len(r.pending) == 0 {
		if r.next == r.n {
			if err := r.read(conn); err != nil {
				return nil, netip.AddrPort{}, nil, err
			}
		}
		m := &r.msgs[r.next]
		size, oob := int(m.len), r.oobs[r.next][:m.hdr.Controllen]
		r.from, r.oob = sockaddrPort(&r.names[r.next]), oob
		r.segment = groSegment(oob)
		if r.segment <= 0 || r.segment > size {
			r.segment = size
		}
		r.pending = r.bufs[r.next][:size]
		r.next++
		if size == 0 {
			r.datagrams.Add(1)
			return r.pending, r.from, r.oob, nil // an empty datagram is one too
		}
	}
	d := r.pending[:min(r.segment, len(r.pending))]
	r.pending = r.pending[len(d):]
	r.datagrams.Add(1)
	return d, r.from, r.oob, nil
}

// Stats returns the system calls the reader made and the datagrams it
// returned so far; it may be called from any goroutine.
func (r *CoalescedReader) Stats() (reads, datagrams uint64) {
	return r.reads.Load(), r.datagrams.Load()
}

// read fills the batch with one recvmmsg, waiting for the socket through
// Go's poller (deadlines and Close apply).
func (r *CoalescedReader) read(conn *net.UDPConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	for i := range r.msgs {
		m := &r.msgs[i]
		r.iovs[i].SetLen(len(r.bufs[i]))
		m.hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		m.hdr.Namelen = unix.SizeofSockaddrInet6
		m.hdr.Iov = &r.iovs[i]
		m.hdr.SetIovlen(1)
		m.hdr.Control = &r.oobs[i][0]
		m.hdr.SetControllen(len(r.oobs[i]))
		m.hdr.Flags = 0
		m.len = 0
	}
	var n int
	var serr error
	err = raw.Read(func(fd uintptr) bool {
		// Raw, as sendmmsg_raw.go says why: MSG_DONTWAIT never blocks.
		k, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(len(r.msgs)), unix.MSG_DONTWAIT, 0, 0)
		if errno == unix.EAGAIN || errno == unix.EINTR {
			return false
		}
		if errno != 0 {
			serr = &net.OpError{Op: "read", Net: "udp", Source: conn.LocalAddr(), Err: errno}
			return true
		}
		n = int(k)
		return true
	})
	if err != nil {
		return &net.OpError{Op: "read", Net: "udp", Source: conn.LocalAddr(), Err: err}
	}
	if serr != nil {
		return serr
	}
	r.reads.Add(1)
	r.n, r.next = n, 0
	return nil
}

// sockaddrPort is the address recvmmsg wrote into sa (IPv4 or IPv6).
func sockaddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
	}
	return netip.AddrPort{}
}

// groSegment is the segment size of a coalesced read's UDP_GRO control
// message; 0 when there is none (one datagram).
func groSegment(oob []byte) int {
	d := ControlData(oob, unix.IPPROTO_UDP, unix.UDP_GRO, 4)
	if d == nil {
		return 0
	}
	return int(int32(binary.NativeEndian.Uint32(d)))
}

// ControlData is the data of the first control message in oob of the given
// level and type that carries at least minLen bytes; nil when there is none
// or oob is malformed. It allocates nothing, unlike
// unix.ParseSocketControlMessage.
func ControlData(oob []byte, level, typ int32, minLen int) []byte {
	const hdr = unix.SizeofCmsghdr
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		n := int(h.Len)
		if n < hdr || n > len(oob) {
			return nil
		}
		if h.Level == level && h.Type == typ && n >= unix.CmsgLen(minLen) {
			return oob[unix.CmsgLen(0):n]
		}
		next := unix.CmsgSpace(n - unix.CmsgLen(0))
		if next > len(oob) {
			return nil
		}
		oob = oob[next:]
	}
	return nil
}
