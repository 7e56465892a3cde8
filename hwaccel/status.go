//go:build unix

package hwaccel

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Supervisor states.
const (
	StateIdle     = "idle"     // Run not called yet
	StateStarting = "starting" // launching the process
	StateRunning  = "running"  // process up, outputs handed out
	StateBackoff  = "backoff"  // waiting before the next start
	StateStopped  = "stopped"  // Run returned
)

// Status is a snapshot of the supervisor for the JSON API.
type Status struct {
	Backend string `json:"backend"`
	Tool    Tool   `json:"tool"`
	State   string `json:"state"`
	// Since is when State was entered.
	Since time.Time `json:"since"`
	// NextStart is when the backoff ends (in StateBackoff).
	NextStart time.Time `json:"next_start,omitzero"`
	PID       int       `json:"pid,omitempty"`
	// Starts counts process starts, Restarts those after the first,
	// Fallbacks the switches to another backend.
	Starts    int `json:"starts"`
	Restarts  int `json:"restarts"`
	Fallbacks int `json:"fallbacks"`
	// LastError is why the last run ended.
	LastError   string        `json:"last_error,omitempty"`
	LastErrorAt time.Time     `json:"last_error_at,omitzero"`
	Layers      []LayerStatus `json:"layers"`
	// Stderr is the tail of the encoder's output, oldest line first.
	Stderr []string `json:"stderr"`

	pipeline *Pipeline // the current candidate: whose layers to report
}

// LayerStatus is one layer's health as reported through FrameArrived.
type LayerStatus struct {
	Name      string    `json:"name"`
	Codec     Codec     `json:"codec"`
	Frames    uint64    `json:"frames"`
	FPS       float64   `json:"fps"`
	LastFrame time.Time `json:"last_frame,omitzero"`
	// LowFPS is set while the layer runs below Watchdog.LowFPS of the input
	// rate for longer than Watchdog.LowFPSFor.
	LowFPS bool `json:"low_fps"`
}

// layerStats are written by FrameArrived (any goroutine, lock-free) and
// read by the watchdog tick of the current run.
type layerStats struct {
	name   string
	frames atomic.Uint64
	last   atomic.Int64 // unix nanoseconds of the last frame; 0 = none this run

	mu        sync.Mutex // the rest: watchdog tick vs Status
	fps       float64
	fpsAt     time.Time
	fpsFrames uint64
	lowSince  time.Time
	low       bool
}

func (l *layerStats) reset(now time.Time) {
	l.frames.Store(0)
	l.last.Store(0)
	l.mu.Lock()
	l.fps, l.fpsAt, l.fpsFrames, l.lowSince, l.low = 0, now, 0, time.Time{}, false
	l.mu.Unlock()
}

// FrameArrived tells the watchdog that layer delivered a frame. Cheap
// enough to call per frame from any goroutine; unknown layers are ignored.
func (s *Supervisor) FrameArrived(layer string) {
	if l := s.layers[layer]; l != nil {
		l.frames.Add(1)
		l.last.Store(time.Now().UnixNano())
	}
}

// watchdogTick is how often the watchdog looks: a quarter of the shortest
// limit, between 50 ms and 1 s.
func (s *Supervisor) watchdogTick() time.Duration {
	d := time.Second
	for _, v := range []time.Duration{s.cfg.Watchdog.FirstFrame, s.cfg.Watchdog.Stall} {
		if v > 0 {
			d = min(d, v/4)
		}
	}
	return max(d, 50*time.Millisecond)
}

// watch returns an error when the run must be restarted: a layer without a
// first frame after Watchdog.FirstFrame, or without a frame for
// Watchdog.Stall. It also updates fps and warns once per low-fps episode.
func (s *Supervisor) watch(now, started time.Time, outs []Output, log *slog.Logger) error {
	w := s.cfg.Watchdog
	target := float64(s.cfg.Input.FPS)
	for _, o := range outs {
		name, l := o.Layer, s.layers[o.Layer]
		last := l.last.Load()
		switch {
		case last == 0:
			if w.FirstFrame > 0 && now.Sub(started) >= w.FirstFrame {
				return fmt.Errorf("hwaccel: watchdog: layer %s: no first frame within %v", name, w.FirstFrame)
			}
		case w.Stall > 0 && now.Sub(time.Unix(0, last)) >= w.Stall:
			return fmt.Errorf("hwaccel: watchdog: layer %s: stalled, no frame for %v", name, w.Stall)
		}
		l.mu.Lock()
		if dt := now.Sub(l.fpsAt); dt >= time.Second {
			n := l.frames.Load()
			l.fps = float64(n-l.fpsFrames) / dt.Seconds()
			l.fpsAt, l.fpsFrames = now, n
			if last != 0 && l.fps < w.LowFPS*target {
				if l.lowSince.IsZero() {
					l.lowSince = now
				}
				if !l.low && now.Sub(l.lowSince) >= w.LowFPSFor {
					l.low = true
					log.Warn("layer below its frame rate", "layer", name, "fps", l.fps, "want", target, "for", now.Sub(l.lowSince))
				}
			} else {
				l.lowSince, l.low = time.Time{}, false
			}
		}
		l.mu.Unlock()
	}
	return nil
}

func (s *Supervisor) setState(state string, backoff time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.st.State, s.st.Since, s.st.NextStart = state, now, time.Time{}
	if backoff > 0 {
		s.st.NextStart = now.Add(backoff)
	}
}

func (s *Supervisor) recordFailure(err error, at time.Time) {
	if err == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.LastError, s.st.LastErrorAt = err.Error(), at
}

// Status returns a snapshot for the API.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	for _, o := range st.pipeline.Outputs {
		l := s.layers[o.Layer]
		ls := LayerStatus{Name: o.Layer, Codec: o.Codec, Frames: l.frames.Load()}
		if last := l.last.Load(); last != 0 {
			ls.LastFrame = time.Unix(0, last)
		}
		l.mu.Lock()
		ls.FPS, ls.LowFPS = l.fps, l.low
		l.mu.Unlock()
		st.Layers = append(st.Layers, ls)
	}
	st.Stderr = s.stderr.snapshot()
	return st
}

// Stderr returns the last lines (at most 200 or 64 KiB) the encoder
// processes printed, oldest first, across restarts.
func (s *Supervisor) Stderr() []string { return s.stderr.snapshot() }
