package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times: USER_HZ, 100 on
// every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// procSample is a process's CPU time so far and its memory now.
type procSample struct {
	at  time.Time
	cpu time.Duration // user + system, all threads
	rss int64         // bytes resident now (VmRSS)
	hwm int64         // peak resident bytes (VmHWM)
}

// readProc samples /proc/<pid> ("self" for this process).
func readProc(pid string) (procSample, error) {
	s := procSample{at: time.Now()}
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return s, fmt.Errorf("bench: read cpu time: %w", err)
	}
	// The command name in parentheses may hold spaces; fields count from
	// after its closing parenthesis, where field 3 (state) starts.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return s, fmt.Errorf("bench: /proc/%s/stat: no command name", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("bench: /proc/%s/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("bench: /proc/%s/stat: bad utime %q or stime %q", pid, f[11], f[12])
	}
	s.cpu = time.Duration(utime+stime) * clockTick

	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return s, fmt.Errorf("bench: read memory: %w", err)
	}
	for line := range strings.Lines(string(status)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return s, fmt.Errorf("bench: /proc/%s/status %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			s.rss = kb << 10
		} else {
			s.hwm = kb << 10
		}
	}
	return s, nil
}

// cpuPct is the CPU used between two samples in percent of one core.
func cpuPct(a, b procSample) float64 {
	wall := b.at.Sub(a.at)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(b.cpu-a.cpu) / float64(wall)
}

// machineSample is the whole machine's CPU time from the first line of
// /proc/stat, in clock ticks: busy in processes (user, nice, system), in
// interrupts (irq, softirq: loopback packet delivery mostly runs there,
// charged to no process), stolen by the hypervisor from a virtual machine
// (steal: a vCPU descheduled for milliseconds in a keyframe burst shows as
// latency), and in total.
type machineSample struct{ busy, irq, steal, total int64 }

func readMachine() (machineSample, error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineSample{}, fmt.Errorf("bench: read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return machineSample{}, fmt.Errorf("bench: /proc/stat: unexpected %q", line)
	}
	var m machineSample
	for i, v := range f[1:min(len(f), 9)] { // guest times are already in user and nice
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return machineSample{}, fmt.Errorf("bench: /proc/stat: %w", err)
		}
		m.total += n
		switch i {
		case 0, 1, 2: // user, nice, system
			m.busy += n
		case 5, 6: // irq, softirq
			m.irq += n
		case 7:
			m.steal += n
		}
	}
	return m, nil
}

// machinePct is the machine's CPU between two samples in percent of one
// core: in processes, in interrupts, and stolen by the hypervisor.
func machinePct(a, b machineSample, cores int) (busy, irq, steal float64) {
	if b.total <= a.total {
		return 0, 0, 0
	}
	scale := 100 * float64(cores) / float64(b.total-a.total)
	return float64(b.busy-a.busy) * scale, float64(b.irq-a.irq) * scale, float64(b.steal-a.steal) * scale
}

// udpDrops is the kernel's count of UDP datagrams it dropped because a
// socket's receive buffer was full (RcvbufErrors in /proc/net/snmp), for
// the whole machine: loopback traffic of the server and the bench alike.
func udpDrops() (int64, error) {
	raw, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, fmt.Errorf("bench: read /proc/net/snmp: %w", err)
	}
	var names []string
	for line := range strings.Lines(string(raw)) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				return strconv.ParseInt(f[i], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("bench: /proc/net/snmp has no Udp RcvbufErrors")
}
