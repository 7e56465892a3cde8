package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// The box's CPU split. Go keeps no CPU time per goroutine, so the split
// comes from a CPU profile of the server over the window (its
// /debug/pprof/profile, http.pprof), a sample every 10 ms of CPU, each
// sample booked to one part:
//   - hub: the innermost of whipgate's functions on its stack is
//     whipgate/gateway's (the publisher's write into the hub, fan-out, the
//     GOP cache, subscribers' queues; the runtime's copies and allocations
//     it calls), on any goroutine;
//   - else the goroutine's "part" label, which the server sets where a
//     part starts and which every goroutine started from there inherits:
//     ingest (the encoder's pipes), egress, viewers (WHEP sessions);
//   - else gc (the runtime's background mark, sweep and scavenge workers:
//     garbage is everyone's);
//   - else other (the shared UDP socket's reader, timers, HTTP, /metrics).
// Each part's share of the samples times the server's CPU over the window
// (from /proc) is its CPU in percent of one core.

// The parts of the split, in report order.
const (
	partIngest  = "ingest"
	partHub     = "hub"
	partEgress  = "egress"
	partViewers = "viewers"
	partGC      = "gc"
	partOther   = "other"
)

var parts = []string{partIngest, partHub, partEgress, partViewers, partGC, partOther}

// cpuProfile fetches a CPU profile of seconds from base's pprof
// endpoint; it blocks that long.
func cpuProfile(ctx context.Context, base string, seconds int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds)*time.Second+30*time.Second)
	defer cancel()
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, seconds)
	resp, body, err := call(ctx, http.MethodGet, url, "", nil, 64<<20)
	if err != nil {
		return nil, fmt.Errorf("bench: cpu profile: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: cpu profile: %s: %s", resp.Status, bytes.TrimSpace(body[:min(len(body), 512)]))
	}
	return body, nil
}

// splitProfile books a CPU profile's samples (gzipped profile.proto, as
// runtime/pprof writes it) to parts; it returns each part's CPU time in
// nanoseconds and the samples read.
func splitProfile(raw []byte) (map[string]int64, int, error) {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, 0, fmt.Errorf("bench: cpu profile: %w", err)
	}
	pb, err := io.ReadAll(zr)
	if err != nil {
		return nil, 0, fmt.Errorf("bench: cpu profile: %w", err)
	}
	p, err := decodeProfile(pb)
	if err != nil {
		return nil, 0, err
	}
	// A location's functions, innermost first: whose code it is (its
	// first of whipgate's functions: the hub's or another part's), and
	// whether it is a GC worker.
	type owner struct{ whipgate, hub, gc bool }
	owners := make(map[uint64]owner, len(p.locations))
	for id, fns := range p.locations {
		var o owner
		for _, fn := range fns {
			name := p.strings[p.functions[fn]]
			if !o.whipgate && strings.HasPrefix(name, "whipgate/") {
				o.whipgate, o.hub = true, strings.HasPrefix(name, "whipgate/gateway.")
			}
			o.gc = o.gc || strings.HasPrefix(name, "runtime.gcBgMarkWorker") ||
				strings.HasPrefix(name, "runtime.bgsweep") || strings.HasPrefix(name, "runtime.bgscavenge")
		}
		owners[id] = o
	}
	out := map[string]int64{}
	for _, s := range p.samples {
		// The innermost of whipgate's frames says hub or not: the
		// runtime's and libraries' code below it works for it.
		hub, gc, decided := false, false, false
		for _, l := range s.locations {
			o := owners[l]
			if o.whipgate && !decided {
				hub, decided = o.hub, true
			}
			gc = gc || o.gc
		}
		part := partOther
		switch {
		case hub:
			part = partHub
		case s.part != "":
			part = s.part
		case gc:
			part = partGC
		}
		out[part] += s.nanos
	}
	return out, len(p.samples), nil
}

// profile is what splitProfile needs of a profile.proto.
type profile struct {
	strings   []string
	functions map[uint64]int64    // function id → name's string index
	locations map[uint64][]uint64 // location id → function ids (inlined ones too)
	samples   []profileSample
	cpuIndex  int // which sample value is CPU time
}

type profileSample struct {
	locations []uint64
	nanos     int64
	part      string
}

