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

// waitLiveWithin is waitLive with a longer wait, for real encoders.
func waitLiveWithin(t testing.TB, app *cmd.App, name string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if s, ok := app.Hub().Stream(name); ok && s.Live() {
			if tr := s.Stats().Tracks; len(tr) > 0 && tr[0].Keyframes > 0 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("stream %q not live with a keyframe within %v", name, within)
}
