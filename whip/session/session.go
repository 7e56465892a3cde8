// Package session is the WHIP and WHEP session resource, the part of both
// endpoints that is the same: the registry of live sessions and their
// lifecycle, the session URL (PATCH for trickle and ICE restarts, DELETE),
// the one answer path of a POST (offer in, answer with all our candidates
// out, the session started), CORS, Bearer tokens, offer reading and Link
// headers.
//
// It imports the transport (whip/rtc), sdpfrag and problem, never the hub
// (gateway): what a session moves is its endpoint's business, given to
// the registry as a run function.
package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"golang.org/x/time/rate"

	"whipgate/whip/problem"
)

// Session is one WHIP or WHEP resource: a PeerConnection and the goroutine
// that moves its media, owned by the Registry.
type Session struct {
	ID      string
	Kind    string // "whip" or "whep"
	Stream  string
	Layer   string
	Remote  string
	Created time.Time
	// Token is the Bearer token the session's resource requires (the
	// stream's), empty for none.
	Token string
	// Stats, if set, adds detail to the session's API view.
	Stats func() any

	reg       *Registry
	pc        *webrtc.PeerConnection
	cancel    context.CancelCauseFunc
	done      chan struct{}
	connected chan struct{}
	connOnce  sync.Once
	wg        sync.WaitGroup // helpers that end when the PeerConnection closes

	// Registry's, under its mu.
	admitted, isPending bool

	mu         sync.Mutex // serializes PATCH (ICE restart) on the PeerConnection
	etag       string
	candidates int           // remote candidates of the current ICE session
	patches    *rate.Limiter // PATCHes allowed
}

// SessionInfo is the JSON view of a session.
type SessionInfo struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Stream    string    `json:"stream"`
	Layer     string    `json:"layer,omitempty"`
	Remote    string    `json:"remote,omitempty"`
	Created   time.Time `json:"created"`
	State     string    `json:"state"`
	Candidate string    `json:"selected_candidate_pair,omitempty"`
	Detail    any       `json:"detail,omitempty"`
}

// PeerConnection is the session's PeerConnection.
func (s *Session) PeerConnection() *webrtc.PeerConnection { return s.pc }

// Connected is closed once the PeerConnection is connected (DTLS up):
// packets written earlier are lost, so senders wait for it.
func (s *Session) Connected() <-chan struct{} { return s.connected }

// Go runs f on a goroutine that the session waits for after closing its
// PeerConnection, for loops (RTCP readers, track readers) that end only
// then. A panic in f ends this session only (see Registry.Start).
func (s *Session) Go(f func()) {
	s.wg.Go(func() {
		defer s.reg.recovered(s, "goroutine")
		f()
	})
}

// Done is closed once the session has ended and released everything.
func (s *Session) Done() <-chan struct{} { return s.done }

// ETag is the entity tag of the session's current ICE session.
func (s *Session) ETag() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etag
}

// Info returns the session's JSON view.
func (s *Session) Info() SessionInfo {
	info := SessionInfo{ID: s.ID, Kind: s.Kind, Stream: s.Stream, Layer: s.Layer, Remote: s.Remote,
		Created: s.Created, State: s.pc.ConnectionState().String()}
	if s.Stats != nil {
		info.Detail = s.Stats()
	}
	return info
}

// NewID returns an unguessable identifier (128 random bits): session URLs
// must not be guessable (RFC 9725 §5).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newETag() string { return `"` + NewID() + `"` }

// Registry holds every live WHIP and WHEP session, and admits new ones
// within its Limits.
type Registry struct {
	log    *slog.Logger
	limits Limits

	mu       sync.Mutex
	m        map[string]*Session
	admitted int            // sessions admitted, started or not
	pending  map[string]int // client address → sessions not connected yet
	viewers  map[string]int // stream → WHEP sessions
	closed   bool
	wg       sync.WaitGroup

	panics atomic.Uint64
	notify atomic.Pointer[func(started bool, s *Session, reason error)]
}

// Notify has f called as each session starts (started, nil reason) and
// ends (the reason it ended); f must not block.
func (r *Registry) Notify(f func(started bool, s *Session, reason error)) { r.notify.Store(&f) }

