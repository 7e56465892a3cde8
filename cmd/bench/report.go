package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"text/tabwriter"
)

// Result is one run's figures: what the JSON line holds. Server figures
// are null when the server's process is unknown (-server without -pid).
type Result struct {
	Viewers        int     `json:"viewers"`
	Mode           string  `json:"mode"`
	BitrateMbps    float64 `json:"bitrate_mbps"`
	FPS            int     `json:"fps"`
	GOPSeconds     float64 `json:"gop_s"`
	KeyframeFactor float64 `json:"keyframe_factor"`
	KeyframeBytes  int     `json:"keyframe_bytes"`
	FrameBytes     int     `json:"frame_bytes"` // every other frame
	Egress         bool    `json:"egress"`
	// ViewerLoss and PublisherLoss are what the bench's lossy paths
	// dropped during the window (-viewer-loss, -publisher-loss); absent
	// without loss. Seed seeded the drops.
	ViewerLoss    *LossFigures `json:"viewer_loss,omitempty"`
	PublisherLoss *LossFigures `json:"publisher_loss,omitempty"`
	Seed          uint64       `json:"seed"`
	// ViewerGRO: the viewers received GSO messages whole (Options.GRO).
	ViewerGRO bool `json:"viewer_gro"`
	// ViewerReceive is Options.Receive; ViewerDirectPackets the media
	// packets the viewers read beneath pion (with "direct", all but those
	// before the keys were known), ViewerRTX the RTX repairs among them,
	// ViewerSRTPErrors the packets that did not authenticate.
	ViewerReceive       string  `json:"viewer_receive"`
	ViewerDirectPackets uint64  `json:"viewer_direct_packets"`
	ViewerRTX           uint64  `json:"viewer_rtx"`
	ViewerSRTPErrors    uint64  `json:"viewer_srtp_errors"`
	WindowSeconds       float64 `json:"window_s"`

	// ServerCPUPct is the server's CPU in percent of one core over the
	// window; IngestCPUPct the same with the publisher alone (baseline);
	// CPUPerViewerPct their difference divided by the viewers.
	ServerCPUPct    *float64 `json:"server_cpu_pct"`
	IngestCPUPct    *float64 `json:"ingest_cpu_pct"`
	CPUPerViewerPct *float64 `json:"cpu_per_viewer_pct"`
	// RSSMB is the server's resident memory at the end of the window,
	// BaselineRSSMB at the end of the baseline, PeakRSSMB its high-water
	// mark, RSSPerViewerMB (RSS − baseline) / viewers.
	RSSMB          *float64 `json:"rss_mb"`
	BaselineRSSMB  *float64 `json:"baseline_rss_mb"`
	PeakRSSMB      *float64 `json:"peak_rss_mb"`
	RSSPerViewerMB *float64 `json:"rss_per_viewer_mb"`
	// TargetCPUPct is the egress target's CPU (egress mode).
	TargetCPUPct *float64 `json:"egress_target_cpu_pct,omitempty"`
	// BenchCPUPct is this process (publisher and viewers) in percent of
	// one core, MachineBusyPct the share of all cores busy (processes
	// and interrupts): near 100 means the figures are bounded by the
	// machine, not by the server.
	BenchCPUPct    float64 `json:"bench_cpu_pct"`
	MachineBusyPct float64 `json:"machine_busy_pct"`
	// InterruptCPUPct is the machine's time in interrupts (percent of
	// one core): loopback delivery of the server's and the bench's
	// packets runs mostly in softirq, charged to neither process.
	InterruptCPUPct float64 `json:"interrupt_cpu_pct"`
	// StealCPUPct is time the hypervisor gave our vCPUs to others (percent
	// of one core); in a burst it reads as latency.
	StealCPUPct float64 `json:"steal_cpu_pct"`
	// OtherCPUPct is other processes (percent of one core): more than a
	// few percent means the run was disturbed.
	OtherCPUPct *float64 `json:"other_cpu_pct"`
	Cores       int      `json:"cores"`

	// Frames is how many frames the publisher sent in the window.
	Frames int `json:"frames"`
	// Loss and incomplete frames over all viewers, and the worst viewer.
	LossPct            float64 `json:"loss_pct"`
	IncompletePct      float64 `json:"incomplete_pct"`
	WorstLossPct       float64 `json:"worst_loss_pct"`
	WorstIncompletePct float64 `json:"worst_incomplete_pct"`
	// LatencyMs: a frame's first packet sent → its last packet received
	// (send time carried in the payload), complete frames of all viewers.
	// AddedLatencyMs: the frame's last packet sent → received, which
	// leaves out the publisher's own time to write a burst.
	// WireLatencyMs: the frame's last packet sent → at the viewer's
	// socket (kernel receive time): what the server adds, without the
	// bench's own pion receive path.
	LatencyMs      Percentiles `json:"latency_ms"`
	AddedLatencyMs Percentiles `json:"added_latency_ms"`
	WireLatencyMs  Percentiles `json:"wire_latency_ms"`
	// The wire latencies of keyframes and of the other frames apart.
	WireKeyLatencyMs   Percentiles `json:"wire_latency_keyframes_ms"`
	WireDeltaLatencyMs Percentiles `json:"wire_latency_other_frames_ms"`
	// JoinMs: WHEP POST start → first complete keyframe, for the viewers
	// and the join probes; ProbeJoinMs the probes alone.
	JoinMs      Percentiles `json:"join_ms"`
	ProbeJoinMs Percentiles `json:"probe_join_ms"`
	JoinFailed  int         `json:"join_failed"`

	PublisherLateFrames int    `json:"publisher_late_frames"`
	PublisherWriteErrs  int    `json:"publisher_write_errors"`
	Keyframes           int    `json:"keyframes"`
	PLIs                uint64 `json:"plis"`
	IngestNACKed        uint64 `json:"ingest_nacked_packets"`

	// Repair during the window. StallMs is the worst viewer's stall time
	// (see viewerResult), LongestGapMs the longest gap between frames
	// shown of any viewer; DuplicatePct the packets that arrived again
	// at the viewers in % of the stream's, WorstDuplicatePct the worst
	// viewer's.
	StallMs           float64 `json:"stall_ms"`
	LongestGapMs      float64 `json:"longest_gap_ms"`
	DuplicatePct      float64 `json:"duplicate_pct"`
	WorstDuplicatePct float64 `json:"worst_duplicate_pct"`
	// ResentPackets and ResentBytes are the server's RTX toward the
	// viewers as it reached their sockets (SRTP datagrams, those the
	// bench's lossy path then dropped included), ResentPct their bytes
	// in % of the media's. ServerRepair is the server's own count, with
	// the requests it did not answer (null when its /metrics does not
	// say).
	ResentPackets int64         `json:"resent_packets"`
	ResentBytes   int64         `json:"resent_bytes"`
	ResentPct     float64       `json:"resent_pct"`
	ServerRepair  *ViewerRepair `json:"server_repair"`
	// KeyframeRequestsReceived counts the PLIs and FIRs that reached the
	// publisher during the window; IngestRepair has those the server
	// sent, and its repair of the publisher's stream (null when its
	// /metrics does not say).
	KeyframeRequestsReceived uint64        `json:"keyframe_requests_received"`
	IngestRepair             *IngestRepair `json:"ingest_repair"`

	// Drops says where packets were lost during the window: in the
	// server (its pion buffers, its viewer queues), in the bench's own
	// pion buffers, or in the kernel.
	Drops Drops `json:"drops"`
	// JoinDrops is the same from the viewers' POSTs to the window: the
	// GOP cache's burst toward each new viewer lands in this time.
	JoinDrops Drops `json:"join_drops"`

	PerViewer []viewerResult `json:"per_viewer"`
	// EgressViewer is a viewer on the egress target (egress mode).
	EgressViewer *viewerResult `json:"egress_viewer,omitempty"`
	// EgressLatencyMs is that viewer's frame latency.
	EgressLatencyMs *Percentiles `json:"egress_latency_ms,omitempty"`
	// Box has a -box run's figures.
	Box *BoxFigures `json:"box,omitempty"`
}

