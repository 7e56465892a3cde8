package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"whipgate/whip/problem"
	"whipgate/whip/session"
)

// Event is one line of GET /api/v1/events: what happened on the box, for
// the dashboard and for scripts (`curl -N`).
type Event struct {
	// Type is "session", "egress", "encoder", "warning" or "reload".
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	Data any       `json:"data"`
}

// events fans events out to the event streams open now. A slow reader
// loses events (its buffer is bounded) rather than slow the box.
type events struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
	max  int
}

func newEvents(max int) *events { return &events{subs: map[chan Event]struct{}{}, max: max} }

// publish sends ev to every stream; never blocks.
func (e *events) publish(typ string, data any) {
	ev := Event{Type: typ, Time: time.Now().UTC(), Data: data}
	e.mu.Lock()
	defer e.mu.Unlock()
	for ch := range e.subs {
		select {
		case ch <- ev:
		default: // a slow reader misses this one
		}
	}
}

// subscribe opens a stream; nil when max are open.
func (e *events) subscribe() chan Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.subs) >= e.max {
		return nil
	}
	ch := make(chan Event, 256)
	e.subs[ch] = struct{}{}
	return ch
}

func (e *events) unsubscribe(ch chan Event) {
	e.mu.Lock()
	delete(e.subs, ch)
	e.mu.Unlock()
}

// eventHandler passes log records on and publishes those at warn level and
// above as "warning" events, so what an operator should see reaches the
// dashboard too.
type eventHandler struct {
	slog.Handler
	ev    *events
	attrs []slog.Attr
}

func (h eventHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		fields := map[string]any{"level": r.Level.String(), "msg": r.Message}
		for _, a := range h.attrs {
			fields[a.Key] = a.Value.String()
		}
		r.Attrs(func(a slog.Attr) bool {
			fields[a.Key] = a.Value.String()
			return true
		})
		h.ev.publish("warning", fields)
	}
	return h.Handler.Handle(ctx, r)
}

func (h eventHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return eventHandler{Handler: h.Handler.WithAttrs(attrs), ev: h.ev, attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], attrs...)}
}

func (h eventHandler) WithGroup(name string) slog.Handler {
	return eventHandler{Handler: h.Handler.WithGroup(name), ev: h.ev, attrs: h.attrs}
}

// sessionEvent publishes a session's start and end.
func (a *App) sessionEvent(started bool, s *session.Session, reason error) {
	d := map[string]any{"id": s.ID, "kind": s.Kind, "stream": s.Stream, "layer": s.Layer, "remote": s.Remote, "action": "started"}
	if !started {
		d["action"] = "ended"
		if reason != nil {
			d["reason"] = reason.Error()
		}
	}
	a.events.publish("session", d)
}

// watchStates publishes egress and encoder state changes, looked at once a
// second (the state machines are theirs; a change is rarely urgent to the
// millisecond). It runs until ctx ends.
func (a *App) watchStates(ctx context.Context) {
	egress := map[string]string{}
	encoder := ""
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		seen := map[string]bool{}
		for _, st := range a.egress.List() {
			seen[st.ID] = true
			if egress[st.ID] != st.State {
				egress[st.ID] = st.State
				a.events.publish("egress", map[string]any{"id": st.ID, "state": st.State, "since": st.Since, "last_error": st.LastError, "retries": st.Retries})
			}
		}
		for id := range egress {
			if !seen[id] {
				delete(egress, id)
				a.events.publish("egress", map[string]any{"id": id, "state": "removed"})
			}
		}
		if sup := a.Encoder(); sup != nil {
			st := sup.Status()
			if key := fmt.Sprintf("%s/%d/%d", st.State, st.Restarts, st.PID); key != encoder {
				encoder = key
				a.events.publish("encoder", map[string]any{"backend": st.Backend, "state": st.State, "pid": st.PID,
					"restarts": st.Restarts, "fallbacks": st.Fallbacks, "last_error": st.LastError})
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// eventStream is GET /api/v1/events: server-sent events (text/event-stream),
// one per event, a comment every 15 s to keep proxies from closing it.
// Each write has its own deadline, so a reader that stops reading is cut
// off while the server's write timeout does not end a healthy stream.
func (a *App) eventStream(w http.ResponseWriter, r *http.Request) {
	ch := a.events.subscribe()
	if ch == nil {
		e := problem.Errorf(http.StatusServiceUnavailable, "too many event streams are open (http.max_event_streams)")
		e.RetryAfter = 5
		a.apiError(w, e)
		return
	}
	defer a.events.unsubscribe(ch)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	write := func(f func() error) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if f() != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write(func() error { _, err := fmt.Fprint(w, ": whipgate events\n\n"); return err }) {
		return
	}
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-a.eventsDone:
			return
		case <-keep.C:
			if !write(func() error { _, err := fmt.Fprint(w, ": keep-alive\n\n"); return err }) {
				return
			}
		case ev := <-ch:
			data, err := json.Marshal(ev)
			if err != nil {
				continue
			}
			if !write(func() error { _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, data); return err }) {
				return
			}
		}
	}
}
