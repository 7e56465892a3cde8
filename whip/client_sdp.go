package whip

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pion/sdp/v3"
)

// clientOfferInfo is what the client needs to know of its own offer.
type clientOfferInfo struct {
	ufrag, pwd, iceOptions string
	// The first media section carries the candidates (max-bundle).
	mid, media, protos, formats string
}

func clientParseOffer(raw string) (clientOfferInfo, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(raw); err != nil {
		return clientOfferInfo{}, fmt.Errorf("whip: parse own offer: %w", err)
	}
	if len(d.MediaDescriptions) == 0 {
		return clientOfferInfo{}, fmt.Errorf("whip: the offer has no media")
	}
	m := d.MediaDescriptions[0]
	info := clientOfferInfo{
		media:   m.MediaName.Media,
		protos:  strings.Join(m.MediaName.Protos, "/"),
		formats: strings.Join(m.MediaName.Formats, " "),
	}
	info.mid, _ = m.Attribute("mid")
	info.ufrag = clientICEAttr(&d, m, "ice-ufrag")
	info.pwd = clientICEAttr(&d, m, "ice-pwd")
	info.iceOptions = clientICEAttr(&d, m, "ice-options")
	return info, nil
}

// clientICEAttr reads an ICE attribute at media level, else session level.
func clientICEAttr(d *sdp.SessionDescription, m *sdp.MediaDescription, key string) string {
	if v, ok := m.Attribute(key); ok {
		return v
	}
	v, _ := d.Attribute(key)
	return v
}

// clientFrag renders an application/trickle-ice-sdpfrag body (RFC 8840):
// the ICE credentials, the first media section and its candidates
// ("candidate:…" strings as pion gives them).
func clientFrag(o clientOfferInfo, cands []string, end bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", o.ufrag, o.pwd)
	if o.iceOptions != "" {
		fmt.Fprintf(&b, "a=ice-options:%s\r\n", o.iceOptions)
	}
	fmt.Fprintf(&b, "m=%s 9 %s %s\r\na=mid:%s\r\n", o.media, o.protos, o.formats, o.mid)
	for _, c := range cands {
		fmt.Fprintf(&b, "a=%s\r\n", c)
	}
	if end {
		b.WriteString("a=end-of-candidates\r\n")
	}
	return b.String()
}

// clientFragAnswer is the server's reply to an ICE restart.
type clientFragAnswer struct {
	ufrag, pwd string
	cands      []string // "candidate:…"
}

// clientParseFrag reads a server's sdpfrag leniently: lines it does not
// know are skipped.
func clientParseFrag(body string) (clientFragAnswer, error) {
	var f clientFragAnswer
	for _, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			f.ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:"):
			f.pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "a=candidate:"):
			f.cands = append(f.cands, strings.TrimPrefix(line, "a="))
		}
	}
	if f.ufrag == "" || f.pwd == "" {
		return f, fmt.Errorf("%w: ICE restart answer without a=ice-ufrag and a=ice-pwd", ErrClientProtocol)
	}
	return f, nil
}

// clientApplyFrag returns the answer with the restart's credentials and
// candidates in place of the old ones, for SetRemoteDescription.
func clientApplyFrag(answer string, f clientFragAnswer) (string, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(answer); err != nil {
		return "", fmt.Errorf("whip: parse answer: %w", err)
	}
	replace := func(attrs []sdp.Attribute) ([]sdp.Attribute, bool) {
		out := attrs[:0]
		had := false
		for _, a := range attrs {
			switch a.Key {
			case "ice-ufrag":
				a.Value, had = f.ufrag, true
			case "ice-pwd":
				a.Value = f.pwd
			case "candidate", "end-of-candidates":
				continue
			}
			out = append(out, a)
		}
		return out, had
	}
	var had bool
	d.Attributes, had = replace(d.Attributes)
	for i, m := range d.MediaDescriptions {
		var h bool
		m.Attributes, h = replace(m.Attributes)
		had = had || h
		if i == 0 {
			for _, c := range f.cands {
				m.Attributes = append(m.Attributes, sdp.Attribute{Key: "candidate", Value: strings.TrimPrefix(c, "candidate:")})
			}
			m.Attributes = append(m.Attributes, sdp.Attribute{Key: "end-of-candidates"})
		}
	}
	if !had {
		d.Attributes = append(d.Attributes,
			sdp.Attribute{Key: "ice-ufrag", Value: f.ufrag}, sdp.Attribute{Key: "ice-pwd", Value: f.pwd})
	}
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
		return fmt.Errorf("%w: the answer is not valid SDP: %w", ErrClientProtocol, err)
	}
	for i, om := range o.MediaDescriptions {
		mid, _ := om.Attribute("mid")
		am := clientFindMedia(&a, mid, i)
		if am == nil {
			return fmt.Errorf("%w: the answer has no media section for mid %q", ErrClientProtocol, mid)
		}
		if am.MediaName.Port.Value == 0 {
			return fmt.Errorf("%w: the server rejected the %s section (mid %q, port 0)", ErrClientProtocol, om.MediaName.Media, mid)
		}
		if _, inactive := am.Attribute("inactive"); inactive {
			return fmt.Errorf("%w: the server answered the %s section inactive (mid %q)", ErrClientProtocol, om.MediaName.Media, mid)
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
			return fmt.Errorf("%w: the server accepted simulcast rids %q but not %q", ErrClientProtocol, accepted, missing)
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
