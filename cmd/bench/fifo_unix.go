//go:build unix

package bench

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// makeFIFO makes a named pipe at path for the box's encoder relay.
func makeFIFO(path string) error {
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return fmt.Errorf("bench: mkfifo %s: %w", path, err)
	}
	return nil
}

// openFIFO opens a FIFO for writing without waiting for its reader: read
// and write, so the open never blocks, and what is written waits in the
// FIFO until the relay opens it. Its buffer grows to 1 MiB where the
// kernel allows, as hwaccel's pipes do, so a keyframe fits.
func openFIFO(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("bench: open %s: %w", path, err)
	}
	growPipe(f)
	return f, nil
}
