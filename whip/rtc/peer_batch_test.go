package rtc

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/pion/rtp"

	"whipgate/internal/testkit"
)

// Media written inside a peerBatch reaches a real pion viewer through the
// ICE mux, SRTP and all, and goes out in batches.
func TestPeerBatchThroughPion(t *testing.T) {
	const n = 2000
	_, batch := batchedToViewer(t, newTestTransport(t), n)
	sent, calls := batch.stats()
	if sent < n {
		t.Fatalf("got %d datagrams through the batch, want at least %d: the batch did not catch the mux's writes", sent, n)
	}
	if calls > sent/10 {
		t.Errorf("got %d sendmmsg calls for %d datagrams, want groups of ~50", calls, sent)
	}
}

// batchedToViewer connects a viewer to a PC of rtc and sends it n packets
// in groups of 50 through the PC's batch; all of them must arrive.
func batchedToViewer(t *testing.T, rtc *Transport, n int) (*viewer, *peerBatch) {
	t.Helper()
	api := newTestAPI(t, rtc, APIOptions{})
	v := connectViewer(t, api, nil)
	batch := newPeerBatch(rtc.conns, v.pc)
	t.Cleanup(func() { _ = batch.close() })
	sendAll(t, v, batch, 1000, n, "all packets at the viewer")
	return v, batch
}

// BenchmarkPeerSend is one 1200-byte packet through a connected server PC
// (interceptors, SRTP, ICE mux, socket) to a pion viewer on loopback, in
// groups of 32 as Forward sees them, sent one by one or batched.
func BenchmarkPeerSend(b *testing.B) {
	for _, mode := range []string{"sendto", "batched", "direct"} {
		b.Run(mode, func(b *testing.B) {
			rtc := newTestTransport(b)
			var d *directSRTP
			if mode == "direct" {
				d = newDirectSRTP(testkit.Log(b))
			}
			api := newTestAPI(b, rtc, APIOptions{direct: d})
			v := connectViewer(b, api, nil)
			if d != nil {
				if err := d.activate(rtc.conns, v.pc); err != nil {
					b.Fatal(err)
				}
			}
			var batch *peerBatch
			if mode != "sendto" {
				batch = newPeerBatch(rtc.conns, v.pc)
				defer batch.close()
			}
			pkt := rtp.Packet{Header: rtp.Header{Version: 2}, Payload: make([]byte, 1200)}
			pkt.Payload[0] = 0x41
			b.SetBytes(1200)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i%32 == 0 {
					_ = batch.flush()
					batch.open()
				}
				pkt.Header = rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(i/100) * 3000, Marker: i%100 == 99}
				if err := v.track.WriteRTP(&pkt); err != nil {
					b.Fatal(err)
				}
			}
			_ = batch.flush()
		})
	}
}

// Listening on every address binds one socket per local address (here two
// loopback ones, so that no test traffic leaves 127.0.0.0/8), each batching
// its sends: a viewer's media leaves in batches from whichever socket ICE
// selected, and a publisher on either is gated.
func TestPeerBatchOnEveryAddress(t *testing.T) {
	rtc := newTestTransportWith(t, func(c *Config) {
		c.UDPListen = "0.0.0.0:0"
		c.listenIPs = func() ([]net.IP, error) {
			return []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2)}, nil
		}
	})
	if len(rtc.conns) != 2 {
		t.Fatalf("%d sockets for two addresses", len(rtc.conns))
	}
	a0, a1 := rtc.conns[0].LocalAddr().(*net.UDPAddr), rtc.conns[1].LocalAddr().(*net.UDPAddr)
	if a0.Port != a1.Port || a0.Port != rtc.Addr().Port {
		t.Errorf("sockets on %v and %v, RTC on %v: want one port", a0, a1, rtc.Addr())
	}
	for _, c := range rtc.conns {
		// An RTP datagram from a gated publisher's address counts in its
		// backlog whichever socket it reaches: every socket reads
		// through the transport's gate.
		src, err := net.ListenUDP("udp4", &net.UDPAddr{IP: c.LocalAddr().(*net.UDPAddr).IP})
		if err != nil {
			t.Fatal(err)
		}
		p := rtc.gate.add(nil, nil)
		from := src.LocalAddr().(*net.UDPAddr).AddrPort()
		p.addr.Store(&from)
		rtp := []byte{0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}
		if _, err := src.WriteTo(rtp, c.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 2*time.Second, fmt.Sprintf("socket %v reading through the publisher gate", c.LocalAddr()), func() bool { return p.in.Load() == 1 })
		rtc.gate.remove(p)
		_ = src.Close()
	}
	const n = 1000
	v, batch := batchedToViewer(t, rtc, n)
	if sent, _ := batch.stats(); sent < n {
		t.Fatalf("%d datagrams through the batch, want at least %d: the batch sits on another socket than the selected pair's", sent, n)
	}
	local, _ := selectedPair(v.pc)
	if batch.conn == nil || batch.conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr() != local {
		t.Errorf("batch on %v, selected pair's local address %v", batch.conn, local)
	}
}
