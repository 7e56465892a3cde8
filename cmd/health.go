package cmd

import (
	"fmt"
	"net/http"
	"time"

	"whipgate/certs"
	"whipgate/hwaccel"
)

// Readiness is /readyz's answer: whether the box does its job, and which
// of its parts do not.
type Readiness struct {
	Ready bool `json:"ready"`
	// NotReady names what is not ready, one line each.
	NotReady []string `json:"not_ready,omitempty"`
	Checks   []Check  `json:"checks"`
}

// Check is one part's readiness.
type Check struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
	// State is the part's state (an egress's, the encoder's), no error
	// text: /readyz answers without a token.
	State string `json:"state,omitempty"`
}

// readiness checks every egress (connected, or down for less than
// ready_grace), the encoder (running), and the TLS certificate (loaded
// and not expired).
func (a *App) readiness(now time.Time) Readiness {
	grace := a.conf().ReadyGrace
	var checks []Check
	for _, st := range a.egress.List() {
		c := Check{Name: "egress " + st.ID, State: st.State}
		if e, ok := a.egress.Get(st.ID); ok {
			c.Ready, _ = e.Ready(grace, now)
		}
		checks = append(checks, c)
	}
	if sup := a.Encoder(); sup != nil {
		st := sup.Status()
		c := Check{Name: "encoder", State: st.State}
		c.Ready = st.State == hwaccel.StateRunning || (st.Starts <= 1 && now.Sub(a.started) < grace)
		checks = append(checks, c)
	}
	if a.certs.Mode() != certs.ModeOff {
		c := Check{Name: "tls certificate", State: "missing"}
		if leaf := a.certs.Leaf(); leaf != nil {
			c.Ready, c.State = now.Before(leaf.NotAfter), "valid until "+leaf.NotAfter.UTC().Format(time.RFC3339)
		}
		checks = append(checks, c)
	}
	r := Readiness{Ready: true, Checks: checks}
	for _, c := range checks {
		if !c.Ready {
			r.Ready = false
			r.NotReady = append(r.NotReady, fmt.Sprintf("%s: %s", c.Name, c.State))
		}
	}
	return r
}

// readyz is GET /readyz: 200 when every egress, the encoder and the
// certificate are fine, else 503; both with the checks. /healthz stays
// liveness: the process answers.
func (a *App) readyz(w http.ResponseWriter, _ *http.Request) {
	r := a.readiness(time.Now())
	code := http.StatusOK
	if !r.Ready {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, code, r)
}