// BoxFigures are what a -box run adds: the box's CPU by part and its
// allocations (profile.go says how the split is made).
type BoxFigures struct {
	EgressMode         string  `json:"egress_mode"`
	PreviewBitrateMbps float64 `json:"preview_bitrate_mbps"`
	// CPUPct is each part's CPU over the window in percent of one core:
	// ingest, hub, egress, viewers, gc, other; they add up to
	// ServerCPUPct.
	CPUPct map[string]float64 `json:"cpu_pct"`
	// ProfileShare is each part's share of the profile's CPU samples,
	// in CPUPct's order above; ProfileSamples how many samples (one per
	// 10 ms of CPU) over ProfileSeconds.
	// ProfiledCPUPct is the CPU the samples account for (percent of one
	// core over ProfileSeconds): below ServerCPUPct by what the profiler
	// does not see.
	ProfileShare   []float64 `json:"profile_share"`
	ProfileSamples int       `json:"profile_samples"`
	ProfileSeconds int       `json:"profile_s"`
	ProfiledCPUPct float64   `json:"profiled_cpu_pct"`
	// AllocsPerSecond is the server's heap allocations (objects) per
	// second over the window, the bench's readings' own taken off;
	// AllocsPerFrame the same per frame of the main layer. Null when
	// they could not be read.
	AllocsPerSecond *float64 `json:"allocs_per_s"`
	AllocsPerFrame  *float64 `json:"allocs_per_frame"`
}

