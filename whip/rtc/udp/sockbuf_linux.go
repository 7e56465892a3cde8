package udp

import (
	"fmt"
	"log/slog"
	"net"
	"syscall"
)

// SetBuffers asks for send and receive buffers of size bytes. Linux
// silently clamps them to net.core.rmem_max/wmem_max (4 MiB even on hosts
// tuned for video, 208 KiB by default); with CAP_NET_ADMIN, as an
// appliance running as root or with the capability has, the FORCE options
// pass the limit (quic-go does the same). Otherwise it warns, naming the
// sysctl to raise.
func SetBuffers(conn *net.UDPConn, size int, log *slog.Logger) {
	for _, b := range []struct {
		dir, sysctl, effect string
		set                 func(int) error
		opt, force          int
	}{
		{"receive", "net.core.rmem_max", "keyframe bursts may be dropped", conn.SetReadBuffer, syscall.SO_RCVBUF, syscall.SO_RCVBUFFORCE},
		{"send", "net.core.wmem_max", "batched sends may stall", conn.SetWriteBuffer, syscall.SO_SNDBUF, syscall.SO_SNDBUFFORCE},
	} {
		if err := b.set(size); err != nil {
			log.Warn("cannot set the UDP "+b.dir+" buffer", "err", err)
			continue
		}
		got := socketBuffer(conn, b.opt)
		if got < 0 || got >= size {
			continue
		}
		if SockControl(conn, func(fd int) error { return syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, b.force, size) }) == nil {
			if got = socketBuffer(conn, b.opt); got >= size {
				log.Info("UDP "+b.dir+" buffer raised past "+b.sysctl+" (CAP_NET_ADMIN)", "bytes", got)
				continue
			}
		}
		log.Warn("kernel clamped the UDP "+b.dir+" buffer; "+b.effect,
			"wanted", size, "got", got, "fix", fmt.Sprintf("sysctl -w %s=%d", b.sysctl, size))
	}
}

// ReadBuffer is the receive buffer the kernel granted conn, -1 if it
// cannot be read.
func ReadBuffer(conn *net.UDPConn) int { return socketBuffer(conn, syscall.SO_RCVBUF) }

// socketBuffer is the buffer size Linux granted for opt (it reports twice
// that, the rest being its bookkeeping); -1 if it cannot be read.
func socketBuffer(conn *net.UDPConn, opt int) int {
	n := -2
	_ = SockControl(conn, func(fd int) error {
		v, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, opt)
		if err == nil {
			n = v
		}
		return err
	})
	return n / 2
}
