//go:build unix

package hwaccel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// ErrNothingWorks is returned (wrapped) by Probe when no backend passed.
var ErrNothingWorks = errors.New("hwaccel: no backend works on this machine")

// ProbeOptions tune Probe; the zero value probes every backend.
type ProbeOptions struct {
	// Backends limits the probe to these backend names. Default: all
	// built-in backends, plus custom when the config uses it.
	Backends []string
	// Timeout bounds each command, the test encode included. Default 20s.
	Timeout time.Duration
	// Root is prepended to device paths, so tests can fake /dev. Default "/".
	Root string
}

// Probe stages, in order; a backend stops at the first that fails.
const (
	StageConfig  = "config"  // the configuration cannot run on the backend
	StageDevice  = "device"  // no device node for it
	StageEncoder = "encoder" // the tool lacks an encoder, filter or element
	StageTest    = "test"    // the test encode failed
)

// Result is one row of the probe table: one backend variant tried with all
// configured layers at once.
type Result struct {
	Backend string   `json:"backend"`
	Tool    Tool     `json:"tool"`
	Codecs  []Codec  `json:"codecs"`
	Sizes   []string `json:"sizes"`
	Works   bool     `json:"works"`
	// Stage is where it failed ("" when it works).
	Stage string `json:"stage,omitempty"`
	// Reason says why, matched from the known error messages where possible.
	Reason string `json:"reason,omitempty"`
	// Output is the tail of the failing command's output.
	Output []string `json:"output,omitempty"`
	// Argv is the test-encode command.
	Argv     []string      `json:"argv,omitempty"`
	Duration time.Duration `json:"duration"`
}

// Probe finds out which backends can run cfg on this machine, in three
// stages per backend: device files, then the encoders, filters and elements
// the tool reports, then a real 5-frame test encode of all layers at once at
// the configured sizes (with a test pattern in the capture's format instead
// of the capture itself). It returns a row per backend variant, and an error
// wrapping ErrNothingWorks when no row works.
func Probe(ctx context.Context, cfg Config, opt ProbeOptions, log *slog.Logger) ([]Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validateGeneric(); err != nil {
		return nil, err
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 20 * time.Second
	}
	if opt.Root == "" {
		opt.Root = "/"
	}
	cat, err := loadCatalog()
	if err != nil {
		return nil, err
	}
	want := opt.Backends
	if len(want) == 0 {
		want = cat.names()
		usesCustom := cfg.Backend == BackendCustom ||
			slices.ContainsFunc(cfg.Fallback, func(f FallbackConfig) bool { return f.Backend == BackendCustom })
		if !usesCustom {
			want = slices.DeleteFunc(want, func(n string) bool { return n == BackendCustom })
		}
	}
	reg, err := os.MkdirTemp("", "whipgate-probe-")
	if err != nil {
		return nil, fmt.Errorf("hwaccel: probe: %w", err)
	}
	defer os.RemoveAll(reg)
	p := &prober{cfg: cfg, opt: opt, log: log, gstRegistry: filepath.Join(reg, "registry.bin")}

	var rs []Result
	for _, name := range want {
		if name == BackendCustom {
			rs = append(rs, p.custom())
			continue
		}
		found := false
		for _, spec := range cat.backends {
			if spec.Name != name {
				continue
			}
			found = true
			start := time.Now()
			r := p.backend(ctx, cat, spec)
			r.Duration = time.Since(start)
			log.Info("hwaccel probe", "backend", r.Backend, "tool", r.Tool, "works", r.Works, "stage", r.Stage, "reason", r.Reason)
			rs = append(rs, r)
		}
		if !found {
			return rs, fmt.Errorf("hwaccel: probe: unknown backend %q", name)
		}
		if err := ctx.Err(); err != nil {
			return rs, fmt.Errorf("hwaccel: probe: %w", err)
		}
	}
	if !slices.ContainsFunc(rs, func(r Result) bool { return r.Works }) {
		return rs, fmt.Errorf("hwaccel: probe of %d backends: %w", len(rs), ErrNothingWorks)
	}
	return rs, nil
}

type prober struct {
	cfg         Config
	opt         ProbeOptions
	log         *slog.Logger
	gstRegistry string // private, so a stale registry cache cannot lie

	ffmpegDone     bool
	ffmpegErr      error
	ffmpegEncoders map[string]bool
	ffmpegFilters  map[string]bool
}

func (p *prober) newResult(name string, tool Tool) Result {
	r := Result{Backend: name, Tool: tool}
	for _, l := range p.cfg.Layers {
		r.Codecs = append(r.Codecs, l.Codec)
		r.Sizes = append(r.Sizes, fmt.Sprintf("%dx%d", l.Width, l.Height))
	}
	return r
}

func (p *prober) backend(ctx context.Context, cat *catalog, spec *backendSpec) Result {
	r := p.newResult(spec.Name, spec.Tool)
	fail := func(stage, reason string, out []string) Result {
		r.Stage, r.Reason, r.Output = stage, reason, out
		return r
	}
	if err := spec.check(cat.tools[spec.Tool], p.cfg); err != nil {
		return fail(StageConfig, strings.TrimPrefix(err.Error(), "hwaccel: "), nil)
	}
	if reason := p.devices(spec.Probe.Devices); reason != "" {
		return fail(StageDevice, reason, nil)
	}
	if reason, out := p.components(ctx, spec); reason != "" {
		return fail(StageEncoder, reason, out)
	}
	pl, err := build(p.cfg, spec.Name, spec.Tool, true)
	if err != nil {
		return fail(StageConfig, strings.TrimPrefix(err.Error(), "hwaccel: "), nil)
	}
	r.Argv = pl.Argv
	out, err := p.run(ctx, pl.Argv)
	if err != nil {
		return fail(StageTest, failureReason(err, out), tail(out, 20))
	}
	r.Works = true
	return r
}

