package bench

import (
	"net"
	"sync"
	"testing"
	"time"
)

func TestIsRTP(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want bool
	}{
		{append([]byte{0x80, 102}, make([]byte, 10)...), true},
		{append([]byte{0x80, 0x80 | 102}, make([]byte, 10)...), true}, // marker
		{append([]byte{0x80, 200}, make([]byte, 10)...), false},       // RTCP SR
		{append([]byte{0x81, 205}, make([]byte, 10)...), false},       // RTCP feedback
		{append([]byte{22, 0xfe}, make([]byte, 10)...), false},        // DTLS
		{append([]byte{0, 1}, make([]byte, 18)...), false},            // STUN
		{[]byte{0x80, 102}, false},                                    // too short
	} {
		if got := isRTP(tc.b); got != tc.want {
			t.Errorf("isRTP(% x) = %v, want %v", tc.b[:2], got, tc.want)
		}
	}
}

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

	g := &gate{}
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
			g.delivered()
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

// TestGateForgivesPacketsNeverDelivered: packets pion drops for good must
// not stall the socket for more than a wait.
func TestGateForgivesPacketsNeverDelivered(t *testing.T) {
	g := &gate{}
	g.in.Store(10 * gateWindow) // read, never delivered
	start := time.Now()
	g.wait()
	if d := time.Since(start); d > 20*gateWait {
		t.Fatalf("waited %v for a viewer that will never catch up", d)
	}
	start = time.Now()
	g.wait()
	if d := time.Since(start); d > gateWait/2 {
		t.Errorf("the second wait took %v: the lost packets were not forgiven", d)
	}
}
