package ingest

import (
	"net"
	"syscall"
)

// forceReadBuffer sets the receive buffer past net.core.rmem_max, which
// needs CAP_NET_ADMIN (an appliance running as root has it).
func forceReadBuffer(c *net.UDPConn, size int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, size)
	}); err != nil {
		return err
	}
	return serr
}
