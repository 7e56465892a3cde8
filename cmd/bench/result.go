package bench

import (
	"errors"
	"runtime"
)

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
		GOPSeconds: opt.GOP.Seconds(), KeyframeFactor: opt.KeyframeFactor, Seed: opt.Seed,
		KeyframeBytes: p.keyBytes, FrameBytes: p.deltaBytes, Egress: opt.Egress,
		ViewerGRO:     opt.GRO,
		ViewerReceive: opt.Receive,
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
	busy, irq, steal := machinePct(w0.machine, w1.machine, r.Cores)
	r.MachineBusyPct = round2((busy + irq) / float64(r.Cores))
	r.InterruptCPUPct = round2(irq)
	r.StealCPUPct = round2(steal)
	if r.ServerCPUPct != nil {
		other := busy - r.BenchCPUPct - *r.ServerCPUPct
		if r.TargetCPUPct != nil {
			other -= *r.TargetCPUPct
		}
		r.OtherCPUPct = ptr(max(other, 0))
	}

	first, end := table.window(w0.self.at.UnixNano(), w1.self.at.UnixNano())
	r.Frames = end - first
	var lat latencies
	var joins []float64
	var lost, expected, incomplete, frames, dups int64
	for _, v := range vs {
		var vr viewerResult
		vr, lat = v.tally.result(first, end, lat)
		if d := v.direct; d != nil {
			r.ViewerDirectPackets += d.taken.Load()
			r.ViewerRTX += d.rtx.Load()
			r.ViewerSRTPErrors += d.undecryptable.Load()
		}
		r.PerViewer = append(r.PerViewer, vr)
		lost += vr.Lost
		expected += vr.Packets
		incomplete += int64(vr.Incomplete)
		frames += int64(vr.Frames)
		dups += vr.Duplicates
		r.StallMs = max(r.StallMs, round2(vr.StallMs))
		r.LongestGapMs = max(r.LongestGapMs, round2(vr.LongestGapMs))
		r.WorstDuplicatePct = max(r.WorstDuplicatePct, round2(vr.DuplicatePct))
		r.WorstLossPct = max(r.WorstLossPct, round2(vr.LossPct))
		r.WorstIncompletePct = max(r.WorstIncompletePct, round2(vr.IncompletePct))
		if vr.JoinMs > 0 {
			joins = append(joins, vr.JoinMs)
		}
	}
	if expected > 0 {
		r.LossPct = round4(100 * float64(lost) / float64(expected))
		r.DuplicatePct = round4(100 * float64(dups) / float64(expected))
	}
	if frames > 0 {
		r.IncompletePct = round4(100 * float64(incomplete) / float64(frames))
	}
	r.LatencyMs = percentiles(lat.frame)
	r.AddedLatencyMs = percentiles(lat.added)
	r.WireLatencyMs = percentiles(lat.wire)
	r.WireKeyLatencyMs = percentiles(lat.wireKey)
	r.WireDeltaLatencyMs = percentiles(lat.wireDelta)
	r.ProbeJoinMs = percentiles(probes.joins)
	r.JoinMs = percentiles(append(joins, probes.joins...))
	if egress != nil {
		er, l := egress.tally.result(first, end, latencies{})
		r.EgressViewer = &er
		pl := percentiles(l.frame)
		r.EgressLatencyMs = &pl
	}
	return r
}

func round4(f float64) float64 { return float64(int64(f*1e4+0.5)) / 1e4 }
