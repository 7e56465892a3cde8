package ingest

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"whipgate/internal/testkit"
)

// TestRawPipe: an encoder's pipe read with raw system calls gives what
// was written, EOF when the writer closes, ends a waiting read at its
// deadline (Ingest's cancellation) and allocates nothing; a file that is
// not a non-blocking pipe is read as before.
func TestRawPipe(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	r, ok := rawPipe(pr).(*rawFile)
	if !ok {
		t.Fatalf("rawPipe(os.Pipe's reader) = %T, want *rawFile", rawPipe(pr))
	}

	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB, past a pipe's buffer
	go func() { _, _ = pw.Write(want); _ = pw.Close() }()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d of %d bytes (equal: %v), %v", len(got), len(want), bytes.Equal(got, want), err)
	}
	if n, err := r.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Errorf("after the writer closed: %d, %v; want 0, EOF", n, err)
	}

	pr2, pw2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr2.Close()
	defer pw2.Close()
	r2 := rawPipe(pr2).(*rawFile)
	done := make(chan error, 1)
	go func() { _, err := r2.Read(make([]byte, 8)); done <- err }()
	time.Sleep(20 * time.Millisecond)
	if err := r2.SetReadDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	if err := testkit.Returned(t, done, 5*time.Second, "a waiting read ending at its deadline"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a waiting read ended with %v, want the deadline", err)
	}
	if err := r2.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n := testing.AllocsPerRun(100, func() {
		_, _ = pw2.Write(buf)
		if _, err := r2.Read(buf); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%.1f allocations per read, want 0", n)
	}

	f, err := os.Create(filepath.Join(t.TempDir(), "stream.h264"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := rawPipe(f); got != io.Reader(f) {
		t.Errorf("rawPipe(a regular file) = %T, want the file itself", got)
	}
}
