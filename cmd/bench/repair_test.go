package bench

import "testing"

func TestRepairFigures(t *testing.T) {
	var c rtpCounts
	for _, d := range [][]byte{rtpDatagram, rtpDatagram, append([]byte{0x80, 103}, make([]byte, 50)...), rtcpDatagram, stunDatagram} {
		c.count(d)
	}
	(*rtpCounts)(nil).count(rtpDatagram)
	if s := c.sample(); s != (rtpSample{media: 2, mediaBytes: 204, rtx: 1, rtxBytes: 52}) {
		t.Errorf("counted %+v; want 2 media datagrams of 102 bytes and 1 RTX of 52, no RTCP or STUN", s)
	}

	all := func(base int64) streamMetrics {
		return streamMetrics{metricDropped: base, metricIngestNACKs: base + 1, metricIngestRTX: base + 2, metricIngestLost: base + 3, metricIngestKeyRequests: base + 4}
	}
	a := counterSample{viewerRTP: rtpSample{mediaBytes: 1000, rtx: 1, rtxBytes: 10}, publisherPLIs: 3, metrics: all(0)}
	b := counterSample{viewerRTP: rtpSample{mediaBytes: 11000, rtx: 9, rtxBytes: 510}, publisherPLIs: 5,
		metrics: streamMetrics{metricDropped: 0, metricIngestNACKs: 41, metricIngestRTX: 32, metricIngestLost: 4, metricIngestKeyRequests: 7}}
	var r Result
	r.repair(a, b)
	if r.ResentPackets != 8 || r.ResentBytes != 500 || r.ResentPct != 5 || r.KeyframeRequestsReceived != 2 {
		t.Errorf("resent %d packets, %d bytes (%v %%), %d keyframe requests received; want 8, 500 (5 %% of 10000), 2",
			r.ResentPackets, r.ResentBytes, r.ResentPct, r.KeyframeRequestsReceived)
	}
	if i := r.IngestRepair; i == nil || *i != (IngestRepair{NACKed: 40, Recovered: 30, Lost: 1, KeyframeRequests: 3}) {
		t.Errorf("ingest repair %+v, want 40 NACKed, 30 recovered, 1 lost, 3 keyframe requests", i)
	}
	if r.ServerRepair != nil {
		t.Errorf("server repair %+v from scrapes without its series, want none", r.ServerRepair)
	}
	viewers := func(base int64) {
		for i, k := range []string{metricResent, metricResentBytes, metricRepairKeyRequests, metricLayerBytes,
			reasonKey(metricResendSkipped, "duplicate"), reasonKey(metricResendSkipped, "budget"), reasonKey(metricResendSkipped, "unavailable")} {
			a.metrics[k] = base
			b.metrics[k] = base + []int64{8, 480, 1, 6000, 2, 3, 4}[i]
		}
	}
	viewers(100)
	r = Result{Viewers: 2}
	r.repair(a, b)
	want := ViewerRepair{Resent: 8, ResentBytes: 480, ResentPct: 4, Duplicate: 2, OverBudget: 3, Unavailable: 4, KeyframeRequests: 1}
	if v := r.ServerRepair; v == nil || *v != want {
		t.Errorf("server repair %+v, want %+v (480 bytes: 4 %% of 6000 published to 2 viewers)", v, want)
	}
	delete(b.metrics, metricIngestLost)
	if r.repair(a, b); r.IngestRepair != nil {
		t.Errorf("ingest repair %+v from a scrape without %s, want none", r.IngestRepair, metricIngestLost)
	}
}
