//go:build unix

package udp

import "net"

// SockControl runs f on conn's file descriptor: for the socket options
// the net package has no call for.
func SockControl(conn *net.UDPConn, f func(fd int) error) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
