// Package egress keeps the box's streams published to Sora or any WHIP
// target, unattended: one Egress per target runs WHIP sessions (legs) one
// after another with ICE restarts and backoff, paces keyframe bursts
// (Pacer), reports the target's feedback, and the Registry owns them all,
// with the API-created ones kept in a state file across restarts.
//
// It builds on the WHIP client (whip/client) and the transport
// (whip/rtc), and reads the hub (gateway); it must not import the WHIP or
// WHEP endpoints, the session package or cmd.
package egress

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"whipgate/gateway"
	"whipgate/whip/client"
	"whipgate/whip/rtc"
)

// Egress states, as Status reports them.
const (
	// StateConnecting: the first POST (or waiting for the stream).
	StateConnecting = "connecting"
	// StateConnected: every session is connected and sending.
	StateConnected = "connected"
	// StateReconnecting: a session was lost (or the target is down) and
	// is being restarted or re-POSTed with backoff.
	StateReconnecting = "reconnecting"
	// StateFailed: the target refused us as configured (a 4xx such as
	// 401 or 404, rejected rids); it is still retried, but slowly.
	StateFailed = "failed"
	// StateStopped: Run has returned.
	StateStopped = "stopped"
)

// Egress keeps one stream published to one WHIP target, unattended: it
// starts while the target is down, restarts ICE when the path breaks, and
// re-POSTs with backoff when that is not enough.
type Egress struct {
	cfg Config
	hub *gateway.Hub
	t   *rtc.Transport
	log *slog.Logger

	mu      sync.Mutex
	state   string // before the legs exist, and after Run
	created time.Time
	lastErr string
	legs    []*egressLeg
	layers  []string
}

// New checks cfg and prepares an egress of a stream in hub over the
// WebRTC transport rtc. Nothing starts before Run.
func New(cfg Config, hub *gateway.Hub, t *rtc.Transport, log *slog.Logger) (*Egress, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if hub == nil || t == nil {
		return nil, fmt.Errorf("egress %s: hub and rtc are required", cfg.EffectiveID())
	}
	cfg.applyDefaults()
	return &Egress{
		cfg:   cfg,
		hub:   hub,
		t:     t,
		log:   log.With("component", "egress", "egress", cfg.ID, "stream", cfg.Stream),
		state: StateConnecting, created: time.Now(),
	}, nil
}

// Config is the effective configuration, defaults applied.
func (e *Egress) Config() Config { return e.cfg }

// Run publishes until ctx is done, then sends DELETE for every session
// (waiting at most about 2 s) and returns nil. It fails only when it
// cannot start at all.
func (e *Egress) Run(ctx context.Context) error {
	defer e.setStopped()
	layers, audio, err := e.waitForLayers(ctx)
	if err != nil {
		return nil // ctx ended while waiting
	}
	legs, clients, err := e.buildLegs(layers, audio)
	if err != nil {
		e.setError(StateFailed, err)
		return err
	}
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	e.mu.Lock()
	e.legs, e.layers = legs, layers
	e.mu.Unlock()
	e.log.Info("egress starting", "url", client.Redact(e.cfg.URL), "mode", e.cfg.Mode, "layers", layers, "audio", audio, "target", e.cfg.Target)
	var wg sync.WaitGroup
	for _, l := range legs {
		wg.Go(func() { l.run(ctx) })
	}
	wg.Wait()
	e.log.Info("egress stopped")
	return nil
}

// waitForLayers waits until the stream is live and returns the video
// layers to send (configured, or all of the stream's) and its audio track.
func (e *Egress) waitForLayers(ctx context.Context) ([]string, string, error) {
	t := time.NewTicker(egressStreamPoll)
	defer t.Stop()
	for {
		layers, audio, err := e.pickLayers()
		if err == nil {
			return layers, audio, nil
		}
		e.setError(StateConnecting, err)
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case <-t.C:
		}
	}
}

