package egress

import (
	"fmt"
	"slices"
	"time"

	"whipgate/whip/client"

	"github.com/pion/webrtc/v4"
)

// Status is the JSON view of an egress.
type Status struct {
	ID     string `json:"id"`
	Stream string `json:"stream"`
	// URL is the target without query or user info (they may hold secrets).
	URL    string   `json:"url"`
	Layers []string `json:"layers"`
	Mode   string   `json:"mode"`
	Target string   `json:"target"`
	State  string   `json:"state"`
	// Since is when the egress entered State.
	Since *time.Time `json:"since,omitempty"`
	// LastError is the most recent failure of any session, kept after
	// recovery so an operator sees why the last retry happened.
	LastError      string     `json:"last_error,omitempty"`
	Retries        int        `json:"retries"`
	ConnectedSince *time.Time `json:"connected_since,omitempty"`
	// BitrateBps is what was sent over the last second, all sessions.
	BitrateBps int64 `json:"bitrate_bps"`
	// RTTMs is the worst session's round trip from RTCP reports.
	RTTMs float64 `json:"rtt_ms"`
	// TargetEstimateBps is the bandwidth the target's REMB says, summed
	// over sessions; 0 without REMB.
	TargetEstimateBps int64           `json:"target_estimate_bps,omitempty"`
	Sessions          []SessionStatus `json:"sessions"`
}

// Status returns a snapshot for the API.
func (e *Egress) Status() Status {
	e.mu.Lock()
	out := Status{
		ID: e.cfg.ID, Stream: e.cfg.Stream, URL: client.Redact(e.cfg.URL), Layers: slices.Clone(e.cfg.Layers),
		Mode: e.cfg.Mode, Target: e.cfg.Target, State: e.state, LastError: e.lastErr,
	}
	if e.layers != nil {
		out.Layers = slices.Clone(e.layers)
	}
	legs := e.legs
	stopped := e.state == StateStopped
	e.mu.Unlock()
	if len(legs) == 0 {
		return out
	}
	var last time.Time
	var since time.Time
	states := map[string]int{}
	entered := map[string]time.Time{} // per state, the latest a leg entered it
	for _, l := range legs {
		s, errAt := l.status()
		l.mu.Lock()
		if t := l.stateSince; t.After(entered[l.state]) {
			entered[l.state] = t
		}
		l.mu.Unlock()
		out.Sessions = append(out.Sessions, s)
		states[s.State]++
		out.Retries += s.Retries
		out.BitrateBps += s.BitrateBps
		out.RTTMs = max(out.RTTMs, s.RTTMs)
		out.TargetEstimateBps += s.TargetEstimateBps
		if s.LastError != "" && errAt.After(last) {
			last, out.LastError = errAt, s.LastError
		}
		if s.ConnectedSince != nil && s.ConnectedSince.After(since) {
			since = *s.ConnectedSince
		}
	}
	switch {
	case stopped:
		out.State = StateStopped
	case states[StateFailed] > 0:
		out.State = StateFailed
	case states[StateReconnecting] > 0:
		out.State = StateReconnecting
	case states[StateConnected] == len(legs):
		out.State = StateConnected
		out.ConnectedSince = &since // when the last session came up
	default:
		out.State = StateConnecting
	}
	if t, ok := entered[out.State]; ok {
		out.Since = &t
	}
	return out
}

