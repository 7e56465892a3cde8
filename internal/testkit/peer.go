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
