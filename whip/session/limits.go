package session

import (
	"bytes"
	"fmt"
	"net/http"
	"time"

	"whipgate/whip/problem"
)

// Limits bound what one client may cost the box: sessions, offers and
// trickled candidates. The zero value of each field means its default; the
// README's limits table lists them all.
type Limits struct {
	// MaxSessions caps live WHIP and WHEP sessions together, connected or
	// not. Default 256.
	MaxSessions int `yaml:"max_sessions"`
	// MaxViewersPerStream caps the WHEP sessions of one stream; audiences
	// beyond a few monitors belong on an SFU (egress). Default 32.
	MaxViewersPerStream int `yaml:"max_viewers_per_stream"`
	// MaxPendingPerClient caps the sessions one client address has that
	// are not connected yet. Default 16.
	MaxPendingPerClient int `yaml:"max_pending_per_client"`
	// MaxSDPBytes bounds an offer or a PATCH body. Default 64 KiB (real
	// offers are a few KiB).
	MaxSDPBytes int `yaml:"max_sdp_bytes"`
	// MaxMediaSections bounds an offer's m= sections. Default 8.
	MaxMediaSections int `yaml:"max_media_sections"`
	// MaxFormats bounds the payload types of one m= section. Default 64.
	MaxFormats int `yaml:"max_formats"`
	// MaxAttributes bounds the a= lines of an offer. Default 1024.
	MaxAttributes int `yaml:"max_attributes"`
	// MaxCandidates bounds the remote candidates of one ICE session (the
	// offer's plus those trickled): each costs connectivity checks from
	// the box. Default 64.
	MaxCandidates int `yaml:"max_candidates"`
	// MaxPatchCandidates bounds the candidates of one PATCH. Default 16.
	MaxPatchCandidates int `yaml:"max_patch_candidates"`
	// PatchRate and PatchBurst rate-limit the PATCHes of one session (per
	// second, and the burst allowed at once). Defaults 5 and 20.
	PatchRate  float64 `yaml:"patch_rate"`
	PatchBurst int     `yaml:"patch_burst"`
}

// ApplyDefaults fills the zero fields.
func (l *Limits) ApplyDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxSessions, 256)
	def(&l.MaxViewersPerStream, 32)
	def(&l.MaxPendingPerClient, 16)
	def(&l.MaxSDPBytes, 64<<10)
	def(&l.MaxMediaSections, 8)
	def(&l.MaxFormats, 64)
	def(&l.MaxAttributes, 1024)
	def(&l.MaxCandidates, 64)
	def(&l.MaxPatchCandidates, 16)
	def(&l.PatchBurst, 20)
	if l.PatchRate <= 0 {
		l.PatchRate = 5
	}
}

// Validate checks the limits.
func (l Limits) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{
		{"max_sessions", l.MaxSessions}, {"max_viewers_per_stream", l.MaxViewersPerStream},
		{"max_pending_per_client", l.MaxPendingPerClient}, {"max_sdp_bytes", l.MaxSDPBytes},
		{"max_media_sections", l.MaxMediaSections}, {"max_formats", l.MaxFormats},
		{"max_attributes", l.MaxAttributes}, {"max_candidates", l.MaxCandidates},
		{"max_patch_candidates", l.MaxPatchCandidates}, {"patch_burst", l.PatchBurst},
	} {
		if f.v < 0 {
			return fmt.Errorf("limits.%s: %d is negative", f.name, f.v)
		}
	}
	if l.PatchRate < 0 {
		return fmt.Errorf("limits.patch_rate: %g is negative", l.PatchRate)
	}
	return nil
}

// busyRetry is the Retry-After of a 503 from a limit: capacity frees up
// as sessions connect or end.
const busyRetry = 2 * time.Second

func busy(format string, args ...any) *problem.Error {
	e := problem.Errorf(http.StatusServiceUnavailable, format, args...)
	e.RetryAfter = int(busyRetry / time.Second)
	return e
}

// checkShape counts an offer's lines before anything parses it: an offer
// past the limits is refused for the price of a scan.
func (l Limits) checkShape(body []byte) error {
	var media, attrs, candidates int
	for line := range bytes.Lines(body) {
		switch {
		case bytes.HasPrefix(line, []byte("m=")):
			media++
			if media > l.MaxMediaSections {
				return problem.Errorf(http.StatusBadRequest, "the offer has more than %d media sections (limits.max_media_sections)", l.MaxMediaSections)
			}
			// "m=video 9 UDP/TLS/RTP/SAVPF 96 97 …": formats from the fourth field.
			if n := len(bytes.Fields(line)) - 3; n > l.MaxFormats {
				return problem.Errorf(http.StatusBadRequest, "media section %d lists %d formats, more than %d (limits.max_formats)", media-1, n, l.MaxFormats)
			}
		case bytes.HasPrefix(line, []byte("a=")):
			attrs++
			if attrs > l.MaxAttributes {
				return problem.Errorf(http.StatusBadRequest, "the offer has more than %d attributes (limits.max_attributes)", l.MaxAttributes)
			}
			if bytes.HasPrefix(line, []byte("a=candidate:")) {
				candidates++
				if candidates > l.MaxCandidates {
					return problem.Errorf(http.StatusBadRequest, "the offer has more than %d candidates (limits.max_candidates)", l.MaxCandidates)
				}
			}
		}
	}
	return nil
}
