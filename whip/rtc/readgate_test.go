package rtc

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"whipgate/internal/testkit"
	"whipgate/whip/rtc/udp"
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
		if got := IsRTP(tc.b); got != tc.want {
			t.Errorf("IsRTP(% x) = %v, want %v", tc.b[:2], got, tc.want)
		}
	}
}

// gateRig is the shared socket behind its read gate, a publisher's socket
// sending to it, and a reader standing in for pion's ICE mux: it reads the
// socket and queues what it read, "inside pion", until the test delivers.
type gateRig struct {
	gate   *readGate
	conn   *udp.Conn
	tx     *net.UDPConn
	peer   *gatedPeer
	inside chan []byte
	read   atomic.Int64
	done   chan struct{}
}

// newGateRig starts the rig; stall replaces ingestStall (0 keeps it).
func newGateRig(t *testing.T, stall time.Duration) *gateRig {
	t.Helper()
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = rx.SetReadBuffer(8 << 20)
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	_ = tx.SetWriteBuffer(8 << 20)
	r := &gateRig{gate: &readGate{stall: stall}, tx: tx, inside: make(chan []byte, 100000), done: make(chan struct{})}
	r.conn = udp.New(rx, testkit.PionLog(t), func(d []byte, from netip.AddrPort) bool { r.gate.received(d, from, authUnknown); return false })
	r.peer = r.gate.add(nil, nil)
	from := tx.LocalAddr().(*net.UDPAddr).AddrPort()
	r.peer.addr.Store(&from)
	go func() {
		defer close(r.done)
		buf := make([]byte, 1500)
		for {
			n, _, err := r.conn.ReadFromAddrPort(buf)
			if err != nil {
				return
			}
			r.read.Add(1)
			r.inside <- append([]byte(nil), buf[:n]...)
		}
	}()
	t.Cleanup(func() {
		r.gate.remove(r.peer)
		_ = rx.Close()
		_ = tx.Close()
		<-r.done
	})
	return r
}

func (r *gateRig) send(t *testing.T, n int) { r.sendWith(t, n, 0x80) }

// sendWith sends n RTP packets whose first byte is b0 (0xa0: padding).
func (r *gateRig) sendWith(t *testing.T, n int, b0 byte) {
	pkt := append([]byte{b0, 102}, make([]byte, 1198)...)
	for i := range n {
		pkt[2], pkt[3] = byte(i>>8), byte(i)
		if _, err := r.tx.Write(pkt); err != nil {
			t.Error(err)
			return
		}
	}
}

// A burst bigger than the window waits in the kernel: the reader is never
// more than the window ahead of delivery, and nothing is lost.
func TestReadGateHoldsABurstInTheKernel(t *testing.T) {
	r := newGateRig(t, 0)
	r.peer.StartReader()
	const burst = 3000
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		r.send(t, burst)
	}()
	defer func() { <-sent }()
	maxAhead := int64(0)
	for delivered := int64(0); delivered < burst; delivered++ {
		r.peer.Reading()
		select {
		case <-r.inside:
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d packets came through", delivered, burst)
		}
		maxAhead = max(maxAhead, r.read.Load()-delivered)
		r.peer.delivered()
		if delivered%64 == 0 {
			time.Sleep(time.Millisecond) // pion busy elsewhere
		}
	}
	if maxAhead > ingestWindow {
		t.Errorf("the reader got %d packets ahead of delivery, want at most the window of %d", maxAhead, ingestWindow)
	}
	if r.peer.forgiven.Load() != 0 {
		t.Errorf("forgave %d packets although delivery made progress", r.peer.forgiven.Load())
	}
}

