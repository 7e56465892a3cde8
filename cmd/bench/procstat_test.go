package bench

import (
	"os"
	"strconv"
	"testing"
	"time"
)

func TestReadProcSeesThisProcess(t *testing.T) {
	a, err := readProc(strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	// Burn 300 ms of CPU; the sample must see at least part of it.
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	b, err := readProc("self")
	if err != nil {
		t.Fatal(err)
	}
	if d := b.cpu - a.cpu; d < 200*time.Millisecond {
		t.Errorf("CPU time grew by %v over a 300 ms busy loop, want at least 200 ms", d)
	}
	if pct := cpuPct(a, b); pct < 60 || pct > 210 {
		t.Errorf("busy loop measured at %.0f%% of a core, want about 100", pct)
	}
	if b.rss < 1<<20 || b.hwm < b.rss {
		t.Errorf("rss %d, peak %d bytes: want at least 1 MiB and peak ≥ rss", b.rss, b.hwm)
	}
	if _, err := readProc("999999999"); err == nil {
		t.Error("reading a process that does not exist succeeded")
	}
}

func TestMachineBusy(t *testing.T) {
	a, err := readMachine()
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
	}
	b, err := readMachine()
	if err != nil {
		t.Fatal(err)
	}
	if pct := busyPct(a, b); pct <= 0 || pct > 100 {
		t.Errorf("machine busy %.1f%% during a busy loop, want in (0, 100]", pct)
	}
}
