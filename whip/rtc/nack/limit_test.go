package nack

import (
	"fmt"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// A packet asked for again within the resend interval is re-sent once;
// asked for after it, again. The same on the RTX and the plain path.
func TestNACKResendOncePerInterval(t *testing.T) {
	for _, rtx := range []bool{false, true} {
		t.Run(fmt.Sprintf("rtx=%v", rtx), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n, w, out := bindResponder(t, 64, rtx)
				for seq := uint16(1); seq <= 40; seq++ {
					if _, err := w.Write(&rtp.Header{Version: 2, SSRC: 1111, SequenceNumber: seq}, make([]byte, 1000), nil); err != nil {
						t.Fatal(err)
					}
				}
				out.pkts = nil
				for _, step := range []struct {
					after time.Duration
					seqs  []uint16
					want  int // re-sends
				}{
					{0, []uint16{7}, 1},
					{50 * time.Millisecond, []uint16{7}, 0},
					{49 * time.Millisecond, []uint16{7, 8}, 1}, // 99 ms after 7's re-send
					{time.Millisecond, []uint16{7}, 1},         // 100 ms after
					{0, []uint16{8}, 0},
				} {
					time.Sleep(step.after)
					before := len(out.pkts)
					nackFor(n, step.seqs...)
					if got := len(out.pkts) - before; got != step.want {
						t.Fatalf("NACK %v %v after the last: got %d re-sends, want %d", step.seqs, step.after, got, step.want)
					}
				}
				want := ResponderStats{Resent: 3, ResentBytes: 3 * 1000, Duplicate: 3}
				if rtx {
					want.ResentBytes += 3 * 2
				}
				if got := n.Stats(); got != want {
					t.Errorf("got stats %+v, want %+v", got, want)
				}
			})
		})
	}
}

// A receiver asking for the whole history again and again gets at most
// the budget: 15 % of what the stream sent over the last second.
func TestNACKResendBudget(t *testing.T) {
	for _, rtx := range []bool{false, true} {
		t.Run(fmt.Sprintf("rtx=%v", rtx), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const size = 1000 // payload bytes
				type write struct {
					at       time.Time
					n        int64
					original bool
				}
				var writes []write
				sending := false
				out := interceptor.RTPWriterFunc(func(_ *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) {
					writes = append(writes, write{time.Now(), int64(len(p)), sending})
					return len(p), nil
				})
				f := NewResponderFactory(1024, slog.New(slog.DiscardHandler))
				i, err := f.NewInterceptor("pc")
				if err != nil {
					t.Fatal(err)
				}
				n := i.(*Responder)
				info := &interceptor.StreamInfo{SSRC: 1111, PayloadType: 102, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}}
				if rtx {
					info.SSRCRetransmission, info.PayloadTypeRetransmission = 2222, 103
				}
				w := n.BindLocalStream(info, out)
				var seq uint16
				send := func() {
					sending = true
					if _, err := w.Write(&rtp.Header{Version: 2, SSRC: 1111, SequenceNumber: seq}, make([]byte, size), nil); err != nil {
						t.Fatal(err)
					}
					sending = false
					seq++
				}
				// A second at 8 Mbps, then three more with a NACK for all
				// 1024 packets of the history every 20 ms.
				all := make([]uint16, 1024)
				for ms := range 4000 {
					send()
					if ms >= 1000 && ms%20 == 0 {
						for i := range all {
							all[i] = seq - 1024 + uint16(i)
						}
						nackFor(n, all...)
					}
					time.Sleep(time.Millisecond)
				}

				// Re-sent bytes over any 0.9 s (the window holds at least
				// that) stay within 15 % of the bytes sent over the second
				// before (and the 16 packets the window may count late).
				var sent, resent, resends int64
				for _, x := range writes {
					if x.original {
						sent += x.n
						continue
					}
					resent += x.n
					resends++
					var r, s int64
					for _, y := range writes {
						switch d := x.at.Sub(y.at); {
						case y.original && d >= 0 && d < time.Second+16*time.Millisecond:
							s += y.n
						case !y.original && d >= 0 && d < 900*time.Millisecond:
							r += y.n
						}
					}
					if r > s*DefaultResendBudget/100 {
						t.Fatalf("at %v: re-sent %d bytes within 0.9 s, over 15 %% of the %d sent within the second before", x.at, r, s)
					}
				}
				st := n.Stats()
				if st.Resent != uint64(resends) || st.ResentBytes != uint64(resent) {
					t.Errorf("stats count %d packets, %d bytes re-sent; the writer got %d, %d", st.Resent, st.ResentBytes, resends, resent)
				}
				if flood := 3 * sent / 4; resent < flood*DefaultResendBudget/100/2 {
					t.Errorf("re-sent %d bytes while %d were sent: want the budget used, over half of 15 %%", resent, flood)
				}
				if st.OverBudget == 0 || st.Duplicate == 0 {
					t.Errorf("got stats %+v, want requests skipped as over budget and as duplicates", st)
				}
				t.Logf("sent %d bytes, re-sent %d (%.1f %% of the flood's); %+v", sent, resent, 100*float64(resent)/float64(3*sent/4), st)
			})
		})
	}
}

