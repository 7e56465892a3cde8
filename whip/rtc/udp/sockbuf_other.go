//go:build !linux

package udp

import (
	"log/slog"
	"net"
)

// SetBuffers asks for send and receive buffers of size bytes; outside
// Linux there is no way to pass the system's limit or read what it
// granted, so it only says so.
func SetBuffers(conn *net.UDPConn, size int, log *slog.Logger) {
	rerr, werr := conn.SetReadBuffer(size), conn.SetWriteBuffer(size)
	log.Info("UDP socket buffers asked for; the system may grant less (not Linux: not checked)",
		"bytes", size, "read_err", rerr, "write_err", werr)
}

// ReadBuffer cannot be read outside Linux: -1.
func ReadBuffer(*net.UDPConn) int { return -1 }
