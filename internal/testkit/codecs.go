package testkit

import (
	"fmt"

	"github.com/pion/webrtc/v4"
)

// VideoCodec is a video codec as a test player numbers it: its payload
// type, its RTX's (0: none), its MIME type and fmtp.
type VideoCodec struct {
	PT, RTX    webrtc.PayloadType
	Mime, Fmtp string
}

// RegisterVideo registers codecs in m in order, each with the RTCP
// feedback browsers offer and then its RTX: a player that numbers them as
// a browser does (see PionAPICodecs).
func RegisterVideo(m *webrtc.MediaEngine, codecs []VideoCodec) error {
	fb := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "transport-cc"}}
	for _, c := range codecs {
		params := []webrtc.RTPCodecParameters{{PayloadType: c.PT, RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: c.Mime, ClockRate: 90000, SDPFmtpLine: c.Fmtp, RTCPFeedback: fb}}}
		if c.RTX != 0 {
			params = append(params, webrtc.RTPCodecParameters{PayloadType: c.RTX, RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: fmt.Sprintf("apt=%d", c.PT)}})
		}
		for _, p := range params {
			if err := m.RegisterCodec(p, webrtc.RTPCodecTypeVideo); err != nil {
				return fmt.Errorf("register %s %d: %w", p.MimeType, p.PayloadType, err)
			}
		}
	}
	return nil
}
