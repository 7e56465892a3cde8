//go:build unix

package bench

import (
	"bytes"
	"context"
	"math/rand/v2"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"whipgate/gateway"
)

// cpuTime is the CPU time this process has used.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var keySink int

// splitProfile books a real CPU profile's samples by the part label, and
// a stack in the hub's code to the hub.
func TestSplitProfile(t *testing.T) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Fatalf("this test takes its own CPU profile, and one is already running (go test -cpuprofile?): %v", err)
	}
	// The two halves alternate in slices of CPU time, not wall time: on a
	// loaded machine a descheduled half would get few samples. The slices'
	// lengths are random: fixed ones alias with the sampling clock and
	// give all samples to one half.
	spin := func(d time.Duration) {
		for end := cpuTime(t) + d; cpuTime(t) < end; {
		}
	}
	hub := func(d time.Duration) {
		pkt := []byte{0x7c, 0x85, 1, 2, 3}
		for end := cpuTime(t) + d; cpuTime(t) < end; {
			for range 1000 {
				if gateway.IsKeyframe(gateway.H264, pkt) {
					keySink++ // the call must not be optimised away
				}
			}
		}
	}
	// With -race most of the hub's time is in the race detector's C code,
	// run on the system stack: its samples carry no Go frames, so they
	// are booked by label, to egress (measured: the hub 2–12 % of the
	// samples, not half). The hub's share is then small but not nil, and
	// a longer run gives it enough samples to count.
	run, hubMin := 600*time.Millisecond, int64(10)
	if raceDetector {
		run, hubMin = 2*time.Second, 100
	}
	pprof.Do(context.Background(), pprof.Labels("part", partEgress), func(context.Context) {
		slice := func() time.Duration { return time.Duration(200+rand.IntN(3800)) * time.Microsecond }
		for end := cpuTime(t) + run; cpuTime(t) < end; {
			spin(slice())
			hub(slice()) // the hub's code on an egress goroutine
		}
	})
	pprof.StopCPUProfile()
	byPart, n, err := splitProfile(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, ns := range byPart {
		total += ns
	}
	t.Logf("%d samples, by part %v", n, byPart)
	if n == 0 || byPart[partEgress] < total/4 || byPart[partHub] < total/hubMin {
		t.Errorf("%d samples, by part %v: want about half egress's, and at least 1/%d the hub's", n, byPart, hubMin)
	}
	if _, _, err := splitProfile([]byte("not a profile")); err == nil || !strings.Contains(err.Error(), "cpu profile") {
		t.Errorf("garbage reads as a profile: %v", err)
	}
}
