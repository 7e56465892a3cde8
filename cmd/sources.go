package cmd

import (
	"context"
)

// startSources starts the local sources (test pattern, encoder pipelines)
// on goroutines the App waits for in Close.
func (a *App) startSources(ctx context.Context) error {
	if t := a.cfg.TestSource; t.On() {
		if err := a.startTestSource(ctx, t); err != nil {
			return err
		}
	}
	return nil
}
