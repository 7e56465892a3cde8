//go:build !linux

package ingest

import "io"

// rawPipe returns r: raw pipe reads are for Linux (see rawread_linux.go).
func rawPipe(r io.Reader) io.Reader { return r }
