package egress

import (
	"fmt"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
	"whipgate/whip/rtc"
	"whipgate/whip/rtc/codecs"
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
		t, err := webrtc.NewTrackLocalStaticRTP(codecs.Capability(setup.infos[i]), "video", streamID, opts...)
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
	if err := codecs.PreferCodec(tr, codecs.Capability(setup.infos[0]), true); err != nil {
		return nil, nil, err
	}
	trs = append(trs, tr)
	if l.audio != "" {
		info := setup.infos[nVideo]
		t, err := webrtc.NewTrackLocalStaticRTP(codecs.Capability(info), "audio", streamID)
		if err != nil {
			return nil, nil, fmt.Errorf("whip: audio track: %w", err)
		}
		tracks[nVideo] = t
		atr, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, nil, fmt.Errorf("whip: add audio: %w", err)
		}
		if err := codecs.PreferCodec(atr, codecs.Capability(info), true); err != nil {
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
