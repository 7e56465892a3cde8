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
// the publisher goes on a moment (so that losses at the window's end are
// seen and repaired), stops, in-flight packets drain, viewers hang up,
// the server is stopped.
//
// With -box the server under test is the box: the stream enters through
// its encoder pipe from a synthetic encoder in this process (box.go) and
// leaves through a WHIP egress to a second whipgate, and the report adds
// the box's CPU split by part and its allocations (profile.go).
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// streamName is the stream every run publishes and watches.
const streamName = "bench"

// otherLoadWarning is the CPU of other processes (percent of one core)
// above which a run is flagged: the machine was not the bench's alone.
const otherLoadWarning = 15

// stealWarning is the CPU the hypervisor took (percent of one core) above
// which a run's latency is called skewed: a vCPU descheduled during a
// keyframe burst delays it by the whole time slice.
const stealWarning = 2

// drain is how long viewers keep reading after the publisher stops, for
// packets in flight and their retransmissions.
const drain = 500 * time.Millisecond

// tail is how long the publisher keeps sending after the window: a loss
// among the window's last packets is only seen, and asked for, when a
// later packet arrives.
const tail = 300 * time.Millisecond

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
	if opt.Scenario == scenarioEgressRecovery {
		return b.recoveries(ctx, stdout)
	}
	return b.loads(ctx, stdout)
}

// loads makes the load runs: one per mode, viewer count and GRO setting,
// each Repeat times.
func (b *bench) loads(ctx context.Context, stdout io.Writer) error {
	opt := b.opt
	var results []Result
	gros := max(len(opt.GROs), 1)
	total := len(opt.Modes) * len(opt.Viewers) * opt.Repeat * gros
	for _, mode := range opt.Modes {
		for _, n := range opt.Viewers {
			for range opt.Repeat {
				// Each GRO setting in turn at one count: the machine's
				// load drifts less between them than across the counts.
				for i := range gros {
					if len(opt.GROs) > 0 {
						b.setGRO(opt.GROs[i])
					}
					fmt.Fprintf(b.logs, "bench: run %d/%d: %d viewers, %s, %.0f Mbps, %d fps, GOP %v, viewers' GRO %v\n",
						len(results)+1, total, n, mode, float64(opt.Bitrate)/1e6, opt.FPS, opt.GOP, onOff(b.opt.GRO))
					b.runs++
					r, err := b.run(ctx, mode, n)
					if err != nil {
						return errors.Join(err, writeLoads(stdout, results))
					}
					results = append(results, r)
					if r.OtherCPUPct != nil && *r.OtherCPUPct > otherLoadWarning {
						fmt.Fprintf(b.logs, "bench: warning: other processes used %.0f%% of a core during the window; this run's figures are skewed\n", *r.OtherCPUPct)
					}
					if r.StealCPUPct > stealWarning {
						fmt.Fprintf(b.logs, "bench: warning: the hypervisor took %.1f%% of a core from this machine during the window (steal); its latency figures are skewed\n", r.StealCPUPct)
					}
				}
			}
		}
	}
	return writeLoads(stdout, results)
}

// setGRO makes the next runs' viewers receive with UDP_GRO or without.
func (b *bench) setGRO(on bool) {
	b.opt.GRO = on
	b.peers.gro = on
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
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
	// viewerPath and publisherPath count what their lossy sockets
	// passed and dropped (-viewer-loss, -publisher-loss).
	viewerPath, publisherPath pathCounts
	// viewerRTP counts what the viewers' sockets received.
	viewerRTP rtpCounts
	// runs counts the runs started (for -cpuprofile's file names).
	runs int
}

func newBench(opt Options, logs io.Writer, log *slog.Logger) (*bench, error) {
	b := &bench{opt: opt, logs: logs, show: logFilter(opt.Verbose), log: log}
	if opt.Server == "" {
		var err error
		if b.bin, err = serverBinary(opt.Bin); err != nil {
			return nil, err
		}
	}
	b.peers = peerConfig{log: log, full: &b.pionFull, gro: opt.GRO, direct: opt.Receive == "direct"}
	return b, nil
}

// peer is the configuration of the index-th peer of role: the shared one
// with the path's random loss, if any.
func (b *bench) peer(role peerRole, index int) peerConfig {
	p := b.peers
	if role == rolePublisher {
		p.loss = newLossyPath(b.opt.PublisherLoss, b.opt.Seed, role, index, &b.publisherPath)
	} else {
		p.loss = newLossyPath(b.opt.ViewerLoss, b.opt.Seed, role, index, &b.viewerPath)
		p.counts = &b.viewerRTP
	}
	return p
}

