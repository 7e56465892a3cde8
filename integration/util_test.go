package integration

import (
	"testing"
	"time"

	"whipgate/cmd"
)

// waitLive waits until a stream has a live publisher.
func waitLive(t testing.TB, app *cmd.App, name string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if s, ok := app.Hub().Stream(name); ok && s.Live() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("stream %q never went live", name)
}
