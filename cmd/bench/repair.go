package bench

import (
	"sync/atomic"

	"whipgate/whip/rtc"
)

// What the server did to repair loss, seen from both sides: the RTX it
// sent the viewers (their sockets count it: the server exports no
// re-sent figures), the keyframes it asked the publisher for and its own
// repair of the publisher's stream (its /metrics, and the publisher's
// count of the requests that reached it).

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
	var d [4]int64
	for i, name := range []string{metricIngestNACKs, metricIngestRTX, metricIngestLost, metricIngestKeyRequests} {
		v0, ok0 := a.value(name)
		v1, ok1 := b.value(name)
		if !ok0 || !ok1 {
			return nil
		}
		d[i] = v1 - v0
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
}
