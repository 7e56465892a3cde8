package hwaccel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// fakeEncoder stands in for startOS so restart logic runs in a synctest
// bubble without processes.
type fakeEncoder struct {
	mu     sync.Mutex
	starts []fakeStart
	// behave decides start n: fail to start, or run for runFor (0: until
	// stopped) and then exit with an error.
	behave func(n int, p *Pipeline) (startErr error, runFor time.Duration)
	live   int           // processes not yet waited for
	killed chan struct{} // closed by kill: running processes exit
}

// kill makes every running fake encoder exit, like SIGKILL.
func (f *fakeEncoder) kill() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.killed != nil {
		close(f.killed)
	}
	f.killed = make(chan struct{})
}

type fakeStart struct {
	at            time.Time
	backend, tool string
}

func (f *fakeEncoder) start(ctx context.Context, p *Pipeline, log io.Writer) (process, error) {
	f.mu.Lock()
	n := len(f.starts)
	f.starts = append(f.starts, fakeStart{time.Now(), p.Backend, string(p.Tool)})
	f.mu.Unlock()
	startErr, runFor := f.behave(n, p)
	if startErr != nil {
		return nil, startErr
	}
	fmt.Fprintf(log, "fake encoder %d [info] up\n", n)
	f.mu.Lock()
	f.live++
	if f.killed == nil {
		f.killed = make(chan struct{})
	}
	killed := f.killed
	f.mu.Unlock()
	outs := map[string]io.Reader{}
	for _, o := range p.Outputs {
		outs[o.Layer] = strings.NewReader("")
	}
	return &fakeProc{f: f, ctx: ctx, killed: killed, runFor: runFor, id: 1000 + n, outs: outs}, nil
}

func (f *fakeEncoder) snapshot() ([]fakeStart, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeStart(nil), f.starts...), f.live
}

type fakeProc struct {
	f      *fakeEncoder
	ctx    context.Context
	killed <-chan struct{}
	runFor time.Duration
	id     int
	outs   map[string]io.Reader
}

func (p *fakeProc) pid() int                      { return p.id }
func (p *fakeProc) outputs() map[string]io.Reader { return p.outs }
func (p *fakeProc) closeOutputs()                 {}

func (p *fakeProc) wait() error {
	defer func() {
		p.f.mu.Lock()
		p.f.live--
		p.f.mu.Unlock()
	}()
	var exit <-chan time.Time
	if p.runFor > 0 {
		t := time.NewTimer(p.runFor)
		defer t.Stop()
		exit = t.C
	}
	select {
	case <-exit:
		return errors.New("exit status 1")
	case <-p.killed:
		return errors.New("signal: killed")
	case <-p.ctx.Done():
		return errors.New("signal: interrupt")
	}
}

// reportFrames is a RunFunc that reports a frame per layer at fps until
// stopAfter (0: never) or the run ends.
func reportFrames(s **Supervisor, fps int, stopAfter time.Duration) RunFunc {
	return func(ctx context.Context, run *Run) error {
		tick := time.NewTicker(time.Second / time.Duration(fps))
		defer tick.Stop()
		start := time.Now()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
				if stopAfter > 0 && time.Since(start) >= stopAfter {
					continue
				}
				for _, o := range run.Pipeline.Outputs {
					(*s).FrameArrived(o.Layer)
				}
			}
		}
	}
}

func waitUntilDone(ctx context.Context, run *Run) error { <-ctx.Done(); return nil }

// superviseFake runs cfg on a fake encoder in the current bubble until
// cancel is called; the returned func cancels and waits for Run.
func superviseFake(t *testing.T, cfg Config, f *fakeEncoder, fn func(**Supervisor) RunFunc) (*Supervisor, func()) {
	t.Helper()
	s, err := NewSupervisor(cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	s.start = f.start
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, fn(&s)) }()
	return s, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if st := s.Status(); st.State != StateStopped || st.PID != 0 {
			t.Errorf("after Run: state %s pid %d, want stopped and 0", st.State, st.PID)
		}
		if _, live := f.snapshot(); live != 0 {
			t.Errorf("%d fake encoders still running after Run returned", live)
		}
	}
}

// startsWithin supervises f, without a watchdog, for d of the bubble's
// fake time, and returns f's starts: when the supervisor restarted it.
func startsWithin(t *testing.T, f *fakeEncoder, d time.Duration) []fakeStart {
	t.Helper()
	_, stop := superviseFake(t, noWatchdog(Config{}), f, func(**Supervisor) RunFunc { return waitUntilDone })
	time.Sleep(d)
	stop()
	starts, _ := f.snapshot()
	return starts
}

func noWatchdog(c Config) Config {
	c.Watchdog = WatchdogConfig{FirstFrame: -1, Stall: -1}
	return c
}

