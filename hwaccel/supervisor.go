//go:build unix

package hwaccel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Run is one start of the encoder process, handed to the RunFunc.
type Run struct {
	// Backend and Tool of the pipeline this run executes.
	Backend string
	Tool    Tool
	// PID of the encoder process.
	PID int
	// Attempt counts starts since Supervisor.Run began, from 1.
	Attempt int
	// Pipeline is what runs; its Outputs say how to parse each layer.
	Pipeline *Pipeline
	// Outputs are the pipe layers' read ends by layer name. They reach EOF
	// when the process exits and are closed after the RunFunc returns.
	Outputs map[string]io.Reader
}

// RunFunc consumes one run: it reads every pipe output concurrently (an
// unread pipe stalls the encoder), reports frames with FrameArrived, and
// returns when ctx is done or the outputs end. Its return ends the run.
type RunFunc func(ctx context.Context, run *Run) error

// Supervisor keeps one encoder process running: it starts the configured
// backend, hands each run's outputs to a RunFunc, restarts with backoff when
// the process exits, the RunFunc returns or the watchdog fires, and moves to
// the next fallback backend after repeated failures.
type Supervisor struct {
	cfg    Config
	log    *slog.Logger
	cands  []*Pipeline // Backend, then Fallback, rendered up front
	start  startFunc
	stderr *lineRing
	layers map[string]*layerStats // every candidate's layers, fixed at construction: FrameArrived takes no lock

	mu      sync.Mutex
	running bool
	st      Status // Layers and Stderr are filled in by Status()
}

// NewSupervisor validates cfg and renders every candidate pipeline; nothing
// starts until Run.
func NewSupervisor(cfg Config, log *slog.Logger) (*Supervisor, error) {
	cands, err := cfg.candidates()
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Supervisor{
		cfg:    cfg,
		log:    log.With("component", "hwaccel"),
		cands:  cands,
		start:  startOS(cfg.Restart.StopGrace),
		stderr: newLineRing(200, 64<<10),
		layers: map[string]*layerStats{},
	}
	for _, p := range cands {
		for _, o := range p.Outputs {
			if s.layers[o.Layer] == nil {
				s.layers[o.Layer] = &layerStats{name: o.Layer}
			}
		}
	}
	s.st = Status{Backend: cands[0].Backend, Tool: cands[0].Tool, State: StateIdle, pipeline: cands[0]}
	return s, nil
}

// Pipelines returns the candidate pipelines in the order they are tried.
func (s *Supervisor) Pipelines() []*Pipeline { return append([]*Pipeline(nil), s.cands...) }

