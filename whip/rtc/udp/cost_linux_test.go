//go:build linux

package udp

import (
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU is the calling OS thread's CPU time so far: what a benchmark
// locked to its thread spent, system calls and the softirqs they ran
// included, whatever else the machine was doing.
func threadCPU() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

// BenchmarkSendToReceiver is what one 1228-byte datagram (an SRTP packet
// of a 1200-byte payload) costs the sending thread's CPU and the
// receiving thread's, sent in batches of 52 (one full GSO message), by how
// the batch leaves and whether the receiver asks for UDP_GRO. On loopback
// the receiving half of a send runs in the softirq of the sender's own
// system call: a GSO message to a socket without UDP_GRO is segmented
// there and every datagram queued, its reader woken — work that a
// receiver on another host does on its own CPU (and the segmentation, a
// NIC with UDP segmentation offload). The gap between gso,gro and
// gso,nogro is that work; what a viewer without GRO costs whipgate on a
// real network is the gso,gro sender figure.
//
// It reports sender-ns/dgram and receiver-ns/dgram (thread CPU time, not
// wall time, so a busy machine skews it less) and the share lost in the
// receiver's buffer (none: the sender waits for the reader).
func BenchmarkSendToReceiver(b *testing.B) {
	for _, tc := range []struct {
		name    string
		gso     bool
		recvGRO bool
	}{
		{"gso,gro", true, true},
		{"gso,nogro", true, false},
		{"sendmmsg,nogro", false, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, r := connPair(b, tc.gso)
			if tc.recvGRO {
				if err := EnableGRO(r); err != nil {
					b.Skipf("no UDP_GRO here (Linux ≥ 5.0): %v", err)
				}
			}
			// The sender waits (asleep, at no CPU) while this many of its
			// datagrams are unread: well inside the receive buffer, so that
			// none is dropped, which would spare the receiving half.
			const group, window = 52, 1024
			var rcpu time.Duration
			var got atomic.Int64
			var wg sync.WaitGroup
			wg.Go(func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				cr := NewCoalescedReader(0)
				t0 := threadCPU()
				for {
					if _, _, _, err := cr.Next(r); err != nil {
						break
					}
					got.Add(1)
				}
				rcpu = threadCPU() - t0
			})
			to := r.LocalAddr().(*net.UDPAddr).AddrPort()
			batch := c.NewBatch()
			defer batch.Close()
			p := make([]byte, 1228)
			runtime.LockOSThread()
			t0 := threadCPU()
			n := 0
			for i := 0; b.Loop(); i++ {
				if i%group == 0 {
					_ = batch.Flush()
					for int64(n)-got.Load() > window {
						time.Sleep(20 * time.Microsecond)
					}
					batch.Open(to)
				}
				if _, err := c.WriteToAddrPort(p, to); err != nil {
					b.Fatal(err)
				}
				n++
			}
			_ = batch.Flush()
			scpu := threadCPU() - t0
			runtime.UnlockOSThread()
			_ = r.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			wg.Wait()
			b.ReportMetric(float64(scpu.Nanoseconds())/float64(n), "sender-ns/dgram")
			rn := int(got.Load())
			b.ReportMetric(float64(rcpu.Nanoseconds())/float64(max(rn, 1)), "receiver-ns/dgram")
			b.ReportMetric(100*float64(n-min(rn, n))/float64(n), "lost%")
		})
	}
}

// BenchmarkBatchLookup is the per-packet lookup of the open batch toward a
// packet's address (SealTo, WriteToAddrPort), from as many goroutines as
// viewers send, each toward its own address, as at 16 viewers.
func BenchmarkBatchLookup(b *testing.B) {
	c, _ := connPair(b, false)
	const viewers = 16
	var addrs []netip.AddrPort
	for i := range viewers {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(40000+i))
		batch := c.NewBatch()
		batch.Open(a)
		b.Cleanup(func() { _ = batch.Close() })
		addrs = append(addrs, a)
	}
	var next atomic.Int32
	b.SetParallelism(viewers / max(runtime.GOMAXPROCS(0), 1))
	b.RunParallel(func(pb *testing.PB) {
		a := addrs[int(next.Add(1)-1)%viewers]
		for pb.Next() {
			if c.batchFor(a) == nil {
				b.Error("no batch")
				return
			}
		}
	})
}
