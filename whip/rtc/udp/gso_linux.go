package udp

import (
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// segmentCmsgSpace is the room a UDP_SEGMENT control message takes.
var segmentCmsgSpace = unix.CmsgSpace(2)

// probeGSO asks the kernel for the socket's UDP_SEGMENT option, which
// Linux ≥ 4.18 knows (quic-go's test).
func probeGSO(conn *net.UDPConn) bool {
	return SockControl(conn, func(fd int) error {
		_, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		return err
	}) == nil
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

// SegmentOOB is the control message that makes one sendmsg of a run of
// size-byte datagrams a UDP GSO message, for senders outside a SendBatch
// (tests, the bench).
func SegmentOOB(size uint16) []byte {
	oob := make([]byte, segmentCmsgSpace)
	putSegmentCmsg(oob, size)
	return oob
}