func TestBackoffBounds(t *testing.T) {
	b := backoff{min: 500 * time.Millisecond, max: 30 * time.Second}
	nominal := 500 * time.Millisecond
	distinct := map[time.Duration]bool{}
	for i := range 12 {
		d := b.next()
		lo, hi := time.Duration(0.8*float64(nominal)), time.Duration(1.2*float64(nominal))
		if d < lo || d > hi {
			t.Errorf("delay %d = %v, want %v..%v", i, d, lo, hi)
		}
		distinct[d] = true
		nominal = min(2*nominal, 30*time.Second)
	}
	if len(distinct) < 10 {
		t.Errorf("only %d distinct delays of 12: no jitter", len(distinct))
	}
	b.reset()
	if d := b.next(); d > 600*time.Millisecond {
		t.Errorf("after reset: %v, want about 500ms", d)
	}
}

// TestSupervisorBackoffGrows: an encoder that dies at once is restarted
// after 0.5 s, 1 s, 2 s … capped at 30 s, each delay jittered.
func TestSupervisorBackoffGrows(t *testing.T) {
	defer goleak.VerifyNone(t)
	synctest.Test(t, func(t *testing.T) {
		f := &fakeEncoder{behave: func(int, *Pipeline) (error, time.Duration) { return nil, time.Millisecond }}
		starts := startsWithin(t, f, 4*time.Minute)
		if len(starts) < 10 {
			t.Fatalf("%d starts in 4 minutes, want >= 10", len(starts))
		}
		nominal := 500 * time.Millisecond
		var capped []time.Duration
		for i := 1; i < len(starts); i++ {
			gap := starts[i].at.Sub(starts[i-1].at) - time.Millisecond // the run itself
			lo, hi := time.Duration(0.8*float64(nominal)), time.Duration(1.2*float64(nominal))
			if gap < lo || gap > hi {
				t.Errorf("restart %d after %v, want %v..%v", i, gap, lo, hi)
			}
			if nominal == 30*time.Second {
				capped = append(capped, gap)
			}
			nominal = min(2*nominal, 30*time.Second)
		}
		if len(capped) >= 2 && capped[0] == capped[1] {
			t.Errorf("capped delays %v are equal: no jitter", capped)
		}
	})
}

// TestSupervisorBackoffResetsWhenHealthy: after a run longer than
// HealthyAfter the next restart comes after the minimum delay again.
func TestSupervisorBackoffResetsWhenHealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeEncoder{behave: func(n int, _ *Pipeline) (error, time.Duration) {
			if n == 4 {
				return nil, 61 * time.Second
			}
			return nil, time.Millisecond
		}}
		starts := startsWithin(t, f, 80*time.Second)
		if len(starts) < 6 {
			t.Fatalf("%d starts, want >= 6", len(starts))
		}
		gap := starts[5].at.Sub(starts[4].at) - 61*time.Second
		if gap < 400*time.Millisecond || gap > 600*time.Millisecond {
			t.Errorf("restart after a healthy run came after %v, want 0.5 s ± 20 %%", gap)
		}
	})
}

func TestSupervisorWatchdog(t *testing.T) {
	cases := []struct {
		name      string
		stopAfter time.Duration // frames stop after this; -1: never any
		check     time.Duration // after the first restart, before the second
		wantErr   string
	}{
		// Frames stop at 3 s, the stall is seen by 5.5 s, the restart
		// follows within 0.6 s; the second run would stall at 11 s.
		{"stall", 3 * time.Second, 7 * time.Second, "stalled, no frame for 2s"},
		{"no first frame", -1, 12 * time.Second, "no first frame within 10s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeEncoder{behave: func(int, *Pipeline) (error, time.Duration) { return nil, 0 }}
				fn := func(s **Supervisor) RunFunc {
					if c.stopAfter < 0 {
						return waitUntilDone
					}
					return reportFrames(s, 30, c.stopAfter)
				}
				s, stop := superviseFake(t, Config{}, f, fn)
				defer stop()
				time.Sleep(time.Second)
				synctest.Wait()
				if st := s.Status(); st.State != StateRunning || st.PID != 1000 || st.Starts != 1 {
					t.Fatalf("after 1 s: %+v, want running pid 1000", st)
				}
				time.Sleep(c.check - time.Second)
				st := s.Status()
				starts, _ := f.snapshot()
				if len(starts) != 2 || st.Restarts != 1 {
					t.Fatalf("%d starts, %d restarts after %v, want 2 and 1 (%+v)", len(starts), st.Restarts, c.check, st)
				}
				if !strings.Contains(st.LastError, c.wantErr) {
					t.Errorf("last error %q, want it to say %q", st.LastError, c.wantErr)
				}
				if !strings.Contains(strings.Join(st.Stderr, "\n"), "fake encoder 1 [info] up") {
					t.Errorf("stderr tail %q lacks the second run's output", st.Stderr)
				}
			})
		})
	}
}

