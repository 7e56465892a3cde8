package testkit

import (
	"fmt"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// RTPExtension is one RTP header extension element.
type RTPExtension struct {
	ID    uint8
	Value []byte
}

// RIDExtensions are the header extensions a packet of sender's encoding
// rid must carry, once negotiated: MID and RID. pion leaves putting them
// on simulcast packets to the application, and a receiver tells the
// encodings apart only by them.
func RIDExtensions(pc *webrtc.PeerConnection, sender *webrtc.RTPSender, rid string) ([]RTPExtension, error) {
	var mid string
	for _, tr := range pc.GetTransceivers() {
		if tr.Sender() == sender {
			mid = tr.Mid()
		}
	}
	var out []RTPExtension
	for _, e := range sender.GetParameters().HeaderExtensions {
		switch e.URI {
		case sdp.SDESMidURI:
			out = append(out, RTPExtension{uint8(e.ID), []byte(mid)})
		case sdp.SDESRTPStreamIDURI:
			out = append(out, RTPExtension{uint8(e.ID), []byte(rid)})
		}
	}
	if len(out) != 2 || mid == "" {
		return nil, fmt.Errorf("MID and RID header extensions not negotiated: %v, mid %q", out, mid)
	}
	return out, nil
}

// SetExtensions puts exts on h.
func SetExtensions(h *rtp.Header, exts []RTPExtension) error {
	for _, e := range exts {
		if err := h.SetExtension(e.ID, e.Value); err != nil {
			return fmt.Errorf("rtp header extension %d: %w", e.ID, err)
		}
	}
	return nil
}

// RTCPReader is what an RTPSender and an RTPReceiver both offer to read
// RTCP with: for the plain stream, or for one simulcast encoding.
type RTCPReader interface {
	ReadRTCP() ([]rtcp.Packet, interceptor.Attributes, error)
	ReadSimulcastRTCP(rid string) ([]rtcp.Packet, interceptor.Attributes, error)
}

// ReadRTCP reads r's next RTCP packets, those of encoding rid unless rid
// is "".
func ReadRTCP(r RTCPReader, rid string) ([]rtcp.Packet, error) {
	var pkts []rtcp.Packet
	var err error
	if rid != "" {
		pkts, _, err = r.ReadSimulcastRTCP(rid)
	} else {
		pkts, _, err = r.ReadRTCP()
	}
	return pkts, err
}
