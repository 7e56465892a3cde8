package bench

import (
	"net"
	"sync"
	"testing"
	"time"
)

// TestGateHoldsReadsUntilTheViewerCatchesUp sends a burst bigger than the
// window through a real socket and delivers slowly: the socket must never
// be more than the window ahead, and nothing is lost.
func TestGateHoldsReadsUntilTheViewerCatchesUp(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	_ = rx.SetReadBuffer(4 << 20)
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
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
	c := &gatedConn{UDPConn: rx, udp: rx, gate: g}
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