func (r *Registry) tell(started bool, s *Session, reason error) {
	if f := r.notify.Load(); f != nil {
		(*f)(started, s, reason)
	}
}

// NewRegistry returns an empty registry admitting sessions within limits
// (zero fields: the defaults).
func NewRegistry(limits Limits, log *slog.Logger) *Registry {
	limits.ApplyDefaults()
	return &Registry{log: log, limits: limits, m: make(map[string]*Session), pending: map[string]int{}, viewers: map[string]int{}}
}

// Limits are the registry's limits, defaults applied.
func (r *Registry) Limits() Limits { return r.limits }

// Panics counts the panics recovered in sessions' goroutines.
func (r *Registry) Panics() uint64 { return r.panics.Load() }

// Errors a session's run sees as the cause of its context's end.
var (
	// ErrShuttingDown refuses new sessions once Close has begun.
	ErrShuttingDown = errors.New("server is shutting down")
	// ErrNeverConnected ends a session that did not connect in time.
	ErrNeverConnected = errors.New("never connected")
	// ErrEnded ends a session deleted by its client or kicked.
	ErrEnded = errors.New("session ended")
	// ErrPeerClosed ends a session whose PeerConnection failed or closed.
	ErrPeerClosed = errors.New("peer connection failed or closed")
	// ErrPanicked ends a session one of whose goroutines panicked.
	ErrPanicked = errors.New("session goroutine panicked")
)

// clientOf is the address part of a remote "host:port": sessions are
// counted per client address, whatever port each came from.
func clientOf(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// Admit counts s (Kind, Stream and Remote set) against the limits before
// any work is done for it: 503 with Retry-After past a limit, 503 once
// Close has begun. An admitted session is then either started (Start) or
// given back (Release).
func (r *Registry) Admit(s *Session) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return &problem.Error{Code: http.StatusServiceUnavailable, Msg: "shutting down", Err: ErrShuttingDown}
	case r.admitted >= r.limits.MaxSessions:
		return busy("the server has %d sessions, its limit (limits.max_sessions)", r.admitted)
	case r.pending[clientOf(s.Remote)] >= r.limits.MaxPendingPerClient:
		return busy("this client has %d sessions that have not connected yet, the limit (limits.max_pending_per_client)", r.pending[clientOf(s.Remote)])
	case s.Kind == "whep" && r.viewers[s.Stream] >= r.limits.MaxViewersPerStream:
		return busy("stream %q has %d viewers, its limit (limits.max_viewers_per_stream); watch it through an SFU", s.Stream, r.viewers[s.Stream])
	}
	r.admitted++
	s.reg = r
	r.pending[clientOf(s.Remote)]++
	if s.Kind == "whep" {
		r.viewers[s.Stream]++
	}
	s.admitted, s.isPending = true, true
	return nil
}

// connectedLocked stops counting s as pending.
func (r *Registry) connectedLocked(s *Session) {
	if !s.isPending {
		return
	}
	s.isPending = false
	c := clientOf(s.Remote)
	if r.pending[c]--; r.pending[c] <= 0 {
		delete(r.pending, c)
	}
}

// Release gives back an admitted session that was not started (its setup
// failed). Idempotent.
func (r *Registry) Release(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.releaseLocked(s)
}

func (r *Registry) releaseLocked(s *Session) {
	if !s.admitted {
		return
	}
	s.admitted = false
	r.connectedLocked(s)
	r.admitted--
	if s.Kind == "whep" {
		if r.viewers[s.Stream]--; r.viewers[s.Stream] <= 0 {
			delete(r.viewers, s.Stream)
		}
	}
}

