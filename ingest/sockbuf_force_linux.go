package ingest

import (
	"net"
	"syscall"

	"whipgate/whip/rtc/udp"
)

// forceReadBuffer sets the receive buffer past net.core.rmem_max, which
// needs CAP_NET_ADMIN (an appliance running as root has it).
func forceReadBuffer(c *net.UDPConn, size int) error {
	return udp.SockControl(c, func(fd int) error {
		return syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, size)
	})
}
