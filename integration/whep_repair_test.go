package integration

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/pion/rtcp"

	"whipgate/certs/certstest"
	"whipgate/cmd"
	"whipgate/whip/rtc/nack"
)

// A viewer's NACKs are answered and counted: a packet still held is
// re-sent, one long gone cannot be. The session's detail and the
// stream's /metrics say so, and the stream's totals keep the viewer's
// figures once it has left.
func TestWHEPRepairCounted(t *testing.T) {
	app := startGateway(t, nil)
	waitLive(t, app, "test")
	v := watch(t, app.URL()+"/whep/test/preview")
	v.waitFrames(10, 5*time.Second) // packets enough to ask for one sent a while ago

	video, _ := v.packets()
	last := video[len(video)-1].SequenceNumber
	// last-3 is held; last-20000 is past any history (and MaxAge).
	if err := v.sendNACK(last-3, last-20000); err != nil {
		t.Fatal(err)
	}
	repair := waitRepair(t, app, func(r nack.ResponderStats) bool { return r.Resent >= 1 && r.Unavailable >= 1 })

	series := map[string]float64{
		`whipgate_stream_resent_packets_total{stream="test"}`:                      float64(repair.Resent),
		`whipgate_stream_resent_bytes_total{stream="test"}`:                        float64(repair.ResentBytes),
		`whipgate_stream_resend_skipped_total{reason="unavailable",stream="test"}`: float64(repair.Unavailable),
	}
	for s, min := range series {
		if got := metric(t, app, s); got < min {
			t.Errorf("%s = %v, want at least the session's %v", s, got, min)
		}
	}
	v.close()
	certstest.Eventually(t, 10*time.Second, "the viewer's session gone", func() bool {
		for _, s := range app.Sessions().List() {
			if s.Kind == "whep" {
				return false
			}
		}
		return true
	})
	for s, min := range series {
		if got := metric(t, app, s); got < min {
			t.Errorf("after the viewer left: %s = %v, want at least %v", s, got, min)
		}
	}
	if got := metric(t, app, `whipgate_stream_resend_skipped_total{reason="budget",stream="test"}`); got != 0 {
		t.Errorf("over budget %v, want 0", got)
	}
	t.Logf("repair %+v", repair)
}

// waitRepair waits until the one WHEP session's repair figures satisfy
// done, and returns them.
func waitRepair(t *testing.T, app *instance, done func(nack.ResponderStats) bool) nack.ResponderStats {
	t.Helper()
	var repair nack.ResponderStats
	certstest.Eventually(t, 5*time.Second, "the NACK answered", func() bool {
		for _, raw := range sessionDetails(t, app, "whep") {
			var d struct {
				Repair nack.ResponderStats `json:"repair"`
			}
			if err := json.Unmarshal(raw, &d); err != nil {
				t.Fatal(err)
			}
			repair = d.Repair
		}
		return done(repair)
	})
	return repair
}

// sendNACK asks for video packets again, as a browser does.
func (v *viewer) sendNACK(seqs ...uint16) error {
	v.mu.Lock()
	tr := v.vtrack
	v.mu.Unlock()
	return v.pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: uint32(tr.SSRC()), Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}})
}

// A viewer asking for a packet long gone has lost its frame: whipgate asks
// the publisher for a keyframe for it, counted in the session's detail
// and the stream's /metrics.
func TestWHEPRepairAsksKeyframeForLostPackets(t *testing.T) {
	app := startGateway(t, func(c *cmd.Config) {
		// Requests reach the test source at once, not merged into the
		// next: the count below is the responder's request.
		c.Hub.KeyframeInterval = time.Millisecond
	})
	waitLive(t, app, "test")
	v := watch(t, app.URL()+"/whep/test/preview")
	v.waitFrames(10, 5*time.Second)
	const keyReqs = `whipgate_ingest_keyframe_requests_sent_total{layer="preview",stream="test"}`
	before := metric(t, app, keyReqs)
	video, _ := v.packets()
	if err := v.sendNACK(video[len(video)-1].SequenceNumber - 20000); err != nil {
		t.Fatal(err)
	}
	repair := waitRepair(t, app, func(r nack.ResponderStats) bool { return r.KeyframeRequests >= 1 })
	certstest.Eventually(t, 5*time.Second, "the keyframe request sent to the publisher", func() bool {
		return metric(t, app, keyReqs) > before
	})
	if got := metric(t, app, `whipgate_stream_repair_keyframe_requests_total{stream="test"}`); got < 1 {
		t.Errorf("whipgate_stream_repair_keyframe_requests_total = %v, want at least 1", got)
	}
	t.Logf("repair %+v; keyframe requests sent to the publisher %v → %v", repair, before, metric(t, app, keyReqs))
}
