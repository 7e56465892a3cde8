package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"whipgate/certs/certstest"
)

// buildWhipgate builds cmd/whipgate into a temporary directory. The packages are
// the ones this test binary was just built from, so it is mostly a link.
func buildWhipgate(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "whipgate")
	build := exec.Command("go", "build", "-o", bin, "./cmd/whipgate")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/whipgate: %v\n%s", err, out)
	}
	return bin
}

// whipgateProcess is whipgate running as its own process, for the tests of
// the binary itself (started as the README says, stopped by a signal) and
// for tests whose subject keeps process-wide state: certmagic starts a
// rate-limiter goroutine per CA and account that nothing can stop, which
// TestMain's leak check would report, and a restart is then a real one.
type whipgateProcess struct {
	name   string
	cmd    *exec.Cmd
	stdout *certstest.LogTap
	stderr *certstest.LogTap
	done   chan struct{}
	err    error // Wait's result once done is closed
	url    string
}

// startWhipgateProcess runs bin with args and waits until it prints where it
// is running; it fails the test if the process exits first.
func startWhipgateProcess(t *testing.T, name, bin string, args ...string) *whipgateProcess {
	t.Helper()
	p := &whipgateProcess{
		name:   name,
		cmd:    exec.Command(bin, args...),
		stdout: &certstest.LogTap{},
		stderr: &certstest.LogTap{},
		done:   make(chan struct{}),
	}
	p.cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir())
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s whipgate stdout:\n%s\nstderr:\n%s", p.name, p.stdout, p.stderr)
		}
	})
	certstest.Eventually(t, 30*time.Second, name+" whipgate prints its URL", func() bool {
		select {
		case <-p.done:
			t.Fatalf("%s whipgate exited before it was ready: %v\nstderr:\n%s", name, p.err, p.stderr)
		default:
		}
		for line := range strings.Lines(p.stdout.String()) {
			if u, ok := strings.CutPrefix(strings.TrimSpace(line), "whipgate is running at "); ok {
				p.url = u
				return true
			}
		}
		return false
	})
	return p
}

// stop sends sig (SIGINT as Ctrl-C does, SIGTERM as systemd does) and
// fails the test unless the process then exits with status 0 within the
// time.
func (p *whipgateProcess) stop(t *testing.T, sig syscall.Signal, within time.Duration) {
	t.Helper()
	name := unix.SignalName(sig)
	start := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s whipgate: %v", p.name, err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("%s whipgate exited with %v after %v\nstderr:\n%s", p.name, p.err, name, p.stderr)
		}
		if d := time.Since(start); d > within {
			t.Fatalf("%s whipgate took %v to exit after %v, want < %v", p.name, d, name, within)
		}
	case <-time.After(within + 2*time.Second):
		t.Fatalf("%s whipgate still running %v after %v\nstderr:\n%s", p.name, within+2*time.Second, name, p.stderr)
	}
}
