//go:build unix

package hwaccel

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// newCommand prepares argv so that cancelling ctx sends SIGINT to the
// process group (ffmpeg and gst-launch -e flush and exit on it) and, if it
// is still alive after grace, SIGKILL.
func newCommand(ctx context.Context, argv []string, grace time.Duration) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = newSysProcAttr()
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	cmd.WaitDelay = grace
	return cmd
}

// killGroup makes sure nothing the encoder spawned survives it.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
