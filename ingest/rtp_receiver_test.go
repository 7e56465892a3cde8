package ingest

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/pion/rtp"

	"whipgate/gateway"
	"whipgate/whip/rtc/udp"
)

// rtpDatagram is an RTP packet with a one-byte header extension, whose
// payload is its sequence number's low byte, repeated.
func rtpDatagram(t testing.TB, seq uint16, size int) []byte {
	t.Helper()
	p := rtp.Packet{
		Header:  rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: 9000 * uint32(seq/4), SSRC: 77, Marker: seq%4 == 3},
		Payload: bytes.Repeat([]byte{byte(seq)}, size),
	}
	if err := p.SetExtension(1, []byte{byte(seq)}); err != nil {
		t.Fatal(err)
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Once its buffers have grown, the receiver allocates nothing per packet,
// out of order ones and header extensions included.
func TestRTPReceiveAllocatesNothing(t *testing.T) {
	r, err := NewRTPReceiver(RTPConfig{Codec: gateway.H264, ReportInterval: -1}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var w discardWriter
	r.w = &w
	from := netip.MustParseAddrPort("127.0.0.1:5004")
	var dgrams [][]byte
	for s := range 256 {
		dgrams = append(dgrams, rtpDatagram(t, uint16(s), 1000))
	}
	// Each round swaps two packets, which the reorder buffer holds.
	round := func() {
		for i := 0; i < len(dgrams); i += 2 {
			r.receive(dgrams[i+1], from, time.Now())
			r.receive(dgrams[i], from, time.Now())
		}
	}
	r.receive(rtpDatagram(t, 0xffff, 1000), from, time.Now()) // the sequence starts in order
	round()
	allocs := testing.AllocsPerRun(10, func() {
		for _, d := range dgrams { // the next round's sequence numbers
			seq := uint16(d[2])<<8 | uint16(d[3])
			seq += uint16(len(dgrams))
			d[2], d[3] = byte(seq>>8), byte(seq)
		}
		round()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per %d packets, want 0", allocs, len(dgrams))
	}
	if st := r.Stats(); st.Lost != 0 || st.Late != 0 || st.Reordered == 0 || w.n != int(st.Packets) {
		t.Errorf("stats %+v, %d packets written", st, w.n)
	}
}

// A burst a sender hands the kernel as one UDP GSO message reaches the
// receiver as one coalesced read (UDP_GRO), which it splits back into
// its packets, in order.
func TestRTPReceiverCoalescedReads(t *testing.T) {
	log := testLog(t)
	r, err := NewRTPReceiver(RTPConfig{Codec: gateway.H264, ReportInterval: -1}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var rec recorder
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, &rec, 0) }()
	defer func() {
		cancel()
		<-done
	}()

	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tx := udp.New(sock, log, nil)
	defer tx.Close()
	batch := tx.NewBatch()
	defer batch.Close()
	to := r.Addr().AddrPort()
	const n = 40
	batch.Open(to)
	for s := range uint16(n) {
		if _, err := tx.WriteToAddrPort(rtpDatagram(t, s, 1100), to); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the burst", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.pkts) == n
	})
	for i, p := range rec.pkts {
		if p.SequenceNumber != rec.pkts[0].SequenceNumber+uint16(i) || !bytes.Equal(p.Payload, bytes.Repeat([]byte{byte(i)}, 1100)) {
			t.Fatalf("packet %d: seq %d, payload % x...", i, p.SequenceNumber, p.Payload[:4])
		}
	}
	reads, datagrams := r.rd.Stats()
	t.Logf("%d datagrams in %d reads", datagrams, reads)
	if runtime.GOOS == "linux" && reads >= datagrams {
		t.Errorf("%d datagrams took %d reads: the burst was not coalesced", datagrams, reads)
	}
}