// devices reports "" when one of globs matches under Root.
func (p *prober) devices(globs []string) string {
	if len(globs) == 0 {
		return ""
	}
	for _, g := range globs {
		if m, _ := filepath.Glob(filepath.Join(p.opt.Root, g)); len(m) > 0 {
			return ""
		}
	}
	return "not found: " + strings.Join(globs, ", ")
}

// components checks that the tool has every encoder, filter and element.
func (p *prober) components(ctx context.Context, spec *backendSpec) (string, []string) {
	var encoders []string
	for _, l := range p.cfg.Layers {
		if e := spec.Codecs[l.Codec].Encoder; !slices.Contains(encoders, e) {
			encoders = append(encoders, e)
		}
	}
	switch spec.Tool {
	case ToolFFmpeg:
		if err := p.loadFFmpeg(ctx); err != nil {
			return err.Error(), nil
		}
		for _, e := range encoders {
			if !p.ffmpegEncoders[e] {
				return "this ffmpeg has no encoder " + e, nil
			}
		}
		for _, f := range spec.Probe.Filters {
			if !p.ffmpegFilters[f] {
				return "this ffmpeg has no filter " + f, nil
			}
		}
	case ToolGStreamer:
		for _, e := range append(encoders, spec.Probe.Elements...) {
			out, err := p.run(ctx, []string{p.cfg.GstInspect, e})
			if err != nil {
				return failureReason(err, out), tail(out, 5)
			}
		}
	}
	return "", nil
}

func (p *prober) loadFFmpeg(ctx context.Context) error {
	if p.ffmpegDone {
		return p.ffmpegErr
	}
	p.ffmpegDone = true
	list := func(what string) (map[string]bool, error) {
		out, err := p.run(ctx, []string{p.cfg.FFmpeg, "-hide_banner", "-" + what})
		if err != nil {
			return nil, fmt.Errorf("ffmpeg -%s: %s", what, failureReason(err, out))
		}
		return parseFFmpegList(out), nil
	}
	p.ffmpegEncoders, p.ffmpegErr = list("encoders")
	if p.ffmpegErr == nil {
		p.ffmpegFilters, p.ffmpegErr = list("filters")
	}
	return p.ffmpegErr
}

// parseFFmpegList takes the names from `ffmpeg -encoders` / `-filters`:
// " V....D libx264   description" / " ... scale   V->V  description".
func parseFFmpegList(lines []string) map[string]bool {
	names := map[string]bool{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 2 || strings.Contains(f[0], "=") {
			continue
		}
		names[f[1]] = true
	}
	return names
}

func (p *prober) custom() Result {
	r := p.newResult(BackendCustom, ToolCustom)
	pl, err := build(p.cfg, BackendCustom, ToolCustom, false)
	if err != nil {
		r.Stage, r.Reason = StageConfig, strings.TrimPrefix(err.Error(), "hwaccel: ")
		return r
	}
	r.Argv = pl.Argv
	if _, err := exec.LookPath(pl.Argv[0]); err != nil {
		r.Stage, r.Reason = StageEncoder, err.Error()
		return r
	}
	r.Works = true
	r.Reason = "executable found; custom commands are not test-encoded"
	return r
}

// run executes argv with the probe timeout and returns its combined output.
func (p *prober) run(ctx context.Context, argv []string) ([]string, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, p.opt.Timeout, fmt.Errorf("timed out after %v", p.opt.Timeout))
	defer cancel()
	ring := newLineRing(400, 64<<10)
	w := &lineWriter{emit: ring.add}
	cmd := newCommand(ctx, argv, time.Second)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Env = append(os.Environ(), "GST_REGISTRY="+p.gstRegistry)
	err := cmd.Run()
	killGroup(cmd)
	w.flush()
	if ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	return ring.snapshot(), err
}

// failureReason explains a failed command from its output.
func failureReason(err error, out []string) string {
	if r := classify(out); r != "" {
		return r
	}
	if l := lastLine(out); l != "" {
		return fmt.Sprintf("%v: %s", err, l)
	}
	return err.Error()
}

func tail(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

// WriteTable prints results as the `whipgate hwaccel probe` table.
func WriteTable(w io.Writer, rs []Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKEND\tTOOL\tCODEC\tSIZE\tWORKS\tREASON")
	for _, r := range rs {
		codecs := make([]string, len(r.Codecs))
		for i, c := range r.Codecs {
			codecs[i] = string(c)
		}
		works := "no"
		if r.Works {
			works = "yes"
		}
		reason := r.Reason
		if !r.Works && r.Stage != "" {
			reason = r.Stage + ": " + reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Backend, r.Tool,
			strings.Join(codecs, "+"), strings.Join(r.Sizes, "+"), works, reason)
	}
	return tw.Flush()
}
