package bench

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

// FuzzStreamMetrics reads /metrics bodies as the bench reads any server's
// (it may be pointed at one it does not know): no panic; every key is a
// series of streamMetricNames, alone or with a reason; and a line that
// does not carry the stream's exact label adds nothing, so another
// stream's samples never count.
func FuzzStreamMetrics(f *testing.F) {
	f.Add([]byte("whipgate_stream_packets_dropped_total{stream=\"bench\"} 5\r\n"+
		"whipgate_stream_resend_skipped_total{reason=\"budget\",stream=\"bench\"} 4\n"+
		"whipgate_stream_packets_dropped_total{stream=\"bench2\"} 100\n# HELP x\n"), "bench")
	f.Add([]byte("whipgate_stream_packets_dropped_total{stream=\"a\"} 1e300\nwhipgate_stream_packets_dropped_total{stream=\"a\"} NaN\n{}\n}{"), "a")
	f.Fuzz(func(t *testing.T, body []byte, stream string) {
		all, own := streamMetrics{}, streamMetrics{}
		var kept []byte
		eachLine(body, func(l string) {
			all.add(l, stream)
			if strings.Contains(l, `stream="`+stream+`"`) {
				kept = append(append(kept, l...), '\n')
			}
		})
		eachLine(kept, func(l string) { own.add(l, stream) })
		for k := range all {
			name, _, reason := strings.Cut(k, "{")
			if !slices.Contains(streamMetricNames, name) || reason && !strings.HasPrefix(k[len(name):], "{reason=") {
				t.Fatalf("key %q is not a series the bench reads", k)
			}
		}
		if !maps.Equal(all, own) {
			t.Fatalf("lines without stream=%q counted: %v, from its own lines %v", stream, all, own)
		}
	})
}
