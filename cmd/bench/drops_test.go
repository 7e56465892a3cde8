package bench

import (
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// The series the bench reads are the ones a real server exports for a
// published stream: a renamed metric fails here, not silently as a
// missing figure in every run.
func TestStreamMetricsOfARealServer(t *testing.T) {
	srv := startTestServer(t, buildWhipgate(t), "server")
	if m := readStreamMetrics(t.Context(), srv.url, streamName); m == nil || len(m) != 0 {
		t.Errorf("before anything is published: %v, want none of the stream's series", m)
	}
	var full atomic.Int64
	pub, err := publish(t.Context(), peerConfig{log: discardLog(), full: &full}, srv.url+"/whip/"+streamName, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := pub.Close(t.Context()); err != nil {
			t.Error(err)
		}
	}()
	// Half a second of a 2 Mbps stream, then the counters are read until
	// every series is there (the ingest's come with its first report).
	table := newFrameTable(30, 500*time.Millisecond)
	if err := pub.send(t.Context(), sendOptions{plan: newPlan(2e6, 30, time.Second, 4)}, table); err != nil {
		t.Fatal(err)
	}
	var m streamMetrics
	for deadline := time.Now().Add(10 * time.Second); ; {
		m = readStreamMetrics(t.Context(), srv.url, streamName)
		if len(m) == len(streamSeries()) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, name := range streamSeries() {
		if _, ok := m.value(name); !ok {
			t.Errorf("the server exports no %s (stream %q); it has %v", name, streamName, m)
		}
	}
	if v, _ := m.value(metricDropped); v != 0 {
		t.Errorf("%s = %d with no subscriber, want 0", metricDropped, v)
	}
}

// streamSeries are the keys of the streamMetrics of a published stream:
// streamMetricNames, the one by reason once per reason.
func streamSeries() []string {
	var keys []string
	for _, n := range streamMetricNames {
		if n != metricResendSkipped {
			keys = append(keys, n)
		}
	}
	for _, r := range resendSkipReasons {
		keys = append(keys, reasonKey(metricResendSkipped, r))
	}
	return keys
}

func TestStreamSampleSumsTheStreamOnly(t *testing.T) {
	body := `# HELP whipgate_stream_packets_dropped_total Packets a stream's slow subscribers lost to their full queues.
# TYPE whipgate_stream_packets_dropped_total counter
whipgate_stream_packets_dropped_total{stream="bench"} 5
whipgate_stream_packets_dropped_total{stream="bench2"} 100
whipgate_stream_packets_delivered_total{stream="bench"} 9
whipgate_stream_packets_dropped_total{stream="bench"} 7
whipgate_stream_packets_dropped_total 3
whipgate_stream_resend_skipped_total{reason="budget",stream="bench"} 4
whipgate_stream_resend_skipped_total{reason="unavailable",stream="bench"} 6
whipgate_stream_resend_skipped_total{reason="budget",stream="bench2"} 8
`
	m := streamMetrics{}
	eachLine([]byte(body), func(l string) { m.add(l, "bench") })
	if v, ok := m.value(metricDropped); !ok || v != 12 || len(m) != 3 {
		t.Errorf("got %v; want %s 12 (the bench stream's samples, no other series) and the skipped by reason", m, metricDropped)
	}
	if b, u := m[reasonKey(metricResendSkipped, "budget")], m[reasonKey(metricResendSkipped, "unavailable")]; b != 4 || u != 6 {
		t.Errorf("skipped over budget %d, unavailable %d; want 4 and 6, each reason apart", b, u)
	}
	if _, ok := (streamMetrics{}).value(metricDropped); ok {
		t.Error("an absent series has a value")
	}
}

func TestPionDropsAreCounted(t *testing.T) {
	var b bench
	f := pionLogs(discardLog(), &b.pionFull)
	l := f.NewLogger("ice")
	l.Warnf("Failed to write packet: %s", "packetio.Buffer is full, discarding write")
	l.Info("mux: endpoint buffer is full, dropping packet")
	l.Debugf("something else %d", 1)
	l.Warn("Failed to ping without candidate pairs")
	if got := b.pionFull.Load(); got != 2 {
		t.Errorf("counted %d dropped packets, want 2", got)
	}
	if d := drops(counterSample{kernel: 1, benchPion: 2, serverPion: 3, metrics: streamMetrics{metricDropped: 4}},
		counterSample{kernel: 11, benchPion: 22, serverPion: 33, metrics: streamMetrics{metricDropped: 44}}); d.String() != "30/20/40/10" {
		t.Errorf("drops %v, want server pion 30, bench pion 20, queue 40, kernel 10", d)
	}
	if d := drops(counterSample{}, counterSample{metrics: streamMetrics{}}); d.ServerQueue != nil || d.String() != "0/0/-/0" {
		t.Errorf("drops %v without the server's series, want the queue unknown", d)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