// Packets pion swallows are never delivered: once the track reader sits
// idle in Read, the gate knows pion holds nothing and opens.
func TestReadGateForgivesWhenTheTrackReaderIsIdle(t *testing.T) {
	r := newGateRig(t, time.Hour) // only idleness may open it
	r.peer.StartReader()
	r.peer.Reading() // waits in Read for ever: nothing reaches the track
	r.send(t, 3*ingestWindow)
	deadline := time.Now().Add(5 * time.Second)
	for r.read.Load() < 3*ingestWindow {
		if time.Now().After(deadline) {
			t.Fatalf("reader stuck at %d packets although the track reader is idle", r.read.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// A track reader that is busy but makes no progress (starved, stuck) holds
// the gate for ingestStall at most.
func TestReadGateForgivesABusyReaderAfterAStall(t *testing.T) {
	r := newGateRig(t, 50*time.Millisecond)
	r.peer.StartReader() // busy: never back in Read
	start := time.Now()  // before the reader can block
	r.send(t, ingestWindow+100)
	for r.read.Load() < ingestWindow+100 {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("reader stuck at %d packets", r.read.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("the gate opened after %v for a busy reader, want it held for the stall (50ms)", d)
	}
}

// Only the registered publisher's RTP counts: other senders (viewers'
// RTCP, anyone else) never hold the socket.
func TestReadGateIgnoresOtherSenders(t *testing.T) {
	r := newGateRig(t, time.Hour)
	r.peer.StartReader()
	other := netip.MustParseAddrPort("127.0.0.1:9")
	r.peer.addr.Store(&other)
	r.send(t, 2*ingestWindow)
	deadline := time.Now().Add(2 * time.Second)
	for r.read.Load() < 2*ingestWindow {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d packets from an ungated sender", r.read.Load(), 2*ingestWindow)
		}
		time.Sleep(time.Millisecond)
	}
	if r.peer.in.Load() != 0 {
		t.Errorf("counted %d packets from another address", r.peer.in.Load())
	}
}

// Padding (a browser's bandwidth probes, padding-only RTX) never reaches a
// track, so it is not counted: probes must not close the gate.
func TestReadGateIgnoresPadding(t *testing.T) {
	r := newGateRig(t, time.Hour)
	r.peer.StartReader()
	r.sendWith(t, 2*ingestWindow, 0xa0)
	deadline := time.Now().Add(2 * time.Second)
	for r.read.Load() < 2*ingestWindow {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d padding packets: the gate closed on them", r.read.Load(), 2*ingestWindow)
		}
		time.Sleep(time.Millisecond)
	}
	if n := r.peer.in.Load(); n != 0 {
		t.Errorf("counted %d padding packets", n)
	}
}

// Removing a publisher releases a reader waiting on it.
func TestReadGateRemoveReleasesTheReader(t *testing.T) {
	r := newGateRig(t, time.Hour) // only remove may open it
	r.peer.StartReader()          // busy, no progress
	const total = ingestWindow + 100
	r.send(t, total)
	deadline := time.Now().Add(2 * time.Second)
	for r.read.Load() < ingestWindow-1 {
		if time.Now().After(deadline) {
			t.Fatalf("reader stuck at %d packets before the window", r.read.Load())
		}
		time.Sleep(100 * time.Microsecond)
	}
	time.Sleep(10 * time.Millisecond)
	if got := r.read.Load(); got >= total {
		t.Fatalf("reader read all %d packets although the gate was closed", got)
	}
	r.gate.remove(r.peer)
	deadline = time.Now().Add(5 * time.Second)
	for r.read.Load() < total {
		if time.Now().After(deadline) {
			t.Fatalf("after remove the reader is stuck at %d of %d", r.read.Load(), total)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// A publisher's burst that arrives coalesced (UDP GSO on loopback, as a
// NIC's GRO would hand it over) is read a message at a time but still
// counted and held packet by packet: never more than the window ahead,
// nothing lost, and far fewer reads than packets.
func TestReadGateHoldsACoalescedBurst(t *testing.T) {
	r := newGateRig(t, 0)
	if coalesced, _, _ := r.conn.ReadStats(); !coalesced {
		t.Fatal("this kernel has no UDP_GRO (Linux ≥ 5.0 needed); coalesced reads cannot be tested")
	}
	r.peer.StartReader()
	const burst, perMessage = 3000, 50
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		oob := udp.SegmentOOB(1200)
		msg := make([]byte, 0, perMessage*1200)
		for i := 0; i < burst; i += perMessage {
			msg = msg[:0]
			for j := i; j < i+perMessage; j++ {
				pkt := append([]byte{0x80, 102, byte(j >> 8), byte(j)}, make([]byte, 1196)...)
				msg = append(msg, pkt...)
			}
			if _, _, err := r.tx.WriteMsgUDP(msg, oob, nil); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { <-sent }()
	maxAhead := int64(0)
	for delivered := int64(0); delivered < burst; delivered++ {
		r.peer.Reading()
		var got []byte
		select {
		case got = <-r.inside:
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d packets came through", delivered, burst)
		}
		if len(got) != 1200 || int(got[2])<<8|int(got[3]) != int(delivered) {
			t.Fatalf("packet %d: %d bytes, number %d", delivered, len(got), int(got[2])<<8|int(got[3]))
		}
		maxAhead = max(maxAhead, r.read.Load()-delivered)
		r.peer.delivered()
		if delivered%64 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if maxAhead > ingestWindow {
		t.Errorf("the reader got %d packets ahead of delivery, want at most the window of %d", maxAhead, ingestWindow)
	}
	if _, reads, _ := r.conn.ReadStats(); reads > burst/perMessage {
		t.Errorf("%d reads for %d packets sent as %d messages: the kernel did not coalesce", reads, burst, burst/perMessage)
	}
}
