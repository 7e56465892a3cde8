package bench

import (
	"sync/atomic"

	"whipgate/whip/rtc"
)

// What the server did to repair loss, seen from both sides: the RTX it
// sent the viewers (as their sockets count it, and as the server counts
// it in its /metrics, with the requests it let be), the keyframes it
// asked the publisher for and its own repair of the publisher's stream
// (its /metrics, and the publisher's count of the requests that reached
// it).

// rtpCounts are the RTP datagrams the viewers' sockets received before
// the bench's lossy path: the stream's media and the server's RTX
// repairs, in datagrams and in bytes on the wire (SRTP).
type rtpCounts struct{ media, mediaBytes, rtx, rtxBytes atomic.Int64 }

// count books a datagram a viewer's socket received.
func (c *rtpCounts) count(d []byte) {
	if c == nil || !rtc.IsRTP(d) {
		return
	}
	switch d[1] & 0x7f {
	case h264PayloadType:
		c.media.Add(1)
		c.mediaBytes.Add(int64(len(d)))
	case rtxPayloadType:
		c.rtx.Add(1)
		c.rtxBytes.Add(int64(len(d)))
	}
}

// rtpSample is a snapshot of rtpCounts.
type rtpSample struct{ media, mediaBytes, rtx, rtxBytes int64 }

func (c *rtpCounts) sample() rtpSample {
	return rtpSample{c.media.Load(), c.mediaBytes.Load(), c.rtx.Load(), c.rtxBytes.Load()}
}

// The server's repair counters of the publisher's stream, per layer in
// its /metrics (reported to them each second: up to 1 s late).
const (
	metricIngestNACKs       = "whipgate_ingest_nacks_sent_total"
	metricIngestRTX         = "whipgate_ingest_rtx_received_total"
	metricIngestLost        = "whipgate_ingest_packets_lost_total"
	metricIngestKeyRequests = "whipgate_ingest_keyframe_requests_sent_total"
)

// The server's repair toward the stream's WHEP viewers, summed over them
// (cmd/metrics.go), and the payload bytes its layers published.
const (
	metricResent            = "whipgate_stream_resent_packets_total"
	metricResentBytes       = "whipgate_stream_resent_bytes_total"
	metricResendSkipped     = "whipgate_stream_resend_skipped_total" // by reason
	metricRepairKeyRequests = "whipgate_stream_repair_keyframe_requests_total"
	metricLayerBytes        = "whipgate_layer_bytes_total"
)

// resendSkipReasons are metricResendSkipped's reasons.
var resendSkipReasons = []string{"duplicate", "budget", "unavailable"}

// ViewerRepair is the server's own count of its repair toward the viewers
// during the window, from its /metrics.
type ViewerRepair struct {
	// Resent packets and their payload bytes (RTX's 2 bytes a packet
	// included); ResentPct those bytes in % of the payload bytes the
	// stream published in the window, times the viewers.
	Resent      int64   `json:"resent_packets"`
	ResentBytes int64   `json:"resent_bytes"`
	ResentPct   float64 `json:"resent_pct"`
	// Requests it did not re-send: the packet went less than a round trip
	// before (Duplicate), over the viewer's budget, no longer held.
	Duplicate   int64 `json:"duplicate"`
	OverBudget  int64 `json:"over_budget"`
	Unavailable int64 `json:"unavailable"`
	// KeyframeRequests it made for viewers whose requests were over
	// budget or unavailable (merged into IngestRepair's).
	KeyframeRequests int64 `json:"keyframe_requests"`
}

// viewerRepair is the difference of two scrapes for viewers viewers; nil
// unless both have every series.
func viewerRepair(a, b streamMetrics, viewers int) *ViewerRepair {
	keys := []string{metricResent, metricResentBytes, metricRepairKeyRequests, metricLayerBytes}
	for _, r := range resendSkipReasons {
		keys = append(keys, reasonKey(metricResendSkipped, r))
	}
	d, ok := deltas(a, b, keys)
	if !ok {
		return nil
	}
	v := &ViewerRepair{Resent: d[0], ResentBytes: d[1], KeyframeRequests: d[2], Duplicate: d[4], OverBudget: d[5], Unavailable: d[6]}
	if published := d[3] * int64(viewers); published > 0 {
		v.ResentPct = round4(100 * float64(v.ResentBytes) / float64(published))
	}
	return v
}

// deltas is b's value minus a's of each key; false unless both have all.
func deltas(a, b streamMetrics, keys []string) ([]int64, bool) {
	d := make([]int64, len(keys))
	for i, k := range keys {
		v0, ok0 := a.value(k)
		v1, ok1 := b.value(k)
		if !ok0 || !ok1 {
			return nil, false
		}
		d[i] = v1 - v0
	}
	return d, true
}

// IngestRepair is the server's repair of the publisher's stream during
// the window, from its /metrics.
type IngestRepair struct {
	// NACKed: sequence numbers it asked the publisher for again (each
	// time); Recovered: packets that came back through RTX; Lost: packets
	// it counted lost, three NACKs (~300 ms) unanswered, when it asks
	// the publisher for a keyframe (it goes on asking for the packet).
	NACKed    int64 `json:"nacks_sent"`
	Recovered int64 `json:"rtx_received"`
	Lost      int64 `json:"lost"`
	// KeyframeRequests it sent the publisher: its viewers' (merged), and
	// its own for packets lost for good.
	KeyframeRequests int64 `json:"keyframe_requests_sent"`
}

// ingestRepair is the difference of two scrapes; nil unless both have
// every series.
func ingestRepair(a, b streamMetrics) *IngestRepair {
	d, ok := deltas(a, b, []string{metricIngestNACKs, metricIngestRTX, metricIngestLost, metricIngestKeyRequests})
	if !ok {
		return nil
	}
	return &IngestRepair{NACKed: d[0], Recovered: d[1], Lost: d[2], KeyframeRequests: d[3]}
}

// repair fills in res's repair figures over the window between two
// counter samples.
func (res *Result) repair(a, b counterSample) {
	res.ResentPackets = b.viewerRTP.rtx - a.viewerRTP.rtx
	res.ResentBytes = b.viewerRTP.rtxBytes - a.viewerRTP.rtxBytes
	if media := b.viewerRTP.mediaBytes - a.viewerRTP.mediaBytes; media > 0 {
		res.ResentPct = round4(100 * float64(res.ResentBytes) / float64(media))
	}
	res.KeyframeRequestsReceived = b.publisherPLIs - a.publisherPLIs
	res.IngestRepair = ingestRepair(a.metrics, b.metrics)
	res.ServerRepair = viewerRepair(a.metrics, b.metrics, res.Viewers)
}
