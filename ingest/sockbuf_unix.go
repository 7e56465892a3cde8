//go:build unix

package ingest

import (
	"net"
	"runtime"
	"syscall"

	"whipgate/whip/rtc/udp"
)

// readBufferSize returns the receive buffer the kernel gave the socket.
func readBufferSize(c *net.UDPConn) (int, error) {
	var n int
	if err := udp.SockControl(c, func(fd int) (err error) {
		n, err = syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		return err
	}); err != nil {
		return 0, err
	}
	if runtime.GOOS == "linux" {
		// Linux doubles the size asked for to leave room for its own
		// bookkeeping and reports the doubled figure (socket(7)).
		n /= 2
	}
	return n, nil
}
