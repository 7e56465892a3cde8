package cmd

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"

	"whipgate/gateway"
	"whipgate/whip/egress"
	"whipgate/whip/problem"
)

// API handlers.

// maxJSONBody bounds an API request body: an egress is a few hundred bytes.
const maxJSONBody = 64 << 10

// decodeEgress reads an egress JSON object onto cfg (fields it leaves out
// keep cfg's values), strictly: unknown fields and trailing data are 400.
func decodeEgress(r *http.Request, cfg *egress.Config) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return problem.Errorf(http.StatusBadRequest, "bad egress JSON: %v", err)
	}
	if dec.More() {
		return problem.Errorf(http.StatusBadRequest, "bad egress JSON: more than one object")
	}
	return nil
}

// checkEgress validates an egress from the API: its settings, the names in
// it, and that its stream exists.
func (a *App) checkEgress(cfg egress.Config) error {
	if err := cfg.Validate(); err != nil {
		return problem.Errorf(http.StatusBadRequest, "%v", err)
	}
	if _, ok := a.hub.Stream(cfg.Stream); !ok {
		return problem.Errorf(http.StatusNotFound, "no stream %q", cfg.Stream)
	}
	return nil
}

// egressError is the status of an egress registry error.
func egressError(err error) error {
	code := http.StatusBadRequest
	switch {
	case errors.Is(err, egress.ErrExists), errors.Is(err, egress.ErrLimit):
		code = http.StatusConflict
	case errors.Is(err, egress.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, egress.ErrClosed):
		code = http.StatusServiceUnavailable
	}
	return problem.Errorf(code, "%v", err)
}

func (a *App) createEgress(w http.ResponseWriter, r *http.Request) {
	a.applyEgress(w, r, egress.Config{}, nil, http.StatusCreated, func(cfg egress.Config) (*egress.Egress, error) {
		e, err := a.egress.Add(cfg, true)
		if err != nil {
			return nil, err
		}
		if err := a.egress.Save(); err != nil {
			a.log.Error("egress state not saved", "err", err)
		}
		w.Header().Set("Location", "/api/v1/egress/"+e.Config().ID)
		return e, nil
	})
}

// patchEgress is PATCH /api/v1/egress/{id}: the fields given (url, token,
// layers, mode, …) replace the egress's, which restarts with them; the id
// stays. Only an egress the API made: one from the config file is changed
// there (and reloaded).
func (a *App) patchEgress(w http.ResponseWriter, r *http.Request) {
	id, ok := a.egressID(w, r)
	if !ok {
		return
	}
	cfg, api, ok := a.egress.Given(id)
	if !a.found(w, ok, "egress", id) {
		return
	}
	if !api {
		a.apiError(w, problem.Errorf(http.StatusConflict, "egress %q comes from the config file: change it there and reload", id))
		return
	}
	sameID := func(cfg egress.Config) error {
		if cfg.EffectiveID() != id {
			return problem.Errorf(http.StatusBadRequest, "an egress's id cannot change (%q to %q)", id, cfg.EffectiveID())
		}
		return nil
	}
	a.applyEgress(w, r, cfg, sameID, http.StatusOK, func(cfg egress.Config) (*egress.Egress, error) {
		return a.egress.Replace(id, cfg)
	})
}

// applyEgress is what POST and PATCH do alike: read the body onto cfg,
// check it (rule first, when given, then checkEgress), hand it to apply
// and answer the egress's status with code, or the first error.
func (a *App) applyEgress(w http.ResponseWriter, r *http.Request, cfg egress.Config, rule func(egress.Config) error, code int, apply func(egress.Config) (*egress.Egress, error)) {
	if err := decodeEgress(r, &cfg); err != nil {
		a.apiError(w, err)
		return
	}
	if rule != nil {
		if err := rule(cfg); err != nil {
			a.apiError(w, err)
			return
		}
	}
	if err := a.checkEgress(cfg); err != nil {
		a.apiError(w, err)
		return
	}
	e, err := apply(cfg)
	if err != nil {
		a.apiError(w, egressError(err))
		return
	}
	writeJSON(w, code, e.Status())
}

func (a *App) listEgress(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"egress": a.egress.List()})
}

// egressID is the {id} of an egress route, or false with 400 for one that
// breaks the id rule (no egress can have it).
func (a *App) egressID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := chi.URLParam(r, "id")
	if err := gateway.ValidID("egress id", id); err != nil {
		a.apiError(w, problem.Errorf(http.StatusBadRequest, "%v", err))
		return "", false
	}
	return id, true
}

func (a *App) getEgress(w http.ResponseWriter, r *http.Request) {
	id, ok := a.egressID(w, r)
	if !ok {
		return
	}
	if e, ok := a.egress.Get(id); a.found(w, ok, "egress", id) {
		writeJSON(w, http.StatusOK, e.Status())
	}
}

func (a *App) deleteEgress(w http.ResponseWriter, r *http.Request) {
	id, ok := a.egressID(w, r)
	if !ok {
		return
	}
	ok, err := a.egress.Remove(id)
	if !a.found(w, ok, "egress", id) {
		return
	}
	if err != nil {
		a.log.Error("egress state not saved", "err", err)
	}
	w.WriteHeader(http.StatusNoContent)
}