// recovered turns a panic in one of s's goroutines into the end of s
// alone: logged with its stack, counted, and the session cancelled. The
// process and every other session go on. It must be deferred directly.
func (r *Registry) recovered(s *Session, where string) {
	v := recover()
	if v == nil {
		return
	}
	r.panics.Add(1)
	r.log.Error("panic in a session; ending that session only", "session", s.ID, "kind", s.Kind, "stream", s.Stream,
		"where", where, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	if s.cancel != nil {
		s.cancel(fmt.Errorf("%w (%s): %v", ErrPanicked, where, v))
	}
}

// Start runs an admitted session s on pc: run(ctx) on a goroutine the
// registry owns. When run returns, or the session is deleted or kicked,
// the PeerConnection is closed and the session removed. The
// PeerConnection ending (ICE failed, DTLS closed) cancels ctx, and so does
// not being connected within connectTimeout: context.Cause says which. A
// panic in run or in a goroutine of s.Go ends the session only.
func (r *Registry) Start(s *Session, pc *webrtc.PeerConnection, connectTimeout time.Duration, run func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancelCause(context.Background())
	s.reg = r
	s.pc, s.cancel, s.done, s.connected = pc, cancel, make(chan struct{}), make(chan struct{})
	s.etag = newETag()
	if s.Created.IsZero() {
		s.Created = time.Now()
	}
	r.mu.Lock()
	if !s.admitted {
		r.mu.Unlock()
		cancel(nil)
		return errors.New("session: Start without Admit")
	}
	if r.closed {
		r.releaseLocked(s)
		r.mu.Unlock()
		cancel(ErrShuttingDown)
		return ErrShuttingDown
	}
	r.m[s.ID] = s
	r.wg.Add(1)
	r.mu.Unlock()

	connectBy := time.AfterFunc(connectTimeout, func() { cancel(ErrNeverConnected) })
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			connectBy.Stop()
			r.mu.Lock()
			r.connectedLocked(s)
			r.mu.Unlock()
			s.connOnce.Do(func() { close(s.connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			cancel(ErrPeerClosed)
		}
	})
	log := r.log.With("session", s.ID, "kind", s.Kind, "stream", s.Stream)
	go func() {
		defer r.wg.Done()
		defer close(s.done)
		err := func() (err error) {
			defer r.recovered(s, "run")
			return run(ctx)
		}()
		connectBy.Stop()
		cancel(err)
		if cerr := pc.Close(); cerr != nil {
			log.Debug("close peer connection", "err", cerr)
		}
		s.wg.Wait()
		r.mu.Lock()
		delete(r.m, s.ID)
		r.releaseLocked(s)
		r.mu.Unlock()
		if err == nil {
			err = context.Cause(ctx)
		}
		log.Info("session ended", "reason", err)
		r.tell(false, s, err)
	}()
	log.Info("session started", "layer", s.Layer, "remote", s.Remote)
	r.tell(true, s, nil)
	return nil
}

// Get returns a live session.
func (r *Registry) Get(id string) (*Session, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.m[id]
	return s, ok
}

// List returns every live session, oldest first.
func (r *Registry) List() []*Session {
	r.mu.Lock()
	out := slices.Collect(maps.Values(r.m))
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b *Session) int { return a.Created.Compare(b.Created) })
	return out
}

// End stops a session and waits until it has released everything. It
// reports whether the session existed.
func (r *Registry) End(id string) bool {
	s, ok := r.Get(id)
	if !ok {
		return false
	}
	s.cancel(ErrEnded)
	<-s.done
	return true
}

// Close ends every session and waits for them; later Starts fail.
func (r *Registry) Close() {
	r.mu.Lock()
	r.closed = true
	list := slices.Collect(maps.Values(r.m))
	r.mu.Unlock()
	for _, s := range list {
		s.cancel(ErrShuttingDown)
	}
	r.wg.Wait()
}

// ServeResource handles a session URL: PATCH (trickle, ICE restart),
// DELETE, GET/HEAD and OPTIONS. id is the session id from the path.
func (r *Registry) ServeResource(w http.ResponseWriter, req *http.Request, id string, origin string) {
	CORS(w, origin)
	w.Header().Set("Accept-Patch", "application/trickle-ice-sdpfrag")
	if req.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	s, ok := r.Get(id)
	if !ok {
		problem.Write(w, problem.Errorf(http.StatusNotFound, "no session %q (it ended or never existed)", id))
		return
	}
	if err := CheckBearer(req, s.Token); err != nil {
		problem.Write(w, err)
		return
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		r.End(id)
		w.WriteHeader(http.StatusOK)
	case http.MethodPatch:
		if err := s.patch(w, req); err != nil {
			problem.Write(w, err)
		}
	default:
		w.Header().Set("Allow", "OPTIONS, GET, HEAD, PATCH, DELETE")
		problem.Write(w, problem.Errorf(http.StatusMethodNotAllowed, "method %s not allowed on a session", req.Method))
	}
}