// SessionStatus is the JSON view of one WHIP session of an egress.
type SessionStatus struct {
	Layers []string `json:"layers"`
	RIDs   []string `json:"rids,omitempty"`
	Audio  string   `json:"audio,omitempty"`
	// URL is the endpoint, Resource the session URL (both without query).
	URL            string     `json:"url"`
	Resource       string     `json:"resource,omitempty"`
	State          string     `json:"state"`
	LastError      string     `json:"last_error,omitempty"`
	Retries        int        `json:"retries"`
	NextRetry      *time.Time `json:"next_retry,omitempty"`
	ConnectedSince *time.Time `json:"connected_since,omitempty"`
	BitrateBps     int64      `json:"bitrate_bps"`
	RTTMs          float64    `json:"rtt_ms"`
	// TargetEstimateBps is the bandwidth the target's REMB says; 0
	// without REMB.
	TargetEstimateBps int64 `json:"target_estimate_bps,omitempty"`
	// EstimateSource is "remb" when there is an estimate.
	EstimateSource string `json:"estimate_source,omitempty"`
	// CandidatePair is the selected pair ("relay udp a:p -> host b:q").
	CandidatePair string `json:"candidate_pair,omitempty"`
	// SRTP is "direct" when the session's media is sealed beneath pion and
	// sent in batches, "pion" on pion's path (a relay, pion_srtp); empty
	// between sessions. DirectSent and DirectDropped count packets on the
	// direct path; Batched the datagrams sent in batches and BatchCalls
	// the sendmmsg calls they took.
	SRTP          string `json:"srtp,omitempty"`
	DirectSent    uint64 `json:"direct_sent,omitempty"`
	DirectDropped uint64 `json:"direct_dropped,omitempty"`
	Batched       uint64 `json:"batched,omitempty"`
	BatchCalls    uint64 `json:"batch_calls,omitempty"`
	Trickle       bool   `json:"trickle"`
	ICERestarts   int    `json:"ice_restarts"`
	NACKHistory   int    `json:"nack_history,omitempty"`
	// PacingRateBps is the pacing rate of the session's video encodings.
	PacingRateBps int64  `json:"pacing_rate_bps"`
	Packets       uint64 `json:"packets"`
	Bytes         uint64 `json:"bytes"`
	// Dropped counts packets the pacers dropped (queue full or oversize).
	Dropped uint64 `json:"dropped"`
	// NACKed counts packets the target asked for again; KeyframeRequests
	// its PLI and FIR.
	NACKed           uint64 `json:"nacked"`
	KeyframeRequests uint64 `json:"keyframe_requests"`
	Warning          string `json:"warning,omitempty"`
}

// status returns the leg's view and when its last error happened.
func (l *egressLeg) status() (SessionStatus, time.Time) {
	l.mu.Lock()
	s := SessionStatus{
		Layers: l.layers, RIDs: l.rids, Audio: l.audio, URL: client.Redact(l.url),
		State: l.state, LastError: l.lastErr, Retries: l.retries, BitrateBps: l.bitrate, ICERestarts: l.restarts,
	}
	if !l.connectedSince.IsZero() {
		t := l.connectedSince
		s.ConnectedSince = &t
	}
	if l.state != StateConnected && l.state != StateStopped && l.nextRetry.After(time.Now()) {
		t := l.nextRetry
		s.NextRetry = &t
	}
	errAt := l.lastErrAt
	live := l.live
	l.mu.Unlock()
	if live == nil {
		return s, errAt
	}
	s.Resource = client.Redact(live.sess.Resource())
	s.Trickle = live.sess.Trickle()
	s.ICERestarts += live.sess.Restarts()
	s.NACKHistory = live.history
	s.RTTMs = live.feedback.rttMs()
	if s.TargetEstimateBps = live.feedback.remb.Load(); s.TargetEstimateBps > 0 {
		s.EstimateSource = "remb"
	}
	path := live.snd.Stats()
	s.SRTP, s.DirectSent, s.DirectDropped = path.SRTP, path.DirectSent, path.DirectDropped
	s.Batched, s.BatchCalls = path.Batched, path.BatchCalls
	s.NACKed = live.feedback.nacked.Load()
	s.KeyframeRequests = live.feedback.keyReqs.Load()
	live.mu.Lock()
	pacers, audio := live.pacers, live.audio
	s.CandidatePair = live.pair
	s.Warning = live.warning
	live.mu.Unlock()
	for _, p := range pacers {
		ps := p.Stats()
		s.PacingRateBps += ps.RateBps
		s.Packets += ps.Packets
		s.Bytes += ps.Bytes
		s.Dropped += ps.Dropped + ps.Oversize
	}
	if audio != nil {
		s.Bytes += audio.bytes.Load()
	}
	return s, errAt
}

// egressPair describes the selected candidate pair, for logs and status.
func egressPair(pc *webrtc.PeerConnection) string {
	local, remote := egressSelected(pc)
	if local == nil || remote == nil {
		return ""
	}
	return fmt.Sprintf("%s %s %s:%d -> %s %s:%d", local.Typ, local.Protocol, local.Address, local.Port, remote.Typ, remote.Address, remote.Port)
}

func egressSelected(pc *webrtc.PeerConnection) (local, remote *webrtc.ICECandidate) {
	for _, tr := range pc.GetTransceivers() {
		s := tr.Sender()
		if s == nil || s.Transport() == nil {
			continue
		}
		pair, err := s.Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			return nil, nil
		}
		return pair.Local, pair.Remote
	}
	return nil, nil
}
