package cmd

import (
	"context"
	"errors"
	"fmt"

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
		if err := a.startEncoder(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// startEncoder supervises the hwaccel pipeline and publishes its layers.
// The stream is pinned: viewers of a box whose encoder is restarting get
// "no publisher yet", not "not found".
func (a *App) startEncoder(ctx context.Context, e *EncoderConfig) error {
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
	a.encoder = sup
	a.wg.Go(func() {
		if err := src.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("encoder source stopped", "err", err)
		}
	})
	return nil
}