// Percentiles of a sample, nearest rank.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func percentiles(v []float64) Percentiles {
	if len(v) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return round2(s[min(max(i, 0), len(s)-1)])
	}
	return Percentiles{N: len(s), P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: round2(s[len(s)-1])}
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

func ptr(f float64) *float64 { f = round2(f); return &f }

// writeTable prints one row per run.
func writeTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "viewers\tmode\tMbps\tsrv CPU%\tCPU%/viewer\tRSS MB\tMB/viewer\tloss%\tincompl%\tworst%\tlat p50\tp95\tp99 ms\tadded p99\twire p99\tjoin p50 ms\tdrops s-pion/b-pion/queue/kernel\tbusy%\tirq%\tsteal%\tother%\t")
	for _, r := range results {
		mode := runKind(r)
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%s\t%s\t%s\t%s\t%.3f\t%.3f\t%.3f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%s\t%.0f\t%.0f\t%.1f\t%s\t\n",
			r.Viewers, mode, r.BitrateMbps, opt(r.ServerCPUPct, 1), opt(r.CPUPerViewerPct, 2),
			opt(r.RSSMB, 0), opt(r.RSSPerViewerMB, 2), r.LossPct, r.IncompletePct,
			max(r.WorstLossPct, r.WorstIncompletePct),
			r.LatencyMs.P50, r.LatencyMs.P95, r.LatencyMs.P99, r.AddedLatencyMs.P99, r.WireLatencyMs.P99,
			joinCell(r.JoinMs), r.Drops, r.MachineBusyPct, r.InterruptCPUPct, r.StealCPUPct, opt(r.OtherCPUPct, 0))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := writeMarginalTable(w, results); err != nil {
		return err
	}
	if err := writeRepairTable(w, results); err != nil {
		return err
	}
	if err := writeEgressTable(w, results); err != nil {
		return err
	}
	return writeBoxTable(w, results)
}

// writeBoxTable prints, for -box runs, the box's CPU by part, its
// allocations, and what the egress target's viewer saw.
func writeBoxTable(w io.Writer, results []Result) error {
	return writeSection(w, results, "box (encoder pipe in, main + preview, WHIP egress out; CPU in % of one core, split by a CPU profile):",
		"viewers\tegress\tMbps\tbox CPU%\tingest\thub\tegress\tviewers\tgc\tother\tsamples\tallocs/s\tallocs/frame\ttarget loss%\tincompl%\tlat p50\tp95\tp99 ms\t",
		func(r Result) string {
			x := r.Box
			if x == nil {
				return ""
			}
			e, lat := egressFigures(r)
			return fmt.Sprintf("%d\t%s\t%.0f+%.0f\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%s\t%s\t%.3f\t%.3f\t%.1f\t%.1f\t%.1f\t\n",
				r.Viewers, x.EgressMode, r.BitrateMbps, x.PreviewBitrateMbps, opt(r.ServerCPUPct, 1),
				x.CPUPct[partIngest], x.CPUPct[partHub], x.CPUPct[partEgress], x.CPUPct[partViewers], x.CPUPct[partGC], x.CPUPct[partOther],
				x.ProfileSamples, opt(x.AllocsPerSecond, 0), opt(x.AllocsPerFrame, 1), e.LossPct, e.IncompletePct, lat.P50, lat.P95, lat.P99)
		})
}

// writeSection prints a table of the runs that row makes a line of (""
// for none), under title and header; nothing when no run has one.
func writeSection(w io.Writer, results []Result, title, header string, row func(Result) string) error {
	shown := false
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, r := range results {
		line := row(r)
		if line == "" {
			continue
		}
		if !shown {
			fmt.Fprintf(w, "\n%s\n", title)
			fmt.Fprintln(tw, header)
			shown = true
		}
		fmt.Fprint(tw, line)
	}
	return tw.Flush()
}

