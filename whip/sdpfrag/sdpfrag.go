// Package sdpfrag reads and writes application/trickle-ice-sdpfrag bodies
// (RFC 8840), the PATCH bodies of WHIP and WHEP (RFC 9725 §4.3): trickled
// candidates, and the new credentials of an ICE restart. The server's
// session resource and the WHIP client both use it, so what one writes the
// other reads.
//
// It is a leaf: it imports nothing of whipgate and only pion's SDP parser.
package sdpfrag

import (
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"
)

// Frag is one SDP fragment: ICE credentials and the candidates of one
// media section.
type Frag struct {
	Ufrag, Pwd, ICEOptions string
	// Media, Protos and Formats render the m= line the candidates belong to
	// ("video", "UDP/TLS/RTP/SAVPF", "96 97"); Mid is its a=mid.
	Media, Protos, Formats, Mid string
	Candidates                  []Candidate
	// End is a=end-of-candidates: gathering is complete.
	End bool
}

// Candidate is one a=candidate line and the media section it came in.
type Candidate struct {
	// Value is the attribute without "a=": "candidate:1 1 udp …".
	Value string
	// Mid is the a=mid of its section, "" when the section had none; MLine
	// is the index of its m= line (0 before any).
	Mid   string
	MLine int
}

// Restart reports whether f carries ICE credentials, which in a PATCH ask
// for an ICE restart unless they are the current ones.
func (f Frag) Restart() bool { return f.Ufrag != "" }

// Parse reads a fragment a client sent, strictly: a line that is neither an
// attribute, an m= line nor a c= line is an error naming the line, and
// credentials come both or not at all.
func Parse(body string) (Frag, error) { return parse(body, true) }

// ParseLenient reads a fragment a server answered: lines it does not know
// are skipped (servers add what RFC 8840 does not list).
func ParseLenient(body string) (Frag, error) { return parse(body, false) }

// isControl reports an ASCII control character (a tab too: white space
// at a line's ends is trimmed before, and none belongs inside a value).
func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func parse(body string, strict bool) (Frag, error) {
	var f Frag
	mid, mline := "", -1
	for n, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		line = strings.TrimSpace(line)
		// A control character inside a line (a lone CR, say) would end or
		// break the line when the value is written into an SDP again:
		// "a=ice-pwd:\r0" read as the password "\r0" and gave an answer
		// whose password was empty (FuzzParseRestartAnswer).
		if i := strings.IndexFunc(line, isControl); i >= 0 {
			return f, fmt.Errorf("line %d: control character %q in an SDP fragment", n+1, line[i])
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "m="):
			mline++
			mid = ""
		case strings.HasPrefix(line, "a=mid:"):
			mid = strings.TrimPrefix(line, "a=mid:")
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			f.Ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:"):
			f.Pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "a=ice-options:"):
			f.ICEOptions = strings.TrimPrefix(line, "a=ice-options:")
		case strings.HasPrefix(line, "a=candidate:"):
			f.Candidates = append(f.Candidates, Candidate{Value: strings.TrimPrefix(line, "a="), Mid: mid, MLine: max(mline, 0)})
		case line == "a=end-of-candidates":
			f.End = true
		case strings.HasPrefix(line, "a="), strings.HasPrefix(line, "c="):
			// group, ...: nothing to do
		case strict:
			return f, fmt.Errorf("line %d: unexpected %q in an SDP fragment", n+1, line)
		}
	}
	if (f.Ufrag == "") != (f.Pwd == "") {
		return f, fmt.Errorf("ICE credentials need both a=ice-ufrag and a=ice-pwd")
	}
	return f, nil
}