// decodeProfile reads the fields of profile.proto
// (github.com/google/pprof/proto/profile.proto) that splitProfile uses.
func decodeProfile(b []byte) (*profile, error) {
	p := &profile{functions: map[uint64]int64{}, locations: map[uint64][]uint64{}, cpuIndex: -1}
	type rawSample struct {
		locs   []uint64
		values []int64
		labels [][2]int64 // key, str
	}
	var raws []rawSample
	var types []int64 // sample_type's type string indexes
	err := fields(b, func(num protowire.Number, typ protowire.Type, v uint64, m []byte) error {
		switch num {
		case 1: // sample_type: ValueType{type = 1, unit = 2}
			var t int64
			err := fields(m, func(n protowire.Number, _ protowire.Type, v uint64, _ []byte) error {
				if n == 1 {
					t = int64(v)
				}
				return nil
			})
			types = append(types, t)
			return err
		case 2: // sample: Sample{location_id = 1, value = 2, label = 3}
			var s rawSample
			err := fields(m, func(n protowire.Number, t protowire.Type, v uint64, m []byte) error {
				switch n {
				case 1:
					return varints(t, v, m, func(x uint64) { s.locs = append(s.locs, x) })
				case 2:
					return varints(t, v, m, func(x uint64) { s.values = append(s.values, int64(x)) })
				case 3: // Label{key = 1, str = 2}
					var l [2]int64
					err := fields(m, func(n protowire.Number, _ protowire.Type, v uint64, _ []byte) error {
						if n == 1 || n == 2 {
							l[n-1] = int64(v)
						}
						return nil
					})
					s.labels = append(s.labels, l)
					return err
				}
				return nil
			})
			raws = append(raws, s)
			return err
		case 4: // location: Location{id = 1, line = 4: Line{function_id = 1}}
			var id uint64
			var fns []uint64
			err := fields(m, func(n protowire.Number, _ protowire.Type, v uint64, m []byte) error {
				switch n {
				case 1:
					id = v
				case 4:
					return fields(m, func(n protowire.Number, _ protowire.Type, v uint64, _ []byte) error {
						if n == 1 {
							fns = append(fns, v)
						}
						return nil
					})
				}
				return nil
			})
			p.locations[id] = fns
			return err
		case 5: // function: Function{id = 1, name = 2}
			var id uint64
			var name int64
			err := fields(m, func(n protowire.Number, _ protowire.Type, v uint64, _ []byte) error {
				switch n {
				case 1:
					id = v
				case 2:
					name = int64(v)
				}
				return nil
			})
			p.functions[id] = name
			return err
		case 6: // string_table
			p.strings = append(p.strings, string(m))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench: cpu profile: %w", err)
	}
	str := func(i int64) string {
		if i < 0 || i >= int64(len(p.strings)) {
			return ""
		}
		return p.strings[i]
	}
	for i, t := range types {
		if str(t) == "cpu" {
			p.cpuIndex = i
		}
	}
	if p.cpuIndex < 0 {
		return nil, fmt.Errorf("bench: cpu profile: no cpu sample type")
	}
	for id, fn := range p.functions {
		if fn < 0 || fn >= int64(len(p.strings)) {
			return nil, fmt.Errorf("bench: cpu profile: function %d: bad name", id)
		}
	}
	for _, r := range raws {
		if p.cpuIndex >= len(r.values) {
			continue
		}
		s := profileSample{locations: r.locs, nanos: r.values[p.cpuIndex]}
		for _, l := range r.labels {
			if str(l[0]) == "part" {
				s.part = str(l[1])
			}
		}
		p.samples = append(p.samples, s)
	}
	return p, nil
}

// fields calls f for each field of the protobuf message b: its number,
// wire type, and value (varint) or bytes (length-delimited).
func fields(b []byte, f func(protowire.Number, protowire.Type, uint64, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v uint64
		var m []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			m, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, v, m); err != nil {
			return err
		}
	}
	return nil
}

// varints reads a repeated varint field, packed (bytes) or not.
func varints(typ protowire.Type, v uint64, m []byte, add func(uint64)) error {
	if typ == protowire.VarintType {
		add(v)
		return nil
	}
	for len(m) > 0 {
		x, n := protowire.ConsumeVarint(m)
		if n < 0 {
			return protowire.ParseError(n)
		}
		add(x)
		m = m[n:]
	}
	return nil
}

// readMallocs reads the server's heap allocations so far (objects,
// runtime.MemStats.Mallocs) from its text heap profile, which prints
// them last: what the request allocates is nearly all before that, and
// the same each time, so two reads apart count one request's worth.
// (/metrics would do, but its collectors run at once: where its
// allocations fall around the reading is chance.)
func readMallocs(ctx context.Context, base string) (n int64, ok bool) {
	ok = readLines(ctx, base+"/debug/pprof/heap?debug=1", func(line string) {
		if v, cut := strings.CutPrefix(line, "# Mallocs = "); cut {
			x, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				n = x
			}
		}
	})
	return n, ok && n > 0
}

