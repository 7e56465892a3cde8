package egress

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"

	"whipgate/gateway"
	"whipgate/whip/client"
	"whipgate/whip/rtc"
)

// Egress modes: how a stream's layers go to the target.
const (
	// ModeSessions publishes each layer in its own WHIP session
	// (RFC 9725 allows one video track per session); any SFU takes it.
	ModeSessions = "sessions"
	// ModeSimulcast publishes all layers in one session, one video
	// section with a rid per layer (RFC 8853); the target must accept it.
	ModeSimulcast = "simulcast"
)

// Simulcast rid styles.
const (
	// RIDStyleOBS names layers "0", "1", … with "0" the full
	// resolution (the first configured layer), as OBS 32 does.
	RIDStyleOBS = "obs"
	// RIDStyleSora names layers "r0".."r2" with "r0" the lowest, as
	// Sora's SDKs do.
	RIDStyleSora = "sora"
)

// Egress targets, for target-specific limits.
const (
	TargetGeneric = "generic"
	// TargetSora is Shiguredo Sora, which documents at most 15 Mbps
	// per video stream.
	TargetSora = "sora"
)

// egressSoraMaxBps is the per-stream bitrate Sora documents as supported.
const egressSoraMaxBps = 15_000_000

// LayerPlaceholder in a URL is replaced by the layer name, for
// targets that take one publisher per URL (MediaMTX paths).
const LayerPlaceholder = "{layer}"

// Config is one WHIP publish of a stream to a target. The zero value
// of each optional field means its default.
type Config struct {
	// ID names the egress in the API and logs. Default: the stream name.
	ID string `yaml:"id" json:"id"`
	// Stream is the hub stream to publish. Required.
	Stream string `yaml:"stream" json:"stream"`
	// URL is the target's WHIP endpoint (http or https). In mode sessions
	// it may contain {layer}, replaced by each layer's name. Required.
	URL string `yaml:"url" json:"url"`
	// Token is the Bearer token for the target. Default none (no
	// Authorization header is sent).
	Token string `yaml:"token" json:"token,omitempty"`
	// Layers are the video layers to publish, in order (the first is the
	// full-resolution one for simulcast). Default: every video layer of
	// the stream, in the stream's order.
	Layers []string `yaml:"layers" json:"layers,omitempty"`
	// Mode is sessions (one WHIP session per layer) or simulcast (one
	// session, a rid per layer). Default sessions.
	Mode string `yaml:"mode" json:"mode,omitempty"`
	// RIDStyle names the simulcast rids: obs ("0" = full resolution) or
	// sora ("r0" = lowest, at most three layers). Default obs.
	RIDStyle string `yaml:"rid_style" json:"rid_style,omitempty"`
	// ICEServers replace the STUN/TURN servers the target offers in its
	// Link headers. Default none: use the target's.
	ICEServers []rtc.ICEServer `yaml:"ice_servers" json:"ice_servers,omitempty"`
	// RelayOnly sends media only through TURN (ICE transport policy
	// relay), over UDP or TCP as the TURN URL says. Default false.
	RelayOnly bool `yaml:"relay_only" json:"relay_only,omitempty"`
	// PacingFactor is the pacing rate as a multiple of each layer's
	// measured bitrate; keyframe bursts leave no faster. Default 2.5.
	PacingFactor float64 `yaml:"pacing_factor" json:"pacing_factor,omitempty"`
	// PionSRTP sends the media through pion's SRTP session, ICE
	// connection and sockets (default buffers, a system call a packet)
	// instead of sealing it beneath pion and sending it in batches from
	// sockets with 8 MiB buffers, which costs several times the CPU per
	// packet. A relayed (TURN) path takes pion's path anyway. Default false.
	PionSRTP bool `yaml:"pion_srtp" json:"pion_srtp,omitempty"`
	// Target is generic or sora; sora enables Sora's documented limits
	// (a warning above 15 Mbps per layer). Default: sora when the URL's
	// host names Sora, else generic.
	Target string `yaml:"target" json:"target,omitempty"`
}

