package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"golang.org/x/time/rate"

	"whipgate/whip/problem"
	"whipgate/whip/sdpfrag"
)

// restartGatherWait bounds the gathering of an ICE restart's candidates.
const restartGatherWait = 5 * time.Second

// patch handles a PATCH on the session: trickled candidates (204), or new
// ICE credentials, which restart ICE (200 with our new credentials and a
// new ETag). A trickle without If-Match is tolerated, since some players
// send none; a restart needs one ("*" or the current tag).
func (s *Session) patch(w http.ResponseWriter, r *http.Request) error {
	limits := s.reg.limits
	if !s.allowPatch() {
		e := problem.Errorf(http.StatusTooManyRequests, "too many PATCHes on this session (limits.patch_rate: %g a second)", limits.PatchRate)
		e.RetryAfter = 1
		return e
	}
	body, err := limits.ReadBody(r, "application/trickle-ice-sdpfrag")
	if err != nil {
		return err
	}
	frag, err := sdpfrag.Parse(string(body))
	if err != nil {
		return problem.Errorf(http.StatusBadRequest, "malformed trickle-ice-sdpfrag: %v", err)
	}
	if n := len(frag.Candidates); n > limits.MaxPatchCandidates {
		return problem.Errorf(http.StatusRequestEntityTooLarge, "%d candidates in one PATCH, more than %d (limits.max_patch_candidates)", n, limits.MaxPatchCandidates)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ifMatch := strings.TrimSpace(r.Header.Get("If-Match"))
	restart := frag.Restart() && frag.Ufrag != remoteUfrag(s.pc)
	if restart && ifMatch == "" {
		return problem.Errorf(http.StatusPreconditionRequired, "an ICE restart needs an If-Match header")
	}
	if ifMatch != "" && ifMatch != "*" && ifMatch != s.etag {
		return problem.Errorf(http.StatusPreconditionFailed, "If-Match %s does not match the current ICE session %s", ifMatch, s.etag)
	}
	if !restart {
		if s.candidates+len(frag.Candidates) > limits.MaxCandidates {
			return problem.Errorf(http.StatusBadRequest, "this ICE session has %d remote candidates; %d more would pass %d (limits.max_candidates)", s.candidates, len(frag.Candidates), limits.MaxCandidates)
		}
		s.addCandidates(frag.Candidates)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	answer, err := s.restartICE(r.Context(), frag)
	if err != nil {
		return &problem.Error{Code: http.StatusBadRequest, Msg: "ICE restart failed; the old ICE session stays", Err: err}
	}
	s.etag = newETag()
	w.Header().Set("Content-Type", "application/trickle-ice-sdpfrag")
	w.Header().Set("ETag", s.etag)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(answer))
	return nil
}

// allowPatch takes one PATCH from the session's rate limit.
func (s *Session) allowPatch() bool {
	s.mu.Lock()
	if s.patches == nil {
		s.patches = rate.NewLimiter(rate.Limit(s.reg.limits.PatchRate), s.reg.limits.PatchBurst)
	}
	l := s.patches
	s.mu.Unlock()
	return l.Allow()
}

// addCandidates hands trickled candidates to ICE (s.mu held). Those we
// cannot use (other transports, unresolvable names, addresses the
// transport filters out) are dropped silently, as RFC 8840 asks.
func (s *Session) addCandidates(cands []sdpfrag.Candidate) {
	s.candidates += len(cands)
	for _, c := range cands {
		init := webrtc.ICECandidateInit{Candidate: c.Value}
		if c.Mid != "" {
			init.SDPMid = &c.Mid
		} else {
			idx := uint16(c.MLine)
			init.SDPMLineIndex = &idx
		}
		_ = s.pc.AddICECandidate(init)
	}
}

func remoteUfrag(pc *webrtc.PeerConnection) string {
	d, err := parseSDP(pc.RemoteDescription())
	if err != nil {
		return ""
	}
	for _, m := range d.MediaDescriptions {
		if v := sdpfrag.Attribute(d, m, "ice-ufrag"); v != "" {
			return v
		}
	}
	return ""
}

// parseSDP parses desc into a value of its own. SessionDescription's
// Unmarshal caches its result inside the description, which pion shares
// with its own goroutines: calling it on a PeerConnection's description is
// a data race, and editing the result edits pion's copy.
func parseSDP(desc *webrtc.SessionDescription) (*sdp.SessionDescription, error) {
	if desc == nil {
		return nil, errors.New("none yet")
	}
	d := &sdp.SessionDescription{}
	if err := d.UnmarshalString(desc.SDP); err != nil {
		return nil, err
	}
	return d, nil
}

// restartICE applies the client's new credentials as a new remote offer,
// which makes pion restart ICE, and returns our new credentials and
// candidates as an SDP fragment.
func (s *Session) restartICE(ctx context.Context, frag sdpfrag.Frag) (string, error) {
	d, err := parseSDP(s.pc.RemoteDescription())
	if err != nil {
		return "", fmt.Errorf("remote description: %w", err)
	}
	// Credentials only: the candidates follow once pion has the offer.
	sdpfrag.Apply(d, sdpfrag.Frag{Ufrag: frag.Ufrag, Pwd: frag.Pwd})
	raw, err := d.Marshal()
	if err != nil {
		return "", err
	}
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(raw)}); err != nil {
		return "", fmt.Errorf("apply restart offer: %w", err)
	}
	answer, err := s.pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("create answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(s.pc)
	if err := s.pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("set answer: %w", err)
	}
	t := time.NewTimer(restartGatherWait)
	defer t.Stop()
	select {
	case <-gathered:
	case <-t.C:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	s.candidates = 0 // a new ICE session
	s.addCandidates(frag.Candidates)
	local := s.pc.LocalDescription()
	if local == nil {
		return "", errors.New("local description: none yet")
	}
	out, err := sdpfrag.FromDescription(local.SDP)
	if err != nil {
		return "", fmt.Errorf("local description: %w", err)
	}
	out.End = true
	return out.String(), nil
}
