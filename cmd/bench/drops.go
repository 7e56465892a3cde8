package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Where a lost packet was lost, so that a loss figure can be pinned on the
// server or on the bench itself:
//   - the kernel, at a full socket buffer (udpDrops, machine-wide);
//   - pion's fixed 1 MB receive buffers (ICE agent, DTLS/SRTP mux), which
//     log "is full" for each packet they drop: counted in the bench's own
//     log bridge for its viewers, and in the server's log for its ingest;
//   - the server's per-viewer queue (its /metrics).

// queueDrops sums the server's whipgate_subscriber_packets_dropped_total
// over its WHEP subscribers (none listed: 0). ok is false when the server
// has no /metrics to read.
func queueDrops(ctx context.Context, base string) (n int64, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "whipgate_subscriber_packets_dropped_total{") || !strings.Contains(l, `kind="whep"`) {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, false
		}
		n += int64(v)
	}
	return n, sc.Err() == nil
}

// dropCounts is a snapshot of the counters above.
type dropCounts struct {
	kernel      int64
	benchPion   int64
	serverPion  int64
	serverQueue int64
	queueKnown  bool
}

func (b *bench) sampleDrops(ctx context.Context, srv *server) (dropCounts, error) {
	k, err := udpDrops()
	if err != nil {
		return dropCounts{}, err
	}
	d := dropCounts{kernel: k, benchPion: b.pionFull.Load()}
	if srv != nil {
		d.serverPion = srv.full.Load()
		d.serverQueue, d.queueKnown = queueDrops(ctx, srv.url)
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
	// ServerQueue: packets the server dropped at viewers' full queues;
	// null when its /metrics does not say.
	ServerQueue *int64 `json:"server_queue"`
}

func drops(a, b dropCounts) Drops {
	d := Drops{Kernel: b.kernel - a.kernel, BenchPion: b.benchPion - a.benchPion, ServerPion: b.serverPion - a.serverPion}
	if a.queueKnown && b.queueKnown {
		q := b.serverQueue - a.serverQueue
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
