package egress

import (
	"strings"
	"testing"
	"time"
)

func TestReady(t *testing.T) {
	const grace = 5 * time.Second
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	leg := func(state string, lastUp time.Time) *egressLeg {
		return &egressLeg{state: state, lastUp: lastUp, layers: []string{"main"}, lastErr: "dial: refused"}
	}
	for _, tc := range []struct {
		name  string
		e     *Egress
		at    time.Duration // after start
		ready bool
		why   string
	}{
		{"waiting for the stream, just started", &Egress{state: StateConnecting, created: start, lastErr: "no publisher"}, time.Second, true, ""},
		{"waiting for the stream too long", &Egress{state: StateConnecting, created: start, lastErr: "no publisher"}, 10 * time.Second, false, "no publisher"},
		{"connected", &Egress{created: start, legs: []*egressLeg{leg(StateConnected, time.Time{})}}, time.Hour, true, ""},
		{"never connected, within grace", &Egress{created: start, legs: []*egressLeg{leg(StateConnecting, time.Time{})}}, 2 * time.Second, true, ""},
		{"never connected", &Egress{created: start, legs: []*egressLeg{leg(StateReconnecting, time.Time{})}}, 6 * time.Second, false, "never connected"},
		{"a brief reconnect", &Egress{created: start, legs: []*egressLeg{leg(StateReconnecting, start.Add(time.Hour))}}, time.Hour + time.Second, true, ""},
		{"down too long", &Egress{created: start, legs: []*egressLeg{leg(StateReconnecting, start.Add(time.Hour))}}, time.Hour + 6*time.Second, false, "down since"},
		{"refused by the target", &Egress{created: start, legs: []*egressLeg{leg(StateFailed, time.Time{})}}, time.Second, false, "dial: refused"},
		{"one of two sessions down", &Egress{created: start, legs: []*egressLeg{leg(StateConnected, time.Time{}), leg(StateReconnecting, time.Time{})}}, time.Minute, false, "reconnecting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ready, why := tc.e.Ready(grace, start.Add(tc.at))
			if ready != tc.ready || !strings.Contains(why, tc.why) {
				t.Fatalf("got %v %q, want %v %q", ready, why, tc.ready, tc.why)
			}
		})
	}
}
