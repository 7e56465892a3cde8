package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Options is one invocation of the benchmark: every run it makes uses the
// same stream shape, one run per mode and viewer count (times Repeat), or
// Repeat runs of another scenario.
type Options struct {
	// Scenario is what a run does: "load" (default) publishes and
	// watches with viewers and measures the server; "egress-recovery"
	// has the server egress to a second whipgate, kills that target
	// (SIGKILL), starts it again on the same ports after TargetDown, and
	// measures how soon the egress is connected again.
	Scenario string
	// TargetDown is how long the egress-recovery scenario keeps the
	// killed target down. Default 3 s.
	TargetDown time.Duration
	// Repeat runs each run this many times. Default 1.
	Repeat int
	// Bitrate of the synthetic stream in bits per second. Default 100 Mbps.
	Bitrate int64
	// FPS is frames per second. Default 60.
	FPS int
	// GOP is the keyframe interval. Default 1 s.
	GOP time.Duration
	// KeyframeFactor is a keyframe's size as a multiple of the average
	// frame (bitrate/fps). Default 8.
	KeyframeFactor float64
	// Modes are burst (a frame's packets back to back) and paced (spread
	// over the frame interval). Default burst.
	Modes []string
	// Viewers lists the viewer counts, one run each. Default 1,4,8,16.
	Viewers []int
	// Duration is the measurement window. Default 10 s.
	Duration time.Duration
	// Warmup runs with all viewers before the window opens, from when
	// each has its first complete keyframe. Default 2 s.
	Warmup time.Duration
	// Baseline runs with the publisher alone, before viewers join, to
	// measure ingest CPU and memory. Default 2 s.
	Baseline time.Duration
	// Joins is how many join probes (a viewer that joins, waits for its
	// first complete keyframe and leaves) run one after another during
	// the window, for join-time figures at random points of the GOP.
	// Default 0.
	Joins int
	// IgnorePLI keeps the GOP fixed even when the server asks for a
	// keyframe. Default false: a PLI or FIR gets a keyframe, as from a
	// hardware encoder.
	IgnorePLI bool
	// GRO has the bench's viewers receive the server's GSO messages whole
	// (UDP_GRO), as a receiver on another machine would: on loopback the
	// kernel otherwise segments them inside the server's send call and
	// bills the receivers' work to the server. Default true; false is the
	// bench before this option. It is the current run's setting, one of
	// GROs.
	GRO bool
	// GROs lists the GRO settings to run, each viewer count with each in
	// turn (-gro on,off), so that a receiver without UDP_GRO, as most
	// are, is measured beside one with it under the same load. Default
	// [true].
	GROs []bool
	// Receive is how the viewers read their media: "direct" (default)
	// decrypts it beneath pion on the socket reader, a decryption and a
	// header parse per packet, as the cheap viewers the bench is meant to
	// have; "pion" reads it through pion's receive path, as before this
	// option (about 3 µs a packet more, on the cores the server uses).
	Receive string
	// ViewerLoss is the share (0 to 0.5) of SRTP and SRTCP datagrams the
	// WHEP viewers' sockets drop, each way: a lossy path between the
	// server and its viewers. The egress target's viewer has none.
	// Default 0.
	ViewerLoss float64
	// PublisherLoss is the same for the publisher's socket: a lossy path
	// into the server. Default 0.
	PublisherLoss float64
	// Seed seeds the random drops: the same seed drops the same places
	// of each socket's sequence of packets. Default 1.
	Seed uint64
	// Egress adds a WHIP egress from the server under test to a second
	// whipgate. Default off.
	Egress bool
	// EgressMode is the egress's mode: sessions (a WHIP session per
	// layer) or simulcast (one session, a rid per layer). Default
	// sessions.
	EgressMode string
	// Box benches the box's own path: the stream enters the server
	// through its encoder pipe (a synthetic H.264 encoder writing a main
	// layer at Bitrate and a preview at PreviewBitrate, a whole frame a
	// write) and leaves through a WHIP egress of both layers to a second
	// whipgate; the WHEP viewers watch the main layer. The report adds
	// the server's CPU split by part and its allocations. Implies Egress.
	Box bool
	// PreviewBitrate is the box's preview layer. Default 5 Mbps.
	PreviewBitrate int64
	// CPUProfile, with Box, is where the server's CPU profile of each
	// run's window is written (pprof's format; "-2", "-3" … before the
	// extension for the runs after the first), for `go tool pprof`.
	// Default: not kept.
	CPUProfile string
	// Server is the base URL of a running whipgate to bench instead of
	// starting one. Default: start one per run.
	Server string
	// PID is the process ID of Server, for its CPU and memory. Default
	// none (those figures are left out).
	PID int
	// Bin is the whipgate binary to start. Default: this program.
	Bin string
	// ServerConfig is a YAML config file for the servers started.
	// Default none.
	ServerConfig string
	// Verbose logs the bench's own progress and pion's warnings.
	Verbose bool
}

