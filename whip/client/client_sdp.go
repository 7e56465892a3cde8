package client

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pion/sdp/v3"

	"whipgate/whip/sdpfrag"
)

// ownOffer is what the client needs to know of its own offer: its ICE
// credentials and its first media section, which carries the candidates
// (max-bundle).
func ownOffer(raw string) (sdpfrag.Frag, error) {
	f, err := sdpfrag.FromDescription(raw)
	if err != nil {
		return f, fmt.Errorf("whip: own offer: %w", err)
	}
	f.Candidates = nil // the offer is made without candidates; they are trickled
	return f, nil
}

// trickleFrag renders an application/trickle-ice-sdpfrag body (RFC 8840):
// the offer's credentials and first media section with cands
// ("candidate:…" strings as pion gives them).
func trickleFrag(o sdpfrag.Frag, cands []string, end bool) string {
	o.Candidates = make([]sdpfrag.Candidate, len(cands))
	for i, c := range cands {
		o.Candidates[i] = sdpfrag.Candidate{Value: c, Mid: o.Mid}
	}
	o.End = end
	return o.String()
}

// parseRestartAnswer reads a server's reply to an ICE restart leniently:
// lines it does not know are skipped, but the new credentials must be
// there.
func parseRestartAnswer(body string) (sdpfrag.Frag, error) {
	f, err := sdpfrag.ParseLenient(body)
	if err == nil && (f.Ufrag == "" || f.Pwd == "") {
		err = errors.New("no a=ice-ufrag and a=ice-pwd")
	}
	if err != nil {
		return f, fmt.Errorf("%w: ICE restart answer: %w", ErrProtocol, err)
	}
	return f, nil
}

// applyRestart returns the answer with the restart's credentials and
// candidates in place of the old ones, for SetRemoteDescription.
func applyRestart(answer string, f sdpfrag.Frag) (string, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(answer); err != nil {
		return "", fmt.Errorf("whip: parse answer: %w", err)
	}
	f.End = true
	sdpfrag.Apply(&d, f)
	out, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("whip: render answer: %w", err)
	}
	return string(out), nil
}

// clientCheckAnswer verifies that the answer accepted what was offered:
// every media section (port not 0, not inactive) and every simulcast rid,
// judged by the answer's a=simulcast:recv line or else its a=rid recv
// lines (OBS counts the simulcast line too).
func clientCheckAnswer(offer, answer string) error {
	var o, a sdp.SessionDescription
	if err := o.UnmarshalString(offer); err != nil {
		return fmt.Errorf("whip: parse own offer: %w", err)
	}
	if err := a.UnmarshalString(answer); err != nil {
		return fmt.Errorf("%w: the answer is not valid SDP: %w", ErrProtocol, err)
	}
	for i, om := range o.MediaDescriptions {
		mid, _ := om.Attribute("mid")
		am := clientFindMedia(&a, mid, i)
		if am == nil {
			return fmt.Errorf("%w: the answer has no media section for mid %q", ErrProtocol, mid)
		}
		if am.MediaName.Port.Value == 0 {
			return fmt.Errorf("%w: the server rejected the %s section (mid %q, port 0)", ErrProtocol, om.MediaName.Media, mid)
		}
		if _, inactive := am.Attribute("inactive"); inactive {
			return fmt.Errorf("%w: the server answered the %s section inactive (mid %q)", ErrProtocol, om.MediaName.Media, mid)
		}
		offered := clientRIDs(om, "send")
		if len(offered) == 0 {
			continue
		}
		accepted := clientSimulcastRIDs(am, "recv")
		if accepted == nil {
			accepted = clientRIDs(am, "recv")
		}
		var missing []string
		for _, r := range offered {
			if !slices.Contains(accepted, r) {
				missing = append(missing, r)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%w: the server accepted simulcast rids %q but not %q", ErrProtocol, accepted, missing)
		}
	}
	return nil
}

func clientFindMedia(d *sdp.SessionDescription, mid string, index int) *sdp.MediaDescription {
	for _, m := range d.MediaDescriptions {
		if v, _ := m.Attribute("mid"); mid != "" && v == mid {
			return m
		}
	}
	if index < len(d.MediaDescriptions) {
		return d.MediaDescriptions[index]
	}
	return nil
}

// clientRIDs lists the a=rid lines of a media section in direction dir.
func clientRIDs(m *sdp.MediaDescription, dir string) []string {
	var out []string
	for _, a := range m.Attributes {
		if a.Key != "rid" {
			continue
		}
		f := strings.Fields(a.Value)
		if len(f) >= 2 && f[1] == dir {
			out = append(out, f[0])
		}
	}
	return out
}

// clientSimulcastRIDs lists the rids of the a=simulcast line for dir (RFC
// 8853: "recv 0;1;2", alternatives split by commas, paused ones marked
// with ~), or nil without one.
func clientSimulcastRIDs(m *sdp.MediaDescription, dir string) []string {
	v, ok := m.Attribute("simulcast")
	if !ok {
		return nil
	}
	f := strings.Fields(v)
	out := []string{}
	for i := 0; i+1 < len(f); i += 2 {
		if f[i] != dir {
			continue
		}
		for _, alt := range strings.FieldsFunc(f[i+1], func(r rune) bool { return r == ';' || r == ',' }) {
			out = append(out, strings.TrimPrefix(alt, "~"))
		}
	}
	return out
}
