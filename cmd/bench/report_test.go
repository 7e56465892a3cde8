package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// One more viewer is the slope of the server's CPU over the viewer counts,
// per kind of run: runs with and without GRO are fitted apart, a kind run
// at one count only has no slope, and the table and the last JSON line
// both show it.
func TestMarginalCostPerViewer(t *testing.T) {
	run := func(viewers int, gro bool, cpu, irq float64) Result {
		return Result{Viewers: viewers, Mode: "burst", ViewerGRO: gro, ViewerReceive: "direct", ServerCPUPct: &cpu, InterruptCPUPct: irq}
	}
	results := []Result{
		run(1, true, 12, 1), run(1, false, 13, 2),
		run(16, true, 42, 4), run(16, false, 55, 17),
		run(8, true, 26, 2.5), run(8, false, 32.6, 9), // on both lines
		{Viewers: 4, Mode: "paced", ViewerGRO: true, ServerCPUPct: new(float64)},
	}
	ms := marginals(results)
	if len(ms) != 2 {
		t.Fatalf("%d kinds with a slope, want 2 (burst, burst,nogro; paced has one count): %+v", len(ms), ms)
	}
	if ms[0].Kind != "burst" || ms[0].CPUPerViewer != 2 || ms[0].IRQPerViewer != 0.2 || ms[0].Runs != 3 || ms[0].MinViewers != 1 || ms[0].MaxViewers != 16 {
		t.Errorf("with GRO: %+v, want 2 %% of a core and 0.2 %% irq per viewer over 3 runs at 1–16", ms[0])
	}
	if ms[1].Kind != "burst,nogro" || ms[1].CPUPerViewer != 2.8 || ms[1].IRQPerViewer != 1 {
		t.Errorf("without GRO: %+v, want burst,nogro at 2.8 %% and 1 %% irq per viewer", ms[1])
	}
	var out bytes.Buffer
	if err := writeLoads(&out, results); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "one more viewer") || !strings.Contains(out.String(), "burst,nogro") {
		t.Errorf("no marginal table in\n%s", out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var last struct {
		OneMoreViewer []Marginal `json:"one_more_viewer"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || len(last.OneMoreViewer) != 2 {
		t.Errorf("last line %q: %v; want the two slopes as JSON", lines[len(lines)-1], err)
	}
}
