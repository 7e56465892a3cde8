package bench

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseBitrate(t *testing.T) {
	for in, want := range map[string]int64{
		"100M": 100e6, "2.5G": 2.5e9, "800k": 800e3, "800K": 800e3, "20000000": 20e6,
	} {
		if got, err := parseBitrate(in); err != nil || got != want {
			t.Errorf("parseBitrate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "fast", "-5M", "5k", "20G", "NaN"} {
		if got, err := parseBitrate(in); err == nil {
			t.Errorf("parseBitrate(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseOptions(t *testing.T) {
	o, err := parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Bitrate != 100e6 || o.FPS != 60 || o.GOP != time.Second || o.KeyframeFactor != 8 ||
		!slices.Equal(o.Modes, []string{"burst"}) || !slices.Equal(o.Viewers, []int{1, 4, 8, 16}) ||
		o.Duration != 10*time.Second || o.Warmup != 2*time.Second {
		t.Errorf("defaults %+v, want the issue's: 100 Mbps, 60 fps, GOP 1 s, factor 8, burst, 1,4,8,16 viewers, 10 s, warm-up 2 s", o)
	}
	o, err = parseOptions(strings.Fields("-mode burst,paced -viewers 2,3 -gop 10s -bitrate 20M"), io.Discard)
	if err != nil || !slices.Equal(o.Modes, []string{"burst", "paced"}) || !slices.Equal(o.Viewers, []int{2, 3}) || o.GOP != 10*time.Second || o.Bitrate != 20e6 {
		t.Errorf("got %+v, %v", o, err)
	}
	if o.Scenario != "load" || o.Repeat != 1 || o.TargetDown != 3*time.Second {
		t.Errorf("scenario %q, repeat %d, target down %v; want load, 1, 3 s", o.Scenario, o.Repeat, o.TargetDown)
	}
	if o.Box || o.Egress || o.EgressMode != egressSessions || o.PreviewBitrate != 5e6 {
		t.Errorf("box %v, egress %v, mode %q, preview %d; want off, off, sessions, 5 Mbps", o.Box, o.Egress, o.EgressMode, o.PreviewBitrate)
	}
	o, err = parseOptions(strings.Fields("-box -egress-mode simulcast -preview-bitrate 2M"), io.Discard)
	if err != nil || !o.Box || !o.Egress || o.EgressMode != egressSimulcast || o.PreviewBitrate != 2e6 {
		t.Errorf("-box: got box %v, egress %v, mode %q, preview %d, %v; want the box egressing in simulcast, 2 Mbps", o.Box, o.Egress, o.EgressMode, o.PreviewBitrate, err)
	}
	o, err = parseOptions(strings.Fields("-scenario egress-recovery -target-down 1s -repeat 3"), io.Discard)
	if err != nil || o.Scenario != scenarioEgressRecovery || o.TargetDown != time.Second || o.Repeat != 3 {
		t.Errorf("got %q, down %v, repeat %d, %v; want egress-recovery, 1 s, 3", o.Scenario, o.TargetDown, o.Repeat, err)
	}
	// -gro is a boolean as before, or a list of settings to run in turn.
	for args, want := range map[string][]bool{"": {true}, "-gro=false": {false}, "-gro off": {false}, "-gro on,off": {true, false}} {
		o, err = parseOptions(strings.Fields(args), io.Discard)
		if err != nil || !slices.Equal(o.GROs, want) || o.GRO != want[0] {
			t.Errorf("%q: GRO %v, runs %v, %v; want %v", args, o.GRO, o.GROs, err, want)
		}
	}
	for _, args := range []string{"-gro=maybe", "-gro=on,", "-gro", "-mode jumpy", "-viewers 1,x", "-fps 0", "-gop 0s", "-keyframe-factor 0.5",
		"-duration 0s", "-pid 5", "-egress -server http://x", "extra", "-scenario crash", "-repeat 0",
		"-scenario egress-recovery -server http://x", "-scenario egress-recovery -target-down -1s",
		"-egress-mode both", "-box -mode paced", "-box -server-config x.yaml", "-box -server http://x",
		"-box -scenario egress-recovery", "-box -preview-bitrate 1", "-cpuprofile x.pprof"} {
		if _, err := parseOptions(strings.Fields(args), io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
