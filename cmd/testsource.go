package cmd

import "context"

// startTestSource runs the built-in test pattern (wired once ingest.TestSource lands).
func (a *App) startTestSource(ctx context.Context, t *TestSourceConfig) error {
	_, _ = ctx, t
	return nil
}
