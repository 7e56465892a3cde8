package nack

import (
	"io"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"whipgate/internal/testkit"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
)

// A missing packet is asked for at once, again after nackRetry while
// unanswered, at most nackMaxAsks times, and never once it arrived.
func TestRecvLogAsksUntilAnswered(t *testing.T) {
	l := newRecvLog(1024)
	for s := uint16(0); s < 10; s++ {
		if s != 3 && s != 7 {
			l.add(s)
		}
	}
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) []uint16 { return l.due(t0.Add(d), nil) }
	if got := at(0); !slices.Equal(got, []uint16{3, 7}) {
		t.Fatalf("first look: asked for %v, want [3 7]", got)
	}
	if got := at(nackTick); len(got) != 0 {
		t.Fatalf("%v after %v: asked again before the retry time", got, nackTick)
	}
	l.add(3) // answered
	if got := at(nackRetry); !slices.Equal(got, []uint16{7}) {
		t.Fatalf("after %v: asked for %v, want [7] (3 came)", nackRetry, got)
	}
	asks := 3 // 3 and 7 at once, 7 again after nackRetry
	for i := 2; i < 40; i++ {
		asks += len(at(time.Duration(i) * nackRetry))
	}
	if asks != nackMaxAsks+1 { // 3 once, 7 nackMaxAsks times
		t.Errorf("%d requests in all, want %d", asks, nackMaxAsks+1)
	}
}

// Sequence numbers wrap; a late packet inside the window counts, one
// outside does not; a jump past the window starts afresh.
func TestRecvLogWrapAndJumps(t *testing.T) {
	l := newRecvLog(64)
	for s := uint16(65530); s != 6; s++ {
		if s != 65534 && s != 2 {
			l.add(s)
		}
	}
	now := time.Unix(1000, 0)
	if got := l.due(now, nil); !slices.Equal(got, []uint16{65534, 2}) {
		t.Fatalf("across the wrap: asked for %v, want [65534 2]", got)
	}
	l.add(65534)
	l.add(200) // 195 ahead: past the 64-packet window
	if got := l.due(now.Add(time.Second), nil); len(got) != 0 {
		t.Fatalf("after a jump past the window: asked for %v, want nothing", got)
	}
	l.add(150) // older than the window: ignored, not asked for
	for s := uint16(201); s < 210; s++ {
		if s != 205 {
			l.add(s)
		}
	}
	if got := l.due(now.Add(2*time.Second), nil); !slices.Equal(got, []uint16{205}) {
		t.Fatalf("after the jump: asked for %v, want [205]", got)
	}
}

// The generator as pion drives it: a stream with NACK feedback is logged
// from its reads, RTX recoveries arrive by Received, requests go out on
// the RTCP writer, and Close stops them and forgets the PeerConnection.
func TestNACKGeneratorAsksOnceForRecoveredPackets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := NewGeneratorFactory(8192, testkit.PionLog(t))
		it, err := f.NewInterceptor("pc-1")
		if err != nil {
			t.Fatal(err)
		}
		g := it.(*Generator)
		var w nackSink
		g.BindRTCPWriter(&w)
		src := &seqReader{seqs: []uint16{10, 11, 13, 14, 16}}
		r := g.BindRemoteStream(&interceptor.StreamInfo{SSRC: 42, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}}, src)
		rtx := g.BindRemoteStream(&interceptor.StreamInfo{SSRC: 43, MimeType: "video/rtx"}, src)
		if rtx != src {
			t.Error("an RTX stream (no NACK feedback) was wrapped")
		}
		buf := make([]byte, 1500)
		for range src.seqs {
			if _, _, err := r.Read(buf, nil); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(nackTick)
		synctest.Wait()
		if got := w.asked(42); !slices.Equal(got, []uint16{12, 15}) {
			t.Fatalf("asked for %v, want [12 15]", got)
		}
		g.Received(42, 12) // came through RTX
		g.Received(99, 15) // another stream's: no effect
		time.Sleep(nackRetry)
		synctest.Wait()
		if got := w.asked(42); !slices.Equal(got, []uint16{12, 15, 15}) {
			t.Fatalf("after RTX brought 12: asked for %v, want [12 15 15]", got)
		}
		if f.For("no such PeerConnection") != nil {
			t.Error("a generator for an unknown PeerConnection")
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		n := len(w.asked(42))
		time.Sleep(time.Second)
		synctest.Wait()
		if len(w.asked(42)) != n {
			t.Error("requests went on after Close")
		}
		f.byPC.mu.Lock()
		defer f.byPC.mu.Unlock()
		if len(f.byPC.m) != 0 {
			t.Errorf("the factory still holds %d generators after Close", len(f.byPC.m))
		}
	})
}

// seqReader returns RTP headers with the given sequence numbers, then EOF.
type seqReader struct {
	seqs []uint16
	i    int
}

func (r *seqReader) Read(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	if r.i >= len(r.seqs) {
		return 0, nil, io.EOF
	}
	s := r.seqs[r.i]
	r.i++
	copy(b, []byte{0x80, 102, byte(s >> 8), byte(s), 0, 0, 0, 0, 0, 0, 0, 42})
	return 12, a, nil
}

