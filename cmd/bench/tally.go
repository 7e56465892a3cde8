package bench

import (
	"time"

	"github.com/pion/rtp"
)

// tally is one viewer's account of what arrived, frame by frame, kept with
// RTP header parsing only: no depacketizer, no allocation per packet. One
// goroutine (the viewer's reader) calls packet; the results are read once
// that goroutine has ended.
type tally struct {
	table *frameTable
	now   func() int64 // unix ns

	hdr rtp.Header
	// seen is a 65536-bit window of sequence numbers: retransmissions
	// (NACK, RTX) that arrive twice count once.
	seen [1 << 10]uint64

	// The server may rewrite timestamps; the first stamped packet gives
	// the offset between its timestamps and the publisher's frame numbers.
	haveBase bool
	tsBase   uint32

	recv   []int32 // packets received per frame
	dupsAt []int32 // packets of the frame received again
	sentAt []int64 // send time read from the frame's stamp (unix ns)
	doneAt []int64 // when the frame's last missing packet arrived (unix ns)
	wireAt []int64 // when that packet reached the viewer's socket (unix ns)
	wire   *wireClock

	postedAt int64 // WHEP POST start (unix ns)
	joinedAt int64 // first complete keyframe (unix ns)
	joined   chan struct{}

	packets, stray, malformed, misnumbered uint64
}

func newTally(table *frameTable, now func() int64) *tally {
	n := len(table.frames)
	return &tally{table: table, now: now, joined: make(chan struct{}), recv: make([]int32, n), dupsAt: make([]int32, n),
		sentAt: make([]int64, n), doneAt: make([]int64, n), wireAt: make([]int64, n)}
}

func unixNow() int64 { return time.Now().UnixNano() }

// packet accounts for one RTP packet (header and payload, SRTP removed).
func (t *tally) packet(b []byte) {
	hl, err := t.hdr.Unmarshal(b)
	if err != nil {
		t.malformed++
		return
	}
	seq := t.hdr.SequenceNumber
	if t.seen[seq>>6]&(1<<(seq&63)) != 0 {
		if t.haveBase {
			if i := frameOf(t.hdr.Timestamp-t.tsBase, t.table.fps); i < uint64(len(t.dupsAt)) {
				t.dupsAt[i]++
			}
		}
		return
	}
	t.seen[seq>>6] |= 1 << (seq & 63)
	far := seq + 1<<15 // forget the half of the window farthest behind
	t.seen[far>>6] &^= 1 << (far & 63)
	t.packets++

	end := len(b)
	if t.hdr.Padding && end > hl {
		end -= int(b[end-1])
	}
	var idx uint64
	if frame, sent, ok := readStamp(b[hl:max(end, hl)]); ok {
		if !t.haveBase {
			t.haveBase, t.tsBase = true, t.hdr.Timestamp-tsOf(frame, t.table.fps)
		}
		idx = frame
		if frameOf(t.hdr.Timestamp-t.tsBase, t.table.fps) != frame {
			t.misnumbered++
		}
		if frame < uint64(len(t.sentAt)) {
			t.sentAt[frame] = sent
		}
	} else if t.haveBase {
		idx = frameOf(t.hdr.Timestamp-t.tsBase, t.table.fps)
	} else {
		t.stray++ // before the first frame start: cannot be placed
		return
	}
	if idx >= uint64(len(t.recv)) {
		t.stray++
		return
	}
	t.recv[idx]++
	rec := &t.table.frames[idx]
	if t.recv[idx] == rec.packets.Load() {
		now := t.now()
		t.doneAt[idx] = now
		t.wireAt[idx] = t.wire.arrival(seq, now)
		if t.joinedAt == 0 && rec.key.Load() {
			t.joinedAt = now
			close(t.joined)
		}
	}
}

// viewerResult is one viewer's figures over the measurement window.
type viewerResult struct {
	Frames     int `json:"frames"`
	Received   int `json:"frames_received"`
	Incomplete int `json:"frames_incomplete"`
	// IncompleteAt are the first incomplete frames' places in the window
	// (0 is its first frame): a loss just before the window's end whose
	// retransmission came after the drain shows as the last places.
	IncompleteAt  []int   `json:"incomplete_at,omitempty"`
	IncompletePct float64 `json:"incomplete_pct"`
	Packets       int64   `json:"packets_expected"`
	Lost          int64   `json:"packets_lost"`
	LossPct       float64 `json:"loss_pct"`
	// Duplicates are the window's packets that arrived again (a repair
	// of a packet that had come, or came too): DuplicatePct in % of
	// Packets.
	Duplicates   int64   `json:"duplicates"`
	DuplicatePct float64 `json:"duplicate_pct"`
	// StallMs sums the gaps over stallGap between the window's complete
	// frames, shown in order as they completed (a frame is shown once
	// every earlier complete frame has been); Stalls counts them,
	// LongestGapMs is the longest gap of all. A frame never whole is
	// skipped at no cost (IncompletePct counts it); incomplete frames at
	// the window's start or end count from the first frame's send time
	// and to the last's.
	StallMs      float64 `json:"stall_ms"`
	Stalls       int     `json:"stalls"`
	LongestGapMs float64 `json:"longest_gap_ms"`
	JoinMs       float64 `json:"join_ms"`
}