// Within the budget, losses are repaired, and the budget follows what
// the stream sent and re-sent over the last second.
func TestNACKResendBudgetRefills(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := NewResponderFactory(1024, slog.New(slog.DiscardHandler), ResendBudget(10), ResendInterval(time.Hour))
		i, err := f.NewInterceptor("pc")
		if err != nil {
			t.Fatal(err)
		}
		n := i.(*Responder)
		out := &recordWriter{}
		w := n.BindLocalStream(&interceptor.StreamInfo{SSRC: 1111, PayloadType: 102, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}}, out)
		var seq uint16
		burst := func(packets int) { // 1000 bytes each, all at once
			for range packets {
				if _, err := w.Write(&rtp.Header{Version: 2, SSRC: 1111, SequenceNumber: seq}, make([]byte, 1000), nil); err != nil {
					t.Fatal(err)
				}
				seq++
			}
		}
		ask := func(from uint16, count int) []uint16 {
			s := make([]uint16, count)
			for i := range s {
				s[i] = from + uint16(i)
			}
			return s
		}
		for _, step := range []struct {
			wait    time.Duration
			burst   int
			askFrom int // back from the newest packet
			ask     int
			want    int // re-sends
		}{
			// 10 % of 1 MB: 100 of the 200 packets asked for.
			{50 * time.Millisecond, 1000, 1000, 200, 100},
			// Spent: packets not re-sent yet are skipped too.
			{0, 0, 900, 10, 0},
			// Half a second on, 0.5 MB more: 1.5 MB sent, 0.1 MB re-sent.
			{500 * time.Millisecond, 500, 100, 10, 10},
			// 1.1 s on, the bytes sent and re-sent before have left the
			// window: 0.2 MB sent since.
			{1100 * time.Millisecond, 200, 200, 30, 20},
		} {
			time.Sleep(step.wait)
			burst(step.burst)
			before := len(out.pkts)
			nackFor(n, ask(seq-uint16(step.askFrom), step.ask)...)
			if got := len(out.pkts) - before; got != step.want {
				t.Fatalf("%v later, %d packets sent, %d asked for: got %d re-sends, want %d", step.wait, step.burst, step.ask, got, step.want)
			}
		}
		if got, want := n.Stats(), (ResponderStats{Resent: 130, ResentBytes: 130_000, OverBudget: 120}); got != want {
			t.Errorf("got stats %+v, want %+v", got, want)
		}
	})
}

