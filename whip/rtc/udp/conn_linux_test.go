//go:build linux

package udp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"whipgate/internal/testkit"
)

// connPair is a Conn and a plain receiver on IPv4 loopback.
func connPair(t testing.TB, gso bool) (*Conn, *net.UDPConn) {
	t.Helper()
	return connPairOn(t, "udp4", gso)
}

// connPairOn is a Conn and a plain receiver on network's loopback (udp4
// or udp6).
func connPairOn(t testing.TB, network string, gso bool) (*Conn, *net.UDPConn) {
	t.Helper()
	s, r := testkit.LoopbackUDP(t, network), testkit.LoopbackUDP(t, network)
	_ = r.SetReadBuffer(8 << 20)
	_ = s.SetWriteBuffer(8 << 20)
	c := New(s, testkit.PionLog(t), nil)
	if gso && !c.gso.Load() {
		t.Fatal("this kernel has no UDP GSO (Linux ≥ 4.18 needed); the GSO case cannot run")
	}
	c.gso.Store(gso)
	return c, r
}

// drain reads r until it is closed, so its socket never fills; stop
// closes r and waits for the reader.
func drain(r *net.UDPConn) (stop func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := r.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	})
	return func() { _ = r.Close(); wg.Wait() }
}

// datagram is datagram i: its index, then filler up to size.
func datagram(i, size int) []byte {
	p := bytes.Repeat([]byte{byte(i)}, size)
	binary.BigEndian.PutUint32(p, uint32(i))
	return p
}

// receive reads n datagrams and checks they are want(0..n-1) in order.
func receive(t *testing.T, r *net.UDPConn, n int, want func(i int) []byte) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range n {
		m, _, err := r.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d of %d: %v", i, n, err)
		}
		if w := want(i); !bytes.Equal(buf[:m], w) {
			t.Fatalf("datagram %d: got %d bytes starting %x, want %d bytes starting %x", i, m, buf[:min(m, 4)], len(w), w[:4])
		}
	}
}

