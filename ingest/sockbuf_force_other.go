//go:build !linux

package ingest

import (
	"errors"
	"net"
)

func forceReadBuffer(*net.UDPConn, int) error {
	return errors.New("SO_RCVBUFFORCE is Linux only")
}
