package rtc

import (
	"fmt"
	"strings"

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
// RTX), carrying our fmtp (a High 6.1 profile-level-id, an H.265
// level-id): in an offer (egress), so the SFU cannot pick another codec
// and learns the real profile; in an answer (WHEP), so it names the one
// codec that comes. pion's default list starts with VP8.
//
// ownFmtp puts want's fmtp in place of the engine's: right in an offer,
// where we say what we send; wrong in an answer, which must echo the
// offer's fmtp for the payload type (a receiver matches the two).
func PreferCodec(tr *webrtc.RTPTransceiver, want webrtc.RTPCodecCapability, ownFmtp bool) error {
	all := tr.Sender().GetParameters().Codecs
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
		return fmt.Errorf("webrtc: codec %s is not registered with the WebRTC engine", want.MimeType)
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
	if err := tr.SetCodecPreferences(prefs); err != nil {
		return fmt.Errorf("webrtc: prefer %s: %w", want.MimeType, err)
	}
	return nil
}

// fmtpScore rates how well an engine codec's fmtp fits ours: H.264
// needs the same packetization-mode and profile (profile-level-id's first
// byte), VP9 the same profile-id.
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
	if ep, op := e["profile-level-id"], o["profile-level-id"]; len(ep) >= 2 && len(op) >= 2 && strings.EqualFold(ep[:2], op[:2]) {
		score++
	}
	if e["profile-id"] != "" && e["profile-id"] == o["profile-id"] {
		score++
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