func TestBatchConnDeliversInOrder(t *testing.T) {
	// Runs of equal sizes (one GSO message each), a shorter one ending a
	// run, singles, a run longer than GSO's 64 segments, and more data
	// than one batch holds (forces a flush mid-batch).
	var sizes []int
	for range 100 {
		sizes = append(sizes, 1200)
	}
	sizes = append(sizes, 700, 1200, 1200, 90, 1300, 1300, 1300, 200, 200)
	for range 300 {
		sizes = append(sizes, 1100)
	}
	// Both IP versions (the raw sendmmsg writes each's socket address)
	// and x/net's path too, which other systems take.
	type path struct {
		network   string
		gso, xnet bool
	}
	var paths []path
	for _, network := range []string{"udp4", "udp6"} {
		for _, gso := range []bool{false, true} {
			for _, xnet := range []bool{false, true} {
				paths = append(paths, path{network, gso, xnet})
			}
		}
	}
	for _, p := range paths {
		t.Run(fmt.Sprintf("%s,gso=%v,xnet=%v", p.network, p.gso, p.xnet), func(t *testing.T) {
			c, r := connPairOn(t, p.network, p.gso)
			if p.xnet {
				c.raw = nil
			} else if c.raw == nil {
				t.Fatal("no raw sendmmsg on Linux")
			}
			to := r.LocalAddr().(*net.UDPAddr).AddrPort()
			b := c.NewBatch()
			defer b.Close()
			b.Open(to)
			for i, n := range sizes {
				if _, err := c.WriteToAddrPort(datagram(i, n), to); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Flush(); err != nil {
				t.Fatal(err)
			}
			receive(t, r, len(sizes), func(i int) []byte { return datagram(i, sizes[i]) })
			sent, calls := b.Stats()
			if sent != uint64(len(sizes)) {
				t.Errorf("got %d datagrams through the batch, want %d", sent, len(sizes))
			}
			t.Logf("%d datagrams in %d sendmmsg calls", sent, calls)

			// Closed: writes go out at once.
			if _, err := c.WriteToAddrPort(datagram(7, 100), to); err != nil {
				t.Fatal(err)
			}
			receive(t, r, 1, func(int) []byte { return datagram(7, 100) })
		})
	}
}

// TestBatchSendAllocatesNothing: a batch of a frame's datagrams leaves
// without an allocation (the raw sendmmsg binds its call once), GSO or
// not.
func TestBatchSendAllocatesNothing(t *testing.T) {
	for _, gso := range []bool{false, true} {
		c, r := connPair(t, gso)
		stop := drain(r)
		to := r.LocalAddr().(*net.UDPAddr).AddrPort()
		b := c.NewBatch()
		p := make([]byte, 1200)
		send := func() {
			b.Open(to)
			for range 32 {
				if _, err := c.WriteToAddrPort(p, to); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		send()
		if n := testing.AllocsPerRun(50, send); n != 0 {
			t.Errorf("gso=%v: %.1f allocations per batch of 32, want 0", gso, n)
		}
		_ = b.Close()
		stop()
	}
}

// Another goroutine's datagram to the batch's address (an RTCP report, a
// STUN check) joins the batch in order; one to another address is not held.
func TestBatchConnOtherWriters(t *testing.T) {
	c, r := connPair(t, c0gso(t))
	_, r2 := connPair(t, false)
	to := r.LocalAddr().(*net.UDPAddr).AddrPort()
	other := r2.LocalAddr().(*net.UDPAddr).AddrPort()
	b := c.NewBatch()
	defer b.Close()
	b.Open(netip.AddrPortFrom(netip.AddrFrom16(to.Addr().As16()), to.Port())) // v4-mapped form matches too
	_, _ = c.WriteToAddrPort(datagram(0, 1200), to)
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = c.WriteToAddrPort(datagram(1, 80), to)
		_, _ = c.WriteToAddrPort(datagram(9, 80), other)
	})
	wg.Wait()
	receive(t, r2, 1, func(int) []byte { return datagram(9, 80) }) // not held by the open batch
	_, _ = c.WriteToAddrPort(datagram(2, 1200), to)
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{datagram(0, 1200), datagram(1, 80), datagram(2, 1200)}
	receive(t, r, 3, func(i int) []byte { return want[i] })
}

// Two batches to two addresses, filled concurrently, never mix.
func TestBatchConnConcurrentSessions(t *testing.T) {
	c, r1 := connPair(t, c0gso(t))
	_, r2 := connPair(t, false)
	var wg sync.WaitGroup
	for k, r := range []*net.UDPConn{r1, r2} {
		to := r.LocalAddr().(*net.UDPAddr).AddrPort()
		wg.Go(func() {
			b := c.NewBatch()
			defer b.Close()
			for g := range 20 {
				b.Open(to)
				for i := range 50 {
					_, _ = c.WriteToAddrPort(datagram(k<<16|g*50+i, 1000+k), to)
				}
				_ = b.Flush()
			}
		})
	}
	wg.Wait()
	for k, r := range []*net.UDPConn{r1, r2} {
		receive(t, r, 1000, func(i int) []byte { return datagram(k<<16|i, 1000+k) })
	}
}

// c0gso is whether this kernel does UDP GSO, so tests use it when it can.
func c0gso(t testing.TB) bool {
	return probeGSO(testkit.LoopbackUDP(t, "udp4"))
}

// BenchmarkBatchConn is the kernel cost per 1200-byte datagram to a
// loopback receiver: one sendto each, sendmmsg of the group, sendmmsg
// with GSO. A reader drains the receiver so the socket never fills.
func BenchmarkBatchConn(b *testing.B) {
	for _, mode := range []string{"sendto", "sendmmsg", "gso"} {
		b.Run(mode, func(b *testing.B) {
			c, r := connPair(b, mode == "gso")
			defer drain(r)()
			to := r.LocalAddr().(*net.UDPAddr).AddrPort()
			batch := c.NewBatch()
			defer batch.Close()
			p := make([]byte, 1200)
			const group = 32
			b.SetBytes(1200)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i%group == 0 && mode != "sendto" {
					_ = batch.Flush()
					batch.Open(to)
				}
				if _, err := c.WriteToAddrPort(p, to); err != nil {
					b.Fatal(err)
				}
			}
			_ = batch.Flush()
		})
	}
}

