package cmd

import (
	"context"
	"errors"
	"fmt"

	"whipgate/cmd/config"
	"whipgate/ingest"
)

// startTestSource runs the built-in test pattern on a goroutine the App
// owns; the stream is pinned so it stays listed if the source stops.
func (a *App) startTestSource(ctx context.Context, t *config.TestSourceConfig) error {
	src, err := ingest.NewTestSource(t.TestSourceConfig, a.hub, a.log.With("component", "testsource"))
	if err != nil {
		return fmt.Errorf("test source: %w", err)
	}
	if _, err := a.hub.Pin(t.Stream); err != nil {
		return err
	}
	a.wg.Go(func() {
		labelled(ctx, partIngest, func(ctx context.Context) {
			if err := src.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error("test source stopped", "err", err)
			}
		})
	})
	return nil
}
