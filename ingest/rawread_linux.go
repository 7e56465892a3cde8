package ingest

import (
	"io"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawFile reads an encoder's pipe with raw read(2) calls, waiting for
// data in Go's poller as os.File does.
//
// Why: os.File.Read enters the system call through the scheduler
// (entersyscall), and a system call entered while all of the runtime's Ps
// are idle wakes its monitor thread (sysmon) from its deep sleep and sets
// it polling every 20 µs for a millisecond and more. An encoder's pipe
// makes the process idle and busy again at every frame. A read of a
// non-blocking pipe never blocks, so it need not tell the scheduler. The
// batches' sendmmsg does the same (whip/rtc/udp, sendmmsg_raw.go); only
// both together let sysmon sleep: in a box run its wake-ups fell from
// ~1,200 to ~60 a second and its CPU from ~2 % of a core to 0.2 %.
type rawFile struct {
	f  *os.File
	rc syscall.RawConn
	// The call's buffer and results; call is r.read bound once, so a Read
	// allocates nothing (a closure per call would: it escapes).
	buf   []byte
	n     uintptr
	errno syscall.Errno
	call  func(fd uintptr) bool
}

// rawPipe returns f read with raw system calls when f is a non-blocking
// file in Go's poller (os.Pipe's ends are), else f itself.
func rawPipe(r io.Reader) io.Reader {
	f, ok := r.(*os.File)
	if !ok {
		return r
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return r
	}
	nonblock := false
	if err := rc.Control(func(fd uintptr) {
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		nonblock = err == nil && fl&unix.O_NONBLOCK != 0
	}); err != nil || !nonblock {
		return r
	}
	raw := &rawFile{f: f, rc: rc}
	raw.call = raw.read
	return raw
}

func (r *rawFile) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	r.buf = b
	err := r.rc.Read(r.call)
	r.buf = nil
	switch {
	case err != nil:
		return 0, err
	case r.errno != 0:
		return 0, &os.PathError{Op: "read", Path: r.f.Name(), Err: r.errno}
	case r.n == 0:
		return 0, io.EOF
	}
	return int(r.n), nil
}

// read reads into r.buf; RawConn.Read calls it until it returns true
// (false: wait in the poller for data).
func (r *rawFile) read(fd uintptr) bool {
	for {
		r.n, _, r.errno = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(r.buf))), uintptr(len(r.buf)))
		if r.errno != syscall.EINTR {
			return r.errno != syscall.EAGAIN
		}
	}
}

// SetReadDeadline ends a waiting Read (Ingest's cancellation).
func (r *rawFile) SetReadDeadline(t time.Time) error { return r.f.SetReadDeadline(t) }