func TestSupervisorLowFPS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeEncoder{behave: func(int, *Pipeline) (error, time.Duration) { return nil, 0 }}
		s, stop := superviseFake(t, Config{}, f, func(s **Supervisor) RunFunc { return reportFrames(s, 15, 0) })
		defer stop()
		time.Sleep(5 * time.Second)
		st := s.Status()
		if len(st.Layers) != 2 || st.Layers[0].LowFPS {
			t.Fatalf("after 5 s: layers %+v, want two, not yet low", st.Layers)
		}
		if fps := st.Layers[0].FPS; fps < 14 || fps > 16 {
			t.Errorf("main fps %.1f, want 15", fps)
		}
		time.Sleep(10 * time.Second)
		st = s.Status()
		for _, l := range st.Layers {
			if !l.LowFPS || l.Frames < 200 {
				t.Errorf("after 15 s at 15 of 30 fps: %+v, want low_fps and ~225 frames", l)
			}
		}
		if st.Restarts != 0 {
			t.Errorf("low fps restarted the encoder %d times; it should only warn", st.Restarts)
		}
	})
}

// TestSupervisorFallback: three failures within a minute move to the next
// backend; when that fails as often, the supervisor goes back to the first.
func TestSupervisorFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		gstDies := false
		f := &fakeEncoder{behave: func(n int, p *Pipeline) (error, time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case p.Tool == ToolFFmpeg:
				return errors.New("exec: no GPU"), 0
			case gstDies:
				return nil, time.Millisecond
			}
			return nil, 0
		}}
		cfg := noWatchdog(Config{Tool: ToolFFmpeg, Fallback: []FallbackConfig{{Backend: BackendSoftware, Tool: ToolGStreamer}}})
		s, stop := superviseFake(t, cfg, f, func(**Supervisor) RunFunc { return waitUntilDone })
		defer stop()
		tools := func() string {
			starts, _ := f.snapshot()
			var ts []string
			for _, s := range starts {
				ts = append(ts, s.tool)
			}
			return strings.Join(ts, ",")
		}

		time.Sleep(10 * time.Second)
		if got := tools(); got != "ffmpeg,ffmpeg,ffmpeg,gstreamer" {
			t.Errorf("starts %s, want three ffmpeg then gstreamer", got)
		}
		st := s.Status()
		if st.Tool != ToolGStreamer || st.State != StateRunning || st.Fallbacks != 1 {
			t.Errorf("status %+v, want gstreamer running after 1 fallback", st)
		}
		if !strings.Contains(st.LastError, "no GPU") {
			t.Errorf("last error %q, want the start failure", st.LastError)
		}

		mu.Lock()
		gstDies = true
		mu.Unlock()
		f.kill()
		time.Sleep(5 * time.Second)
		if got := tools(); !strings.HasPrefix(got, "ffmpeg,ffmpeg,ffmpeg,gstreamer,gstreamer,gstreamer,ffmpeg") {
			t.Errorf("starts %s, want the gstreamer fallback to fail three times and ffmpeg to be tried again", got)
		}
		if st := s.Status(); st.Fallbacks < 2 {
			t.Errorf("fallbacks %d, want >= 2", st.Fallbacks)
		}
	})
}

// TestSupervisorReaderEndsRun: the RunFunc returning ends the run (the
// encoder is stopped) and a new one starts.
func TestSupervisorReaderEndsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeEncoder{behave: func(int, *Pipeline) (error, time.Duration) { return nil, 0 }}
		var runs []int
		fn := func(**Supervisor) RunFunc {
			return func(ctx context.Context, run *Run) error {
				runs = append(runs, run.PID)
				if len(run.Outputs) != 2 || run.Outputs["main"] == nil || run.Outputs["preview"] == nil {
					t.Errorf("outputs %v, want main and preview", run.Outputs)
				}
				time.Sleep(time.Second)
				return errors.New("bad bitstream")
			}
		}
		s, stop := superviseFake(t, noWatchdog(Config{}), f, fn)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		stop()
		if len(runs) < 2 || runs[0] == runs[1] {
			t.Errorf("runs %v, want a second run with a new pid", runs)
		}
		if st := s.Status(); !strings.Contains(st.LastError, "bad bitstream") {
			t.Errorf("last error %q", st.LastError)
		}
		if _, live := f.snapshot(); live != 0 {
			t.Errorf("%d encoders alive", live)
		}
	})
}

func TestSupervisorRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeEncoder{behave: func(int, *Pipeline) (error, time.Duration) { return nil, 0 }}
		s, stop := superviseFake(t, noWatchdog(Config{}), f, func(**Supervisor) RunFunc { return waitUntilDone })
		defer stop()
		synctest.Wait()
		if err := s.Run(t.Context(), waitUntilDone); err == nil {
			t.Error("second concurrent Run succeeded")
		}
	})
}
