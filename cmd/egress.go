package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/go-chi/chi/v5"

	"whipgate/whip"
)

// egresses owns every running WHIP egress: those from the config file and
// those created through the API, which are kept in a state file (written
// atomically) and come back after a restart.
type egresses struct {
	app   *App
	log   *slog.Logger
	state string // path of the state file

	mu     sync.Mutex
	m      map[string]*egressRun
	closed bool
	wg     sync.WaitGroup
}

type egressRun struct {
	e      *whip.Egress
	cfg    whip.EgressConfig // as given, for the state file
	api    bool              // created through the API (persisted)
	cancel context.CancelFunc
	done   chan struct{}
}

func newEgresses(a *App, log *slog.Logger) *egresses {
	return &egresses{app: a, log: log, state: filepath.Join(a.cfg.StateDir, "egress.json"), m: make(map[string]*egressRun)}
}

// start launches the configured and the persisted egresses.
func (g *egresses) start(configured []whip.EgressConfig) error {
	for _, c := range configured {
		if err := g.add(c, false); err != nil {
			return fmt.Errorf("egress %q from the config: %w", c.ID, err)
		}
	}
	saved, err := g.load()
	if err != nil {
		return err
	}
	for _, c := range saved {
		if err := g.add(c, true); err != nil {
			g.log.Error("cannot restore egress from the state file", "id", c.ID, "err", err)
		}
	}
	return nil
}

var errEgressExists = errors.New("an egress with this id exists")

func (g *egresses) add(cfg whip.EgressConfig, api bool) error {
	e, err := whip.NewEgress(cfg, g.app.hub, g.app.rtc, g.log)
	if err != nil {
		return err
	}
	id := e.Config().ID
	cfg.ID = id
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return whip.ErrShuttingDown
	}
	if _, ok := g.m[id]; ok {
		return fmt.Errorf("%w: %q", errEgressExists, id)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &egressRun{e: e, cfg: cfg, api: api, cancel: cancel, done: make(chan struct{})}
	g.m[id] = r
	g.wg.Go(func() {
		defer close(r.done)
		if err := e.Run(ctx); err != nil {
			g.log.Error("egress ended", "id", id, "err", err)
		}
	})
	return nil
}

// remove stops an egress (it DELETEs its sessions upstream) and waits.
func (g *egresses) remove(id string) (bool, error) {
	g.mu.Lock()
	r, ok := g.m[id]
	if ok {
		delete(g.m, id)
	}
	g.mu.Unlock()
	if !ok {
		return false, nil
	}
	r.cancel()
	<-r.done
	if r.api {
		return true, g.save()
	}
	return true, nil
}

func (g *egresses) get(id string) (*egressRun, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.m[id]
	return r, ok
}

func (g *egresses) list() []whip.EgressStatus {
	g.mu.Lock()
	runs := make([]*egressRun, 0, len(g.m))
	for _, r := range g.m {
		runs = append(runs, r)
	}
	g.mu.Unlock()
	out := make([]whip.EgressStatus, 0, len(runs))
	for _, r := range runs {
		out = append(out, r.e.Status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// close stops every egress concurrently; each DELETEs upstream with a
// bounded wait, so shutdown stays within its grace period.
func (g *egresses) close() {
	g.mu.Lock()
	g.closed = true
	for _, r := range g.m {
		r.cancel()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

func (g *egresses) load() ([]whip.EgressConfig, error) {
	raw, err := os.ReadFile(g.state)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read egress state: %w", err)
	}
	var doc struct {
		Egress []whip.EgressConfig `json:"egress"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("egress state %s: %w", g.state, err)
	}
	return doc.Egress, nil
}

// save writes the API-created egresses to a temporary file and renames it
// over the state file, so a crash never leaves half a file.
func (g *egresses) save() error {
	g.mu.Lock()
	var list []whip.EgressConfig
	for _, r := range g.m {
		if r.api {
			list = append(list, r.cfg)
		}
	}
	g.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	raw, err := json.MarshalIndent(map[string]any{"egress": list}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(g.state), 0o700); err != nil {
		return fmt.Errorf("save egress state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(g.state), ".egress-*.json")
	if err != nil {
		return fmt.Errorf("save egress state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save egress state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save egress state: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil { // tokens inside
		tmp.Close()
		return fmt.Errorf("save egress state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save egress state: %w", err)
	}
	if err := os.Rename(tmp.Name(), g.state); err != nil {
		return fmt.Errorf("save egress state: %w", err)
	}
	return nil
}

// API handlers.

func (a *App) createEgress(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	var cfg whip.EgressConfig
	if err := dec.Decode(&cfg); err != nil {
		apiError(w, whip.Errorf(http.StatusBadRequest, "bad egress JSON: %v", err))
		return
	}
	if dec.More() {
		apiError(w, whip.Errorf(http.StatusBadRequest, "bad egress JSON: more than one object"))
		return
	}
	if err := cfg.Validate(); err != nil {
		apiError(w, whip.Errorf(http.StatusBadRequest, "%v", err))
		return
	}
	if err := ValidStreamName(cfg.Stream); err != nil {
		apiError(w, whip.Errorf(http.StatusBadRequest, "%v", err))
		return
	}
	if _, ok := a.hub.Stream(cfg.Stream); !ok {
		apiError(w, whip.Errorf(http.StatusNotFound, "no stream %q", cfg.Stream))
		return
	}
	if err := a.egress.add(cfg, true); err != nil {
		code := http.StatusBadRequest
		switch {
		case errors.Is(err, errEgressExists):
			code = http.StatusConflict
		case errors.Is(err, whip.ErrShuttingDown):
			code = http.StatusServiceUnavailable
		}
		apiError(w, whip.Errorf(code, "%v", err))
		return
	}
	if err := a.egress.save(); err != nil {
		a.log.Error("egress state not saved", "err", err)
	}
	id := cfg.ID
	if id == "" {
		id = cfg.Stream
	}
	run, _ := a.egress.get(id)
	w.Header().Set("Location", "/api/v1/egress/"+id)
	writeJSON(w, http.StatusCreated, run.e.Status())
}

func (a *App) listEgress(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"egress": a.egress.list()})
}

func (a *App) getEgress(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	run, ok := a.egress.get(id)
	if !ok {
		apiError(w, whip.Errorf(http.StatusNotFound, "no egress %q", id))
		return
	}
	writeJSON(w, http.StatusOK, run.e.Status())
}

func (a *App) deleteEgress(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	ok, err := a.egress.remove(id)
	if !ok {
		apiError(w, whip.Errorf(http.StatusNotFound, "no egress %q", id))
		return
	}
	if err != nil {
		a.log.Error("egress state not saved", "err", err)
	}
	w.WriteHeader(http.StatusNoContent)
}