// String renders f: its credentials, its media section and candidates.
func (f Frag) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", f.Ufrag, f.Pwd)
	if f.ICEOptions != "" {
		fmt.Fprintf(&b, "a=ice-options:%s\r\n", f.ICEOptions)
	}
	fmt.Fprintf(&b, "m=%s 9 %s %s\r\na=mid:%s\r\n", f.Media, f.Protos, f.Formats, f.Mid)
	for _, c := range f.Candidates {
		fmt.Fprintf(&b, "a=%s\r\n", c.Value)
	}
	if f.End {
		b.WriteString("a=end-of-candidates\r\n")
	}
	return b.String()
}

// FromDescription is the fragment of a whole description: its credentials
// and its first media section (the bundle-tagged one, under max-bundle)
// with that section's candidates.
func FromDescription(raw string) (Frag, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(raw); err != nil {
		return Frag{}, fmt.Errorf("sdpfrag: parse description: %w", err)
	}
	if len(d.MediaDescriptions) == 0 {
		return Frag{}, fmt.Errorf("sdpfrag: the description has no media section")
	}
	m := d.MediaDescriptions[0]
	f := Frag{
		Ufrag:      Attribute(&d, m, "ice-ufrag"),
		Pwd:        Attribute(&d, m, "ice-pwd"),
		ICEOptions: Attribute(&d, m, "ice-options"),
		Media:      m.MediaName.Media,
		Protos:     strings.Join(m.MediaName.Protos, "/"),
		Formats:    strings.Join(m.MediaName.Formats, " "),
	}
	f.Mid, _ = m.Attribute("mid")
	for _, a := range m.Attributes {
		if a.Key == "candidate" {
			f.Candidates = append(f.Candidates, Candidate{Value: "candidate:" + a.Value, Mid: f.Mid})
		}
	}
	// What Parse refuses, a fragment made here must not hold either.
	values := []string{f.Ufrag, f.Pwd, f.ICEOptions, f.Media, f.Protos, f.Formats, f.Mid}
	for _, c := range f.Candidates {
		values = append(values, c.Value)
	}
	for _, v := range values {
		if i := strings.IndexFunc(v, isControl); i >= 0 {
			return Frag{}, fmt.Errorf("sdpfrag: control character %q in the description", v[i])
		}
	}
	return f, nil
}

// Attribute reads an attribute at media level, else at session level
// (ICE credentials may stand at either).
func Attribute(d *sdp.SessionDescription, m *sdp.MediaDescription, key string) string {
	if v, ok := m.Attribute(key); ok {
		return v
	}
	v, _ := d.Attribute(key)
	return v
}

// Apply puts f's credentials in place of d's everywhere they stand (at
// session level where one stood nowhere), drops d's candidates, and adds
// f's to the first media section, with a=end-of-candidates if f.End: what
// a restart's fragment makes of the description it restarts.
func Apply(d *sdp.SessionDescription, f Frag) {
	var hadUfrag, hadPwd bool
	replace := func(attrs []sdp.Attribute) []sdp.Attribute {
		out := attrs[:0]
		for _, a := range attrs {
			switch a.Key {
			case "ice-ufrag":
				a.Value, hadUfrag = f.Ufrag, true
			case "ice-pwd":
				a.Value, hadPwd = f.Pwd, true
			case "candidate", "end-of-candidates":
				continue
			}
			out = append(out, a)
		}
		return out
	}
	d.Attributes = replace(d.Attributes)
	for i, m := range d.MediaDescriptions {
		m.Attributes = replace(m.Attributes)
		if i != 0 {
			continue
		}
		for _, c := range f.Candidates {
			m.Attributes = append(m.Attributes, sdp.Attribute{Key: "candidate", Value: strings.TrimPrefix(c.Value, "candidate:")})
		}
		if f.End {
			m.Attributes = append(m.Attributes, sdp.Attribute{Key: "end-of-candidates"})
		}
	}
	if !hadUfrag {
		d.Attributes = append(d.Attributes, sdp.Attribute{Key: "ice-ufrag", Value: f.Ufrag})
	}
	if !hadPwd {
		d.Attributes = append(d.Attributes, sdp.Attribute{Key: "ice-pwd", Value: f.Pwd})
	}
}
