package hwaccel

import "syscall"

// newSysProcAttr puts the encoder in its own process group (so a signal
// reaches everything it spawned) and has the kernel kill it if whipgate
// dies, so no encoder outlives the gateway holding the capture card.
func newSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
