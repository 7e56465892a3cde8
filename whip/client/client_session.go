package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"whipgate/whip/rtc"
	"whipgate/whip/sdpfrag"
)

// ErrNoRestart means the server signalled no ICE restart support (no
// strong ETag in its 201), so only a new POST can recover the session.
var ErrNoRestart = errors.New("whip: server does not support ICE restart")

const (
	// clientTrickleDebounce gathers candidates found close together into
	// one PATCH (RFC 9725 §4.3.1 asks for aggregation).
	clientTrickleDebounce = 20 * time.Millisecond
	// clientGatherWait bounds the wait for gathering before a restart
	// PATCH; a TURN allocation is one round trip.
	clientGatherWait = 5 * time.Second
	// DeleteWait bounds DELETE when the caller's context is gone.
	DeleteWait = 2 * time.Second
)

// Session is one WHIP session: its resource URL, ICE state for
// trickle and restarts, and the trickle goroutine.
type Session struct {
	c        *Client
	pc       *webrtc.PeerConnection
	log      *slog.Logger
	resource string
	offer    sdpfrag.Frag
	gather   *clientGather

	iceServers []rtc.ICEServer

	restartMu sync.Mutex // one restart at a time: each response is the latest request's

	mu        sync.Mutex
	etag      string
	answer    string
	trickleOK bool
	restarts  int

	trickleStop context.CancelFunc
	trickleWG   sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Resource is the session URL (the resolved Location).
func (s *Session) Resource() string { return s.resource }

// ICEServers are the STUN/TURN servers the session gathered with.
func (s *Session) ICEServers() []rtc.ICEServer { return s.iceServers }

// Trickle reports whether candidates are being sent with PATCH (the server
// gave an ETag and has not refused a PATCH).
func (s *Session) Trickle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.trickleOK
}

// CanRestart reports whether the server signalled ICE restart support: a
// strong ETag in the 201 (RFC 9725 §4.3.1). MediaMTX's literal "*" is no
// entity tag and signals nothing.
func (s *Session) CanRestart() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.etag != "" && s.etag != "*"
}

// Restarts counts successful ICE restarts.
func (s *Session) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// clientGather collects the local candidates pion reports. A restart
// resets it.
type clientGather struct {
	mu     sync.Mutex
	cands  []string
	done   bool
	notify chan struct{}
}

func newClientGather() *clientGather { return &clientGather{notify: make(chan struct{}, 1)} }

func (g *clientGather) add(c *webrtc.ICECandidate) {
	g.mu.Lock()
	if c == nil {
		g.done = true
	} else {
		g.cands = append(g.cands, c.ToJSON().Candidate)
	}
	g.mu.Unlock()
	select {
	case g.notify <- struct{}{}:
	default:
	}
}

func (g *clientGather) snapshot() ([]string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.cands...), g.done
}

func (g *clientGather) reset() {
	g.mu.Lock()
	g.cands, g.done = nil, false
	g.mu.Unlock()
}

