package integration

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"whipgate/certs/certstest"
	"whipgate/cmd"
)

// With whip: {pion_srtp: true} a publisher's media goes through pion's
// receive path, and arrives the same: the opt-out works end to end.
// (Every other WHIP ingest test runs the default, beneath pion; see
// requireIngestSRTP in TestWHIPIngestRTXAsksOnce.)
func TestWHIPIngestPionSRTP(t *testing.T) {
	for _, pionSRTP := range []bool{false, true} {
		want := map[bool]string{false: "direct", true: "pion"}[pionSRTP]
		t.Run(want, func(t *testing.T) {
			app := startGateway(t, func(c *cmd.Config) {
				c.TestSource = nil
				c.WHIP.PionSRTP = pionSRTP
			})
			pub := publish(t, app.URL()+"/whip/cam", publishOptions{video: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
				SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}})
			v := watch(t, app.URL()+"/whep/cam")
			video := newSendStream(pub.video[0], &codecs.H264Payloader{})
			i := 0
			playSources(t, pacedSource{stream: video, interval: time.Second / 30, ticks: 3000, next: func() ([]byte, bool) {
				i++
				if i == 1 {
					return fakeNAL(0x65, 40_000), true
				}
				return fakeNAL(0x41, 4000), i <= 30
			}})
			sent := video.frames()
			requireSameFrames(t, want, sent, groupRTPFrames(v.waitPackets(sent, nil), false))
			requireIngestSRTP(t, app, want)
			requireIngestReports(t, app, pub)
		})
	}
}

// requireIngestReports checks that whipgate read the publisher's Sender
// Reports, so that its receiver reports carry LSR and DLSR (pion's report
// interceptor on the publisher sends one a second), and that every WHIP
// session's API detail has the round trip to its publisher.
func requireIngestReports(t testing.TB, app *instance, pub *publisher) {
	t.Helper()
	certstest.Eventually(t, 5*time.Second, "a receiver report with LSR and DLSR at the publisher", func() bool { return pub.lsr.Load() > 0 })
	for id, raw := range sessionDetails(t, app, "whip") {
		var st struct {
			RTT float64 `json:"rtt_ms"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		if st.RTT <= 0 || st.RTT > 1000 {
			t.Fatalf("WHIP session %s: detail %s; want rtt_ms of a loopback round trip", id, raw)
		}
		t.Logf("WHIP session %s: rtt_ms %v", id, st.RTT)
	}
}

// requireIngestSRTP checks how every WHIP session of app read its
// publisher's media: "direct" (with packets) or "pion".
func requireIngestSRTP(t testing.TB, app *instance, want string) {
	t.Helper()
	for id, raw := range sessionDetails(t, app, "whip") {
		var st struct {
			SRTP     string `json:"srtp"`
			Received uint64 `json:"direct_received"`
			Tracks   []any  `json:"tracks"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		if st.SRTP != want || (want == "direct") != (st.Received > 0) || len(st.Tracks) == 0 {
			t.Fatalf("WHIP session %s: detail %s; want srtp %s and its tracks", id, raw, want)
		}
	}
}
