package cmd

import (
	"context"
	"net/http"
	"net/http/pprof"
	runtimepprof "runtime/pprof"

	"github.com/go-chi/chi/v5"
)

// The values of the "part" profiler label (runtime/pprof) on the box's
// goroutines. A goroutine inherits its creator's labels, so labelling
// where a part starts its work labels the goroutines pion and the
// transport start for it too. whipgate bench -box sums a CPU profile's
// samples by it: Go has no CPU time per goroutine.
//
// The egress registry (whip/egress) labels its egresses "egress" itself:
// their goroutines start there, whoever adds them.
const (
	partLabel   = "part"
	partIngest  = "ingest"  // local sources: the encoder's pipes, the test pattern
	partViewers = "viewers" // WHEP sessions
)

// labelled runs f with the part label on the calling goroutine, and on
// the goroutines it starts. Unprofiled, a label costs a pointer per
// goroutine.
func labelled(ctx context.Context, part string, f func(context.Context)) {
	runtimepprof.Do(ctx, runtimepprof.Labels(partLabel, part), f)
}

// pprofRoutes are net/http/pprof's handlers (http.pprof: true).
func pprofRoutes() http.Handler {
	r := chi.NewRouter()
	r.Get("/", pprof.Index)
	r.Get("/cmdline", pprof.Cmdline)
	r.Get("/profile", pprof.Profile)
	r.Get("/symbol", pprof.Symbol)
	r.Get("/trace", pprof.Trace)
	r.Get("/{name}", pprof.Index) // heap, allocs, goroutine, block, mutex, threadcreate
	return r
}
