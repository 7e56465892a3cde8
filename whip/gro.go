package whip

import (
	"encoding/binary"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A socket with UDP_GRO on (Linux ≥ 5.0) may get several datagrams of one
// sender in one read: what a NIC's GRO coalesced, or a sender's UDP GSO
// message on loopback. At 100 Mbps that is one system call and one trip
// through the kernel's receive path per burst instead of per packet.

// EnableGRO asks the kernel for coalesced reads on conn.
func EnableGRO(conn *net.UDPConn) error {
	return sockControl(conn, func(fd int) error {
		return unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1)
	})
}

// sockControl runs f on conn's file descriptor.
func sockControl(conn *net.UDPConn, f func(fd int) error) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// CoalescedReader reads a socket with UDP_GRO on one datagram at a time,
// splitting coalesced reads at the segment size the kernel reports (the
// last datagram may be shorter). It belongs to the socket's one reader.
type CoalescedReader struct {
	buf     []byte // one read: up to 64 KiB
	pending []byte // datagrams of the last read not yet returned
	segment int
	from    netip.AddrPort
	oob     []byte // the last read's control messages
	oobn    int

	reads, datagrams uint64 // reader's: system calls, datagrams returned
}

// NewCoalescedReader returns a reader whose reads also take up to oobSpace
// bytes of other control messages (timestamps, say).
func NewCoalescedReader(oobSpace int) *CoalescedReader {
	return &CoalescedReader{buf: make([]byte, 1<<16), oob: make([]byte, oobSpace+unix.CmsgSpace(4))}
}

// Next returns the next datagram, its sender and the control messages of
// the read that brought it. The datagram is valid until the next call.
func (r *CoalescedReader) Next(conn *net.UDPConn) ([]byte, netip.AddrPort, []byte, error) {
	if len(r.pending) == 0 {
		n, oobn, _, from, err := conn.ReadMsgUDPAddrPort(r.buf, r.oob)
		if err != nil {
			return nil, from, nil, err
		}
		r.reads++
		r.from, r.oobn = from, oobn
		r.segment = groSegment(r.oob[:oobn])
		if r.segment <= 0 || r.segment > n {
			r.segment = n
		}
		if n == 0 {
			return r.buf[:0], from, r.oob[:oobn], nil
		}
		r.pending = r.buf[:n]
	}
	d := r.pending[:min(r.segment, len(r.pending))]
	r.pending = r.pending[len(d):]
	r.datagrams++
	return d, r.from, r.oob[:r.oobn], nil
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
