// Package bench is `whipgate bench`, the 8K60 benchmark: it publishes a
// synthetic H.264 stream over WHIP to a whipgate it starts as a separate
// process (so that the server's CPU and memory are its own), watches it
// with N cheap WHEP viewers in this process, and reports the server's CPU
// and memory, every viewer's packet loss and incomplete frames, one-way
// frame latency and join time, as a table and one JSON line per run.
//
// Timeline of one run: start the server; publish and wait until the
// publisher is connected; the baseline (publisher alone: ingest CPU and
// memory); the viewers join together (their join times) and the warm-up
// starts once each has a complete keyframe; the
// measurement window (CPU, memory, loss, latency; join probes if asked);
// the publisher stops, in-flight packets drain, viewers hang up, the
// server is stopped.
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// streamName is the stream every run publishes and watches.
const streamName = "bench"

// otherLoadWarning is the CPU of other processes (percent of one core)
// above which a run is flagged: the machine was not the bench's alone.
const otherLoadWarning = 15

// drain is how long viewers keep reading after the publisher stops, for
// packets in flight and their retransmissions.
const drain = 500 * time.Millisecond

// Run is the `whipgate bench` command line.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opt, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logs := &syncWriter{w: stderr}
	level := slog.LevelError
	if opt.Verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))
	b, err := newBench(opt, logs, log)
	if err != nil {
		return err
	}
	var results []Result
	total := len(opt.Modes) * len(opt.Viewers)
	for _, mode := range opt.Modes {
		for _, n := range opt.Viewers {
			fmt.Fprintf(logs, "bench: run %d/%d: %d viewers, %s, %.0f Mbps, %d fps, GOP %v\n",
				len(results)+1, total, n, mode, float64(opt.Bitrate)/1e6, opt.FPS, opt.GOP)
			r, err := b.run(ctx, mode, n)
			if err != nil {
				if len(results) > 0 {
					_ = writeTable(stdout, results)
					_ = writeJSON(stdout, results)
				}
				return err
			}
			results = append(results, r)
			if r.OtherCPUPct != nil && *r.OtherCPUPct > otherLoadWarning {
				fmt.Fprintf(logs, "bench: warning: other processes used %.0f%% of a core during the window; this run's figures are skewed\n", *r.OtherCPUPct)
			}
		}
	}
	if err := writeTable(stdout, results); err != nil {
		return err
	}
	return writeJSON(stdout, results)
}

// bench holds what all runs share.
type bench struct {
	opt   Options
	bin   string
	peers peerConfig
	logs  io.Writer // server output and progress
	show  func(string) bool
	log   *slog.Logger
	// pionFull counts packets the bench's pion peers dropped at full
	// receive buffers.
	pionFull atomic.Int64
}

func newBench(opt Options, logs io.Writer, log *slog.Logger) (*bench, error) {
	b := &bench{opt: opt, logs: logs, show: logFilter(opt.Verbose), log: log}
	if opt.Server == "" {
		var err error
		if b.bin, err = serverBinary(opt.Bin); err != nil {
			return nil, err
		}
	}
	b.peers = peerConfig{log: log, full: &b.pionFull}
	return b, nil
}

