package egress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"

	"whipgate/gateway"
	"whipgate/whip/rtc"
)

// Registry errors.
var (
	// ErrExists refuses a second egress with an id already in use.
	ErrExists = errors.New("an egress with this id exists")
	// ErrClosed refuses new egresses once Close has begun.
	ErrClosed = errors.New("egress registry is shutting down")
	// ErrLimit refuses an egress past the registry's maximum.
	ErrLimit = errors.New("too many egresses")
	// ErrNotFound: no egress has that id.
	ErrNotFound = errors.New("no such egress")
)

// Registry owns every running egress: those from the config file and those
// created through the API, which are kept in a state file (written
// atomically) and come back after a restart.
type Registry struct {
	hub   *gateway.Hub
	t     *rtc.Transport
	log   *slog.Logger
	state string // path of the state file
	max   int    // egresses at most

	mu     sync.Mutex
	m      map[string]*entry
	closed bool
	wg     sync.WaitGroup
}

type entry struct {
	e       *Egress
	cfg     Config // as given, for the state file
	persist bool   // created through the API: kept in the state file
	cancel  context.CancelFunc
	done    chan struct{}
}

// NewRegistry returns an empty registry of at most max egresses whose
// API-created ones are kept in the file statePath. Nothing runs before
// Start.
func NewRegistry(hub *gateway.Hub, t *rtc.Transport, statePath string, max int, log *slog.Logger) *Registry {
	return &Registry{hub: hub, t: t, log: log, state: statePath, max: max, m: make(map[string]*entry)}
}

// Start launches the configured egresses and those the state file kept.
// A configured one that cannot start is an error; a kept one is logged.
func (g *Registry) Start(configured []Config) error {
	for _, c := range configured {
		if _, err := g.Add(c, false); err != nil {
			return fmt.Errorf("egress %q from the config: %w", c.EffectiveID(), err)
		}
	}
	saved, err := g.load()
	if err != nil {
		return err
	}
	for _, c := range saved {
		if _, err := g.Add(c, true); err != nil {
			g.log.Error("cannot restore egress from the state file", "id", c.EffectiveID(), "err", err)
		}
	}
	return nil
}

// Add checks cfg and starts the egress on a goroutine the registry owns.
// persist keeps it in the state file (call Save after).
func (g *Registry) Add(cfg Config, persist bool) (*Egress, error) {
	e, err := New(cfg, g.hub, g.t, g.log)
	if err != nil {
		return nil, err
	}
	id := e.Config().ID
	cfg.ID = id
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, ErrClosed
	}
	if _, ok := g.m[id]; ok {
		return nil, fmt.Errorf("%w: %q", ErrExists, id)
	}
	if len(g.m) >= g.max {
		return nil, fmt.Errorf("%w: %d is the limit (limits.max_egress)", ErrLimit, g.max)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &entry{e: e, cfg: cfg, persist: persist, cancel: cancel, done: make(chan struct{})}
	g.m[id] = r
	g.wg.Go(func() {
		defer close(r.done)
		// The label goes to every goroutine the egress starts (its
		// PeerConnections' too): a CPU profile tells its time apart
		// (whipgate bench -box; cmd's "part" label).
		pprof.Do(ctx, pprof.Labels("part", "egress"), func(ctx context.Context) {
			if err := e.Run(ctx); err != nil {
				g.log.Error("egress ended", "id", id, "err", err)
			}
		})
	})
	return e, nil
}

// Remove stops an egress (it DELETEs its sessions upstream), waits for it
// and, if it was kept in the state file, saves the file without it. It
// reports whether the egress existed.
func (g *Registry) Remove(id string) (bool, error) {
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
	if r.persist {
		return true, g.Save()
	}
	return true, nil
}

// Given is the configuration an egress was added with, and whether the
// API made it (and so the state file keeps it).
func (g *Registry) Given(id string) (cfg Config, api bool, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.m[id]
	if !ok {
		return Config{}, false, false
	}
	return r.cfg, r.persist, true
}

// Replace stops egress id and starts cfg in its place, keeping whether the
// state file keeps it (and saving the file if so). cfg is checked first:
// an invalid one changes nothing.
func (g *Registry) Replace(id string, cfg Config) (*Egress, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.EffectiveID() != id {
		return nil, fmt.Errorf("egress %s: the id cannot change", id)
	}
	_, persist, ok := g.Given(id)
	if !ok {
		return nil, fmt.Errorf("egress %s: %w", id, ErrNotFound)
	}
	if _, err := g.Remove(id); err != nil {
		g.log.Error("egress state not saved", "err", err)
	}
	e, err := g.Add(cfg, persist)
	if err != nil {
		return nil, err
	}
	if persist {
		return e, g.Save()
	}
	return e, nil
}

// Get returns a running egress.
func (g *Registry) Get(id string) (*Egress, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.m[id]
	if !ok {
		return nil, false
	}
	return r.e, true
}

// List returns the status of every egress, by id.
func (g *Registry) List() []Status {
	g.mu.Lock()
	runs := slices.Collect(maps.Values(g.m))
	g.mu.Unlock()
	out := make([]Status, 0, len(runs))
	for _, r := range runs {
		out = append(out, r.e.Status())
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Close stops every egress concurrently; each DELETEs upstream with a
// bounded wait, so a shutdown stays within its grace period.
func (g *Registry) Close() {
	g.mu.Lock()
	g.closed = true
	for _, r := range g.m {
		r.cancel()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// stateFile is the state file's document.
type stateFile struct {
	Egress []Config `json:"egress"`
}

func (g *Registry) load() ([]Config, error) {
	raw, err := os.ReadFile(g.state)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read egress state: %w", err)
	}
	var doc stateFile
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("egress state %s: %w", g.state, err)
	}
	return doc.Egress, nil
}

// Save writes the API-created egresses to a temporary file and renames it
// over the state file, so a crash never leaves half a file. The file holds
// tokens: only its owner may read it.
func (g *Registry) Save() error {
	g.mu.Lock()
	var list []Config
	for _, r := range g.m {
		if r.persist {
			list = append(list, r.cfg)
		}
	}
	g.mu.Unlock()
	slices.SortFunc(list, func(a, b Config) int { return strings.Compare(a.ID, b.ID) })
	raw, err := json.MarshalIndent(stateFile{Egress: list}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(g.state, append(raw, '\n'), 0o600); err != nil {
		return fmt.Errorf("save egress state: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it
// and renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
