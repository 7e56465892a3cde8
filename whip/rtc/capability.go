package rtc

import (
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
