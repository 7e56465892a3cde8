package bench

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// join starts n viewers at once and waits until each has its answer.
func (b *bench) join(ctx context.Context, url string, n int, table *frameTable) ([]*viewer, error) {
	vs := make([]*viewer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { vs[i], errs[i] = watch(ctx, b.peer(roleViewer, i), url, table) })
	}
	wg.Wait()
	return compact(vs), errors.Join(errs...)
}

// awaitJoins waits until every viewer has a complete keyframe, or for a
// GOP and 5 s more; a viewer that never joins shows as loss.
func (b *bench) awaitJoins(ctx context.Context, vs []*viewer) error {
	limit := time.NewTimer(max(b.opt.GOP, time.Second) + 5*time.Second)
	defer limit.Stop()
	for _, v := range vs {
		select {
		case <-v.tally.joined:
		case <-limit.C:
			b.log.Warn("viewers still without a keyframe when the warm-up starts")
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func compact(vs []*viewer) []*viewer {
	out := vs[:0]
	for _, v := range vs {
		if v != nil {
			out = append(out, v)
		}
	}
	return out
}

// probeResult is what the join probes measured.
type probeResult struct {
	joins  []float64 // ms
	failed int
}

// probeJoins runs join probes one after another until ctx ends: each joins,
// waits for its first complete keyframe, and hangs up. A random pause
// between probes lands them at random points of the GOP. The probes are
// viewers first, first+1, … (for their lossy paths).
func (b *bench) probeJoins(ctx context.Context, url string, first int, table *frameTable) probeResult {
	var r probeResult
	spacing := max(b.opt.Duration/time.Duration(b.opt.Joins), time.Millisecond)
	for i := range b.opt.Joins {
		v, err := watch(ctx, b.peer(roleViewer, first+i), url, table)
		if ctx.Err() != nil {
			if v != nil {
				_ = v.Close(context.WithoutCancel(ctx))
			}
			break
		}
		if err != nil {
			b.log.Warn("join probe", "err", err)
			r.failed++
			continue
		}
		select {
		case <-v.tally.joined:
			ms := float64(v.tally.joinedAt-v.tally.postedAt) / 1e6
			r.joins = append(r.joins, ms)
			b.log.Info("join probe", "ms", ms)
		case <-time.After(max(b.opt.GOP, time.Second) + 5*time.Second):
			r.failed++
			b.log.Warn("join probe saw no complete keyframe")
		case <-ctx.Done():
			b.log.Info("join probe cut short by the end of the window")
		}
		_ = v.Close(context.WithoutCancel(ctx))
		if pause(ctx, rand.N(spacing)) != nil {
			break
		}
	}
	return r
}
