package bench

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The server's /metrics series the bench reads (cmd/metrics.go), each
// summed over the series of the bench's stream. They are per-stream
// aggregates that only grow: the server exports nothing per viewer.
const (
	// metricDropped counts packets the stream's subscribers lost to
	// their full queues: the WHEP viewers' and, with -egress, the
	// egress's too (an egress is a subscriber of the stream).
	metricDropped = "whipgate_stream_packets_dropped_total"
)

// streamMetricNames are the series a bench reads; a test holds them to a
// real server's exposition.
var streamMetricNames = []string{metricDropped, metricIngestNACKs, metricIngestRTX, metricIngestLost, metricIngestKeyRequests,
	metricLayerBytes, metricResent, metricResentBytes, metricResendSkipped, metricRepairKeyRequests}

// streamMetrics are the values of the series named in streamMetricNames
// that the server exported for one stream, each summed over its other
// labels but reason: a series with a reason label is kept per reason,
// under reasonKey. A name the server did not export is absent.
type streamMetrics map[string]int64

// reasonKey is the streamMetrics key of name's series for reason.
func reasonKey(name, reason string) string { return name + `{reason="` + reason + `"}` }

// value is the named series' sum; ok is false when the server did not
// export it for the stream.
func (m streamMetrics) value(name string) (v int64, ok bool) {
	v, ok = m[name]
	return v, ok
}

// readStreamMetrics scrapes base's /metrics for stream's series. It
// returns nil when the server has no /metrics to read.
func readStreamMetrics(ctx context.Context, base, stream string) streamMetrics {
	m := streamMetrics{}
	if !scrape(ctx, base, func(line string) { m.add(line, stream) }) {
		return nil
	}
	return m
}

// add sums line into m if it is a sample of one of stream's series.
func (m streamMetrics) add(line, stream string) {
	if name, v, ok := streamSample(line, stream); ok {
		m[name] += v
	}
}

// scrape calls line for each line of base's /metrics; false when the
// server has none to read.
func scrape(ctx context.Context, base string, line func(string)) bool {
	return readLines(ctx, base+"/metrics", line)
}

// readLines calls line for each line of url's response; false when it
// has none to read.
func readLines(ctx context.Context, url string, line func(string)) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, body, err := call(ctx, http.MethodGet, url, "", nil, 16<<20)
	if err != nil || resp.StatusCode != http.StatusOK {
		return false
	}
	eachLine(body, line)
	return true
}

// eachLine calls line for each line of body, without its line ending.
func eachLine(body []byte, line func(string)) {
	for l := range strings.Lines(string(body)) {
		line(strings.TrimRight(l, "\r\n"))
	}
}

// streamSample parses one line of the text exposition format: a sample
// of a series in streamMetricNames labelled with stream. Stream names are
// letters, digits and -_.~ (the hub's rule), so the label needs no
// unescaping.
func streamSample(line, stream string) (name string, v int64, ok bool) {
	name, rest, found := strings.Cut(line, "{")
	if !found {
		return "", 0, false
	}
	known := false
	for _, n := range streamMetricNames {
		known = known || n == name
	}
	labels, value, found := strings.Cut(rest, "}")
	if !known || !found {
		return "", 0, false
	}
	want := `stream="` + stream + `"`
	match, key := false, name
	for l := range strings.SplitSeq(labels, ",") {
		match = match || l == want
		if strings.HasPrefix(l, "reason=") {
			key = name + "{" + l + "}"
		}
	}
	f := strings.Fields(value)
	if !match || len(f) == 0 {
		return "", 0, false
	}
	x, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return "", 0, false
	}
	return key, int64(x), true
}
