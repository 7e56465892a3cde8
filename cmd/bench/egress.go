package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// startEgress asks the server under test, through its control API, to
// publish the bench stream over WHIP to the target (its main layer, and
// with -box the preview, in -egress-mode), and starts a viewer on
// the target that proves the egress delivers (its loss and latency are the
// egress path's). It runs before the baseline, so the egress's cost counts
// as ingest and CPU per viewer stays the WHEP viewers' own.
func (b *bench) startEgress(ctx context.Context, srv, target *server, table *frameTable) (*viewer, error) {
	request, watchURL := b.egress(target)
	body, err := json.Marshal(request)
	if err != nil {
		return nil, fmt.Errorf("bench: egress request: %w", err)
	}
	resp, msg, err := call(ctx, http.MethodPost, srv.url+"/api/v1/egress", "application/json", bytes.NewReader(body), 64<<10)
	if err != nil {
		return nil, fmt.Errorf("bench: create egress: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusMethodNotAllowed,
		resp.StatusCode == http.StatusNotFound && !strings.Contains(string(msg), "stream"):
		return nil, fmt.Errorf("bench: this whipgate has no egress API (POST /api/v1/egress: %s); -egress needs it", resp.Status)
	case resp.StatusCode >= 300:
		return nil, fmt.Errorf("bench: create egress: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}

	// The target has the stream once the egress has connected.
	v, err := b.watchOnceThere(ctx, watchURL, table, 15*time.Second)
	if err != nil {
		return nil, fmt.Errorf("bench: the egress target never had the stream: %w", err)
	}
	return v, nil
}

// watchOnceThere starts a viewer (with no loss) of url, a stream that may
// not be published yet: until it is, the WHEP endpoint answers 404 or 409,
// and the viewer tries again every 100 ms for up to limit.
func (b *bench) watchOnceThere(ctx context.Context, url string, table *frameTable, limit time.Duration) (*viewer, error) {
	deadline := time.Now().Add(limit)
	for {
		v, err := watch(ctx, b.peers, url, table)
		if err == nil || time.Now().After(deadline) {
			return v, err
		}
		if perr := pause(ctx, 100*time.Millisecond); perr != nil {
			return nil, errors.Join(err, perr)
		}
	}
}
