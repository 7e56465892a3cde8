package egress

import (
	"fmt"
	"strings"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
	"whipgate/whip/rtc"
)

// addTracks adds the send tracks: one video transceiver (with an encoding
// per rid in simulcast) and the audio one. tracks follows setup.names;
// the transceivers are the video one, then the audio one if any.
func (l *egressLeg) addTracks(pc *webrtc.PeerConnection, setup egressSetup) ([]*webrtc.TrackLocalStaticRTP, []*webrtc.RTPTransceiver, error) {
	const streamID = "whipgate"
	nVideo := len(l.layers)
	tracks := make([]*webrtc.TrackLocalStaticRTP, len(setup.names))
	var trs []*webrtc.RTPTransceiver
	for i := range nVideo {
		var opts []func(*webrtc.TrackLocalStaticRTP)
		if len(l.rids) > 0 {
			opts = append(opts, webrtc.WithRTPStreamID(l.rids[i]))
		}
		t, err := webrtc.NewTrackLocalStaticRTP(rtc.Capability(setup.infos[i]), "video", streamID, opts...)
		if err != nil {
			return nil, nil, fmt.Errorf("whip: video track: %w", err)
		}
		tracks[i] = t
	}
	tr, err := pc.AddTransceiverFromTrack(tracks[0], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return nil, nil, fmt.Errorf("whip: add video: %w", err)
	}
	for _, t := range tracks[1:nVideo] {
		if err := tr.Sender().AddEncoding(t); err != nil {
			return nil, nil, fmt.Errorf("whip: add simulcast encoding %s: %w", t.RID(), err)
		}
	}
	if err := egressPreferCodec(tr, rtc.Capability(setup.infos[0])); err != nil {
		return nil, nil, err
	}
	trs = append(trs, tr)
	if l.audio != "" {
		info := setup.infos[nVideo]
		t, err := webrtc.NewTrackLocalStaticRTP(rtc.Capability(info), "audio", streamID)
		if err != nil {
			return nil, nil, fmt.Errorf("whip: audio track: %w", err)
		}
		tracks[nVideo] = t
		atr, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, nil, fmt.Errorf("whip: add audio: %w", err)
		}
		if err := egressPreferCodec(atr, rtc.Capability(info)); err != nil {
			return nil, nil, err
		}
		trs = append(trs, atr)
	}
	return tracks, trs, nil
}

// startRTCP reads every sender's RTCP (which is also what feeds pion's
// NACK responder), turning PLI/FIR into keyframe requests for the layer.
func (l *egressLeg) startRTCP(wg *sync.WaitGroup, sub *gateway.Subscription, trs []*webrtc.RTPTransceiver, fb *egressFeedback) {
	video := trs[0].Sender()
	keyframe := func(i int) func() {
		return func() {
			fb.keyReqs.Add(1)
			sub.RequestKeyframe(i)
		}
	}
	if len(l.rids) == 0 {
		wg.Go(func() { rtc.ReadRTCP(video, keyframe(0), fb.onPacket) })
	} else {
		for i, rid := range l.rids {
			onKey := keyframe(i)
			wg.Go(func() {
				for {
					pkts, _, err := video.ReadSimulcastRTCP(rid)
					if err != nil {
						return
					}
					for _, p := range pkts {
						if egressIsKeyframeRequest(p) {
							onKey()
						}
						fb.onPacket(p)
					}
				}
			})
		}
	}
	if len(trs) > 1 {
		audio := trs[1].Sender()
		wg.Go(func() { rtc.ReadRTCP(audio, nil, fb.onPacket) })
	}
}

// egressIsKeyframeRequest reports PLI and FIR.
func egressIsKeyframeRequest(p rtcp.Packet) bool {
	switch p.(type) {
	case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
		return true
	}
	return false
}

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
