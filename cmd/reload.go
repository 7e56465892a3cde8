package cmd

import (
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"whipgate/cmd/config"
	"whipgate/whip/egress"
	"whipgate/whip/problem"
)

// reloader is how a running App reads its configuration again: the same
// layers as at start (flags > environment > file > defaults), and the log
// level to set. Run sets it once the App has started.
type reloader struct {
	mu     sync.Mutex // one reload at a time
	source atomic.Pointer[func() (Config, error)]
	level  atomic.Pointer[slog.LevelVar]
}

// setReloadSource lets Reload read the configuration through load and set
// the log level through level (nil: the level is fixed).
func (a *App) setReloadSource(load func() (Config, error), level *slog.LevelVar) {
	a.reloader.source.Store(&load)
	a.reloader.level.Store(level)
}

// ReloadResult says what a reload did.
type ReloadResult struct {
	// Applied are the settings that changed and took effect now.
	Applied []string `json:"applied"`
	// NeedsRestart are the settings that changed but take effect only
	// when the process restarts (listen, webrtc, tls, ...).
	NeedsRestart []string `json:"needs_restart"`
	// ClosedSessions are the sessions ended because their stream's token
	// changed.
	ClosedSessions []string `json:"closed_sessions"`
	// Egress are the configured egresses started, stopped or restarted;
	// the others play on.
	Egress EgressChanges `json:"egress"`
	// Encoder is "unchanged", "started", "stopped" or "restarted".
	Encoder string `json:"encoder"`
	// Errors are what could not be applied (an egress that would not
	// start); the rest was.
	Errors []string `json:"errors,omitempty"`
}

// EgressChanges lists egress ids by what a reload did to them.
type EgressChanges struct {
	Started   []string `json:"started"`
	Stopped   []string `json:"stopped"`
	Restarted []string `json:"restarted"`
}

// liveKeys are the settings a reload applies without a restart; every
// other top-level key that changes is reported as needing one.
var liveKeys = map[string]bool{
	"api_token": true, "api_token_file": true, "open_publish": true, "log_level": true,
	"streams": true, "egress": true, "hwaccel": true, "ready_grace": true,
}

// Reload re-reads the configuration and applies what changed: streams and
// their tokens (sessions whose token changed are closed), the configured
// egresses (only those added, removed or changed are started, stopped or
// restarted), the encoder (restarted only if its section changed), the
// log level and the API token. An invalid configuration changes nothing:
// the error says why. Settings that need a restart are listed.
func (a *App) Reload() (ReloadResult, error) {
	r := &a.reloader
	r.mu.Lock()
	defer r.mu.Unlock()
	res := ReloadResult{Encoder: "unchanged"}
	src := r.source.Load()
	if src == nil {
		return res, fmt.Errorf("reload: this server has no configuration source")
	}
	next, err := (*src)()
	if err != nil {
		return res, fmt.Errorf("reload: %w", err)
	}
	next.ApplyDefaults(a.getenv)
	if err := next.ReadSecretFiles(); err != nil {
		return res, fmt.Errorf("reload: %w", err)
	}
	if err := next.Validate(); err != nil {
		return res, fmt.Errorf("reload: %w", err)
	}
	old := a.conf()
	res.Applied, res.NeedsRestart = diffConfig(old, &next)
	if len(res.Applied) == 0 {
		return res, nil
	}
	warnShortTokens(next, a.log)
	a.live.Store(&next)

	if lv := r.level.Load(); lv != nil && old.LogLevel != next.LogLevel {
		var level slog.Level
		_ = level.UnmarshalText([]byte(next.LogLevel)) // validated
		lv.Set(level)
	}
	for name := range next.Streams {
		if _, err := a.hub.Pin(name); err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("stream %s: %v", name, err))
		}
	}
	// A session admitted under a token that is no longer its stream's is
	// closed: a changed key must lock out who had the old one.
	for _, s := range a.sessions.List() {
		sc := next.Streams[s.Stream]
		want := sc.ViewToken
		if s.Kind == "whip" {
			want = sc.PublishToken
		}
		if s.Token != want {
			a.sessions.End(s.ID)
			res.ClosedSessions = append(res.ClosedSessions, s.ID)
		}
	}
	res.Egress, res.Errors = a.reloadEgress(old.Egress, next.Egress, res.Errors)
	if !reflect.DeepEqual(old.Encoder, next.Encoder) {
		res.Encoder = a.reloadEncoder(old.Encoder, next.Encoder, &res.Errors)
	}
	return res, nil
}

