package bench

import (
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// sentStream is a publisher's output without a network: the marshalled
// RTP packets of frames 0..n-1, recorded in a table like publisher.send
// does.
type sentStream struct {
	table   *frameTable
	packets [][][]byte // [frame][packet]
}

func sendFrames(t testing.TB, p plan, frames int, tsBase uint32, seq uint16) sentStream {
	t.Helper()
	s := sentStream{table: newFrameTable(p.fps, time.Duration(frames)*p.interval)}
	z := newPacketizer(p)
	for n := range frames {
		key := n%p.gopFrames == 0
		payloads := z.frame(uint64(n), key)
		rec := &s.table.frames[n]
		rec.key.Store(key)
		rec.packets.Store(int32(len(payloads)))
		sent := int64(1_000_000_000 + n*1_000_000) // frame n sent at 1 s + n ms
		stamp(payloads, uint64(n), sent)
		rec.sentFirst.Store(sent)
		var out [][]byte
		for i, pl := range payloads {
			pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 102, SequenceNumber: seq, Timestamp: tsBase + tsOf(uint64(n), p.fps),
				Marker: i == len(payloads)-1, SSRC: 42}, Payload: pl}
			seq++
			b, err := pkt.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		rec.sentLast.Store(sent + 100_000)
		s.packets = append(s.packets, out)
	}
	return s
}

func TestTallyCountsLossDuplicatesAndLatency(t *testing.T) {
	p := newPlan(2e6, 10, 500*time.Millisecond, 4) // GOP 5 frames
	// The server rewrites the timestamp base; the tally must not care.
	s := sendFrames(t, p, 12, 0xffff_f000, 65500)
	clock := int64(0)
	tl := newTally(s.table, func() int64 { return clock })
	tl.postedAt = 500_000_000

	var late []byte
	for n, pkts := range s.packets {
		clock = int64(1_000_000_000 + n*1_000_000 + 3_000_000) // 3 ms after sending
		if n == 11 {
			tl.packet(late) // frame 7's first packet, four frames late
		}
		for i, b := range pkts {
			switch {
			case n == 2 && i == len(pkts)-1: // frame 2 loses its last packet
				continue
			case n == 3 && i == 0: // frame 3 arrives twice
				tl.packet(b)
				tl.packet(b)
			case n == 7 && i == 0: // frame 7's first packet comes after the rest
				late = b
			default:
				tl.packet(b)
			}
		}
	}
	// Frames 1..10 are the window.
	r, l := tl.result(1, 11, latencies{})
	lat, added := l.frame, l.added
	want := 0
	for n := 1; n < 11; n++ {
		want += len(s.packets[n])
	}
	if r.Frames != 10 || r.Packets != int64(want) || r.Lost != 1 || r.Incomplete != 1 || r.Duplicates != 1 {
		t.Fatalf("got %+v, want 10 frames, %d packets, 1 lost, 1 incomplete (frame 2), 1 duplicate", r, want)
	}
	if len(r.IncompleteAt) != 1 || r.IncompleteAt[0] != 1 {
		t.Errorf("incomplete frames at %v in the window, want [1] (frame 2, the window's second)", r.IncompleteAt)
	}
	if len(lat) != 9 || len(added) != 9 {
		t.Fatalf("%d latencies and %d added latencies, want one per complete frame (9)", len(lat), len(added))
	}
	for i, l := range lat {
		wantLat, wantAdded := 3.0, 2.9
		if i == 5 { // frame 7 (frame 2 is missing), completed by its late first packet
			wantLat, wantAdded = 7.0, 6.9
		}
		if l != wantLat || added[i] != wantAdded {
			t.Errorf("latency of window frame %d: %v ms (added %v), want %v (%v)", i, l, added[i], wantLat, wantAdded)
		}
	}
	if !slices.Equal(l.wire, added) {
		t.Errorf("wire latencies %v without a wire clock, want the added ones %v", l.wire, added)
	}
	if len(l.wireKey) != 2 || len(l.wireDelta) != 7 {
		t.Errorf("%d keyframe and %d other wire latencies, want 2 (frames 5, 10) and 7", len(l.wireKey), len(l.wireDelta))
	}
	if r.JoinMs != 503 {
		t.Errorf("join %v ms, want 503 (posted at 0.5 s, keyframe 0 complete at 1.003 s)", r.JoinMs)
	}
	if tl.misnumbered != 0 || tl.stray != 0 || tl.malformed != 0 {
		t.Errorf("misnumbered %d, stray %d, malformed %d; want none", tl.misnumbered, tl.stray, tl.malformed)
	}
}