// Run supervises until ctx is done, then stops the encoder (SIGINT, then
// SIGKILL after Restart.StopGrace), waits for it and for fn, and returns
// nil. It never gives up on its own: after the last fallback it goes back
// to the first backend. Only one Run may be active at a time.
func (s *Supervisor) Run(ctx context.Context, fn RunFunc) error {
	if fn == nil {
		return errors.New("hwaccel: Supervisor.Run needs a RunFunc")
	}
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("hwaccel: supervisor is already running")
	}
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
		s.setState(StateStopped, 0)
	}()

	rc := s.cfg.Restart
	bo := backoff{min: rc.BackoffMin, max: rc.BackoffMax}
	var failures []time.Time // of the current candidate, within the window
	cand := 0
	for attempt := 1; ; attempt++ {
		p := s.cands[cand]
		started := time.Now()
		err := s.runOnce(ctx, p, attempt, fn)
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		if now.Sub(started) >= rc.HealthyAfter {
			bo.reset()
			failures = nil
		}
		failures = append(dropBefore(failures, now.Add(-rc.FallbackWindow)), now)
		s.log.Warn("encoder run ended", "backend", p.Backend, "tool", p.Tool, "attempt", attempt,
			"ran", now.Sub(started).Round(time.Millisecond), "err", err)
		if len(s.cands) > 1 && rc.FallbackAfter > 0 && len(failures) >= rc.FallbackAfter {
			next := (cand + 1) % len(s.cands)
			s.log.Warn("falling back to the next backend", "from", p.Backend, "to", s.cands[next].Backend,
				"tool", s.cands[next].Tool, "failures", len(failures), "window", rc.FallbackWindow)
			cand, failures = next, nil
			bo.reset()
			s.mu.Lock()
			s.st.Fallbacks++
			s.st.Backend, s.st.Tool, s.st.pipeline = s.cands[cand].Backend, s.cands[cand].Tool, s.cands[cand]
			s.mu.Unlock()
		}
		s.recordFailure(err, now)
		delay := bo.next()
		s.setState(StateBackoff, delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func dropBefore(ts []time.Time, cut time.Time) []time.Time {
	i := 0
	for i < len(ts) && ts[i].Before(cut) {
		i++
	}
	return ts[i:]
}

// runOnce starts p, runs fn on it and returns why the run ended.
func (s *Supervisor) runOnce(ctx context.Context, p *Pipeline, attempt int, fn RunFunc) error {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.setState(StateStarting, 0)
	log := s.log.With("backend", p.Backend, "tool", p.Tool)
	out := &lineWriter{}
	proc, err := s.start(runCtx, p, out)
	if err != nil {
		return fmt.Errorf("hwaccel: start %s (%s): %w", p.Backend, p.Tool, err)
	}
	pid := proc.pid()
	log = log.With("pid", pid)
	out.setEmit(func(line string) {
		s.stderr.add(line)
		log.Log(context.Background(), stderrLevel(line), "encoder: "+line)
	})
	defer out.flush()
	log.Info("encoder started", "attempt", attempt, "argv", strings.Join(p.Argv, " "))

	startedAt := time.Now()
	for _, ls := range s.layers {
		ls.reset(startedAt)
	}
	s.mu.Lock()
	s.st.Backend, s.st.Tool, s.st.PID, s.st.pipeline = p.Backend, p.Tool, pid, p
	s.st.Starts++
	if attempt > 1 {
		s.st.Restarts++
	}
	s.mu.Unlock()
	s.setState(StateRunning, 0)

	run := &Run{Backend: p.Backend, Tool: p.Tool, PID: pid, Attempt: attempt, Pipeline: p, Outputs: proc.outputs()}
	exited := make(chan error, 1)
	consumed := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { exited <- proc.wait() })
	wg.Go(func() { consumed <- fn(runCtx, run) })
	defer func() {
		cancel(nil)
		wg.Wait()
		proc.closeOutputs()
		s.mu.Lock()
		s.st.PID = 0
		s.mu.Unlock()
	}()

	tick := time.NewTicker(s.watchdogTick())
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return exitError(p, pid, err)
		case err := <-consumed:
			// Close the pipes first: an encoder blocked writing to one
			// would otherwise sit out the whole grace period.
			proc.closeOutputs()
			if err == nil {
				err = errors.New("outputs ended")
			}
			// Outputs usually end because the encoder died; say so.
			select {
			case exitErr := <-exited:
				return fmt.Errorf("%w (reader: %v)", exitError(p, pid, exitErr), err)
			case <-time.After(100 * time.Millisecond):
			}
			return fmt.Errorf("hwaccel: reader of %s (%s) pid %d: %w", p.Backend, p.Tool, pid, err)
		case now := <-tick.C:
			if err := s.watch(now, startedAt, p.Outputs, log); err != nil {
				log.Warn("watchdog restarts the encoder", "err", err)
				return err
			}
		}
	}
}

func exitError(p *Pipeline, pid int, err error) error {
	if err == nil {
		err = errors.New("exited")
	}
	return fmt.Errorf("hwaccel: encoder %s (%s) pid %d: %w", p.Backend, p.Tool, pid, err)
}

// stderrLevel maps a line of ffmpeg (-loglevel level+…) or gst-launch
// output to a log level.
func stderrLevel(line string) slog.Level {
	l := strings.ToLower(line)
	switch {
	case strings.Contains(l, "[fatal]"), strings.Contains(l, "[panic]"), strings.Contains(l, "[error]"),
		strings.HasPrefix(l, "error"), strings.Contains(l, "error:"):
		return slog.LevelError
	case strings.Contains(l, "warn"):
		return slog.LevelWarn
	case strings.HasPrefix(l, "redistribute latency"), strings.HasPrefix(l, "setting pipeline"),
		strings.HasPrefix(l, "pipeline is"), strings.HasPrefix(l, "new clock"), strings.Contains(l, "[info]"):
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
