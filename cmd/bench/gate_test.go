package bench

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"whipgate/internal/testkit"
)

// TestGateHoldsReadsUntilTheViewerCatchesUp sends a burst bigger than the
// window through a real socket and delivers slowly: the socket must never
// be more than the window ahead, and nothing is lost.
func TestGateHoldsReadsUntilTheViewerCatchesUp(t *testing.T) {
	rx := loopbackUDP(t)
	_ = rx.SetReadBuffer(4 << 20)
	tx := dialUDP(t, rx)
	const burst = 3 * gateWindow
	pkt := append([]byte{0x80, 102}, make([]byte, 1000)...)
	for range burst {
		if _, err := tx.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}

	g := newGate()
	g.StartReader() // the viewer's track reader
	g.Reading()
	c := &gatedConn{lossyConn: lossyConn{UDPConn: rx, udp: rx}, gate: g}
	var mu sync.Mutex
	read := 0
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 1500)
		for range burst {
			if _, _, err := c.ReadFromAddrPort(buf); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			read++
			mu.Unlock()
		}
	})
	maxAhead := 0
	for delivered := 0; delivered < burst; {
		mu.Lock()
		r := read
		mu.Unlock()
		maxAhead = max(maxAhead, r-delivered)
		if r > delivered {
			g.Delivered()
			g.Reading()
			delivered++
			if delivered%50 == 0 {
				time.Sleep(time.Millisecond) // a slow viewer
			}
			continue
		}
		time.Sleep(10 * time.Microsecond)
	}
	wg.Wait()
	if maxAhead > gateWindow+1 {
		t.Errorf("the socket was read %d packets ahead of the viewer, want at most the window (%d)", maxAhead, gateWindow)
	}
	if read != burst {
		t.Errorf("read %d of %d packets", read, burst)
	}
}

// A GSO message (two full segments and a shorter last one) sent to a
// viewer socket with GRO on arrives whole and leaves as three datagrams,
// each with its own bytes, its sender and the message's kernel time.
func TestGatedConnSplitsGSOMessages(t *testing.T) {
	std := testkit.StdNet(t)
	wire := newWireClock(h264PayloadType)
	g := newGate()
	n := bigBufferNet{Net: std, size: 1 << 20, gate: g, wire: wire, gro: true}
	uc, err := n.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("a viewer socket with UDP_GRO: %v", err)
	}
	defer uc.Close()
	c, ok := uc.(*gatedConn)
	if !ok || c.gro == nil {
		t.Fatalf("viewer socket %T without GRO", uc)
	}
	tx := loopbackUDP(t)

	var pkts [][]byte
	var msg []byte
	for i, size := range []int{1200, 1200, 700} {
		p := make([]byte, size)
		p[0], p[1], p[3] = 0x80, h264PayloadType, byte(10+i)
		for j := 12; j < size; j++ {
			p[j] = byte(i*31 + j)
		}
		pkts = append(pkts, p)
		msg = append(msg, p...)
	}
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], 1200)
	before := time.Now().UnixNano()
	if _, _, err := tx.WriteMsgUDPAddrPort(msg, oob, uc.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatalf("GSO send: %v", err)
	}

	_ = c.udp.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	for i, want := range pkts {
		n, from, err := c.ReadFromAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if !bytes.Equal(buf[:n], want) {
			t.Fatalf("datagram %d: %d bytes, not the %d sent", i, n, len(want))
		}
		if from != tx.LocalAddr().(*net.UDPAddr).AddrPort() {
			t.Errorf("datagram %d from %v, sent from %v", i, from, tx.LocalAddr())
		}
	}
	after := time.Now().UnixNano()
	at := wire.arrival(10, after)
	if at < before || at >= after {
		t.Errorf("kernel time %d not within the send %d and the reads %d", at, before, after)
	}
	for seq := uint16(11); seq <= 12; seq++ {
		if got := wire.arrival(seq, after); got != at {
			t.Errorf("segment %d filed at %d, the message arrived at %d", seq, got, at)
		}
	}
}
