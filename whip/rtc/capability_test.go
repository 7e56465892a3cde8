package rtc

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"whipgate/gateway"
	"whipgate/internal/testkit"
	"whipgate/whip/rtc/codecs"
)

// TestOneCodecTrackSendsWhatItAnswers: the answer names the one codec of
// the offer that fits the layer best, under the offer's payload types,
// with its RTX, and the track sends under that payload type — also where
// pion alone binds another: an H.264 High layer (OBS's) offered only
// constrained baseline, packetization mode 0 first and 1 second. pion's
// fmtp matching finds no exact match and takes the first H.264 it sees,
// mode 0, which cannot carry the layer's fragmented packets.
func TestOneCodecTrackSendsWhatItAnswers(t *testing.T) {
	testkit.LeakCheck(t)
	api := newTestAPI(t, newTestTransport(t), APIOptions{})
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	player, err := testkit.PionAPICodecs(t, testkit.StdNet(t), registerBaselinePlayer, nil).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var got atomic.Int64 // packets the player read
	t.Cleanup(func() {
		_ = player.Close()
		_ = pc.Close()
		wg.Wait()
	})
	layer := gateway.TrackInfo{Name: "main", Codec: gateway.H264, Fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640033"}
	track, err := codecs.NewOneCodecTrack(codecs.Capability(layer), "video", "one")
	if err != nil {
		t.Fatal(err)
	}
	x, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := player.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	countRTP(player, &wg, &got) // a packet of a payload type not answered ends it
	wait := func(gathered <-chan struct{}) { <-gathered }
	setOffer(t, player, nil, wait)
	answerOffer(t, player, pc, func() {
		if err := track.Limit(x); err != nil {
			t.Fatal(err)
		}
	}, wait)

	answer, err := pc.LocalDescription().Unmarshal()
	if err != nil {
		t.Fatal(err)
	}
	if got := answer.MediaDescriptions[0].MediaName.Formats; !slices.Equal(got, []string{"126", "127"}) {
		t.Fatalf("answered payload types %v, want the offer's H.264 in packetization mode 1 (126) and its RTX (127):\n%s", got, pc.LocalDescription().SDP)
	}
	testkit.Eventually(t, 10*time.Second, "connected", func() bool {
		return pc.ConnectionState() == webrtc.PeerConnectionStateConnected && player.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	var seq uint16
	testkit.Eventually(t, 10*time.Second, "30 packets at the player", func() bool {
		for _, payload := range testkit.SynthFrame(gateway.H264, seq%30 == 0) {
			if err := track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000}, Payload: payload}); err != nil {
				t.Fatal(err)
			}
			seq++
		}
		return got.Load() >= 30
	})
	if pt := player.GetReceivers()[0].Track().PayloadType(); pt != 126 {
		t.Fatalf("the player reads payload type %d; the answer named 126", pt)
	}
}

// registerBaselinePlayer registers H.264 constrained baseline in
// packetization mode 0 (97) before mode 1 (126), under Firefox's numbers
// with Chrome's explicit packetization-mode (so both match our engine's
// exactly and keep their order), each with its RTX, and VP8.
func registerBaselinePlayer(m *webrtc.MediaEngine) error {
	return testkit.RegisterVideo(m, []testkit.VideoCodec{
		{PT: 97, RTX: 98, Mime: webrtc.MimeTypeH264, Fmtp: "profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=0"},
		{PT: 126, RTX: 127, Mime: webrtc.MimeTypeH264, Fmtp: "profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1"},
		{PT: 120, RTX: 124, Mime: webrtc.MimeTypeVP8},
	})
}
