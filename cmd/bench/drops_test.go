package bench

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestQueueDropsFromMetrics(t *testing.T) {
	body := `# HELP whipgate_subscriber_packets_dropped_total Packets a slow subscriber lost to its full queue.
# TYPE whipgate_subscriber_packets_dropped_total counter
whipgate_subscriber_packets_dropped_total{kind="whep",stream="bench",subscriber="2"} 5
whipgate_subscriber_packets_dropped_total{kind="egress",stream="bench",subscriber="3"} 100
whipgate_subscriber_packets_dropped_total{kind="whep",stream="bench",subscriber="4"} 7
whipgate_stream_packets_total{stream="bench"} 9
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	if n, ok := queueDrops(context.Background(), srv.URL); !ok || n != 12 {
		t.Errorf("queueDrops = %d, %v; want 12 (the WHEP subscribers only), true", n, ok)
	}
	body = "# nothing yet\n"
	if n, ok := queueDrops(context.Background(), srv.URL); !ok || n != 0 {
		t.Errorf("no subscribers: queueDrops = %d, %v; want 0, true", n, ok)
	}
	if _, ok := queueDrops(context.Background(), srv.URL+"/nothing"); ok {
		t.Error("a server without /metrics reported drops")
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
	if d := drops(dropCounts{kernel: 1, benchPion: 2, serverPion: 3, serverQueue: 4, queueKnown: true},
		dropCounts{kernel: 11, benchPion: 22, serverPion: 33, serverQueue: 44, queueKnown: true}); d.String() != "30/20/40/10" {
		t.Errorf("drops %v, want server pion 30, bench pion 20, queue 40, kernel 10", d)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