// egressFigures are what the egress target's viewer saw (zeros without
// one).
func egressFigures(r Result) (viewerResult, Percentiles) {
	e, lat := viewerResult{}, Percentiles{}
	if r.EgressViewer != nil {
		e = *r.EgressViewer
	}
	if r.EgressLatencyMs != nil {
		lat = *r.EgressLatencyMs
	}
	return e, lat
}

// Marginal is what one more viewer costs the server, for the runs of one
// kind (mode, GRO, receive path, egress) at two viewer counts or more: the
// least-squares slope of their server CPU against their viewers. Unlike
// CPU%/viewer it leaves out the 2 s publisher-alone baseline, whose noise
// a run's own division by its viewers carries, and what the first viewer
// costs once (the hub's fan-out, a session's timers).
type Marginal struct {
	// Kind is the runs' mode as the table shows it (burst,nogro).
	Kind string `json:"kind"`
	// Runs were made at MinViewers to MaxViewers viewers.
	Runs       int `json:"runs"`
	MinViewers int `json:"min_viewers"`
	MaxViewers int `json:"max_viewers"`
	// CPUPerViewer is the slope of the server's CPU, in % of a core per
	// viewer; IRQPerViewer the same of the machine's interrupt time,
	// where loopback delivery runs when no process's system call does.
	CPUPerViewer float64 `json:"cpu_per_viewer_pct"`
	IRQPerViewer float64 `json:"irq_per_viewer_pct"`
	// MaxOtherCPU is the most other processes took in any of the runs:
	// above ~15 the slope is skewed.
	MaxOtherCPU float64 `json:"max_other_cpu_pct"`
}

// marginals groups the runs by kind, in the order each kind first ran.
func marginals(results []Result) []Marginal {
	type acc struct {
		m                   Marginal
		n, sx, sy, sxx, sxy float64
		sirq, sxirq         float64
		counts              map[int]bool
	}
	var order []string
	groups := map[string]*acc{}
	for _, r := range results {
		if r.ServerCPUPct == nil || r.Viewers == 0 {
			continue
		}
		k := runKind(r)
		a := groups[k]
		if a == nil {
			a = &acc{m: Marginal{Kind: k, MinViewers: r.Viewers, MaxViewers: r.Viewers}, counts: map[int]bool{}}
			groups[k] = a
			order = append(order, k)
		}
		x, y := float64(r.Viewers), *r.ServerCPUPct
		a.n, a.sx, a.sy, a.sxx, a.sxy = a.n+1, a.sx+x, a.sy+y, a.sxx+x*x, a.sxy+x*y
		a.sirq, a.sxirq = a.sirq+r.InterruptCPUPct, a.sxirq+x*r.InterruptCPUPct
		a.counts[r.Viewers] = true
		a.m.Runs++
		a.m.MinViewers, a.m.MaxViewers = min(a.m.MinViewers, r.Viewers), max(a.m.MaxViewers, r.Viewers)
		if r.OtherCPUPct != nil {
			a.m.MaxOtherCPU = max(a.m.MaxOtherCPU, *r.OtherCPUPct)
		}
	}
	var out []Marginal
	for _, k := range order {
		a := groups[k]
		d := a.n*a.sxx - a.sx*a.sx
		if len(a.counts) < 2 || d == 0 {
			continue
		}
		a.m.CPUPerViewer = round2((a.n*a.sxy - a.sx*a.sy) / d)
		a.m.IRQPerViewer = round2((a.n*a.sxirq - a.sx*a.sirq) / d)
		a.m.MaxOtherCPU = round2(a.m.MaxOtherCPU)
		out = append(out, a.m)
	}
	return out
}

// runKind is a run's mode as the table shows it: burst or paced, then
// +egress, ,nogro (viewers without UDP_GRO) and ,pion where they apply.
func runKind(r Result) string {
	mode := r.Mode
	if r.Egress {
		mode += "+egress"
	}
	if !r.ViewerGRO {
		mode += ",nogro"
	}
	if r.ViewerReceive == "pion" {
		mode += ",pion"
	}
	return mode
}

// writeMarginalTable prints what one more viewer costs, for every kind of
// run made at two viewer counts or more.
func writeMarginalTable(w io.Writer, results []Result) error {
	ms := marginals(results)
	if len(ms) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\none more viewer (slope of srv CPU% over the runs' viewer counts; irq%: the same of the machine's interrupt time, loopback delivery mostly):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tviewers\truns\tCPU%/viewer\tirq%/viewer\tmax other%\t")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%d–%d\t%d\t%.2f\t%.2f\t%.0f\t\n", m.Kind, m.MinViewers, m.MaxViewers, m.Runs, m.CPUPerViewer, m.IRQPerViewer, m.MaxOtherCPU)
	}
	return tw.Flush()
}

