package bench

import (
	"context"
	"fmt"
	"strconv"
)

// Where a lost packet was lost, so that a loss figure can be pinned on the
// server or on the bench itself:
//   - the kernel, at a full socket buffer (udpDrops, machine-wide);
//   - pion's fixed 1 MB receive buffers (ICE agent, DTLS/SRTP mux), which
//     log "is full" for each packet they drop: counted in the bench's own
//     log bridge for its viewers, and in the server's log for its ingest;
//   - the server's per-subscriber queues (its /metrics, summed over the
//     stream: the WHEP viewers', and with -egress the egress's).

// counterSample is a snapshot of the counters above, and of the others
// a run takes the difference of over its window.
type counterSample struct {
	kernel     int64
	benchPion  int64
	serverPion int64
	// metrics is the server's /metrics for the bench stream; nil when
	// it has none.
	metrics streamMetrics
	// What the bench's lossy paths dropped.
	viewerPath, publisherPath lossSample
	// What the viewers' sockets received, and the keyframe requests
	// that reached the publisher.
	viewerRTP     rtpSample
	publisherPLIs uint64
}

func (b *bench) sampleCounters(ctx context.Context, srv *server, pub *sendStats) (counterSample, error) {
	k, err := udpDrops()
	if err != nil {
		return counterSample{}, err
	}
	d := counterSample{kernel: k, benchPion: b.pionFull.Load(), viewerPath: b.viewerPath.sample(), publisherPath: b.publisherPath.sample(),
		viewerRTP: b.viewerRTP.sample(), publisherPLIs: pub.plis.Load()}
	if srv != nil {
		d.serverPion = srv.full.Load()
		d.metrics = readStreamMetrics(ctx, srv.url, streamName)
	}
	return d, nil
}

// Drops is where packets were lost during the window.
type Drops struct {
	// Kernel: datagrams dropped at full socket buffers, machine-wide.
	Kernel int64 `json:"kernel"`
	// BenchPion: packets the bench's own pion peers dropped at a full
	// receive buffer (a viewer that could not keep up: not the server).
	BenchPion int64 `json:"bench_pion"`
	// ServerPion: packets the server's pion dropped at a full receive
	// buffer (ingest bursts); only for a server the bench started.
	ServerPion int64 `json:"server_pion"`
	// ServerQueue: packets the server dropped at its subscribers' full
	// queues (the WHEP viewers' and, with -egress, the egress's: the
	// server counts them per stream); null when its /metrics does not
	// say.
	ServerQueue *int64 `json:"server_queue"`
}

func drops(a, b counterSample) Drops {
	d := Drops{Kernel: b.kernel - a.kernel, BenchPion: b.benchPion - a.benchPion, ServerPion: b.serverPion - a.serverPion}
	q0, ok0 := a.metrics.value(metricDropped)
	q1, ok1 := b.metrics.value(metricDropped)
	if ok0 && ok1 {
		q := q1 - q0
		d.ServerQueue = &q
	}
	return d
}

func (d Drops) String() string {
	q := "-"
	if d.ServerQueue != nil {
		q = strconv.FormatInt(*d.ServerQueue, 10)
	}
	return fmt.Sprintf("%d/%d/%s/%d", d.ServerPion, d.BenchPion, q, d.Kernel)
}