// diffConfig names the top-level settings (by YAML key) that differ,
// split into those a reload applies and those that need a restart.
func diffConfig(old, next *Config) (applied, restart []string) {
	ov, nv := reflect.ValueOf(old).Elem(), reflect.ValueOf(next).Elem()
	t := ov.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "" || key == "-" {
			key = strings.ToLower(f.Name)
		}
		if f.Name == "Egress" {
			key = "egress" // file-only form (yaml:"-"), see config.Load
		}
		if reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			continue
		}
		if liveKeys[key] {
			applied = append(applied, key)
		} else {
			restart = append(restart, key)
		}
	}
	sort.Strings(applied)
	sort.Strings(restart)
	return applied, restart
}

// reloadEgress starts, stops and restarts the configured egresses whose
// entries were added, removed or changed; API-created ones are left alone.
func (a *App) reloadEgress(old, next []egress.Config, errs []string) (EgressChanges, []string) {
	var ch EgressChanges
	byID := func(list []egress.Config) map[string]egress.Config {
		m := make(map[string]egress.Config, len(list))
		for _, c := range list {
			m[c.EffectiveID()] = c
		}
		return m
	}
	was, now := byID(old), byID(next)
	for id := range was {
		if _, keep := now[id]; !keep {
			if _, err := a.egress.Remove(id); err != nil {
				errs = append(errs, fmt.Sprintf("egress %s: %v", id, err))
			}
			ch.Stopped = append(ch.Stopped, id)
		}
	}
	for id, c := range now {
		prev, existed := was[id]
		switch {
		case existed && reflect.DeepEqual(prev, c):
			continue // plays on, untouched
		case existed:
			if _, err := a.egress.Remove(id); err != nil {
				errs = append(errs, fmt.Sprintf("egress %s: %v", id, err))
			}
			ch.Restarted = append(ch.Restarted, id)
		default:
			ch.Started = append(ch.Started, id)
		}
		if _, err := a.egress.Add(c, false); err != nil {
			errs = append(errs, fmt.Sprintf("egress %s: %v", id, err))
		}
	}
	for _, l := range [][]string{ch.Started, ch.Stopped, ch.Restarted} {
		slices.Sort(l)
	}
	return ch, errs
}

// reloadEncoder stops the running encoder and starts the new section's.
// The stream stays pinned: viewers and egress carry on at its next
// keyframe.
func (a *App) reloadEncoder(old, next *config.EncoderConfig, errs *[]string) string {
	a.stopEncoder()
	if next == nil {
		return "stopped"
	}
	if err := a.startEncoder(next); err != nil {
		*errs = append(*errs, fmt.Sprintf("hwaccel: %v", err))
		return "stopped"
	}
	if old == nil {
		return "started"
	}
	return "restarted"
}

// reload is POST /api/v1/reload: 200 with what changed, or 422 with why the
// new configuration was refused (the old one stays).
func (a *App) reload(w http.ResponseWriter, _ *http.Request) {
	res, err := a.Reload()
	if err != nil {
		a.log.Error("reload refused; the running configuration stays", "err", err)
		a.apiError(w, problem.Errorf(http.StatusUnprocessableEntity, "%v", err))
		return
	}
	a.logReload(res)
	writeJSON(w, http.StatusOK, res)
}

// logReload says what a reload did, and what waits for a restart.
func (a *App) logReload(res ReloadResult) {
	a.events.publish("reload", res)
	a.log.Info("configuration reloaded", "applied", res.Applied, "closed_sessions", len(res.ClosedSessions),
		"egress_started", res.Egress.Started, "egress_stopped", res.Egress.Stopped, "egress_restarted", res.Egress.Restarted,
		"encoder", res.Encoder)
	if len(res.NeedsRestart) > 0 {
		a.log.Warn("these settings changed but take effect only after a restart", "settings", res.NeedsRestart)
	}
	for _, e := range res.Errors {
		a.log.Error("reload: not applied", "err", e)
	}
}