// applyDefaults fills the defaults that need no stream.
func (c *Config) applyDefaults() {
	c.ID = c.EffectiveID()
	if c.Mode == "" {
		c.Mode = ModeSessions
	}
	if c.RIDStyle == "" {
		c.RIDStyle = RIDStyleOBS
	}
	if c.PacingFactor == 0 {
		c.PacingFactor = 2.5
	}
	if c.Target == "" {
		c.Target = TargetGeneric
		if u, err := url.Parse(c.URL); err == nil && strings.Contains(strings.ToLower(u.Hostname()), "sora") {
			c.Target = TargetSora
		}
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if strings.TrimSpace(c.Stream) == "" {
		return errors.New("egress: stream is required")
	}
	if err := gateway.ValidStreamName(c.Stream); err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	// The id names the egress in URLs, metrics and the dashboard: the
	// stream-name rule, like the stream's.
	if err := gateway.ValidID("egress id", c.EffectiveID()); err != nil {
		return fmt.Errorf("egress: %w", err)
	}
	if c.URL == "" {
		return fmt.Errorf("egress %s: url is required", c.EffectiveID())
	}
	u, err := url.Parse(strings.ReplaceAll(c.URL, LayerPlaceholder, "layer"))
	if err != nil {
		return fmt.Errorf("egress %s: url: %w", c.EffectiveID(), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("egress %s: url %q: scheme must be http or https, not %q", c.EffectiveID(), client.Redact(c.URL), u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("egress %s: url %q has no host", c.EffectiveID(), client.Redact(c.URL))
	}
	if strings.ContainsAny(c.Token, "\r\n") {
		return fmt.Errorf("egress %s: token contains a line break", c.EffectiveID())
	}
	switch c.Mode {
	case "", ModeSessions:
	case ModeSimulcast:
		if strings.Contains(c.URL, LayerPlaceholder) {
			return fmt.Errorf("egress %s: mode simulcast sends all layers in one session, so the url cannot contain %s", c.EffectiveID(), LayerPlaceholder)
		}
	default:
		return fmt.Errorf("egress %s: unknown mode %q (want %s or %s)", c.EffectiveID(), c.Mode, ModeSessions, ModeSimulcast)
	}
	switch c.RIDStyle {
	case "", RIDStyleOBS:
	case RIDStyleSora:
		if len(c.Layers) > 3 {
			return fmt.Errorf("egress %s: rid_style sora has three rids (r0..r2), but %d layers are configured", c.EffectiveID(), len(c.Layers))
		}
	default:
		return fmt.Errorf("egress %s: unknown rid_style %q (want %s or %s)", c.EffectiveID(), c.RIDStyle, RIDStyleOBS, RIDStyleSora)
	}
	switch c.Target {
	case "", TargetGeneric, TargetSora:
	default:
		return fmt.Errorf("egress %s: unknown target %q (want %s or %s)", c.EffectiveID(), c.Target, TargetGeneric, TargetSora)
	}
	seen := map[string]bool{}
	for _, l := range c.Layers {
		// A layer goes into the target URL ({layer}) and the offer (rid).
		if err := gateway.ValidLayerName(l); err != nil {
			return fmt.Errorf("egress %s: %w", c.EffectiveID(), err)
		}
		if seen[l] {
			return fmt.Errorf("egress %s: layer %q listed twice", c.EffectiveID(), l)
		}
		seen[l] = true
	}
	if math.IsNaN(c.PacingFactor) || math.IsInf(c.PacingFactor, 0) {
		return fmt.Errorf("egress %s: pacing_factor %v is not a finite number", c.EffectiveID(), c.PacingFactor)
	}
	if c.PacingFactor != 0 && c.PacingFactor < 1 {
		return fmt.Errorf("egress %s: pacing_factor %.2f is below 1 and could never keep up", c.EffectiveID(), c.PacingFactor)
	}
	for _, s := range c.ICEServers {
		if len(s.URLs) == 0 {
			return fmt.Errorf("egress %s: an ice_servers entry has no urls", c.EffectiveID())
		}
		for _, u := range s.URLs {
			l := strings.ToLower(u)
			if !strings.HasPrefix(l, "stun:") && !strings.HasPrefix(l, "stuns:") && !strings.HasPrefix(l, "turn:") && !strings.HasPrefix(l, "turns:") {
				return fmt.Errorf("egress %s: ice server %q: scheme must be stun, stuns, turn or turns", c.EffectiveID(), u)
			}
			if (strings.HasPrefix(l, "turn:") || strings.HasPrefix(l, "turns:")) && (s.Username == "" || s.Credential == "") {
				return fmt.Errorf("egress %s: TURN server %q needs username and credential", c.EffectiveID(), u)
			}
			if _, err := rtc.ParseICEURL(u); err != nil {
				return fmt.Errorf("egress %s: ice server %q: %w", c.EffectiveID(), u, err)
			}
		}
	}
	if c.RelayOnly && len(c.ICEServers) > 0 && !client.HasTURN(c.ICEServers) {
		return fmt.Errorf("egress %s: relay_only needs a TURN server, and ice_servers has none", c.EffectiveID())
	}
	return nil
}

// EffectiveID is the egress's id: ID, or by default the stream name. It is
// the one place that rule is written.
func (c Config) EffectiveID() string {
	if c.ID != "" {
		return c.ID
	}
	return c.Stream
}

// egressRIDs names the simulcast rids for n layers given in order, first
// the full-resolution one.
func egressRIDs(style string, n int) []string {
	out := make([]string, n)
	for i := range n {
		if style == RIDStyleSora {
			out[i] = fmt.Sprintf("r%d", n-1-i) // r0 is the lowest: the last layer
		} else {
			out[i] = fmt.Sprintf("%d", i)
		}
	}
	return out
}
