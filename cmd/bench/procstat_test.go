package bench

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func rusageCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestReadProcAgreesWithRusage checks /proc parsing against the kernel's
// other account of the same process, which does not depend on timing.
func TestReadProcAgreesWithRusage(t *testing.T) {
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
	}
	before := rusageCPU(t)
	p, err := readProc(strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	after := rusageCPU(t)
	// /proc counts in 10 ms ticks; allow two and a little drift.
	if p.cpu < before-25*time.Millisecond || p.cpu > after+25*time.Millisecond {
		t.Errorf("/proc says %v of CPU, getrusage %v to %v", p.cpu, before, after)
	}
	if p.rss < 1<<20 || p.hwm < p.rss {
		t.Errorf("rss %d, peak %d bytes: want at least 1 MiB and peak ≥ rss", p.rss, p.hwm)
	}
	self, err := readProc("self")
	if err != nil || self.cpu < p.cpu {
		t.Errorf("readProc(self) = %+v, %v; want CPU ≥ %v", self, err, p.cpu)
	}
	if _, err := readProc("999999999"); err == nil {
		t.Error("reading a process that does not exist succeeded")
	}
}

func TestCPUPercent(t *testing.T) {
	at := time.Now()
	a := procSample{at: at, cpu: time.Second}
	for _, tc := range []struct {
		wall, cpu time.Duration
		want      float64
	}{
		{2 * time.Second, 500 * time.Millisecond, 25},
		{time.Second, 2 * time.Second, 200},
		{0, time.Second, 0},
	} {
		b := procSample{at: at.Add(tc.wall), cpu: time.Second + tc.cpu}
		if got := cpuPct(a, b); got != tc.want {
			t.Errorf("%v of CPU over %v: %v%%, want %v", tc.cpu, tc.wall, got, tc.want)
		}
	}
}

func TestMachineCPU(t *testing.T) {
	a, err := readMachine()
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	b, err := readMachine()
	if err != nil {
		t.Fatal(err)
	}
	if b.total <= a.total || b.busy < a.busy || b.irq < a.irq || b.busy+b.irq > b.total {
		t.Fatalf("/proc/stat went from %+v to %+v", a, b)
	}
	busy, irq, steal := machinePct(a, b, 2)
	if busy < 0 || irq < 0 || steal < 0 || busy+irq+steal > 200+1e-6 { // a fully busy machine is exactly 200, give or take float rounding
		t.Errorf("machine busy %.1f%%, interrupts %.1f%% of a core on 2 cores, want within [0, 200]", busy, irq)
	}
	if busy, irq, steal := machinePct(machineSample{0, 0, 0, 100}, machineSample{50, 10, 4, 300}, 4); busy != 100 || irq != 20 || steal != 8 {
		t.Errorf("50 busy and 10 irq ticks of 200 on 4 cores: %v%%, %v%% of a core, want 100, 20", busy, irq)
	}
}

func TestUDPDrops(t *testing.T) {
	n, err := udpDrops()
	if err != nil || n < 0 {
		t.Fatalf("udpDrops() = %d, %v", n, err)
	}
}
