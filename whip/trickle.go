package whip

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// sdpFrag is a parsed application/trickle-ice-sdpfrag body (RFC 8840).
type sdpFrag struct {
	ufrag, pwd string
	cands      []webrtc.ICECandidateInit
}

func parseSDPFrag(body string) (sdpFrag, error) {
	var f sdpFrag
	mid := ""
	mline := -1
	for n, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "m="):
			mline++
			mid = ""
		case strings.HasPrefix(line, "a=mid:"):
			mid = strings.TrimPrefix(line, "a=mid:")
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			f.ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:"):
			f.pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "a=candidate:"):
			c := webrtc.ICECandidateInit{Candidate: strings.TrimPrefix(line, "a=")}
			if mid != "" {
				c.SDPMid = &mid
			} else {
				idx := uint16(max(mline, 0))
				c.SDPMLineIndex = &idx
			}
			f.cands = append(f.cands, c)
		case strings.HasPrefix(line, "a="), strings.HasPrefix(line, "c="):
			// ice-options, end-of-candidates, group, ...: nothing to do
		default:
			return f, fmt.Errorf("line %d: unexpected %q in an SDP fragment", n+1, line)
		}
	}
	if (f.ufrag == "") != (f.pwd == "") {
		return f, fmt.Errorf("an ICE restart needs both a=ice-ufrag and a=ice-pwd")
	}
	return f, nil
}

// patch handles a PATCH on the session: trickled candidates (204), or new
// ICE credentials, which restart ICE (200 with our new credentials and a
// new ETag). A trickle without If-Match is tolerated, since some players
// send none; a restart needs one ("*" or the current tag).
func (s *Session) patch(w http.ResponseWriter, r *http.Request) error {
	body, err := ReadBody(r, "application/trickle-ice-sdpfrag")
	if err != nil {
		return err
	}
	frag, err := parseSDPFrag(string(body))
	if err != nil {
		return Errorf(http.StatusBadRequest, "malformed trickle-ice-sdpfrag: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ifMatch := strings.TrimSpace(r.Header.Get("If-Match"))
	restart := frag.ufrag != "" && frag.ufrag != remoteUfrag(s.pc)
	if restart && ifMatch == "" {
		return Errorf(http.StatusPreconditionRequired, "an ICE restart needs an If-Match header")
	}
	if ifMatch != "" && ifMatch != "*" && ifMatch != s.etag {
		return Errorf(http.StatusPreconditionFailed, "If-Match %s does not match the current ICE session %s", ifMatch, s.etag)
	}
	if !restart {
		for _, c := range frag.cands {
			// Candidates we cannot use (other transports, unresolvable
			// names) are dropped silently, as RFC 8840 asks.
			_ = s.pc.AddICECandidate(c)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	answer, err := s.restartICE(r.Context(), frag)
	if err != nil {
		return &HTTPError{Code: http.StatusBadRequest, Msg: "ICE restart failed; the old ICE session stays", Err: err}
	}
	s.etag = newETag()
	w.Header().Set("Content-Type", "application/trickle-ice-sdpfrag")
	w.Header().Set("ETag", s.etag)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(answer))
	return nil
}

func remoteUfrag(pc *webrtc.PeerConnection) string {
	d, err := parseSDP(pc.RemoteDescription())
	if err != nil {
		return ""
	}
	for _, m := range d.MediaDescriptions {
		if v, ok := iceAttr(d, m, "ice-ufrag"); ok {
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
func (s *Session) restartICE(ctx context.Context, frag sdpFrag) (string, error) {
	d, err := parseSDP(s.pc.RemoteDescription())
	if err != nil {
		return "", fmt.Errorf("remote description: %w", err)
	}
	d.Attributes = replaceICE(d.Attributes, frag)
	for _, m := range d.MediaDescriptions {
		m.Attributes = replaceICE(m.Attributes, frag)
	}
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
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	for _, c := range frag.cands {
		_ = s.pc.AddICECandidate(c)
	}
	return localFrag(s.pc.LocalDescription())
}

func replaceICE(attrs []sdp.Attribute, frag sdpFrag) []sdp.Attribute {
	out := attrs[:0]
	for _, a := range attrs {
		switch a.Key {
		case "ice-ufrag":
			a.Value = frag.ufrag
		case "ice-pwd":
			a.Value = frag.pwd
		case "candidate", "end-of-candidates":
			continue
		}
		out = append(out, a)
	}
	return out
}

// localFrag renders our credentials and candidates as an SDP fragment for
// the first (bundle-tagged) media section.
func localFrag(desc *webrtc.SessionDescription) (string, error) {
	d, err := parseSDP(desc)
	if err != nil {
		return "", fmt.Errorf("local description: %w", err)
	}
	if len(d.MediaDescriptions) == 0 {
		return "", fmt.Errorf("no media sections")
	}
	m := d.MediaDescriptions[0]
	var b strings.Builder
	ufrag, _ := iceAttr(d, m, "ice-ufrag")
	pwd, _ := iceAttr(d, m, "ice-pwd")
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", ufrag, pwd)
	if v, ok := iceAttr(d, m, "ice-options"); ok {
		fmt.Fprintf(&b, "a=ice-options:%s\r\n", v)
	}
	mid, _ := m.Attribute("mid")
	fmt.Fprintf(&b, "m=%s 9 %s %s\r\na=mid:%s\r\n", m.MediaName.Media, strings.Join(m.MediaName.Protos, "/"),
		strings.Join(m.MediaName.Formats, " "), mid)
	for _, a := range m.Attributes {
		if a.Key == "candidate" {
			fmt.Fprintf(&b, "a=candidate:%s\r\n", a.Value)
		}
	}
	b.WriteString("a=end-of-candidates\r\n")
	return b.String(), nil
}