// BenchmarkBatchConnRead is the reader's cost per 1200-byte datagram on
// the shared socket (pion's ICE mux reading through ReadFromAddrPort):
// one datagram per read, the same with UDP_GRO on (one more copy), and a
// burst that arrives coalesced in messages of 32, as a NIC's GRO hands a
// publisher's burst to a socket with UDP_GRO (here: a GSO sender on
// loopback). The socket is filled before each timed stretch.
func BenchmarkBatchConnRead(b *testing.B) {
	for _, mode := range []string{"datagrams", "datagrams+gro", "coalesced+gro"} {
		b.Run(mode, func(b *testing.B) {
			tx, rx := connPair(b, true)
			_ = rx.SetReadBuffer(8 << 20)
			c := New(rx, testkit.PionLog(b), nil)
			if mode == "datagrams" {
				c.gro = nil
			} else if c.gro == nil {
				b.Fatal("this kernel has no UDP_GRO (Linux ≥ 5.0 needed)")
			}
			to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
			batch := tx.NewBatch()
			defer batch.Close()
			tx.gso.Store(mode == "coalesced+gro")
			p := make([]byte, 1200)
			buf := make([]byte, 8192) // pion's read buffer at the transport's receive MTU
			const fill = 2048         // well inside the receive buffer
			b.SetBytes(1200)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i%fill == 0 {
					b.StopTimer()
					for j := range fill {
						if j%32 == 0 {
							_ = batch.Flush()
							batch.Open(to)
						}
						if _, err := tx.WriteToAddrPort(p, to); err != nil {
							b.Fatal(err)
						}
					}
					_ = batch.Flush()
					b.StartTimer()
				}
				if n, _, err := c.ReadFromAddrPort(buf); err != nil || n != len(p) {
					b.Fatalf("read %d bytes: %v", n, err)
				}
			}
		})
	}
}

// A write deadline set on the shared socket (pion's mux does, to abort one
// session's write as it closes) must not fail another session's write.
func TestWriteDeadlineSparesOtherWriters(t *testing.T) {
	c, rx := connPair(t, false)
	if err := c.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	if _, err := c.WriteToAddrPort([]byte("still sent"), to); err != nil {
		t.Fatalf("a write after a past deadline: %v", err)
	}
}

// A batch is found under the address it was last opened to: moved (ICE
// picked another pair), what it queued goes to the old address, which is
// free for another batch and whose datagrams leave at once meanwhile; a
// second batch toward a taken address batches nothing; closed, a batch is
// found nowhere.
func TestBatchRegistry(t *testing.T) {
	c, r1 := connPair(t, c0gso(t))
	_, r2 := connPair(t, false)
	a1, a2 := r1.LocalAddr().(*net.UDPAddr).AddrPort(), r2.LocalAddr().(*net.UDPAddr).AddrPort()
	b, other := c.NewBatch(), c.NewBatch()
	defer other.Close()
	b.Open(a1)
	if c.batchFor(a1) != b {
		t.Fatal("an open batch is not found under its address")
	}
	other.Open(a1)
	if c.batchFor(a1) != b {
		t.Fatal("a second batch toward a taken address displaced the first")
	}
	_, _ = c.WriteToAddrPort(datagram(1, 100), a1)
	_ = other.Flush()
	if n, _ := other.Stats(); n != 0 {
		t.Errorf("a batch toward a taken address sent %d datagrams in batches, want none (all at once)", n)
	}
	b.Open(a2) // moved, still open
	if c.batchFor(a2) != b || c.batchFor(a1) != nil {
		t.Fatalf("after the move: %p under the new address, %p under the old; want the batch, nil", c.batchFor(a2), c.batchFor(a1))
	}
	_, _ = c.WriteToAddrPort(datagram(2, 100), a1) // not held: the old address has no batch now
	receive(t, r1, 2, func(i int) []byte { return datagram(i+1, 100) })
	_ = b.Close()
	if c.batchFor(a2) != nil {
		t.Error("a closed batch is still found")
	}
	other.Open(a1)
	if c.batchFor(a1) != other {
		t.Error("a freed address cannot be taken by another batch")
	}
	_ = other.Close()
	if c.batches.Load() != nil {
		t.Error("with every batch closed the map is not dropped, so every write still looks up")
	}
}
