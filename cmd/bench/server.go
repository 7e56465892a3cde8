package bench

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"whipgate/whip/rtc/pionlog"
)

// server is a whipgate under test: a child process the bench started, so
// that its CPU time and memory are its own, or one already running
// (-server URL; CPU and memory only with -pid).
type server struct {
	name string
	url  string
	pid  string // "" when unknown: no CPU or memory figures

	cmd    *exec.Cmd
	tail   *tailWriter
	full   atomic.Int64 // packets its pion dropped at full buffers (from its log)
	exited chan struct{}
	wg     sync.WaitGroup // waits for the process
	once   sync.Once
	err    error
}

// listenAddrs are a started server's HTTP and WebRTC UDP addresses; ""
// is an ephemeral loopback port.
type listenAddrs struct{ http, udp string }

// startServer runs bin as a whipgate on loopback ports (at addrs) with its
// state in dir, and waits until it prints its URL. The server logs
// warnings and up; show decides which of its lines go to logs, prefixed
// with name.
func startServer(ctx context.Context, name, bin, dir, config string, addrs listenAddrs, logs io.Writer, show func(string) bool) (*server, error) {
	args := []string{"-listen", cmp.Or(addrs.http, "127.0.0.1:0"), "-udp", cmp.Or(addrs.udp, "127.0.0.1:0"), "-no-test-source",
		"-state-dir", dir, "-log-level", "warn"}
	if config != "" {
		args = append(args, "-config", config)
	}
	s := &server{name: name, tail: &tailWriter{max: 16 << 10}, exited: make(chan struct{})}
	urls := make(chan string, 1)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout = &lineWriter{line: func(l string) {
		if u, ok := strings.CutPrefix(l, "whipgate is running at "); ok {
			select {
			case urls <- strings.TrimSpace(u):
			default:
			}
		}
	}}
	s.cmd.Stderr = io.MultiWriter(s.tail, &lineWriter{line: func(l string) {
		if pionlog.IsBufferFull(l) {
			s.full.Add(1)
		}
		if show(l) {
			fmt.Fprintf(logs, "%s: %s\n", name, l)
		}
	}})
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", bin, err)
	}
	s.pid = strconv.Itoa(s.cmd.Process.Pid)
	s.wg.Go(func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	})
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	select {
	case s.url = <-urls:
		return s, nil
	case <-s.exited:
		s.wg.Wait()
		return nil, fmt.Errorf("bench: %s %s exited before serving (%v): %s", name, bin, s.err, s.tail)
	case <-timeout.C:
		err := fmt.Errorf("bench: %s %s printed no URL within 20 s: %s", name, bin, s.tail)
		return nil, errors.Join(err, s.Close())
	case <-ctx.Done():
		return nil, errors.Join(ctx.Err(), s.Close())
	}
}

// externalServer is a whipgate the bench did not start.
func externalServer(url string, pid int) *server {
	s := &server{name: "server", url: strings.TrimSuffix(url, "/")}
	if pid > 0 {
		s.pid = strconv.Itoa(pid)
	}
	return s
}

// alive reports an error if a started server has exited.
func (s *server) alive() error {
	if s == nil || s.cmd == nil {
		return nil
	}
	select {
	case <-s.exited:
		s.wg.Wait()
		return fmt.Errorf("bench: %s exited during the run (%v): %s", s.name, s.err, s.tail)
	default:
		return nil
	}
}

// Close stops a started server with SIGTERM (SIGKILL after 5 s) and waits
// for it. It leaves an external one alone. Idempotent.
func (s *server) Close() error {
	if s == nil || s.cmd == nil {
		return nil
	}
	var err error
	s.once.Do(func() {
		select {
		case <-s.exited:
			s.wg.Wait()
			err = fmt.Errorf("bench: %s had exited (%v): %s", s.name, s.err, s.tail)
			return
		default:
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			err = fmt.Errorf("bench: %s ignored SIGTERM for 5 s; killed", s.name)
		}
		s.wg.Wait()
	})
	return err
}

// kill ends a started server with SIGKILL, as a crash does (no DELETE,
// no DTLS close alert: the peers hear only silence), and waits for it.
// Close does nothing after it.
func (s *server) kill() error {
	if s == nil || s.cmd == nil {
		return errors.New("bench: kill: not a server the bench started")
	}
	err := errors.New("bench: kill: the server was stopped before")
	s.once.Do(func() {
		err = s.cmd.Process.Kill()
		<-s.exited
		s.wg.Wait()
	})
	return err
}

// logFilter shows every server line when verbose; otherwise errors, and
// each warning about clamped socket buffers once (it explains losses).
func logFilter(verbose bool) func(string) bool {
	var mu sync.Mutex
	seen := map[string]bool{}
	return func(l string) bool {
		if verbose || strings.Contains(l, "level=ERROR") {
			return true
		}
		if !strings.Contains(l, "clamped") {
			return false
		}
		_, msg, _ := strings.Cut(l, "msg=")
		mu.Lock()
		defer mu.Unlock()
		if seen[msg] {
			return false
		}
		seen[msg] = true
		return true
	}
}

// lineWriter calls line for every complete line written to it.
type lineWriter struct {
	buf  []byte
	line func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// tailWriter keeps the last max bytes written, for error messages.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return "(no output)"
	}
	return "\n" + string(w.buf)
}

// serverBinary is the whipgate executable to run as the server: given, or this
// very program (whipgate bench runs whipgate).
func serverBinary(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("bench: find the whipgate binary (give -bin): %w", err)
	}
	return exe, nil
}
