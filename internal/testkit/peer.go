package testkit

import (
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// IdlePeer is a PeerConnection that never connects, closed when the test
// ends: enough for the session registry, which only watches its state.
func IdlePeer(t testing.TB) *webrtc.PeerConnection {
	t.Helper()
	pc, err := webrtc.NewAPI().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// LoopbackPeer is a PeerConnection of PionAPI on the real network, closed
// when the test ends.
func LoopbackPeer(t testing.TB) *webrtc.PeerConnection {
	t.Helper()
	pc, err := PionAPI(t, StdNet(t)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// GatheredOffer sets a new offer on pc and returns it with every
// candidate; a peer that has not gathered within 10 s fails the test.
func GatheredOffer(t testing.TB, pc *webrtc.PeerConnection) string {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	SetLocal(t, pc, offer, func(gathered <-chan struct{}) {
		select {
		case <-gathered:
		case <-time.After(10 * time.Second):
			t.Fatal("the test peer did not gather within 10 s")
		}
	})
	return pc.LocalDescription().SDP
}

// SetLocal sets desc as pc's local description and waits for its
// candidates with await, given the gathering-complete promise.
func SetLocal(t testing.TB, pc *webrtc.PeerConnection, desc webrtc.SessionDescription, await func(gathered <-chan struct{})) {
	t.Helper()
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(desc); err != nil {
		t.Fatal(err)
	}
	await(gathered)
}

// OfferFor adds a section per kind in direction dir to pc and returns its
// GatheredOffer: an offer for requests that need a well-formed one.
func OfferFor(t testing.TB, pc *webrtc.PeerConnection, dir webrtc.RTPTransceiverDirection, kinds ...webrtc.RTPCodecType) string {
	t.Helper()
	for _, k := range kinds {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: dir}); err != nil {
			t.Fatal(err)
		}
	}
	return GatheredOffer(t, pc)
}

// SimulcastSender adds to pc a sendonly video track of capab (stream id
// streamID) per rid, none or only "" being one track without a rid: the
// first in a new transceiver, which setup (if not nil) may prepare, the
// others as that sender's simulcast encodings.
func SimulcastSender(t testing.TB, pc *webrtc.PeerConnection, capab webrtc.RTPCodecCapability, streamID string, rids []string,
	setup func(*webrtc.RTPTransceiver),
) ([]*webrtc.TrackLocalStaticRTP, *webrtc.RTPSender) {
	t.Helper()
	if len(rids) == 0 {
		rids = []string{""}
	}
	var tracks []*webrtc.TrackLocalStaticRTP
	var sender *webrtc.RTPSender
	for i, rid := range rids {
		var opts []func(*webrtc.TrackLocalStaticRTP)
		if rid != "" {
			opts = append(opts, webrtc.WithRTPStreamID(rid))
		}
		track, err := webrtc.NewTrackLocalStaticRTP(capab, "video", streamID, opts...)
		if err != nil {
			t.Fatal(err)
		}
		tracks = append(tracks, track)
		if i == 0 {
			tr, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
			if err != nil {
				t.Fatal(err)
			}
			if setup != nil {
				setup(tr)
			}
			sender = tr.Sender()
		} else if err := sender.AddEncoding(track); err != nil {
			t.Fatalf("add simulcast encoding %q: %v", rid, err)
		}
	}
	return tracks, sender
}
