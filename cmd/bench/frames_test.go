package bench

import (
	"math"
	"testing"
	"time"

	"whipgate/gateway"
)

func TestPlanAveragesTheBitrate(t *testing.T) {
	for _, tc := range []struct {
		bitrate int64
		fps     int
		gop     time.Duration
		factor  float64
	}{
		{100e6, 60, time.Second, 8},
		{100e6, 60, 10 * time.Second, 8},
		{20e6, 30, 2 * time.Second, 4},
		{5e6, 60, time.Second / 60, 8}, // every frame a keyframe
		{100e6, 60, 100 * time.Millisecond, 8},
	} {
		p := newPlan(tc.bitrate, tc.fps, tc.gop, tc.factor)
		z := newPacketizer(p)
		var bytes int
		for n := range p.gopFrames {
			for _, b := range z.frame(uint64(n), n == 0) {
				bytes += len(b)
			}
		}
		got := float64(bytes) * 8 / (float64(p.gopFrames) / float64(tc.fps))
		if math.Abs(got-float64(tc.bitrate))/float64(tc.bitrate) > 0.01 {
			t.Errorf("%+v: a GOP averages %.0f bit/s, want %d ±1%% (key %d, delta %d bytes)", tc, got, tc.bitrate, p.keyBytes, p.deltaBytes)
		}
		avg := float64(tc.bitrate) / 8 / float64(tc.fps)
		if p.gopFrames > int(tc.factor) {
			if r := float64(p.keyBytes) / avg; math.Abs(r-tc.factor) > 0.01 {
				t.Errorf("%+v: keyframe is %.2f average frames, want %g", tc, r, tc.factor)
			}
		}
	}
}

func TestPacketizerShapesH264(t *testing.T) {
	p := newPlan(100e6, 60, time.Second, 8)
	z := newPacketizer(p)
	for _, key := range []bool{true, false} {
		const n = 4711
		pkts := z.frame(n, key)
		if len(pkts) != p.packets(key) {
			t.Fatalf("key=%v: %d packets, plan says %d", key, len(pkts), p.packets(key))
		}
		if key && (len(pkts) < 1000 || len(pkts) > 1500) {
			t.Errorf("a 100 Mbps keyframe of factor 8 takes %d packets, want about 1390", len(pkts))
		}
		stamp(pkts, n, 123456789)
		for i, b := range pkts {
			if len(b) > maxPayload {
				t.Fatalf("key=%v packet %d: %d bytes, want ≤ %d", key, i, len(b), maxPayload)
			}
			if got := gateway.IsKeyframe(gateway.H264, b); got != (key && i <= 1) {
				t.Errorf("key=%v packet %d (NAL %d): server keyframe detection says %v", key, i, b[0]&0x1f, got)
			}
			frame, sent, ok := readStamp(b)
			wantStamp := i == 0 || (key && i == 1)
			if ok != wantStamp {
				t.Fatalf("key=%v packet %d: stamp found %v, want %v", key, i, ok, wantStamp)
			}
			if ok && (frame != n || sent != 123456789) {
				t.Errorf("key=%v packet %d: stamp %d/%d, want %d/123456789", key, i, frame, sent, n)
			}
		}
		start := 0
		if key {
			if b := pkts[0]; b[0]&0x1f != nalSTAP || b[3]&0x1f != nalSPS {
				t.Errorf("keyframe starts with NAL %d holding %d, want a STAP-A with an SPS", b[0]&0x1f, b[3]&0x1f)
			}
			start = 1
		}
		for i := start; i < len(pkts); i++ {
			b := pkts[i]
			if b[0]&0x1f != nalFUA {
				t.Fatalf("key=%v packet %d: NAL %d, want FU-A", key, i, b[0]&0x1f)
			}
			wantStart, wantEnd := i == start, i == len(pkts)-1
			if (b[1]&fuStart != 0) != wantStart || (b[1]&fuEnd != 0) != wantEnd {
				t.Fatalf("key=%v packet %d of %d: FU header %#x, want start %v end %v", key, i, len(pkts), b[1], wantStart, wantEnd)
			}
		}
	}
}

func TestFrameNumberFromTimestamp(t *testing.T) {
	for _, fps := range []int{1, 7, 24, 25, 30, 50, 60, 90, 120, 144, 240} {
		for _, base := range []uint32{0, 1 << 31, math.MaxUint32 - 5000} {
			for n := uint64(0); n < 20000; n += 7 {
				ts := base + tsOf(n, fps)
				if got := frameOf(ts-base, fps); got != n {
					t.Fatalf("fps %d base %d: frame %d → ts %d → frame %d", fps, base, n, ts, got)
				}
			}
		}
	}
}

func TestFrameTableWindow(t *testing.T) {
	tb := newFrameTable(10, time.Second)
	for i := range 6 {
		tb.frames[i].sentFirst.Store(int64(100 + 10*i)) // 100, 110, ... 150
	}
	for _, tc := range []struct {
		from, to    int64
		first, end  int
		description string
	}{
		{110, 140, 1, 4, "frames 110, 120, 130"},
		{0, 1000, 0, 6, "all sent"},
		{105, 106, 0, 0, "none"},
		{200, 300, 0, 0, "after the last"},
	} {
		first, end := tb.window(tc.from, tc.to)
		if first != tc.first || end != tc.end {
			t.Errorf("window(%d, %d) = [%d, %d), want [%d, %d) (%s)", tc.from, tc.to, first, end, tc.first, tc.end, tc.description)
		}
	}
}

func BenchmarkPacketizeKeyframe(b *testing.B) {
	z := newPacketizer(newPlan(100e6, 60, time.Second, 8))
	b.ReportAllocs()
	for i := range b.N {
		stamp(z.frame(uint64(i), true), uint64(i), int64(i))
	}
}
