package hwaccel

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

type observedRun struct {
	pid     int
	outputs map[string]io.Reader
	bytes   map[string]*atomic.Int64
	flowing chan struct{} // closed once every output delivered data
}

// TestSupervisorRestartsKilledEncoder kills a real ffmpeg mid-stream with
// SIGKILL: the supervisor must start a new one and hand the RunFunc fresh
// readers that carry data, and leave no process or goroutine behind.
func TestSupervisorRestartsKilledEncoder(t *testing.T) {
	needTool(t, "ffmpeg", "apt-get install -y ffmpeg")
	defer goleak.VerifyNone(t)
	cfg := Config{
		Input: InputConfig{Width: 320, Height: 180, FPS: 30},
		Layers: []LayerConfig{
			{Name: "main", GOP: 15},
			{Name: "preview", Width: 160, Height: 90, GOP: 15},
		},
		Watchdog: WatchdogConfig{FirstFrame: -1, Stall: -1},
		Restart:  RestartConfig{BackoffMin: 100 * time.Millisecond},
	}
	s, err := NewSupervisor(cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	runs := make(chan *observedRun, 4)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(ctx context.Context, run *Run) error {
			o := &observedRun{pid: run.PID, outputs: run.Outputs, bytes: map[string]*atomic.Int64{}, flowing: make(chan struct{})}
			for name := range run.Outputs {
				o.bytes[name] = &atomic.Int64{}
			}
			runs <- o
			var once sync.Once
			readOutputs(run, func(layer string, chunk []byte) {
				o.bytes[layer].Add(int64(len(chunk)))
				if o.bytes["main"].Load() > 0 && o.bytes["preview"].Load() > 0 {
					once.Do(func() { close(o.flowing) })
				}
			})
			return io.ErrUnexpectedEOF
		})
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	defer stop()

	next := func() *observedRun {
		t.Helper()
		select {
		case o := <-runs:
			select {
			case <-o.flowing:
			case <-time.After(10 * time.Second):
				t.Fatalf("run pid %d: no data on both outputs; stderr %q", o.pid, s.Stderr())
			}
			return o
		case <-time.After(10 * time.Second):
			t.Fatalf("no run started; status %+v", s.Status())
		}
		return nil
	}
	first := next()
	if err := syscall.Kill(first.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second := next()
	if second.pid == first.pid {
		t.Fatalf("second run has the same pid %d", first.pid)
	}
	for name, r := range second.outputs {
		if r == first.outputs[name] {
			t.Errorf("output %s: the second run got the first run's reader", name)
		}
	}
	st := s.Status()
	if st.Restarts != 1 || st.PID != second.pid || st.State != StateRunning {
		t.Errorf("status %+v, want running pid %d after 1 restart", st, second.pid)
	}
	if !strings.Contains(st.LastError, "killed") {
		t.Errorf("last error %q, want it to name the kill", st.LastError)
	}
	stop()
	for _, pid := range []int{first.pid, second.pid} {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d still exists after Run returned (kill 0: %v)", pid, err)
		}
	}
}