// The scenarios a run can be.
const (
	scenarioLoad           = "load"
	scenarioEgressRecovery = "egress-recovery"
)

func parseOptions(args []string, stderr io.Writer) (Options, error) {
	o := Options{}
	fs := flag.NewFlagSet("whipgate bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: whipgate bench [flags]\n\n"+
			"Publishes a synthetic H.264 stream over WHIP to a whipgate it starts (or -server),\n"+
			"watches it with N WHEP viewers in this process, and prints a table and one JSON\n"+
			"line per run. With -scenario egress-recovery it egresses to a second whipgate instead,\n"+
			"kills that one (SIGKILL), starts it again after -target-down and reports how soon the\n"+
			"egress is connected again. With -box the stream enters through the encoder pipe\n"+
			"instead (main + preview) and leaves through a WHIP egress to a second whipgate, and\n"+
			"the report adds the box's CPU by part and its allocations. See BENCHMARKS.md.\n\nflags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.Scenario, "scenario", scenarioLoad, "what a run does: load (viewers watch; the table and figures below) or egress-recovery (an egress's target is killed and restarted; see BENCHMARKS.md)")
	fs.DurationVar(&o.TargetDown, "target-down", 3*time.Second, "egress-recovery: how long the killed target stays down")
	fs.IntVar(&o.Repeat, "repeat", 1, "run each run this many times")
	bitrate := fs.String("bitrate", "100M", "stream `bitrate` in bit/s (suffix k, M or G)")
	fs.IntVar(&o.FPS, "fps", 60, "frames per second")
	fs.DurationVar(&o.GOP, "gop", time.Second, "keyframe interval")
	fs.Float64Var(&o.KeyframeFactor, "keyframe-factor", 8, "keyframe size as a multiple of the average frame")
	modes := fs.String("mode", "burst", "burst or paced, or a comma-separated `list` (one run each)")
	viewers := fs.String("viewers", "1,4,8,16", "comma-separated viewer `counts` (one run each)")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "measurement window")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "time with all viewers before the window (from when each has a keyframe)")
	fs.DurationVar(&o.Baseline, "baseline", 2*time.Second, "time with the publisher alone (ingest CPU and memory)")
	fs.IntVar(&o.Joins, "joins", 0, "join probes during the window (join time at random GOP phases)")
	fs.BoolVar(&o.IgnorePLI, "ignore-pli", false, "never answer a PLI/FIR with an early keyframe")
	gro := groFlag{true}
	fs.Var(&gro, "gro", "viewers receive the server's GSO messages whole (UDP_GRO): on, off (the kernel segments them in the server's send), or `on,off` (each viewer count with each in turn)")
	fs.StringVar(&o.Receive, "receive", "direct", "how viewers read media: direct (SRTP decrypted beneath pion) or pion (pion's receive path)")
	loss := fs.String("loss", "0", "drop this `percentage` of media and RTCP both ways on the viewers' and the publisher's paths, at random (like 5%)")
	viewerLoss := fs.String("viewer-loss", "0", "drop this `percentage` on the viewers' path alone (overrides -loss there)")
	publisherLoss := fs.String("publisher-loss", "0", "drop this `percentage` on the publisher's path alone (overrides -loss there)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the random drops: the same seed drops the same places of each socket's packets")
	fs.BoolVar(&o.Egress, "egress", false, "add a WHIP egress from the server under test to a second whipgate")
	egressMode := fs.String("egress-mode", egressSessions, "the egress's `mode`: sessions (a WHIP session per layer) or simulcast (one session, a rid per layer)")
	fs.BoolVar(&o.Box, "box", false, "bench the box: the stream enters through the encoder pipe (main + preview), leaves through WHIP egress to a second whipgate; adds the CPU split and allocations")
	previewBitrate := fs.String("preview-bitrate", "5M", "the box's preview layer `bitrate` (-box)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "with -box: write the server's CPU profile of the window to `file` (runs after the first: file-2, file-3 …)")
	fs.StringVar(&o.Server, "server", "", "base `URL` of a running whipgate to bench instead of starting one")
	fs.IntVar(&o.PID, "pid", 0, "process ID of -server, for CPU and memory figures")
	fs.StringVar(&o.Bin, "bin", "", "whipgate `binary` to start (default: this program)")
	fs.StringVar(&o.ServerConfig, "server-config", "", "YAML config `file` for the servers started")
	fs.BoolVar(&o.Verbose, "v", false, "log progress and pion warnings to stderr")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	var err error
	if o.Bitrate, err = parseBitrate(*bitrate); err != nil {
		errs = append(errs, err)
	}
	if o.PreviewBitrate, err = parseBitrate(*previewBitrate); err != nil {
		errs = append(errs, fmt.Errorf("%w (-preview-bitrate)", err))
	}
	if o.EgressMode, err = parseEgressMode(*egressMode); err != nil {
		errs = append(errs, err)
	}
	o.Egress = o.Egress || o.Box
	if o.Viewers, err = parseCounts(*viewers); err != nil {
		errs = append(errs, err)
	}
	if o.ViewerLoss, o.PublisherLoss, err = parseLosses(fs, *loss, *viewerLoss, *publisherLoss); err != nil {
		errs = append(errs, err)
	}
	for m := range strings.SplitSeq(*modes, ",") {
		m = strings.TrimSpace(m)
		if m != "burst" && m != "paced" {
			errs = append(errs, fmt.Errorf("bench: -mode %q: want burst or paced", m))
		}
		o.Modes = append(o.Modes, m)
	}
	o.GROs = gro
	o.GRO = o.GROs[0]
	errs = append(errs, o.validate())
	return o, errors.Join(errs...)
}

// groFlag is -gro: on or off (-gro=false still works), or a list of
// settings to run in turn (-gro on,off). It takes a value, unlike the
// boolean it was, so that -gro off is not read as -gro followed by an
// argument.
type groFlag []bool

func (g *groFlag) String() string {
	if g == nil {
		return ""
	}
	var f []string
	for _, on := range *g {
		f = append(f, map[bool]string{true: "on", false: "off"}[on])
	}
	return strings.Join(f, ",")
}

func (g *groFlag) Set(s string) error {
	var out groFlag
	for f := range strings.SplitSeq(s, ",") {
		switch strings.ToLower(strings.TrimSpace(f)) {
		case "on", "true", "1":
			out = append(out, true)
		case "off", "false", "0":
			out = append(out, false)
		default:
			return fmt.Errorf("want on, off or a comma-separated list of them, not %q", s)
		}
	}
	*g = out
	return nil
}

func (o Options) validate() error {
	var errs []error
	if o.FPS < 1 || o.FPS > 240 {
		errs = append(errs, fmt.Errorf("bench: -fps %d: want 1 to 240", o.FPS))
	}
	if o.GOP <= 0 {
		errs = append(errs, fmt.Errorf("bench: -gop %v: want more than 0", o.GOP))
	}
	if o.KeyframeFactor < 1 {
		errs = append(errs, fmt.Errorf("bench: -keyframe-factor %g: want at least 1", o.KeyframeFactor))
	}
	if o.Duration <= 0 || o.Warmup < 0 || o.Baseline < 0 {
		errs = append(errs, errors.New("bench: -duration must be positive, -warmup and -baseline not negative"))
	}
	if o.Joins < 0 {
		errs = append(errs, fmt.Errorf("bench: -joins %d: want 0 or more", o.Joins))
	}
	if o.Receive != "direct" && o.Receive != "pion" {
		errs = append(errs, fmt.Errorf("bench: -receive %q: want direct or pion", o.Receive))
	}
	switch o.Scenario {
	case scenarioLoad:
	case scenarioEgressRecovery:
		if o.Server != "" {
			errs = append(errs, errors.New("bench: -scenario egress-recovery starts and kills the servers itself; it cannot use -server"))
		}
		if o.TargetDown < 0 {
			errs = append(errs, fmt.Errorf("bench: -target-down %v: want 0 or more", o.TargetDown))
		}
	default:
		errs = append(errs, fmt.Errorf("bench: -scenario %q: want %s or %s", o.Scenario, scenarioLoad, scenarioEgressRecovery))
	}
	if o.Repeat < 1 || o.Repeat > 1000 {
		errs = append(errs, fmt.Errorf("bench: -repeat %d: want 1 to 1000", o.Repeat))
	}
	if o.CPUProfile != "" && !o.Box {
		errs = append(errs, errors.New("bench: -cpuprofile keeps the profile -box takes: use it with -box"))
	}
	if o.Box && (o.ServerConfig != "" || o.Scenario != scenarioLoad || slices.Contains(o.Modes, "paced")) {
		errs = append(errs, errors.New("bench: -box writes the box's config itself, runs the load scenario, and sends as an encoder does (burst): no -server-config, -scenario or -mode paced"))
	}
	if o.Egress && o.Server != "" {
		errs = append(errs, errors.New("bench: -egress starts both instances itself; it cannot use -server"))
	}
	if o.PID != 0 && o.Server == "" {
		errs = append(errs, errors.New("bench: -pid needs -server"))
	}
	return errors.Join(errs...)
}

// parseLosses reads -loss, -viewer-loss and -publisher-loss: a path's
// own flag, where given, overrides -loss.
func parseLosses(fs *flag.FlagSet, both, viewer, publisher string) (viewerRate, publisherRate float64, err error) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs [3]error
	var all float64
	if given["loss"] {
		all, errs[0] = parseLoss("loss", both)
	}
	viewerRate, publisherRate = all, all
	if given["viewer-loss"] {
		viewerRate, errs[1] = parseLoss("viewer-loss", viewer)
	}
	if given["publisher-loss"] {
		publisherRate, errs[2] = parseLoss("publisher-loss", publisher)
	}
	return viewerRate, publisherRate, errors.Join(errs[:]...)
}

// parseBitrate reads "100M", "2.5G", "800k" or plain bits per second.
func parseBitrate(s string) (int64, error) {
	mult := 1.0
	num := strings.TrimSpace(s)
	switch {
	case strings.HasSuffix(num, "k"), strings.HasSuffix(num, "K"):
		mult, num = 1e3, num[:len(num)-1]
	case strings.HasSuffix(num, "M"):
		mult, num = 1e6, num[:len(num)-1]
	case strings.HasSuffix(num, "G"):
		mult, num = 1e9, num[:len(num)-1]
	}
	v, err := strconv.ParseFloat(num, 64)
	bps := v * mult
	if err != nil || math.IsNaN(bps) || bps < 10e3 || bps > 10e9 {
		return 0, fmt.Errorf("bench: -bitrate %q: want 10k to 10G, like 100M", s)
	}
	return int64(bps), nil
}

// parseCounts reads "1,4,8,16".
func parseCounts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n > 1000 {
			return nil, fmt.Errorf("bench: -viewers %q: want comma-separated counts from 0 to 1000", s)
		}
		out = append(out, n)
	}
	return out, nil
}
