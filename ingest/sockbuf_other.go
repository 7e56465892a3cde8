//go:build !unix

package ingest

import (
	"errors"
	"net"
)

func readBufferSize(*net.UDPConn) (int, error) {
	return 0, errors.New("reading SO_RCVBUF is not supported on this system")
}