// nackSink is an RTCP writer that keeps the NACKs written to it.
type nackSink struct {
	mu    sync.Mutex
	nacks []*rtcp.TransportLayerNack
}

func (s *nackSink) Write(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range pkts {
		if n, ok := p.(*rtcp.TransportLayerNack); ok {
			s.nacks = append(s.nacks, n)
		}
	}
	return len(pkts), nil
}

// asked lists the sequence numbers asked for on ssrc, in order.
func (s *nackSink) asked(ssrc uint32) []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var seqs []uint16
	for _, n := range s.nacks {
		if n.MediaSSRC == ssrc {
			for _, p := range n.Nacks {
				seqs = append(seqs, p.PacketList()...)
			}
		}
	}
	return seqs
}

// A PeerConnection that receives no media (a WHEP viewer's) never starts
// the requests' ticker.
func TestNACKGeneratorIdleWithoutStreams(t *testing.T) {
	f := NewGeneratorFactory(8192, testkit.PionLog(t))
	it, err := f.NewInterceptor("viewer")
	if err != nil {
		t.Fatal(err)
	}
	g := it.(*Generator)
	g.BindRTCPWriter(&nackSink{})
	g.BindRemoteStream(&interceptor.StreamInfo{SSRC: 7, MimeType: "audio/opus"}, &seqReader{})
	g.mu.Lock()
	started := g.started
	g.mu.Unlock()
	if started {
		t.Error("the ticker started with no stream that takes NACKs")
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
}

// A packet recovered through RTX fills its hole but never moves the
// window: an RTX copy newer than what the track reader has read so far
// must not make the packets between look missing.
func TestRecvLogRecoveredNeverMovesTheWindow(t *testing.T) {
	l := newRecvLog(1024)
	for s := uint16(0); s <= 100; s++ {
		if s != 40 {
			l.add(s)
		}
	}
	now := time.Unix(1000, 0)
	l.recovered(105)  // ahead of the reader
	l.recovered(5000) // far ahead: no reset either
	l.recovered(40)   // a real recovery
	if got := l.due(now, nil); len(got) != 0 {
		t.Fatalf("asked for %v, want nothing: 40 was recovered, 101-104 are only unread", got)
	}
	l.add(106) // the reader moves on; 105 came only as RTX so far
	if got := l.due(now.Add(time.Second), nil); !slices.Equal(got, []uint16{101, 102, 103, 104, 105}) {
		t.Fatalf("asked for %v, want [101 102 103 104 105]", got)
	}
}

// Two PeerConnections with one ID (pion's come from the clock) are told
// apart by neither lookup rather than mixed up.
func TestNACKGeneratorSharedID(t *testing.T) {
	f := NewGeneratorFactory(8192, testkit.PionLog(t))
	a, _ := f.NewInterceptor("PeerConnection-1")
	b, _ := f.NewInterceptor("PeerConnection-1")
	f.byPC.mu.Lock()
	got := f.byPC.m["PeerConnection-1"]
	f.byPC.mu.Unlock()
	if got != nil {
		t.Errorf("a shared ID finds generator %p", got)
	}
	for _, it := range []interceptor.Interceptor{a, b} {
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A packet that stays missing through three requests counts as lost, once,
// and is still asked for afterwards; every request counts as NACKed.
func TestRecvLogCountsLoss(t *testing.T) {
	l := newRecvLog(64)
	t0 := time.Unix(1000, 0)
	l.add(1)
	l.add(3) // 2 is missing
	for i, want := range []uint64{0, 0, 0, 1, 1} {
		if got := l.due(t0.Add(time.Duration(i)*nackRetry), nil); len(got) != 1 || got[0] != 2 {
			t.Fatalf("ask %d: asked for %v, want [2]", i, got)
		}
		if l.lost != want {
			t.Fatalf("after ask %d: %d lost, want %d", i, l.lost, want)
		}
	}
	if l.nacked != 5 {
		t.Fatalf("%d NACKed, want 5", l.nacked)
	}
	l.add(2) // too late for the frame, but it arrived: no more asks
	if got := l.due(t0.Add(10*nackRetry), nil); len(got) != 0 {
		t.Fatalf("asked for %v after it arrived", got)
	}
}

// Given the round trip, a LossLog asks again once it has passed since the
// last request, at the next look; without it, after nackRetry.
func TestLossLogRetriesAfterRTT(t *testing.T) {
	for _, tc := range []struct {
		rtt, want time.Duration
	}{
		{0, nackRetry},
		{30 * time.Millisecond, 40 * time.Millisecond}, // the second look after it
		{time.Millisecond / 2, Interval},               // loopback: every look
	} {
		l := NewLossLog(1024)
		l.SetRTT(tc.rtt)
		l.Add(1)
		l.Add(3)
		t0 := time.Unix(1000, 0)
		if got := l.Due(t0, nil); !slices.Equal(got, []uint16{2}) {
			t.Fatalf("rtt %v: first look asked for %v, want [2]", tc.rtt, got)
		}
		var again time.Duration
		for d := Interval; d <= 10*Interval && again == 0; d += Interval {
			if len(l.Due(t0.Add(d), nil)) > 0 {
				again = d
			}
		}
		if again != tc.want {
			t.Errorf("rtt %v: asked again %v later, want %v", tc.rtt, again, tc.want)
		}
	}
}
