package testkit

import (
	"testing"

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
