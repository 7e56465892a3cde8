package client

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pion/stun/v4"

	"whipgate/whip/rtc"
)

// LinkEntry is one link of an HTTP Link header (RFC 8288), as a WHIP
// client reads it: the target URI and its parameters.
type LinkEntry struct {
	// URI is the target without the angle brackets.
	URI string `json:"uri"`
	// Params holds the parameters with lower-case names and unquoted
	// values ("rel", "username", "credential", "credential-type").
	Params map[string]string `json:"params,omitempty"`
}

// Rels lists the link's relation types (rel may hold several, space
// separated), lower-cased.
func (l LinkEntry) Rels() []string {
	return strings.Fields(strings.ToLower(l.Params["rel"]))
}

// ParseLinkHeader parses Link header values leniently, because WHIP servers
// disagree on the syntax: one header line per link or several joined with
// commas, targets with or without <>, parameters quoted or not, and
// "name: value" as well as "name=value" (Eyevinn's server writes
// `credential: "…"`). Pieces that hold no URI are dropped; it never fails.
func ParseLinkHeader(values []string) []LinkEntry {
	var out []LinkEntry
	for _, v := range values {
		for _, raw := range linkSplit(v, ',') {
			if e, ok := linkParseOne(raw); ok {
				out = append(out, e)
			}
		}
	}
	return out
}

// linkSplit splits s at sep where sep is outside quotes and <>.
func linkSplit(s string, sep byte) []string {
	var parts []string
	inQuote, inAngle, escaped := false, false, false
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case inQuote && c == '\\':
			escaped = true
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '<':
			inAngle = true
		case !inQuote && c == '>':
			inAngle = false
		case !inQuote && !inAngle && c == sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func linkParseOne(raw string) (LinkEntry, bool) {
	parts := linkSplit(raw, ';')
	uri := strings.TrimSpace(parts[0])
	uri = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(uri, "<"), ">"))
	uri = linkUnquote(uri)
	if uri == "" {
		return LinkEntry{}, false
	}
	e := LinkEntry{URI: uri}
	for _, p := range parts[1:] {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		// The first '=' or ':' ends the name; a value may hold either
		// (TURN REST usernames are "expiry:user").
		i := strings.IndexAny(p, "=:")
		var name, value string
		if i < 0 {
			name = p
		} else {
			name, value = p[:i], linkUnquote(strings.TrimSpace(p[i+1:]))
		}
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		if e.Params == nil {
			e.Params = make(map[string]string)
		}
		if _, dup := e.Params[name]; !dup { // RFC 8288: the first occurrence wins
			e.Params[name] = value
		}
	}
	return e, true
}

func linkUnquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	s = s[1 : len(s)-1]
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// errLinkSkipped wraps the reasons LinkICEServers leaves an entry out.
var errLinkSkipped = errors.New("ice server link skipped")

// LinkICEServers picks the STUN and TURN servers (rel="ice-server", RFC
// 9725 §4.6) out of parsed links. A link with no rel but a stun:, turn: or
// turns: target counts too (OBS does not check rel). Entries pion would
// reject, which would fail the whole configuration, are left out: an
// unparsable URI, TURN without username and credential, a credential-type
// other than password. The second result says why each was left out.
func LinkICEServers(links []LinkEntry) ([]rtc.ICEServer, []error) {
	var servers []rtc.ICEServer
	var skipped []error
	for _, l := range links {
		rels := l.Rels()
		lower := strings.ToLower(l.URI)
		iceScheme := strings.HasPrefix(lower, "stun:") || strings.HasPrefix(lower, "stuns:") ||
			strings.HasPrefix(lower, "turn:") || strings.HasPrefix(lower, "turns:")
		switch {
		case len(rels) == 0 && iceScheme:
		case slices.Contains(rels, "ice-server"):
		default:
			continue // another relation (an extension): not ours to judge
		}
		uri := l.URI
		if i := strings.IndexByte(uri, ':'); i > 0 {
			uri = strings.ToLower(uri[:i]) + uri[i:]
		}
		u, err := rtc.ParseICEURL(uri)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("%w: %q: %w", errLinkSkipped, l.URI, err))
			continue
		}
		if ct := strings.ToLower(l.Params["credential-type"]); ct != "" && ct != "password" {
			skipped = append(skipped, fmt.Errorf("%w: %q: credential-type %q is not supported", errLinkSkipped, l.URI, ct))
			continue
		}
		s := rtc.ICEServer{URLs: []string{uri}, Username: l.Params["username"], Credential: l.Params["credential"]}
		if (u.Scheme == stun.SchemeTypeTURN || u.Scheme == stun.SchemeTypeTURNS) && (s.Username == "" || s.Credential == "") {
			skipped = append(skipped, fmt.Errorf("%w: %q: TURN without username and credential", errLinkSkipped, l.URI))
			continue
		}
		servers = append(servers, s)
	}
	return servers, skipped
}

// HasTURN reports whether any server is a TURN server.
func HasTURN(servers []rtc.ICEServer) bool {
	for _, s := range servers {
		for _, u := range s.URLs {
			l := strings.ToLower(u)
			if strings.HasPrefix(l, "turn:") || strings.HasPrefix(l, "turns:") {
				return true
			}
		}
	}
	return false
}
