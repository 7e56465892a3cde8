package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"whipgate/certs/certstest"
	"whipgate/cmd"
)

// whipgate as its own process: the kit that builds and runs the binary,
// and the tests of the binary itself.

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

// TestBinaryAsREADMESays builds whipgate and starts it exactly as the
// README's first command does (no flags, no config), runs the curl line it
// prints, then stops it with SIGTERM: it must exit 0 within 3 s.
func TestBinaryAsREADMESays(t *testing.T) {
	curl := needTool(t, "curl", "apt-get install curl")
	bin := buildWhipgate(t)
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "go run ./cmd/whipgate\n") {
		t.Fatalf("README no longer says `go run ./cmd/whipgate`; update this test with it")
	}

	p := startWhipgateProcess(t, "README's", bin)
	var curlLine string
	certstest.Eventually(t, 10*time.Second, "a curl line in the welcome text", func() bool {
		for l := range strings.Lines(p.stdout.String()) {
			if _, after, ok := strings.Cut(l, "try: "); ok {
				curlLine = strings.TrimSpace(after)
				return true
			}
		}
		return false
	})
	if printed := p.stdout.String(); !strings.Contains(printed, "http://127.0.0.1:8080/play/test") {
		t.Fatalf("the welcome text does not point at the player: %q", printed)
	}
	args := strings.Fields(curlLine)
	if args[0] != "curl" {
		t.Fatalf("printed line %q is not a curl command", curlLine)
	}
	// The test stream goes live within a frame or two.
	var out []byte
	for range 50 {
		out, err = exec.Command(curl, args[1:]...).Output()
		if err == nil && strings.Contains(string(out), `"live": true`) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var doc struct {
		Streams []struct {
			Name string `json:"name"`
			Live bool   `json:"live"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("printed curl line gave %q: %v", out, err)
	}
	if len(doc.Streams) != 1 || doc.Streams[0].Name != "test" || !doc.Streams[0].Live {
		t.Fatalf("printed curl line gave %s", out)
	}

	// As the issue asks of a graceful shutdown.
	p.stop(t, syscall.SIGTERM, 3*time.Second)
}

// TestSIGTERMDeletesEgress: a whipgate process publishing to another one
// gets SIGTERM; it sends DELETE for its egress sessions (the target's
// publisher goes away at once, not after an ICE timeout) and exits 0 within
// 3 s.
func TestSIGTERMDeletesEgress(t *testing.T) {
	target := startGateway(t, func(c *cmd.Config) { c.TestSource = nil })
	dir := t.TempDir()
	conf := filepath.Join(dir, "a.yaml")
	yaml := "listen: 127.0.0.1:0\nwebrtc: {udp_listen: 127.0.0.1:0}\nstate_dir: " + dir + "\ntest_source: {stream: test}\n" +
		"egress:\n  - {id: up, stream: test, url: \"" + target.URL() + "/whip/up-{layer}\"}\n"
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := startWhipgateProcess(t, "publishing", buildWhipgate(t), "-config", conf)

	// Both layers live and both sessions registered: a publication goes
	// live in the hub a moment before its POST's session is registered
	// (CI once checked the sessions in between and found one).
	certstest.Eventually(t, 15*time.Second, "both layers live at the target, with 2 WHIP sessions", func() bool {
		m, ok1 := target.Hub().Stream("up-main")
		p, ok2 := target.Hub().Stream("up-preview")
		return ok1 && ok2 && m.Live() && p.Live() && whipSessions(target) == 2
	})
	proc.stop(t, syscall.SIGTERM, 3*time.Second)
	// The DELETEs arrived before the exit; consent timeouts would take 15 s.
	if n := whipSessions(target); n != 0 {
		t.Fatalf("target still has %d WHIP sessions after the publisher exited", n)
	}
}

func whipSessions(app *instance) int {
	n := 0
	for _, s := range app.Sessions().List() {
		if s.Kind == "whip" {
			n++
		}
	}
	return n
}
