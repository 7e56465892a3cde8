package bench

import (
	"encoding/binary"
	"os"

	"golang.org/x/sys/unix"

	"whipgate/whip/rtc/udp"
)

// forceBuffers passes net.core.rmem_max/wmem_max for a viewer's socket;
// it fails without CAP_NET_ADMIN, and the clamped size stays.
func forceBuffers(fd uintptr, size int) {
	_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
	_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size)
}

// enableTimestamps asks the kernel for SO_TIMESTAMPNS control messages.
func enableTimestamps(fd uintptr) error {
	return unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
}

// kernelTime parses an SCM_TIMESTAMPNS control message (unix ns), 0 if
// oob holds none.
func kernelTime(oob []byte) int64 {
	d := udp.ControlData(oob, unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, 16)
	if d == nil {
		return 0
	}
	sec := int64(binary.NativeEndian.Uint64(d[0:8]))
	nsec := int64(binary.NativeEndian.Uint64(d[8:16]))
	return sec*1e9 + nsec
}

// growPipe asks for a 1 MiB pipe buffer (best effort: the kernel caps it
// at fs.pipe-max-size for the unprivileged).
func growPipe(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20) })
	}
}
