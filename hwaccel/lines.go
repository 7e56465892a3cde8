package hwaccel

import (
	"bytes"
	"sync"
)

// lineRing keeps the last lines of an encoder's stderr, bounded both in
// lines and bytes, for the status API and failure reasons.
type lineRing struct {
	mu       sync.Mutex
	lines    []string
	bytes    int
	maxLines int
	maxBytes int
}

func newLineRing(maxLines, maxBytes int) *lineRing {
	return &lineRing{maxLines: maxLines, maxBytes: maxBytes}
}

func (r *lineRing) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, line)
	r.bytes += len(line)
	for len(r.lines) > r.maxLines || r.bytes > r.maxBytes && len(r.lines) > 1 {
		r.bytes -= len(r.lines[0])
		r.lines = r.lines[1:] // append reallocates, so the array stays ~2x maxLines
	}
}

// snapshot returns a copy, oldest line first.
func (r *lineRing) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// maxLineBytes truncates pathological lines (progress bars without \n).
const maxLineBytes = 1024

// lineWriter is an io.Writer that calls emit for each complete line.
// os/exec copies the child's stderr into it from one goroutine.
type lineWriter struct {
	mu      sync.Mutex
	buf     []byte
	emit    func(string)
	pending []string // lines written before emit was set
}

// setEmit sets the line consumer (once the pid is known, to log it) and
// hands it what arrived before.
func (w *lineWriter) setEmit(emit func(string)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.emit = emit
	for _, l := range w.pending {
		emit(l)
	}
	w.pending = nil
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) > maxLineBytes {
				w.emitLocked()
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.emitLocked()
		p = p[i+1:]
	}
	return n, nil
}

// flush emits a last line that had no newline.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.emitLocked()
}

func (w *lineWriter) emitLocked() {
	line := bytes.TrimSpace(w.buf)
	w.buf = w.buf[:0]
	if len(line) == 0 {
		return
	}
	if len(line) > maxLineBytes {
		line = line[:maxLineBytes]
	}
	if w.emit == nil {
		w.pending = append(w.pending, string(line))
		return
	}
	w.emit(string(line))
}