// boxWindow measures a -box run's window beyond what every run does: a
// CPU profile of the server for the split, and its allocations.
type boxWindow struct {
	seconds int
	wg      sync.WaitGroup
	raw     []byte // the profile, once wg is done
	err     error

	// The server's allocations at the window's start, at its end, and
	// once more right after: the last two apart are what one reading
	// allocates, taken off the window's count.
	m0, m1, m2    int64
	start, closed bool // m0, and m1 and m2, were read
}

// openBoxWindow starts the profile (whole seconds: pprof's unit, the
// window's length rounded down) and reads the allocations so far.
func (b *bench) openBoxWindow(ctx context.Context, srv *server) *boxWindow {
	w := &boxWindow{seconds: max(1, int(b.opt.Duration/time.Second))}
	w.wg.Go(func() { w.raw, w.err = cpuProfile(ctx, srv.url, w.seconds) })
	w.m0, w.start = readMallocs(ctx, srv.url)
	return w
}

// closeAllocs reads the allocations at the window's end.
func (w *boxWindow) closeAllocs(ctx context.Context, srv *server) {
	var ok1, ok2 bool
	w.m1, ok1 = readMallocs(ctx, srv.url)
	w.m2, ok2 = readMallocs(ctx, srv.url)
	w.closed = ok1 && ok2
}

// keep writes the window's profile to file (-cpuprofile; nothing when
// empty), the run's number before the extension for runs after the
// first. Call it after figures.
func (w *boxWindow) keep(file string, run int) error {
	if file == "" || w.raw == nil {
		return nil
	}
	if run > 1 {
		ext := filepath.Ext(file)
		file = fmt.Sprintf("%s-%d%s", strings.TrimSuffix(file, ext), run, ext)
	}
	if err := os.WriteFile(file, w.raw, 0o644); err != nil {
		return fmt.Errorf("bench: -cpuprofile: %w", err)
	}
	return nil
}

// figures waits for the profile and turns it and the allocations into
// the run's box figures.
func (w *boxWindow) figures(opt Options, r Result, w0, w1 samples) (*BoxFigures, error) {
	w.wg.Wait()
	if w.err != nil {
		return nil, fmt.Errorf("%w (-box needs a whipgate with http.pprof)", w.err)
	}
	byPart, n, err := splitProfile(w.raw)
	if err != nil {
		return nil, err
	}
	f := &BoxFigures{EgressMode: opt.EgressMode, PreviewBitrateMbps: float64(opt.PreviewBitrate) / 1e6,
		ProfileSeconds: w.seconds, ProfileSamples: n, CPUPct: map[string]float64{}}
	var total int64
	for _, ns := range byPart {
		total += ns
	}
	f.ProfiledCPUPct = round2(100 * float64(total) / float64(time.Duration(w.seconds)*time.Second))
	for _, p := range parts {
		share := 0.0
		if total > 0 {
			share = float64(byPart[p]) / float64(total)
		}
		f.ProfileShare = append(f.ProfileShare, round4(share))
		if r.ServerCPUPct != nil {
			f.CPUPct[p] = round2(share * *r.ServerCPUPct)
		}
	}
	if secs := w1.self.at.Sub(w0.self.at).Seconds(); w.start && w.closed && secs > 0 {
		allocs := float64(w.m1-w.m0-(w.m2-w.m1)) / secs
		f.AllocsPerSecond = ptr(allocs)
		f.AllocsPerFrame = ptr(allocs / float64(opt.FPS))
	}
	return f, nil
}
