package cmd

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"whipgate/gateway"
	"whipgate/whip/problem"
	"whipgate/whip/session"
)

// apiRoutes is the control API. Every route is listed in the README with a
// curl line that a test runs.
func (a *App) apiRoutes(r chi.Router) {
	r.Use(a.apiTrust, a.apiAuth)
	r.Get("/openapi.json", a.openAPI)
	r.Get("/info", a.getInfo)
	r.Post("/reload", a.reload)
	r.Get("/events", a.eventStream)
	r.Get("/streams", a.listStreams)
	r.Get("/streams/{name}", a.getStream)
	r.Post("/streams/{name}/keyframe", a.keyframe)
	r.Get("/sessions", a.listSessions)
	r.Get("/sessions/{id}", a.getSession)
	r.Delete("/sessions/{id}", a.deleteSession)
	r.Get("/encoder", a.getEncoder)
	r.Post("/egress", a.createEgress)
	r.Get("/egress", a.listEgress)
	r.Get("/egress/{id}", a.getEgress)
	r.Patch("/egress/{id}", a.patchEgress)
	r.Delete("/egress/{id}", a.deleteEgress)
}

// apiAuth requires the API token when one is configured (it must be, beyond
// loopback: Validate refuses otherwise).
func (a *App) apiAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := session.CheckBearer(r, a.conf().APIToken); err != nil {
			a.apiError(w, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// found says whether the API's {what} named id was found, and answers 404
// when it was not.
func (a *App) found(w http.ResponseWriter, ok bool, what, id string) bool {
	if !ok {
		a.apiError(w, problem.Errorf(http.StatusNotFound, "no %s %q", what, id))
	}
	return ok
}

func (a *App) listStreams(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"streams": a.hub.Streams()})
}

func (a *App) stream(w http.ResponseWriter, r *http.Request) (*gateway.Stream, bool) {
	name := chi.URLParam(r, "name")
	if err := gateway.ValidStreamName(name); err != nil {
		a.apiError(w, problem.Errorf(http.StatusBadRequest, "%v", err))
		return nil, false
	}
	s, ok := a.hub.Stream(name)
	return s, a.found(w, ok, "stream", name)
}

func (a *App) getStream(w http.ResponseWriter, r *http.Request) {
	if s, ok := a.stream(w, r); ok {
		writeJSON(w, http.StatusOK, s.Stats())
	}
}

func (a *App) keyframe(w http.ResponseWriter, r *http.Request) {
	s, ok := a.stream(w, r)
	if !ok {
		return
	}
	if err := s.RequestKeyframe(); err != nil {
		a.apiError(w, problem.Errorf(http.StatusConflict, "stream %q: %v", s.Name(), err))
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"stream": s.Name(), "keyframe": "requested"})
}

func (a *App) listSessions(w http.ResponseWriter, _ *http.Request) {
	list := a.sessions.List()
	out := make([]session.SessionInfo, 0, len(list))
	for _, s := range list {
		out = append(out, s.Info())
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

func (a *App) getSession(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if s, ok := a.sessions.Get(id); a.found(w, ok, "session", id) {
		writeJSON(w, http.StatusOK, s.Info())
	}
}

func (a *App) deleteSession(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if a.found(w, a.sessions.End(id), "session", id) {
		w.WriteHeader(http.StatusNoContent)
	}
}

// getEncoder shows the supervised encoder: backend, state, restarts, fps
// per layer and the tail of its stderr.
func (a *App) getEncoder(w http.ResponseWriter, _ *http.Request) {
	sup := a.Encoder()
	if sup == nil {
		a.apiError(w, problem.Errorf(http.StatusNotFound, "no encoder configured (hwaccel section)"))
		return
	}
	writeJSON(w, http.StatusOK, sup.Status())
}

// info is GET /api/v1/info: which build runs, for how long, and what it
// was started with, so a bug report or a dashboard needs no shell on the
// box.
type info struct {
	BuildInfo
	UptimeSeconds float64  `json:"uptime_seconds"`
	Features      features `json:"features"`
}

// features are the parts of the configuration that change what the box
// does; null means off.
type features struct {
	TLS string `json:"tls"`
	// TLSNotAfter is when the served certificate expires; absent without
	// TLS.
	TLSNotAfter *time.Time     `json:"tls_not_after,omitempty"`
	TestSource  *sourceFeature `json:"test_source"`
	Encoder     *sourceFeature `json:"encoder"`
	// Egress counts the egress, from the config file and the API.
	Egress int `json:"egress"`
}

type sourceFeature struct {
	Stream string `json:"stream"`
	// Backend is the encoder backend running now (it may be a fallback).
	Backend string `json:"backend,omitempty"`
}

func (a *App) getInfo(w http.ResponseWriter, _ *http.Request) {
	doc := info{
		BuildInfo:     a.build,
		UptimeSeconds: time.Since(a.started).Round(time.Millisecond).Seconds(),
		Features:      features{TLS: a.certs.Mode(), Egress: len(a.egress.List())},
	}
	if leaf := a.certs.Leaf(); leaf != nil {
		t := leaf.NotAfter.UTC()
		doc.Features.TLSNotAfter = &t
	}
	if t := a.cfg.TestSource; t.On() {
		doc.Features.TestSource = &sourceFeature{Stream: t.Stream}
	}
	if sup, c := a.Encoder(), a.conf(); sup != nil && c.Encoder != nil {
		doc.Features.Encoder = &sourceFeature{Stream: c.Encoder.Stream, Backend: sup.Status().Backend}
	}
	writeJSON(w, http.StatusOK, doc)
}
