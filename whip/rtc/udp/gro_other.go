//go:build !linux

package udp

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
)

// EnableGRO reports that coalesced reads are a Linux facility.
func EnableGRO(*net.UDPConn) error {
	return errors.New("UDP_GRO is Linux only: " + errors.ErrUnsupported.Error())
}

// CoalescedReader, outside Linux, reads one datagram and its control
// messages per system call.
type CoalescedReader struct {
	buf, oob         []byte
	reads, datagrams atomic.Uint64
}

// NewCoalescedReader returns a reader whose reads also take up to oobSpace
// bytes of control messages.
func NewCoalescedReader(oobSpace int) *CoalescedReader {
	return &CoalescedReader{buf: make([]byte, 1<<16), oob: make([]byte, max(oobSpace, 64))}
}

// Next returns the next datagram, its sender and the control messages of
// the read that brought it. The datagram is valid until the next call.
func (r *CoalescedReader) Next(conn *net.UDPConn) ([]byte, netip.AddrPort, []byte, error) {
	n, oobn, _, from, err := conn.ReadMsgUDPAddrPort(r.buf, r.oob)
	if err != nil {
		return nil, netip.AddrPort{}, nil, err
	}
	r.reads.Add(1)
	r.datagrams.Add(1)
	return r.buf[:n], from, r.oob[:oobn], nil
}

// Stats returns the system calls the reader made and the datagrams it
// returned so far; it may be called from any goroutine.
func (r *CoalescedReader) Stats() (reads, datagrams uint64) {
	return r.reads.Load(), r.datagrams.Load()
}

// ControlData finds nothing outside Linux: no control message whipgate
// reads (GRO segment size, receive timestamps) exists there.
func ControlData([]byte, int32, int32, int) []byte { return nil }