// wait blocks until gathering is complete, ctx ends or limit passes.
func (g *clientGather) wait(ctx context.Context, limit time.Duration) {
	t := time.NewTimer(limit)
	defer t.Stop()
	for {
		if _, done := g.snapshot(); done {
			return
		}
		select {
		case <-g.notify:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// startTrickle sends the initial gathering's candidates with PATCH until
// gathering completes, the server refuses, or the session closes.
func (s *Session) startTrickle(ctx context.Context) {
	tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.trickleStop = cancel
	s.trickleWG.Go(func() { s.trickle(tctx) })
}

func (s *Session) stopTrickle() {
	if s.trickleStop != nil {
		s.trickleStop()
	}
	s.trickleWG.Wait()
}

func (s *Session) trickle(ctx context.Context) {
	sent := 0
	for {
		select {
		case <-s.gather.notify:
		case <-ctx.Done():
			return
		}
		select { // let the candidates found together go in one PATCH
		case <-time.After(clientTrickleDebounce):
		case <-ctx.Done():
			return
		}
		cands, done := s.gather.snapshot()
		if len(cands) <= sent && !done {
			continue
		}
		s.mu.Lock()
		etag := s.etag
		s.mu.Unlock()
		frag := trickleFrag(s.offer, cands[min(sent, len(cands)):], done)
		resp, body, err := s.c.do(ctx, clientRequest{
			method: http.MethodPatch, url: s.resource, contentType: "application/trickle-ice-sdpfrag",
			ifMatch: etag, body: frag,
		})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("trickle PATCH failed; the server must learn our candidates from connectivity checks", "err", err)
			}
			return
		}
		if resp.StatusCode/100 != 2 {
			// 405/422/501 are the usual "no trickle here"; anything else
			// is no better. The session goes on without trickle.
			s.mu.Lock()
			s.trickleOK = false
			s.mu.Unlock()
			s.log.Info("server takes no trickled candidates; stopping trickle",
				"err", clientHTTPError(http.MethodPatch, s.resource, resp, body))
			return
		}
		sent = len(cands)
		if done {
			return
		}
	}
}

// Restart restarts ICE (RFC 9725 §4.3.2): new local credentials and
// candidates in a PATCH with If-Match "*", the server's new credentials
// and candidates from the 200, and its new ETag. On failure the session's
// PeerConnection is left mid-negotiation: tear it down and POST again.
func (s *Session) Restart(ctx context.Context) error {
	s.restartMu.Lock()
	defer s.restartMu.Unlock()
	if !s.CanRestart() {
		return ErrNoRestart
	}
	s.stopTrickle()
	s.gather.reset()
	offer, err := s.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		return fmt.Errorf("whip: ICE restart offer: %w", err)
	}
	if err := s.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("whip: ICE restart: set offer: %w", err)
	}
	info, err := ownOffer(offer.SDP)
	if err != nil {
		return err
	}
	s.gather.wait(ctx, clientGatherWait)
	cands, _ := s.gather.snapshot()
	resp, body, err := s.c.do(ctx, clientRequest{
		method: http.MethodPatch, url: s.resource, contentType: "application/trickle-ice-sdpfrag",
		ifMatch: "*", body: trickleFrag(info, cands, true),
	})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return clientHTTPError(http.MethodPatch, s.resource, resp, body)
	}
	frag, err := parseRestartAnswer(string(body))
	if err != nil {
		return err
	}
	s.mu.Lock()
	answer := s.answer
	s.mu.Unlock()
	patched, err := applyRestart(answer, frag)
	if err != nil {
		return err
	}
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: patched}); err != nil {
		return fmt.Errorf("whip: ICE restart: apply answer: %w", err)
	}
	s.mu.Lock()
	s.answer = patched
	s.offer = info
	if etag := resp.Header.Get("ETag"); etag != "" {
		s.etag = etag
	}
	s.restarts++
	s.mu.Unlock()
	s.log.Info("ICE restarted", "candidates", len(cands), "server_candidates", len(frag.Candidates))
	return nil
}

// Close ends the session: stops trickling and sends DELETE, accepting 200,
// 204 and 404 (already gone). When ctx is already done it still tries for
// a short while, since the server holds resources until it hears. It does
// not close the PeerConnection. It is idempotent.
func (s *Session) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.stopTrickle()
		s.closeErr = s.deleteResource(ctx)
	})
	return s.closeErr
}

// abort ends a session whose setup failed after the 201.
func (s *Session) abort(ctx context.Context) {
	if err := s.Close(ctx); err != nil {
		s.log.Warn("DELETE after a failed setup", "err", err)
	}
}

func (s *Session) deleteResource(ctx context.Context) error {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), DeleteWait)
		defer cancel()
	}
	resp, body, err := s.c.do(ctx, clientRequest{method: http.MethodDelete, url: s.resource})
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent, http.StatusAccepted, http.StatusNotFound, http.StatusGone:
		return nil
	}
	return clientHTTPError(http.MethodDelete, s.resource, resp, body)
}