// run is one measurement: one mode, one viewer count.
func (b *bench) run(ctx context.Context, mode string, viewers int) (res Result, err error) {
	opt := b.opt
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dir, err := os.MkdirTemp("", "whipgate-bench-*")
	if err != nil {
		return res, fmt.Errorf("bench: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	srv, target, err := b.servers(ctx, dir)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, srv.Close(), target.Close()) }()

	p := newPlan(opt.Bitrate, opt.FPS, opt.GOP, opt.KeyframeFactor)
	table := newFrameTable(opt.FPS, opt.Baseline+opt.Warmup+opt.Duration+time.Minute)
	pub, err := publish(ctx, b.peers, srv.url+"/whip/"+streamName, b.log)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, pub.Close(context.WithoutCancel(ctx))) }()
	sendCtx, stopSend := context.WithCancel(ctx)
	var sendErr error
	var sending sync.WaitGroup
	sending.Go(func() {
		sendErr = pub.send(sendCtx, sendOptions{plan: p, paced: mode == "paced", answerPLI: !opt.IgnorePLI}, table)
	})
	stopSending := func() error {
		stopSend()
		sending.Wait()
		return sendErr
	}
	defer func() { _ = stopSending() }()

	var all []*viewer
	defer func() {
		for _, v := range all {
			_ = v.Close(context.WithoutCancel(ctx))
		}
	}()
	var egressViewer *viewer
	if target != nil {
		if egressViewer, err = b.startEgress(ctx, srv, target, table); err != nil {
			return res, err
		}
		all = append(all, egressViewer)
	}

	// Baseline: the publisher alone, once its first GOP is in.
	if err := pause(ctx, max(opt.GOP/2, 300*time.Millisecond)); err != nil {
		return res, err
	}
	base0, err := sampleServer(srv)
	if err != nil {
		return res, err
	}
	if err := pause(ctx, opt.Baseline); err != nil {
		return res, err
	}
	base1, err := sampleServer(srv)
	if err != nil {
		return res, err
	}

	// The viewers join together.
	dj, err := b.sampleDrops(ctx, srv)
	if err != nil {
		return res, err
	}
	vs, err := b.join(ctx, srv.url+"/whep/"+streamName+"/main", viewers, table)
	all = append(all, vs...)
	if err != nil {
		return res, err
	}
	// The warm-up starts once every viewer has its first keyframe: one
	// still waiting (a long GOP, PLI ignored) would count its wait as loss.
	if err := b.awaitJoins(ctx, vs); err != nil {
		return res, err
	}
	if err := pause(ctx, opt.Warmup); err != nil {
		return res, err
	}

	// The window.
	d0, err := b.sampleDrops(ctx, srv)
	if err != nil {
		return res, err
	}
	w0, err := sampleAll(srv, target)
	if err != nil {
		return res, err
	}
	probeCtx, stopProbes := context.WithCancel(ctx)
	var probes probeResult
	var probing sync.WaitGroup
	if opt.Joins > 0 {
		probing.Go(func() { probes = b.probeJoins(probeCtx, srv.url+"/whep/"+streamName+"/main", table) })
	}
	werr := pause(ctx, opt.Duration)
	w1, serr := sampleAll(srv, target)
	d1, derr := b.sampleDrops(ctx, srv)
	serr = errors.Join(serr, derr)
	stopProbes()
	probing.Wait()
	if err := errors.Join(werr, serr, srv.alive(), target.alive()); err != nil {
		return res, err
	}
	if err := stopSending(); err != nil {
		return res, err
	}
	if err := pause(ctx, drain); err != nil {
		return res, err
	}
	for _, v := range all {
		if err := v.Close(ctx); err != nil {
			b.log.Warn("viewer hang-up", "err", err)
		}
	}

	res = b.result(mode, p, table, w0, w1, base0, base1, vs, egressViewer, probes)
	res.Drops, res.JoinDrops = drops(d0, d1), drops(dj, d0)
	res.PublisherLateFrames, res.PublisherWriteErrs, res.Keyframes = pub.late, pub.writeErrs, pub.keyframes
	res.PLIs, res.IngestNACKed = pub.plis.Load(), pub.nacks.Load()
	if res.Frames == 0 {
		return res, errors.New("bench: the publisher sent no frame in the window")
	}
	return res, nil
}

// servers starts the server under test (and the egress target), or
// describes the external one.
func (b *bench) servers(ctx context.Context, dir string) (srv, target *server, err error) {
	if b.opt.Server != "" {
		return externalServer(b.opt.Server, b.opt.PID), nil, nil
	}
	if b.opt.Egress {
		if target, err = startServer(ctx, "target", b.bin, dir+"/target", b.opt.ServerConfig, b.logs, b.show); err != nil {
			return nil, nil, err
		}
	}
	if srv, err = startServer(ctx, "server", b.bin, dir+"/server", b.opt.ServerConfig, b.logs, b.show); err != nil {
		return nil, nil, errors.Join(err, target.Close())
	}
	return srv, target, nil
}