func (e *Egress) pickLayers() ([]string, string, error) {
	st, ok := e.hub.Stream(e.cfg.Stream)
	if !ok {
		return nil, "", fmt.Errorf("waiting for stream %q: %w", e.cfg.Stream, gateway.ErrNotFound)
	}
	infos := st.Tracks()
	if len(infos) == 0 {
		return nil, "", fmt.Errorf("waiting for stream %q: %w", e.cfg.Stream, gateway.ErrNoPublisher)
	}
	var video []string
	audio := ""
	for _, t := range infos {
		if t.Codec.Kind() == gateway.KindAudio {
			if audio == "" {
				audio = t.Name
			}
			continue
		}
		video = append(video, t.Name)
	}
	if len(e.cfg.Layers) == 0 {
		if len(video) == 0 {
			return nil, "", fmt.Errorf("waiting for stream %q: it has no video layer: %w", e.cfg.Stream, gateway.ErrNoTrack)
		}
		if e.cfg.RIDStyle == RIDStyleSora && e.cfg.Mode == ModeSimulcast && len(video) > 3 {
			video = video[:3]
		}
		return video, audio, nil
	}
	for _, l := range e.cfg.Layers {
		if !slices.Contains(video, l) {
			return nil, "", fmt.Errorf("waiting for layer %q of stream %q (it has %s): %w", l, e.cfg.Stream, strings.Join(video, ", "), gateway.ErrNoTrack)
		}
	}
	return e.cfg.Layers, audio, nil
}

// buildLegs plans the WHIP sessions: one per layer, or one for all.
func (e *Egress) buildLegs(layers []string, audio string) ([]*egressLeg, []*client.Client, error) {
	clients := map[string]*client.Client{}
	var list []*client.Client
	clientFor := func(u string) (*client.Client, error) {
		if c, ok := clients[u]; ok {
			return c, nil
		}
		c, err := client.New(client.Config{URL: u, Token: e.cfg.Token, ICEServers: e.cfg.ICEServers, RelayOnly: e.cfg.RelayOnly}, e.log)
		if err != nil {
			return nil, err
		}
		clients[u] = c
		list = append(list, c)
		return c, nil
	}
	var legs []*egressLeg
	if e.cfg.Mode == ModeSimulcast {
		c, err := clientFor(e.cfg.URL)
		if err != nil {
			return nil, nil, err
		}
		legs = append(legs, newEgressLeg(e, c, e.cfg.URL, layers, egressRIDs(e.cfg.RIDStyle, len(layers)), audio))
		return legs, list, nil
	}
	for i, l := range layers {
		u := strings.ReplaceAll(e.cfg.URL, LayerPlaceholder, l)
		c, err := clientFor(u)
		if err != nil {
			return nil, nil, err
		}
		a := ""
		if i == 0 {
			a = audio // RFC 9725: one audio track, in the first session
		}
		legs = append(legs, newEgressLeg(e, c, u, []string{l}, nil, a))
	}
	return legs, list, nil
}

func (e *Egress) setError(state string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.state, e.lastErr = state, err.Error()
}

func (e *Egress) setStopped() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.state = StateStopped
	for _, l := range e.legs {
		l.setState(StateStopped)
	}
}

// Ready reports whether the egress does its job: every session connected,
// or down for less than grace (starting, or a brief reconnect, which an
// operator need not be paged for). Otherwise it says why not.
func (e *Egress) Ready(grace time.Duration, now time.Time) (bool, string) {
	e.mu.Lock()
	legs, state, lastErr, created := e.legs, e.state, e.lastErr, e.created
	e.mu.Unlock()
	if len(legs) == 0 {
		if state != StateStopped && now.Sub(created) < grace {
			return true, ""
		}
		return false, fmt.Sprintf("%s: %s", state, lastErr)
	}
	for _, l := range legs {
		l.mu.Lock()
		st, since, up, lerr := l.state, l.lastUp, l.lastUp, l.lastErr
		l.mu.Unlock()
		if st == StateConnected {
			continue
		}
		if since.IsZero() {
			since = created // never up: count from the start
		}
		if now.Sub(since) >= grace || st == StateFailed || st == StateStopped {
			down := "never connected"
			if !up.IsZero() {
				down = "down since " + up.Format(time.RFC3339)
			}
			return false, fmt.Sprintf("session for %s %s, %s: %s", strings.Join(l.layers, ","), st, down, lerr)
		}
	}
	return true, ""
}
