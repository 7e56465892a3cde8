package bench

import (
	"slices"
	"testing"
	"time"
)

// The watch takes the server's times: when the egress left connected after
// the kill, and when a session that came up after the kill connected. An
// old session still shown connected is not the egress back.
func TestEgressWatchTakesTheServersTimes(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) *time.Time { x := t0.Add(d); return &x }
	w := egressWatch{killed: t0}
	for _, st := range []egressState{
		{State: "connected", Since: at(-time.Minute), ConnectedSince: at(-time.Minute)}, // not seen down yet
		{State: "reconnecting", Since: at(2100 * time.Millisecond)},
		{State: "reconnecting", Since: at(2100 * time.Millisecond)},
		{State: "connecting", Since: at(3 * time.Second)},
		{State: "connected", Since: at(3500 * time.Millisecond), ConnectedSince: at(3500 * time.Millisecond), Retries: 2},
	} {
		if !w.connected.IsZero() {
			t.Fatalf("connected at %v before the last read", w.connected)
		}
		w.see(st, t0.Add(10*time.Second))
	}
	if !w.detected.Equal(*at(2100 * time.Millisecond)) || !w.connected.Equal(*at(3500 * time.Millisecond)) || w.last.Retries != 2 {
		t.Errorf("detected %v, connected %v, retries %d; want the server's 2.1 s and 3.5 s after the kill, 2", w.detected.Sub(t0), w.connected.Sub(t0), w.last.Retries)
	}
	if want := []string{"connected", "reconnecting", "connecting", "connected"}; !slices.Equal(w.states, want) {
		t.Errorf("states %v, want %v", w.states, want)
	}
	// Without the server's time, the time of the read.
	w = egressWatch{killed: t0}
	w.see(egressState{State: "failed"}, t0.Add(time.Second))
	if !w.detected.Equal(t0.Add(time.Second)) {
		t.Errorf("detected %v after the kill, want the read's 1 s", w.detected.Sub(t0))
	}
}