// join starts n viewers at once and waits until each has its answer.
func (b *bench) join(ctx context.Context, url string, n int, table *frameTable) ([]*viewer, error) {
	vs := make([]*viewer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { vs[i], errs[i] = watch(ctx, b.peers, url, table) })
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
// between probes lands them at random points of the GOP.
func (b *bench) probeJoins(ctx context.Context, url string, table *frameTable) probeResult {
	var r probeResult
	spacing := max(b.opt.Duration/time.Duration(b.opt.Joins), time.Millisecond)
	for range b.opt.Joins {
		v, err := watch(ctx, b.peers, url, table)
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

// samples are the process and machine counters at one instant.
type samples struct {
	srv, target *procSample
	self        procSample
	machine     machineSample
}

func sampleServer(s *server) (*procSample, error) {
	if s == nil || s.pid == "" {
		return nil, nil
	}
	p, err := readProc(s.pid)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

func sampleAll(srv, target *server) (samples, error) {
	var s samples
	var errs [4]error
	s.srv, errs[0] = sampleServer(srv)
	s.target, errs[1] = sampleServer(target)
	s.self, errs[2] = readProc("self")
	s.machine, errs[3] = readMachine()
	return s, errors.Join(errs[:]...)
}

// result turns a finished run's tallies and samples into figures.
func (b *bench) result(mode string, p plan, table *frameTable, w0, w1 samples, base0, base1 *procSample,
	vs []*viewer, egress *viewer, probes probeResult) Result {
	opt := b.opt
	r := Result{
		Viewers: len(vs), Mode: mode, BitrateMbps: float64(opt.Bitrate) / 1e6, FPS: opt.FPS,
		GOPSeconds: opt.GOP.Seconds(), KeyframeFactor: opt.KeyframeFactor,
		KeyframeBytes: p.keyBytes, FrameBytes: p.deltaBytes, Egress: opt.Egress,
		WindowSeconds: round2(w1.self.at.Sub(w0.self.at).Seconds()),
		BenchCPUPct:   round2(cpuPct(w0.self, w1.self)),
		Cores:         runtime.NumCPU(),
		JoinFailed:    probes.failed,
	}
	if w0.srv != nil && w1.srv != nil {
		cpu := cpuPct(*w0.srv, *w1.srv)
		r.ServerCPUPct = ptr(cpu)
		r.RSSMB = ptr(float64(w1.srv.rss) / (1 << 20))
		r.PeakRSSMB = ptr(float64(w1.srv.hwm) / (1 << 20))
		if base0 != nil && base1 != nil {
			ingest := cpuPct(*base0, *base1)
			r.IngestCPUPct = ptr(ingest)
			r.BaselineRSSMB = ptr(float64(base1.rss) / (1 << 20))
			if len(vs) > 0 {
				r.CPUPerViewerPct = ptr((cpu - ingest) / float64(len(vs)))
				r.RSSPerViewerMB = ptr(float64(w1.srv.rss-base1.rss) / (1 << 20) / float64(len(vs)))
			}
		}
	}
	if w0.target != nil && w1.target != nil {
		r.TargetCPUPct = ptr(cpuPct(*w0.target, *w1.target))
	}
	busy, irq := machinePct(w0.machine, w1.machine, r.Cores)
	r.MachineBusyPct = round2((busy + irq) / float64(r.Cores))
	r.InterruptCPUPct = round2(irq)
	if r.ServerCPUPct != nil {
		other := busy - r.BenchCPUPct - *r.ServerCPUPct
		if r.TargetCPUPct != nil {
			other -= *r.TargetCPUPct
		}
		r.OtherCPUPct = ptr(max(other, 0))
	}

	first, end := table.window(w0.self.at.UnixNano(), w1.self.at.UnixNano())
	r.Frames = end - first
	var latency, added, joins []float64
	var lost, expected, incomplete, frames int64
	for _, v := range vs {
		vr, l, a := v.tally.result(first, end, latency, added)
		latency, added = l, a
		r.PerViewer = append(r.PerViewer, vr)
		lost += vr.Lost
		expected += vr.Packets
		incomplete += int64(vr.Incomplete)
		frames += int64(vr.Frames)
		r.WorstLossPct = max(r.WorstLossPct, round2(vr.LossPct))
		r.WorstIncompletePct = max(r.WorstIncompletePct, round2(vr.IncompletePct))
		if vr.JoinMs > 0 {
			joins = append(joins, vr.JoinMs)
		}
	}
	if expected > 0 {
		r.LossPct = round4(100 * float64(lost) / float64(expected))
	}
	if frames > 0 {
		r.IncompletePct = round4(100 * float64(incomplete) / float64(frames))
	}
	r.LatencyMs = percentiles(latency)
	r.AddedLatencyMs = percentiles(added)
	r.ProbeJoinMs = percentiles(probes.joins)
	r.JoinMs = percentiles(append(joins, probes.joins...))
	if egress != nil {
		er, l, _ := egress.tally.result(first, end, nil, nil)
		r.EgressViewer = &er
		pl := percentiles(l)
		r.EgressLatencyMs = &pl
	}
	return r
}

func round4(f float64) float64 { return float64(int64(f*1e4+0.5)) / 1e4 }

// pause sleeps for d unless ctx ends first.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// syncWriter serializes writes from the servers' output pumps and the
// bench's logger.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
