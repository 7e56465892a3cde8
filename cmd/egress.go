package cmd

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"

	"whipgate/whip/egress"
	"whipgate/whip/problem"
)

// API handlers.

func (a *App) createEgress(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	var cfg egress.Config
	if err := dec.Decode(&cfg); err != nil {
		a.apiError(w, problem.Errorf(http.StatusBadRequest, "bad egress JSON: %v", err))
		return
	}
	if dec.More() {
		a.apiError(w, problem.Errorf(http.StatusBadRequest, "bad egress JSON: more than one object"))
		return
	}
	if err := cfg.Validate(); err != nil {
		a.apiError(w, problem.Errorf(http.StatusBadRequest, "%v", err))
		return
	}
	if err := ValidStreamName(cfg.Stream); err != nil {
		a.apiError(w, problem.Errorf(http.StatusBadRequest, "%v", err))
		return
	}
	if _, ok := a.hub.Stream(cfg.Stream); !ok {
		a.apiError(w, problem.Errorf(http.StatusNotFound, "no stream %q", cfg.Stream))
		return
	}
	e, err := a.egress.Add(cfg, true)
	if err != nil {
		code := http.StatusBadRequest
		switch {
		case errors.Is(err, egress.ErrExists), errors.Is(err, egress.ErrLimit):
			code = http.StatusConflict
		case errors.Is(err, egress.ErrClosed):
			code = http.StatusServiceUnavailable
		}
		a.apiError(w, problem.Errorf(code, "%v", err))
		return
	}
	if err := a.egress.Save(); err != nil {
		a.log.Error("egress state not saved", "err", err)
	}
	w.Header().Set("Location", "/api/v1/egress/"+e.Config().ID)
	writeJSON(w, http.StatusCreated, e.Status())
}

func (a *App) listEgress(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"egress": a.egress.List()})
}

func (a *App) getEgress(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	e, ok := a.egress.Get(id)
	if !ok {
		a.apiError(w, problem.Errorf(http.StatusNotFound, "no egress %q", id))
		return
	}
	writeJSON(w, http.StatusOK, e.Status())
}

func (a *App) deleteEgress(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	ok, err := a.egress.Remove(id)
	if !ok {
		a.apiError(w, problem.Errorf(http.StatusNotFound, "no egress %q", id))
		return
	}
	if err != nil {
		a.log.Error("egress state not saved", "err", err)
	}
	w.WriteHeader(http.StatusNoContent)
}
