//go:build !linux

package bench

import (
	"errors"
	"os"
)

// The bench measures a Linux server (its CPU and memory come from /proc);
// elsewhere it builds, and its viewers do without what only Linux has.

// forceBuffers does nothing: only Linux can pass the buffer limits.
func forceBuffers(uintptr, int) {}

// enableTimestamps reports that kernel receive times are Linux only: the
// wire latency is then the delivery latency.
func enableTimestamps(uintptr) error { return errors.ErrUnsupported }

// kernelTime finds none.
func kernelTime([]byte) int64 { return 0 }

// growPipe leaves a FIFO's buffer as it is: only Linux resizes pipes.
func growPipe(*os.File) {}
