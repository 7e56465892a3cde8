//go:build unix

package ingest

import (
	"net"
	"runtime"
	"syscall"
)

// readBufferSize returns the receive buffer the kernel gave the socket.
func readBufferSize(c *net.UDPConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		n, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	}); err != nil {
		return 0, err
	}
	if gerr != nil {
		return 0, gerr
	}
	if runtime.GOOS == "linux" {
		// Linux doubles the size asked for to leave room for its own
		// bookkeeping and reports the doubled figure (socket(7)).
		n /= 2
	}
	return n, nil
}