// For finds a PeerConnection's Responder by its ID until it closes.
func TestResponderFactoryFor(t *testing.T) {
	f := NewResponderFactory(64, slog.New(slog.DiscardHandler))
	a, err := f.NewInterceptor("pc-a")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.For("pc-a"); got != a {
		t.Fatalf("For(pc-a) = %p, want the responder built for it (%p)", got, a)
	}
	if got := f.For("pc-b"); got != nil {
		t.Errorf("For(pc-b) = %p, want nil", got)
	}
	// Two PeerConnections with one ID: neither is found.
	if _, err := f.NewInterceptor("pc-a"); err != nil {
		t.Fatal(err)
	}
	if got := f.For("pc-a"); got != nil {
		t.Errorf("For a shared ID = %p, want nil", got)
	}
	c, _ := f.NewInterceptor("pc-c")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := f.For("pc-c"); got != nil {
		t.Errorf("For a closed responder = %p, want nil", got)
	}
	// A factory of another size registers with the first.
	d, err := f.WithSize(128).NewInterceptor("pc-d")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.For("pc-d"); got != d || got.factory.size != 128 {
		t.Errorf("For(pc-d) = %p, want the 128-packet responder built for it (%p)", got, d)
	}
	var nilFactory *ResponderFactory
	if got := nilFactory.For("x").Stats(); got != (ResponderStats{}) {
		t.Errorf("a nil factory's responder has stats %+v", got)
	}
}

// A packet is re-sent while it is younger than MaxAge, and forgotten,
// its payload released, once it is older than MaxAge and the windowSlot
// or two its mark may take, however large the history.
func TestNACKHistoryMaxAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 4096 packets, 4 s at a packet a millisecond: the age is the bound.
		n, w, out := bindResponder(t, 4096, false, ResendBudget(1000))
		for seq := range uint16(3000) {
			if _, err := w.Write(&rtp.Header{Version: 2, SSRC: 1111, SequenceNumber: seq}, payloadOf(seq), nil); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		// Now 3 s in: packet k was sent 3000-k ms ago.
		out.pkts = nil
		nackFor(n, 1001, 2999, 2700, 779, 10)
		var got []uint16
		for _, p := range out.pkts {
			got = append(got, p.SequenceNumber)
		}
		if want := []uint16{1001, 2999, 2700}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("re-sent %v, want %v: those sent less than %v ago", got, want, MaxAge)
		}
		if st := n.Stats(); st.Unavailable != 2 {
			t.Errorf("got stats %+v, want 2 unavailable", st)
		}
		s := n.streams[1111]
		held := 0
		for _, e := range s.ring {
			if e.payload == nil {
				continue
			}
			held++
			if e.seq < 780 {
				t.Fatalf("packet %d, sent %d ms ago, still referenced", e.seq, 3000-int(e.seq))
			}
		}
		if held < 2000 {
			t.Errorf("the history holds %d packets, want the last 2 s at least", held)
		}
	})
}

// Once the round trip is known, the resend interval is the round trip,
// within MinResendInterval and the ResendInterval (the default before).
func TestNACKResendIntervalFollowsRTT(t *testing.T) {
	for _, tc := range []struct {
		rtt, want time.Duration
	}{
		{0, DefaultResendInterval},
		{30 * time.Millisecond, 30 * time.Millisecond},
		{time.Millisecond / 2, MinResendInterval}, // loopback
		{300 * time.Millisecond, DefaultResendInterval},
	} {
		t.Run(tc.rtt.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n, w, out := bindResponder(t, 64, true)
				for seq := uint16(1); seq <= 40; seq++ {
					if _, err := w.Write(&rtp.Header{Version: 2, SSRC: 1111, SequenceNumber: seq}, make([]byte, 1000), nil); err != nil {
						t.Fatal(err)
					}
				}
				n.SetRTT(tc.rtt)
				if got := n.Interval(); got != tc.want {
					t.Fatalf("interval %v, want %v", got, tc.want)
				}
				out.pkts = nil
				for _, step := range []struct {
					after time.Duration
					want  int // re-sends
				}{
					{0, 1},
					{tc.want - time.Millisecond, 0},
					{time.Millisecond, 1}, // an interval after the re-send
				} {
					time.Sleep(step.after)
					before := len(out.pkts)
					nackFor(n, 7)
					if got := len(out.pkts) - before; got != step.want {
						t.Fatalf("NACK %v after the last: got %d re-sends, want %d", step.after, got, step.want)
					}
				}
			})
		})
	}
}

