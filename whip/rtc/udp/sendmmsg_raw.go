//go:build linux

package udp

import (
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Batches leave with raw sendmmsg(2) calls here.
//
// Why: x/net's WriteBatch enters the system call through the scheduler
// (entersyscall), and a system call entered while all of the runtime's Ps
// are idle wakes its monitor thread (sysmon) from its deep sleep and sets
// it polling every 20 µs for a millisecond and more. A media sender makes
// the process idle and busy again at every frame; in a box run 96 % of
// sysmon's wake-ups from its sleep came from WriteBatch (perf uprobe on
// runtime.entersyscallWakeSysmon), and sysmon took ~1.8 % of a core of
// the box's ~9 %. The socket is non-blocking, so the call never blocks:
// it need not tell the scheduler. Waiting for room (EAGAIN) stays in Go's
// poller, as with x/net. With the encoder pipe read the same way (ingest,
// rawread_linux.go) sysmon woke ~60 times a second instead of ~1,200.
// The price: the thread keeps its P through the call (tens of µs, a few
// hundred for a full batch when loopback delivery runs in it), so a
// stop-the-world or another goroutine on that P waits that long; the
// call never blocks, so no longer.
// Other systems keep x/net's path (sendmmsg_other.go).

// rawSend is a batch's room for one raw sendmmsg call. The call's
// arguments and results live here and call is bound once, so a send
// allocates nothing (a closure per call would: it escapes into RawConn).
type rawSend struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	sa4   unix.RawSockaddrInet4
	sa6   unix.RawSockaddrInet6
	call  func(fd uintptr) bool // r.sendmmsg, bound once
	sent  uintptr
	errno syscall.Errno
}

// sendmmsg sends r.hdrs; RawConn.Write calls it until it returns true
// (false: wait in the poller for room).
func (r *rawSend) sendmmsg(fd uintptr) bool {
	for {
		r.sent, _, r.errno = syscall.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), 0, 0, 0)
		if r.errno != syscall.EINTR {
			return r.errno != syscall.EAGAIN
		}
	}
}

// rawConnOf returns conn's RawConn for raw sends (nil: use x/net).
func rawConnOf(conn *net.UDPConn) syscall.RawConn {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// writeBatch sends ms to the batch's address in one sendmmsg and returns
// how many messages left. b.mu is held.
func (b *SendBatch) writeBatch(ms []ipv4.Message) (int, error) {
	c := b.conn
	if c.raw == nil {
		return c.wb.WriteBatch(ms, 0)
	}
	r := &b.raw
	name, namelen := r.sockaddr(b.addr, c.v6)
	if cap(r.hdrs) < len(ms) {
		// Once per batch: a flush holds at most batchMaxCount messages.
		n := max(len(ms), batchMaxCount)
		r.hdrs, r.iovs = make([]mmsghdr, n), make([]unix.Iovec, n)
	}
	hdrs, iovs := r.hdrs[:len(ms)], r.iovs[:len(ms)]
	r.hdrs = hdrs
	for i := range ms {
		buf := ms[i].Buffers[0]
		iovs[i] = unix.Iovec{Base: unsafe.SliceData(buf)}
		iovs[i].SetLen(len(buf))
		h := &hdrs[i]
		*h = mmsghdr{}
		h.hdr.Name, h.hdr.Namelen = name, namelen
		h.hdr.Iov = &iovs[i]
		h.hdr.SetIovlen(1)
		if oob := ms[i].OOB; len(oob) > 0 {
			h.hdr.Control = unsafe.SliceData(oob)
			h.hdr.SetControllen(len(oob))
		}
	}
	if r.call == nil {
		r.call = r.sendmmsg
	}
	err := c.raw.Write(r.call)
	// Drop the pointers into ms's buffers and OOB.
	clear(hdrs)
	clear(iovs)
	if err != nil {
		return 0, err
	}
	if r.errno != 0 {
		return 0, os.NewSyscallError("sendmmsg", r.errno)
	}
	return int(r.sent), nil
}

// sockaddr writes addr as the socket's family wants it (v4-mapped on an
// IPv6 socket).
func (r *rawSend) sockaddr(addr netip.AddrPort, v6 bool) (*byte, uint32) {
	port := addr.Port()
	if v6 {
		r.sa6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: addr.Addr().As16()}
		p := (*[2]byte)(unsafe.Pointer(&r.sa6.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		return (*byte)(unsafe.Pointer(&r.sa6)), unix.SizeofSockaddrInet6
	}
	r.sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: addr.Addr().As4()}
	p := (*[2]byte)(unsafe.Pointer(&r.sa4.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	return (*byte)(unsafe.Pointer(&r.sa4)), unix.SizeofSockaddrInet4
}
