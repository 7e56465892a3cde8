package rtc

import (
	"context"
	"errors"
	"io"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
)

// RTPWriter is where forwarded packets go: a pion local track, or a pacer
// in front of one.
type RTPWriter interface {
	WriteRTP(*rtp.Packet) error
}

// forwardBatched drains sub into writers (indexed like the subscription's
// tracks) until ctx is done or the subscription ends. It takes whatever is
// queued at once, so a frame's packets go out as a group, gathered in
// batch and sent with one sendmmsg (nil batches nothing), and builds each
// header fresh: the publisher's extensions and CSRCs never leak to a
// viewer. The batch is flushed before Next waits, so a packet never waits
// for the next group.
func forwardBatched(ctx context.Context, sub *gateway.Subscription, writers []RTPWriter, batch *peerBatch) error {
	outs := make([]gateway.Out, 256)
	var pkt rtp.Packet
	for {
		n, err := sub.Next(ctx, outs)
		if err != nil {
			return err
		}
		batch.open()
		for i := range n {
			o := &outs[i]
			w := writers[o.Track]
			if w == nil {
				continue
			}
			pkt.Header = rtp.Header{Version: 2, Marker: o.Marker, SequenceNumber: o.Seq, Timestamp: o.Timestamp}
			pkt.Payload = o.Payload
			if err := w.WriteRTP(&pkt); err != nil && errors.Is(err, io.ErrClosedPipe) {
				_ = batch.flush()
				return err
			}
			o.Payload = nil
		}
		// A failed flush is loss on the path, like a failed sendto: the
		// viewer NACKs it; the session ends only when the PC does.
		_ = batch.flush()
	}
}

// ReadRTCP reads a sender's RTCP until it fails (the PeerConnection closed),
// calling onKeyframe for every PLI or FIR. Reading is also what lets pion's
// interceptors (NACK, reports) see the feedback at all.
func ReadRTCP(sender *webrtc.RTPSender, onKeyframe func(), onPacket func(rtcp.Packet)) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if onKeyframe != nil {
					onKeyframe()
				}
			}
			if onPacket != nil {
				onPacket(p)
			}
		}
	}
}