// stallGap is the longest pause between two frames shown that is not a
// stall (the 200 ms: a picture that stops that long is seen to).
const stallGap = 200 * time.Millisecond

// playout follows a viewer's complete frames as a player shows them, in
// order, each once it and every earlier one is complete, and adds up the
// gaps between them.
type playout struct {
	last    int64 // when the last frame was shown (unix ns); 0: none yet
	stall   int64 // the gaps over stallGap, summed (ns)
	stalls  int
	longest int64 // ns
}

// show is a frame completed at t.
func (p *playout) show(t int64) {
	t = max(t, p.last)
	if p.last != 0 {
		p.gapTo(t)
	}
	p.last = t
}

// gapTo is a gap from the last frame shown to t.
func (p *playout) gapTo(t int64) {
	g := t - p.last
	p.longest = max(p.longest, g)
	if g > int64(stallGap) {
		p.stall += g
		p.stalls++
	}
}

// maxIncompleteAt bounds the incomplete frames a viewer lists.
const maxIncompleteAt = 16

// result sums up frames [first, end) of the table for this viewer and
// appends the frame latencies (first packet sent → last packet received)
// and the added latencies (last packet sent → last packet received) and
// wire latencies (last packet sent → at the viewer's socket), in
// milliseconds.
func (t *tally) result(first, end int, lat latencies) (viewerResult, latencies) {
	var r viewerResult
	var play playout
	for i := first; i < end; i++ {
		rec := &t.table.frames[i]
		want := int64(rec.packets.Load())
		got := min(int64(t.recv[i]), want)
		r.Frames++
		r.Packets += want
		r.Lost += want - got
		r.Duplicates += int64(t.dupsAt[i])
		if got > 0 {
			r.Received++
		}
		if got < want {
			r.Incomplete++
			if len(r.IncompleteAt) < maxIncompleteAt {
				r.IncompleteAt = append(r.IncompleteAt, i-first)
			}
			if i == first {
				play.last = rec.sentFirst.Load() // nothing shown from the window's start
			}
			continue
		}
		play.show(t.doneAt[i])
		if t.sentAt[i] > 0 {
			lat.frame = append(lat.frame, float64(t.doneAt[i]-t.sentAt[i])/1e6)
		}
		if last := rec.sentLast.Load(); last > 0 {
			lat.added = append(lat.added, float64(t.doneAt[i]-last)/1e6)
			w := float64(t.wireAt[i]-last) / 1e6
			lat.wire = append(lat.wire, w)
			if rec.key.Load() {
				lat.wireKey = append(lat.wireKey, w)
			} else {
				lat.wireDelta = append(lat.wireDelta, w)
			}
		}
	}
	if end > first && t.recv[end-1] < t.table.frames[end-1].packets.Load() {
		// Nothing shown up to the window's end, at least until its last
		// frame was sent.
		if last := t.table.frames[end-1].sentLast.Load(); last > play.last {
			play.gapTo(last)
		}
	}
	r.StallMs, r.Stalls, r.LongestGapMs = float64(play.stall)/1e6, play.stalls, float64(play.longest)/1e6
	if r.Frames > 0 {
		r.IncompletePct = 100 * float64(r.Incomplete) / float64(r.Frames)
	}
	if r.Packets > 0 {
		r.LossPct = 100 * float64(r.Lost) / float64(r.Packets)
		r.DuplicatePct = 100 * float64(r.Duplicates) / float64(r.Packets)
	}
	if t.joinedAt > 0 && t.postedAt > 0 {
		r.JoinMs = float64(t.joinedAt-t.postedAt) / 1e6
	}
	return r, lat
}

// latencies collects samples in milliseconds over viewers (see result).
// wireKey and wireDelta split the wire latencies by keyframes and the
// rest: at 8K rates the tail is the keyframes'.
type latencies struct{ frame, added, wire, wireKey, wireDelta []float64 }
