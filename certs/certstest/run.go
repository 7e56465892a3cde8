package certstest

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// Running is a command line's Run called on a goroutine, as main calls it,
// with its stdout and stderr kept in taps.
type Running struct {
	Stdout, Stderr LogTap

	cancel context.CancelFunc
	done   chan error
	stop   sync.Once
}

// Background calls run on a goroutine with a context that Stop ends, and
// Stop is called when the test ends.
func Background(t testing.TB, run func(ctx context.Context, stdout, stderr io.Writer) error) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx, &r.Stdout, &r.Stderr) }()
	t.Cleanup(func() { r.Stop(t) })
	return r
}

// Line waits for a line of stdout that, trimmed, starts with prefix and
// returns the rest. It fails the test if run returns first or no such
// line comes within the time.
func (r *Running) Line(t testing.TB, prefix string, within time.Duration) string {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(10 * time.Millisecond) {
		for l := range strings.Lines(r.Stdout.String()) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), prefix); ok {
				return v
			}
		}
		select {
		case err := <-r.done:
			r.done <- err // for Stop
			t.Fatalf("Run returned %v before a %q line; stdout:\n%s\nstderr:\n%s", err, prefix, r.Stdout.String(), r.Stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q line within %v; stdout:\n%s\nstderr:\n%s", prefix, within, r.Stdout.String(), r.Stderr.String())
		}
	}
}

// Stop ends run's context and fails the test unless run returns nil
// within 10 s. Calls after the first do nothing.
func (r *Running) Stop(t testing.TB) {
	t.Helper()
	r.stop.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: got %v after its context ended, want a clean stop", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return 10 s after its context ended")
		}
	})
}
