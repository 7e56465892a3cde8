package whip

import (
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// egressPreferCodec limits a transceiver's offer to the codec we send (and
// its RTX), carrying our fmtp (a High 6.1 profile-level-id, an H.265
// level-id), so the SFU cannot pick another codec and learns the real
// profile. pion's default list starts with VP8.
func egressPreferCodec(tr *webrtc.RTPTransceiver, want webrtc.RTPCodecCapability) error {
	all := tr.Sender().GetParameters().Codecs
	best, bestScore := -1, -1
	for i, c := range all {
		if !strings.EqualFold(c.MimeType, want.MimeType) {
			continue
		}
		if score := egressFmtpScore(c.SDPFmtpLine, want.SDPFmtpLine); score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return fmt.Errorf("whip: codec %s is not registered with the WebRTC engine", want.MimeType)
	}
	chosen := all[best]
	if want.SDPFmtpLine != "" {
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
		return fmt.Errorf("whip: prefer %s: %w", want.MimeType, err)
	}
	return nil
}

// egressFmtpScore rates how well an engine codec's fmtp fits ours: H.264
// needs the same packetization-mode and profile (profile-level-id's first
// byte), VP9 the same profile-id.
func egressFmtpScore(engine, ours string) int {
	e, o := egressFmtp(engine), egressFmtp(ours)
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

func egressFmtp(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k != "" {
			m[strings.ToLower(k)] = v
		}
	}
	return m
}

// egressRIDExtensions are the mid and rid header extensions an encoding's
// packets carry, so the target can tell the simulcast streams apart (pion
// does not add them itself).
func egressRIDExtensions(tr *webrtc.RTPTransceiver, rid string) []PacerExtension {
	mid := tr.Mid()
	var out []PacerExtension
	for _, h := range tr.Sender().GetParameters().HeaderExtensions {
		switch h.URI {
		case sdp.SDESMidURI:
			if mid != "" {
				out = append(out, PacerExtension{ID: uint8(h.ID), Payload: []byte(mid)})
			}
		case sdp.SDESRTPStreamIDURI:
			out = append(out, PacerExtension{ID: uint8(h.ID), Payload: []byte(rid)})
		}
	}
	return out
}