func TestTallyJoinWaitsForACompleteKeyframe(t *testing.T) {
	p := newPlan(2e6, 10, 300*time.Millisecond, 2) // keyframes 0, 3, 6
	s := sendFrames(t, p, 8, 1000, 0)
	clock := int64(0)
	tl := newTally(s.table, func() int64 { return clock })
	tl.postedAt = 1
	// Joins mid-GOP (frame 1); keyframe 3 loses a packet, keyframe 6 is whole.
	for n := 1; n < 8; n++ {
		clock = int64(n) * 1000
		for i, b := range s.packets[n] {
			if n == 3 && i == 2 {
				continue
			}
			tl.packet(b)
		}
	}
	select {
	case <-tl.joined:
	default:
		t.Fatal("never joined")
	}
	if tl.joinedAt != 6000 {
		t.Errorf("joined at %d, want 6000 (keyframe 6; keyframe 3 was incomplete)", tl.joinedAt)
	}
}

func TestTallyAllocatesNothingPerPacket(t *testing.T) {
	p := newPlan(100e6, 60, time.Second, 8)
	s := sendFrames(t, p, 3, 0, 0)
	tl := newTally(s.table, unixNow)
	var all [][]byte
	for _, f := range s.packets {
		all = append(all, f...)
	}
	i := 0
	allocs := testing.AllocsPerRun(len(all)-1, func() {
		tl.packet(all[i])
		i++
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet, want 0", allocs)
	}
}

func BenchmarkTallyPacket(b *testing.B) {
	p := newPlan(100e6, 60, time.Second, 8)
	s := sendFrames(b, p, 60, 0, 0)
	var all [][]byte
	for _, f := range s.packets {
		all = append(all, f...)
	}
	tl := newTally(s.table, unixNow)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%len(all) == 0 {
			clear(tl.seen[:])
		}
		tl.packet(all[i%len(all)])
	}
}

// A player shows frames in order as they complete: a frame repaired late
// holds back those after it (one stall), a window that ends or starts on
// frames never whole counts from the last shown or the first sent, and a
// gap up to 200 ms is no stall. Packets that come again are duplicates of
// their frame.
func TestTallyStallsAndDuplicates(t *testing.T) {
	p := newPlan(2e6, 10, 500*time.Millisecond, 4)
	s := sendFrames(t, p, 12, 1000, 100)
	const ms = int64(time.Millisecond)
	s.table.frames[10].sentLast.Store(1e9 + 1500*ms) // the window's last frame, never whole
	clock := int64(0)
	tl := newTally(s.table, func() int64 { return clock })
	var held []byte
	for n, pkts := range s.packets {
		clock = 1e9 + int64(n)*100*ms
		if n == 8 {
			clock = 1e9 + 750*ms
			tl.packet(held) // frame 3 completes, then 4 to 7 are shown
			clock = 1e9 + 800*ms
		}
		for i, b := range pkts {
			switch {
			case (n == 1 || n == 10) && i == 0: // never whole
			case n == 3 && i == len(pkts)-1:
				held = b
			case n == 9:
				tl.packet(b)
				tl.packet(b)
			default:
				tl.packet(b)
			}
		}
	}
	r, _ := tl.result(1, 11, latencies{})
	// Frame 1 never whole: frame 2 shown 199 ms after frame 1 was sent
	// (1 s + 1 ms), no stall. Frame 3 at 750 ms, 550 after frame 2: a
	// stall. Frame 10 never whole, sent until 1.5 s: 600 ms after frame
	// 9, a stall.
	if r.Incomplete != 2 || r.Stalls != 2 || r.StallMs != 1150 || r.LongestGapMs != 600 {
		t.Errorf("%d incomplete, %d stalls of %v ms, longest gap %v ms; want 2, 2 of 1150 (550 + 600), 600", r.Incomplete, r.Stalls, r.StallMs, r.LongestGapMs)
	}
	if want := int64(len(s.packets[9])); r.Duplicates != want || r.DuplicatePct != 100*float64(want)/float64(r.Packets) {
		t.Errorf("%d duplicates (%v %%), want frame 9's %d of %d packets", r.Duplicates, r.DuplicatePct, want, r.Packets)
	}
	if r, _ := tl.result(11, 12, latencies{}); r.Duplicates != 0 || r.Stalls != 0 {
		t.Errorf("frame 11 alone: %+v, want no duplicate and no stall", r)
	}
}
