// Package codecs holds what whipgate offers and answers for a hub track's
// codec: the pion capability of a track (Capability), an offer limited to
// the codec we send (PreferCodec), and an answer that names the one codec
// of the offer that fits the layer best and sends under its payload type
// (OneCodecTrack). It knows pion's codec types and the hub's track info,
// and imports nothing else of ours: no transport, no HTTP.
package codecs

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
)

// Capability is the pion codec capability for a hub track. Parameters the
// publisher did not give are filled with what browsers expect.
func Capability(t gateway.TrackInfo) webrtc.RTPCodecCapability {
	c := webrtc.RTPCodecCapability{MimeType: string(t.Codec), ClockRate: t.Codec.ClockRate(), SDPFmtpLine: t.Fmtp}
	switch t.Codec {
	case gateway.Opus:
		c.Channels = 2
		if c.SDPFmtpLine == "" {
			c.SDPFmtpLine = "minptime=10;useinbandfec=1"
		}
	case gateway.H264:
		if c.SDPFmtpLine == "" {
			c.SDPFmtpLine = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
		}
	}
	return c
}

// PreferCodec limits a sending transceiver to the codec we send (and its
// RTX) in an offer (egress), so the SFU cannot pick another codec. pion's
// default list starts with VP8.
//
// ownFmtp puts want's fmtp (a High 6.1 profile-level-id, an H.265
// level-id) in place of the engine's, so the SFU learns the real profile:
// right in an offer, where we say what we send. An answer must echo the
// offer's payload types and fmtp and send what it names: use
// OneCodecTrack there.
func PreferCodec(tr *webrtc.RTPTransceiver, want webrtc.RTPCodecCapability, ownFmtp bool) error {
	prefs, err := pickCodec(tr.Sender().GetParameters().Codecs, want, ownFmtp)
	if err != nil {
		return err
	}
	if err := tr.SetCodecPreferences(prefs); err != nil {
		return fmt.Errorf("webrtc: prefer %s: %w", want.MimeType, err)
	}
	return nil
}

// pickCodec is the codec of all that best fits want, with ownFmtp want's
// fmtp in place of its own, then its RTX, if all has one.
func pickCodec(all []webrtc.RTPCodecParameters, want webrtc.RTPCodecCapability, ownFmtp bool) ([]webrtc.RTPCodecParameters, error) {
	best, bestScore := -1, -1
	for i, c := range all {
		if !strings.EqualFold(c.MimeType, want.MimeType) {
			continue
		}
		if score := fmtpScore(c.SDPFmtpLine, want.SDPFmtpLine); score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return nil, fmt.Errorf("webrtc: codec %s is not among the %d negotiable", want.MimeType, len(all))
	}
	chosen := all[best]
	if ownFmtp && want.SDPFmtpLine != "" {
		chosen.SDPFmtpLine = want.SDPFmtpLine
	}
	prefs := []webrtc.RTPCodecParameters{chosen}
	apt := fmt.Sprintf("apt=%d", all[best].PayloadType)
	for _, c := range all {
		if strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) && c.SDPFmtpLine == apt {
			prefs = append(prefs, c)
		}
	}
	return prefs, nil
}

// OneCodecTrack is a local track whose answer names one codec (and its
// RTX): the offer's that best fits the track, under the offer's payload
// types and fmtp, as WHEP players expect of a layer that comes in one
// codec. It also sends under exactly that payload type.
//
// pion alone does not. Its sender binds a track to the first negotiated
// codec whose fmtp matches the track's by pion's rules, else the first of
// its MIME type, whatever the transceiver's codec preferences
// (RTPSender.Send): an H.264 42e01f track answered as the offer's 42001f
// (payload type 102, a pion player's first H.264) went out as 42e01f's
// 106, which the player, told only of 102, dropped as of no known codec;
// a High layer offered only baseline, mode 0 first, went out as mode 0.
// And preferences set before the offer is applied carry our engine's
// payload types, not the offer's (Firefox's 106 is an RTX). So Limit runs
// once the offer is applied, and Bind shows the track only the codecs
// Limit chose.
type OneCodecTrack struct {
	*webrtc.TrackLocalStaticRTP
	codecs atomic.Pointer[[]webrtc.RTPCodecParameters] // Limit's; nil: all
}

// NewOneCodecTrack is a local RTP track of codec c.
func NewOneCodecTrack(c webrtc.RTPCodecCapability, id, streamID string) (*OneCodecTrack, error) {
	t, err := webrtc.NewTrackLocalStaticRTP(c, id, streamID)
	if err != nil {
		return nil, fmt.Errorf("webrtc: new track: %w", err)
	}
	return &OneCodecTrack{TrackLocalStaticRTP: t}, nil
}

// Limit limits tr, the transceiver that sends t, to the offer's codec that
// best fits t (and its RTX). Call it after the offer is applied and before
// the answer is created.
func (t *OneCodecTrack) Limit(tr *webrtc.RTPTransceiver) error {
	// Once the offer is applied, these are the codecs both sides know,
	// with the offer's payload types and fmtp.
	prefs, err := pickCodec(tr.Sender().GetParameters().Codecs, t.Codec(), false)
	if err != nil {
		return err
	}
	if err := tr.SetCodecPreferences(prefs); err != nil {
		return fmt.Errorf("webrtc: answer with %s: %w", t.Codec().MimeType, err)
	}
	t.codecs.Store(&prefs)
	return nil
}

// Bind binds the track to the codec Limit chose (before Limit, as pion
// would).
func (t *OneCodecTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	if p := t.codecs.Load(); p != nil {
		ctx = limitedContext{ctx, *p}
	}
	return t.TrackLocalStaticRTP.Bind(ctx)
}

// limitedContext is a binding's context that shows only some codecs.
type limitedContext struct {
	webrtc.TrackLocalContext
	codecs []webrtc.RTPCodecParameters
}

func (c limitedContext) CodecParameters() []webrtc.RTPCodecParameters { return c.codecs }

// fmtpScore rates how well an engine codec's fmtp fits ours: H.264
// needs the same packetization-mode and profile (profile-level-id's first
// byte, then its constraint flags), VP9 and H.265 the same profile-id,
// AV1 the same profile.
func fmtpScore(engine, ours string) int {
	e, o := parseFmtp(engine), parseFmtp(ours)
	score := 0
	pm := func(m map[string]string) string {
		if v, ok := m["packetization-mode"]; ok {
			return v
		}
		return "0"
	}
	if _, ok := e["packetization-mode"]; ok {
		if _, has := o["profile-level-id"]; has || len(o) == 0 {
			want := pm(o)
			if len(o) == 0 {
				want = "1"
			}
			if pm(e) == want {
				score += 2
			}
		}
	}
	if ep, op := e["profile-level-id"], o["profile-level-id"]; len(ep) >= 4 && len(op) >= 4 {
		if strings.EqualFold(ep[:2], op[:2]) {
			score++
		}
		if strings.EqualFold(ep[:4], op[:4]) {
			score++ // 42e01f is constrained baseline, 42001f baseline
		}
	}
	for _, k := range []string{"profile-id", "profile"} {
		if e[k] != "" && e[k] == o[k] {
			score++
		}
	}
	return score
}

func parseFmtp(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k != "" {
			m[strings.ToLower(k)] = v
		}
	}
	return m
}

// Interface guards
var _ webrtc.TrackLocal = (*OneCodecTrack)(nil)
