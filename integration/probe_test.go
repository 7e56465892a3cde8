package integration

import (
	"strings"
	"testing"

	"whipgate/cmd"
)

// TestHwaccelProbeCommand runs `whipgate hwaccel probe` as an operator
// would: the software backend really encodes here; the GPU backends report
// why not, and a probe where nothing works fails.
func TestHwaccelProbeCommand(t *testing.T) {
	needTool(t, "ffmpeg", "apt-get install ffmpeg")
	var out, errOut strings.Builder
	err := cmd.Run(t.Context(), []string{"hwaccel", "probe", "-config", "../examples/software-box.yaml", "-backends", "software,nvenc"}, nil, &out, &errOut)
	if err != nil {
		t.Fatalf("probe: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	table := out.String()
	if !strings.Contains(table, "software  ffmpeg") || !strings.Contains(table, "yes") ||
		!strings.Contains(table, "/dev/nvidiactl") {
		t.Fatalf("probe table:\n%s", table)
	}
	out.Reset()
	err = cmd.Run(t.Context(), []string{"hwaccel", "probe", "-backends", "nvenc,vaapi"}, nil, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no backend works") {
		t.Fatalf("probe with only GPU backends on a GPU-less machine: err %v\n%s", err, out.String())
	}
}
