package ingest

import (
	"sync/atomic"
	"time"
)

// inPacket is the part of a received RTP packet the ingest keeps.
type inPacket struct {
	seq     uint16
	ts      uint32
	marker  bool
	payload []byte
	at      time.Time
}

// reorder puts packets back in sequence order within a window of a few
// packets. A missing packet is waited for until a packet a window later
// arrives or the oldest held one has waited maxDelay; then it counts as
// lost and delivery moves on.
type reorder struct {
	// slots holds waiting packets by seq % len(slots), payloads owned
	// copies. Its length is a power of two (dividing 65536) of at least
	// window, so that no two sequence numbers of a window share a slot,
	// across the wrap from 65535 to 0 too.
	slots    []inPacket
	used     []bool
	window   int
	held     int
	next     uint16 // next sequence number to deliver
	started  bool
	maxDelay time.Duration
	deliver  func(*inPacket)

	// Read by other goroutines for stats.
	lost, late, reordered atomic.Uint64
}

func newReorder(window int, maxDelay time.Duration, deliver func(*inPacket)) *reorder {
	n := 1
	for n < window {
		n <<= 1
	}
	return &reorder{slots: make([]inPacket, n), used: make([]bool, n), window: window, maxDelay: maxDelay, deliver: deliver}
}

// push takes one packet; its payload is copied only if it must wait.
func (r *reorder) push(p *inPacket) {
	if !r.started {
		r.started, r.next = true, p.seq
	}
	d := int(int16(p.seq - r.next))
	n := r.window
	switch {
	case d < 0:
		r.late.Add(1) // late or duplicate: its place in the output is gone
		return
	case d == 0:
		r.deliver(p)
		r.next++
		r.drain()
		return
	case d >= n:
		// A window or more ahead: whatever is missing before p is lost.
		r.skipTo(p.seq)
		r.deliver(p)
		r.next++
		r.drain()
		return
	}
	i := int(p.seq) % len(r.slots)
	if r.used[i] {
		r.late.Add(1) // duplicate
		return
	}
	s := &r.slots[i]
	s.seq, s.ts, s.marker, s.at = p.seq, p.ts, p.marker, p.at
	s.payload = append(s.payload[:0], p.payload...)
	r.used[i] = true
	r.held++
	r.reordered.Add(1)
}

// drain delivers held packets that are now in order.
func (r *reorder) drain() {
	n := len(r.slots)
	for r.held > 0 {
		i := int(r.next) % n
		if !r.used[i] || r.slots[i].seq != r.next {
			return
		}
		r.used[i] = false
		r.held--
		r.deliver(&r.slots[i])
		r.next++
	}
}

// skipTo moves delivery on to seq, delivering what is held before it and
// counting the rest as lost.
func (r *reorder) skipTo(seq uint16) {
	gap := int(int16(seq - r.next))
	if gap <= 0 {
		return
	}
	n := r.window
	for k := range min(gap, n) {
		s := r.next + uint16(k)
		i := int(s) % len(r.slots)
		if r.used[i] && r.slots[i].seq == s {
			r.used[i] = false
			r.held--
			r.deliver(&r.slots[i])
		} else {
			r.lost.Add(1)
		}
	}
	if gap > n {
		r.lost.Add(uint64(gap - n))
	}
	r.next = seq
	r.drain()
}

// oldest returns the sequence number and arrival of the held packet that
// has waited longest.
func (r *reorder) oldest() (uint16, time.Time, bool) {
	if r.held == 0 {
		return 0, time.Time{}, false
	}
	var seq uint16
	var at time.Time
	found := false
	for i, u := range r.used {
		if u && (!found || r.slots[i].at.Before(at)) {
			seq, at, found = r.slots[i].seq, r.slots[i].at, true
		}
	}
	return seq, at, found
}

// deadline is when expire next has something to do.
func (r *reorder) deadline() (time.Time, bool) {
	_, at, ok := r.oldest()
	return at.Add(r.maxDelay), ok
}

// expire gives up on missing packets that held ones have waited maxDelay
// for: delivery moves on to the first held packet.
func (r *reorder) expire(now time.Time) {
	for {
		_, at, ok := r.oldest()
		if !ok || now.Sub(at) < r.maxDelay {
			return
		}
		first, ok := r.firstHeld()
		if !ok {
			return
		}
		r.skipTo(first)
	}
}

// firstHeld returns the lowest held sequence number. Every held packet is
// within the window after next.
func (r *reorder) firstHeld() (uint16, bool) {
	for k := 1; k < r.window && r.held > 0; k++ {
		s := r.next + uint16(k)
		if i := int(s) % len(r.slots); r.used[i] && r.slots[i].seq == s {
			return s, true
		}
	}
	return 0, false
}

// flush delivers everything held, in order, and forgets the sequence: the
// next packet starts afresh (a new sender). Gaps are not counted as lost.
func (r *reorder) flush() {
	for k := 1; k < r.window && r.held > 0; k++ {
		s := r.next + uint16(k)
		if i := int(s) % len(r.slots); r.used[i] && r.slots[i].seq == s {
			r.used[i] = false
			r.held--
			r.deliver(&r.slots[i])
		}
	}
	clear(r.used)
	r.held, r.started = 0, false
}
