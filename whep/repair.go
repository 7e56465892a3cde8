package whep

import (
	"sync"

	"whipgate/whip/rtc/nack"
)

// repairBook sums the viewers' loss repair per stream for metrics: the
// live viewers' responders, and what those gone did. A viewer moves from
// one to the other under one lock, so a stream's totals only grow.
type repairBook struct {
	mu      sync.Mutex
	live    map[string]map[*nack.Responder]struct{} // by stream
	retired map[string]nack.ResponderStats
}

func newRepairBook() *repairBook {
	return &repairBook{live: map[string]map[*nack.Responder]struct{}{}, retired: map[string]nack.ResponderStats{}}
}

// add counts r's figures in stream's from now on; a nil r is not counted.
func (b *repairBook) add(stream string, r *nack.Responder) {
	if r == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.live[stream] == nil {
		b.live[stream] = map[*nack.Responder]struct{}{}
	}
	b.live[stream][r] = struct{}{}
}

// retire keeps r's figures so far in stream's for good, and stops
// reading r.
func (b *repairBook) retire(stream string, r *nack.Responder) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.live[stream][r]; !ok {
		return
	}
	delete(b.live[stream], r)
	if len(b.live[stream]) == 0 {
		delete(b.live, stream)
	}
	b.retired[stream] = b.retired[stream].Add(r.Stats())
}

// totals is every stream's figures, the viewers gone included.
func (b *repairBook) totals() map[string]nack.ResponderStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]nack.ResponderStats, len(b.retired)+len(b.live))
	for stream, st := range b.retired {
		out[stream] = st
	}
	for stream, rs := range b.live {
		for r := range rs {
			out[stream] = out[stream].Add(r.Stats())
		}
	}
	return out
}

// Repair is each stream's viewers' loss repair since the server started,
// the viewers gone included: counters that only grow, for metrics.
func (h *Handler) Repair() map[string]nack.ResponderStats { return h.repairs.totals() }
