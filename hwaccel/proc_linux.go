package hwaccel

import (
	"os"
	"syscall"
)

// newSysProcAttr puts the encoder in its own process group (so a signal
// reaches everything it spawned) and has the kernel kill it if whipgate
// dies, so no encoder outlives the gateway holding the capture card.
func newSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// fSetPipeSz is F_SETPIPE_SZ from linux/fcntl.h (not in package syscall).
const fSetPipeSz = 1031

// setPipeSize enlarges a pipe's buffer; best effort, the kernel caps it at
// /proc/sys/fs/pipe-max-size for unprivileged users.
func setPipeSize(f *os.File, n int) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSz, uintptr(n))
	})
}
