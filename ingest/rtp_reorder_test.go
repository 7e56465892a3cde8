package ingest

import (
	"slices"
	"testing"
	"time"
)

func TestReorder(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type in struct {
		seq uint16
		at  time.Duration // after t0
	}
	cases := []struct {
		name      string
		window    int
		in        []in
		expireAt  time.Duration // 0: no expiry pass
		want      []uint16
		lost      uint64
		late      uint64
		reordered uint64
	}{
		{name: "in order", window: 4, in: []in{{10, 0}, {11, 0}, {12, 0}}, want: []uint16{10, 11, 12}},
		{name: "swap", window: 4, in: []in{{10, 0}, {12, 0}, {11, 0}, {13, 0}},
			want: []uint16{10, 11, 12, 13}, reordered: 1},
		{name: "wraps", window: 4, in: []in{{65534, 0}, {0, 0}, {65535, 0}, {1, 0}},
			want: []uint16{65534, 65535, 0, 1}, reordered: 1},
		{name: "duplicate and late", window: 4, in: []in{{10, 0}, {11, 0}, {11, 0}, {10, 0}, {12, 0}},
			want: []uint16{10, 11, 12}, late: 2},
		{name: "held duplicate", window: 4, in: []in{{10, 0}, {12, 0}, {12, 0}, {11, 0}},
			want: []uint16{10, 11, 12}, late: 1, reordered: 1},
		{name: "loss pushed out by the window", window: 4, in: []in{{10, 0}, {12, 0}, {13, 0}, {14, 0}, {15, 0}},
			want: []uint16{10, 12, 13, 14, 15}, lost: 1, reordered: 3},
		{name: "far jump", window: 4, in: []in{{10, 0}, {12, 0}, {100, 0}, {101, 0}},
			want: []uint16{10, 12, 100, 101}, lost: 88, reordered: 1},
		{name: "loss given up after the delay", window: 64, in: []in{{10, 0}, {12, 0}, {13, time.Millisecond}},
			expireAt: 25 * time.Millisecond, want: []uint16{10, 12, 13}, lost: 1, reordered: 2},
		{name: "not yet expired", window: 64, in: []in{{10, 0}, {12, 0}},
			expireAt: 5 * time.Millisecond, want: []uint16{10}, reordered: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []uint16
			r := newReorder(tc.window, 20*time.Millisecond, func(p *inPacket) {
				if len(p.payload) != 1 || p.payload[0] != byte(p.seq) {
					t.Errorf("packet %d carries payload %v", p.seq, p.payload)
				}
				got = append(got, p.seq)
			})
			buf := make([]byte, 1)
			for _, p := range tc.in {
				buf[0] = byte(p.seq) // reused, as the socket buffer is
				r.push(&inPacket{seq: p.seq, payload: buf, at: t0.Add(p.at)})
			}
			if tc.expireAt > 0 {
				r.expire(t0.Add(tc.expireAt))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("delivered %v, want %v", got, tc.want)
			}
			if r.lost.Load() != tc.lost || r.late.Load() != tc.late || r.reordered.Load() != tc.reordered {
				t.Errorf("lost %d late %d reordered %d, want %d %d %d",
					r.lost.Load(), r.late.Load(), r.reordered.Load(), tc.lost, tc.late, tc.reordered)
			}
		})
	}
}

func TestReorderFlushStartsAfresh(t *testing.T) {
	var got []uint16
	r := newReorder(8, 20*time.Millisecond, func(p *inPacket) { got = append(got, p.seq) })
	for _, s := range []uint16{5, 7, 8} {
		r.push(&inPacket{seq: s, payload: []byte{0}})
	}
	r.flush()
	r.push(&inPacket{seq: 40000, payload: []byte{0}}) // a new sender's first packet
	if want := []uint16{5, 7, 8, 40000}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	if r.lost.Load() != 0 {
		t.Errorf("lost %d, want 0: a sender change is not loss", r.lost.Load())
	}
}
