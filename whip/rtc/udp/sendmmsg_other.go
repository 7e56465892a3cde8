//go:build !linux

package udp

import (
	"net"
	"syscall"

	"golang.org/x/net/ipv4"
)

// rawSend is empty: raw sendmmsg is for Linux (sendmmsg_raw.go).
type rawSend struct{}

func rawConnOf(*net.UDPConn) syscall.RawConn { return nil }

// writeBatch sends ms with x/net (sendmmsg where the system has it).
func (b *SendBatch) writeBatch(ms []ipv4.Message) (int, error) {
	return b.conn.wb.WriteBatch(ms, 0)
}