// A NACK for packets the responder cannot re-send, gone or over the
// budget, asks for a keyframe for the stream, at most once per
// KeyframeGap; one it can answer (or a duplicate) does not.
func TestNACKHopelessAsksForKeyframe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, w, _ := bindResponder(t, 64, false)
		var asked []uint32
		n.OnHopeless(func(ssrc uint32) { asked = append(asked, ssrc) })
		var seq uint16
		send := func(k int) {
			for range k {
				if _, err := w.Write(&rtp.Header{Version: 2, SSRC: 1111, SequenceNumber: seq}, make([]byte, 1000), nil); err != nil {
					t.Fatal(err)
				}
				seq++
			}
		}
		send(100) // 0..99; the ring holds 36..99
		over := make([]uint16, 20)
		for i := range over {
			over[i] = 150 + uint16(i)
		}
		for _, step := range []struct {
			after time.Duration
			send  int
			seqs  []uint16
			want  int // keyframe requests so far
		}{
			{0, 0, []uint16{90}, 0},     // re-sent
			{0, 0, []uint16{90}, 0},     // a duplicate
			{0, 0, []uint16{10, 91}, 1}, // 10 is gone
			{0, 0, []uint16{11}, 1},     // gone, but a keyframe is on its way
			{KeyframeGap - time.Millisecond, 0, []uint16{12}, 1},
			{time.Millisecond, 0, []uint16{12}, 2},
			// 100 kB sent over the last second: 15 of the 20 packets fit
			// the budget.
			{KeyframeGap, 100, over, 3},
		} {
			time.Sleep(step.after)
			send(step.send)
			nackFor(n, step.seqs...)
			if len(asked) != step.want {
				t.Fatalf("after NACK %v: %d keyframe requests, want %d", step.seqs, len(asked), step.want)
			}
		}
		for _, ssrc := range asked {
			if ssrc != 1111 {
				t.Fatalf("asked for a keyframe for SSRC %d, want 1111", ssrc)
			}
		}
		st := n.Stats()
		if st.KeyframeRequests != 3 || st.Unavailable != 4 || st.OverBudget != 5 || st.Resent != 17 || st.Duplicate != 1 {
			t.Errorf("got stats %+v", st)
		}
	})
}

// A NACK for a packet the stream skipped (the publisher's loss, which the
// ingest is still repairing) asks for no keyframe: the packet is sent on
// when its repair comes, and then re-sent when asked for. One for a
// packet gone from the history still does.
func TestNACKSkippedIsNotHopeless(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, w, out := bindResponder(t, 64, false)
		var asked int
		n.OnHopeless(func(uint32) { asked++ })
		send := func(seqs ...uint16) {
			for _, seq := range seqs {
				if _, err := w.Write(&rtp.Header{Version: 2, SSRC: 1111, SequenceNumber: seq}, make([]byte, 1000), nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		for seq := range uint16(100) {
			if seq != 80 && seq != 81 {
				send(seq) // 0..99 but 80 and 81, lost on the way in; the ring holds 36..99
			}
		}
		out.pkts = nil
		nackFor(n, 80, 81)
		if asked != 0 || len(out.pkts) != 0 {
			t.Fatalf("NACK for skipped packets: %d keyframe requests, %d re-sends; want none", asked, len(out.pkts))
		}
		send(81) // its repair, sent on late
		out.pkts = nil
		nackFor(n, 81)
		if asked != 0 || len(out.pkts) != 1 {
			t.Fatalf("NACK for a packet sent late: %d keyframe requests, %d re-sends; want 0 and 1", asked, len(out.pkts))
		}
		nackFor(n, 20) // gone
		if asked != 1 {
			t.Fatalf("NACK for a packet gone: %d keyframe requests, want 1", asked)
		}
		if st := n.Stats(); st.Unavailable != 3 || st.Resent != 1 || st.KeyframeRequests != 1 {
			t.Errorf("got stats %+v", st)
		}
	})
}
