//go:build unix && !linux

package hwaccel

import (
	"os"
	"syscall"
)

// newSysProcAttr puts the encoder in its own process group. Only Linux has
// a parent-death signal; elsewhere an encoder can outlive a crashed gateway.
func newSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

func setPipeSize(*os.File, int) {}