// run is one measurement: one mode, one viewer count.
func (b *bench) run(ctx context.Context, mode string, viewers int) (res Result, err error) {
	opt := b.opt
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dir, err := runDir()
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)

	srv, target, err := b.servers(ctx, dir)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, srv.Close(), target.Close()) }()

	p := newPlan(opt.Bitrate, opt.FPS, opt.GOP, opt.KeyframeFactor)
	table := newFrameTable(opt.FPS, opt.Baseline+opt.Warmup+opt.Duration+time.Minute)
	pub, err := b.source(ctx, srv, dir)
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
	dj, err := b.sampleCounters(ctx, srv, pub.stats())
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
	d0, err := b.sampleCounters(ctx, srv, pub.stats())
	if err != nil {
		return res, err
	}
	w0, err := sampleAll(srv, target)
	if err != nil {
		return res, err
	}
	var box *boxWindow
	if opt.Box {
		box = b.openBoxWindow(ctx, srv)
	}
	probeCtx, stopProbes := context.WithCancel(ctx)
	var probes probeResult
	var probing sync.WaitGroup
	if opt.Joins > 0 {
		probing.Go(func() { probes = b.probeJoins(probeCtx, srv.url+"/whep/"+streamName+"/main", viewers, table) })
	}
	werr := pause(ctx, opt.Duration)
	w1, serr := sampleAll(srv, target)
	if box != nil {
		box.closeAllocs(ctx, srv)
	}
	d1, derr := b.sampleCounters(ctx, srv, pub.stats())
	serr = errors.Join(serr, derr)
	stopProbes()
	probing.Wait()
	if err := errors.Join(werr, serr, srv.alive(), target.alive()); err != nil {
		return res, err
	}
	if err := pause(ctx, tail); err != nil {
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
	res.ViewerLoss = lossFigures(opt.ViewerLoss, d0.viewerPath, d1.viewerPath)
	res.PublisherLoss = lossFigures(opt.PublisherLoss, d0.publisherPath, d1.publisherPath)
	res.repair(d0, d1)
	st := pub.stats()
	res.PublisherLateFrames, res.PublisherWriteErrs, res.Keyframes = st.late, st.writeErrs, st.keyframes
	res.PLIs, res.IngestNACKed = st.plis.Load(), st.nacks.Load()
	if box != nil {
		if res.Box, err = box.figures(opt, res, w0, w1); err != nil {
			return res, err
		}
		if err := box.keep(opt.CPUProfile, b.runs); err != nil {
			return res, err
		}
	}
	if res.Frames == 0 {
		return res, errors.New("bench: the publisher sent no frame in the window")
	}
	return res, nil
}

// source is what sends the stream into the server under test: a WHIP
// publisher, or with -box the encoder feed.
type source interface {
	send(ctx context.Context, opt sendOptions, table *frameTable) error
	stats() *sendStats
	Close(ctx context.Context) error
}

// source connects the stream's sender to srv.
func (b *bench) source(ctx context.Context, srv *server, dir string) (source, error) {
	if b.opt.Box {
		return startFeed(dir, b.opt)
	}
	return publish(ctx, b.peer(rolePublisher, 0), srv.url+"/whip/"+streamName, b.log)
}

// servers starts the server under test (and the egress target), or
// describes the external one.
func (b *bench) servers(ctx context.Context, dir string) (srv, target *server, err error) {
	if b.opt.Server != "" {
		return externalServer(b.opt.Server, b.opt.PID), nil, nil
	}
	config := b.opt.ServerConfig
	if b.opt.Box {
		if config, err = boxFiles(b.opt, dir); err != nil {
			return nil, nil, err
		}
	}
	if b.opt.Egress {
		if target, err = startServer(ctx, "target", b.bin, dir+"/target", b.opt.ServerConfig, listenAddrs{}, b.logs, b.show); err != nil {
			return nil, nil, err
		}
	}
	if srv, err = startServer(ctx, "server", b.bin, dir+"/server", config, listenAddrs{}, b.logs, b.show); err != nil {
		return nil, nil, errors.Join(err, target.Close())
	}
	return srv, target, nil
}

// runDir makes a run's directory for its servers' state.
func runDir() (string, error) {
	dir, err := os.MkdirTemp("", "whipgate-bench-*")
	if err != nil {
		return "", fmt.Errorf("bench: temp dir: %w", err)
	}
	return dir, nil
}

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
