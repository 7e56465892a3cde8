package cmd

import (
	"context"
	"errors"
	"fmt"

	"whipgate/cmd/config"
	"whipgate/hwaccel"
	"whipgate/ingest"
)

// startSources starts the local sources (test pattern, encoder pipeline)
// on goroutines the App waits for in Close.
func (a *App) startSources(ctx context.Context) error {
	if t := a.cfg.TestSource; t.On() {
		if err := a.startTestSource(ctx, t); err != nil {
			return err
		}
	}
	if e := a.cfg.Encoder; e != nil {
		if err := a.startEncoder(e); err != nil {
			return err
		}
	}
	return nil
}

// encoderRun is the running encoder pipeline: its supervisor, and how to
// stop its source and wait for it.
type encoderRun struct {
	sup  *hwaccel.Supervisor
	stop context.CancelFunc
	done chan struct{}
}

// startEncoder supervises the hwaccel pipeline and publishes its layers.
// The stream is pinned: viewers of a box whose encoder is restarting get
// "no publisher yet", not "not found".
func (a *App) startEncoder(e *config.EncoderConfig) error {
	log := a.log.With("component", "encoder", "stream", e.Stream)
	sup, err := hwaccel.NewSupervisor(e.Config, log)
	if err != nil {
		return fmt.Errorf("hwaccel: %w", err)
	}
	src, err := ingest.NewEncoderSource(e.Stream, sup, a.hub, log)
	if err != nil {
		return fmt.Errorf("hwaccel: %w", err)
	}
	if _, err := a.hub.Pin(e.Stream); err != nil {
		src.Close()
		return err
	}
	// Its own context under the sources': a reload that changes the
	// hwaccel section stops this run and starts another.
	ctx, stop := context.WithCancel(a.sourceCtx)
	run := &encoderRun{sup: sup, stop: stop, done: make(chan struct{})}
	a.encoderMu.Lock()
	a.encoder = run
	a.encoderMu.Unlock()
	a.wg.Go(func() {
		defer close(run.done)
		labelled(ctx, partIngest, func(ctx context.Context) {
			if err := src.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("encoder source stopped", "err", err)
			}
		})
	})
	return nil
}

// stopEncoder stops the running encoder, if any, and waits for it.
func (a *App) stopEncoder() {
	a.encoderMu.Lock()
	run := a.encoder
	a.encoder = nil
	a.encoderMu.Unlock()
	if run != nil {
		run.stop()
		<-run.done
	}
}