// writeRepairTable prints, for every run, what the bench's lossy paths
// dropped and how the server repaired it: what the viewers saw (frames
// never whole, stalls, duplicates), what it re-sent them, what it asked
// the publisher for.
func writeRepairTable(w io.Writer, results []Result) error {
	fmt.Fprintln(w, "\nloss and repair (bench's drops in/out: toward its peers/from them; stall and dup%: the worst viewer):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "viewers\tmode\tMbps\tviewer path\tpublisher path\tincompl%\twindow s\tstall ms\tlongest gap ms\tdup%\tresent MB\tresent%\tsrv resent%\tsrv dup/budget/gone/key\tkey req sent/recv\tingest NACKed/RTX/lost\t")
	for _, r := range results {
		sent, ingest, srvPct, srv := "-", "-", "-", "-"
		if i := r.IngestRepair; i != nil {
			sent, ingest = strconv.FormatInt(i.KeyframeRequests, 10), fmt.Sprintf("%d/%d/%d", i.NACKed, i.Recovered, i.Lost)
		}
		if v := r.ServerRepair; v != nil {
			srvPct, srv = fmt.Sprintf("%.2f", v.ResentPct), fmt.Sprintf("%d/%d/%d/%d", v.Duplicate, v.OverBudget, v.Unavailable, v.KeyframeRequests)
		}
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%s\t%s\t%.3f\t%.1f\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%s\t%s\t%s/%d\t%s\t\n",
			r.Viewers, runKind(r), r.BitrateMbps, r.ViewerLoss, r.PublisherLoss, r.IncompletePct, r.WindowSeconds,
			r.StallMs, r.LongestGapMs, r.WorstDuplicatePct, float64(r.ResentBytes)/1e6, r.ResentPct, srvPct, srv,
			sent, r.KeyframeRequestsReceived, ingest)
	}
	return tw.Flush()
}

// writeEgressTable prints, for egress runs, what a viewer on the egress
// target saw: the server's WHIP egress path end to end.
func writeEgressTable(w io.Writer, results []Result) error {
	return writeSection(w, results, "egress (a viewer on the target whipgate):",
		"viewers\tmode\ttarget CPU%\tloss%\tincompl%\tlat p50\tp95\tp99 ms\tjoin ms\t",
		func(r Result) string {
			if r.EgressViewer == nil {
				return ""
			}
			e, lat := egressFigures(r)
			return fmt.Sprintf("%d\t%s\t%s\t%.3f\t%.3f\t%.1f\t%.1f\t%.1f\t%.0f\t\n", r.Viewers, r.Mode, opt(r.TargetCPUPct, 1),
				e.LossPct, e.IncompletePct, lat.P50, lat.P95, lat.P99, e.JoinMs)
		})
}

func opt(f *float64, prec int) string {
	if f == nil {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, *f)
}

func joinCell(p Percentiles) string {
	if p.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f (n=%d)", p.P50, p.N)
}

// writeReport prints the runs made (none: nothing) with table, then one
// JSON line each.
func writeReport[R any](w io.Writer, results []R, table func(io.Writer, []R) error) error {
	if len(results) == 0 {
		return nil
	}
	if err := table(w, results); err != nil {
		return err
	}
	return writeJSON(w, results)
}

// writeLoads prints the load runs' tables and JSON lines, then, when some
// kind of run was made at two viewer counts or more, one more JSON line:
// {"one_more_viewer": [Marginal...]}.
func writeLoads(w io.Writer, results []Result) error {
	if err := writeReport(w, results, writeTable); err != nil {
		return err
	}
	ms := marginals(results)
	if len(ms) == 0 {
		return nil
	}
	b, err := json.Marshal(struct {
		OneMoreViewer []Marginal `json:"one_more_viewer"`
	}{ms})
	if err != nil {
		return fmt.Errorf("bench: encode marginal costs: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// writeJSON prints one JSON line per run.
func writeJSON[R any](w io.Writer, results []R) error {
	for _, r := range results {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("bench: encode result: %w", err)
		}
		if _, err := fmt.Fprintf(w, "%s\n", b); err != nil {
			return err
		}
	}
	return nil
}
