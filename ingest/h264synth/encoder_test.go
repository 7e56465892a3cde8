package h264synth

import (
	"bytes"
	"fmt"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{Width: 64, Height: 64, FPS: 1, GOP: 1}, true},
		{Config{Width: 200, Height: 120}, true},
		{Config{Width: 63, Height: 64}, false},
		{Config{Width: 65, Height: 64}, false},
		{Config{Width: 64, Height: 62}, false},
		{Config{Width: 8194, Height: 64}, false},
		{Config{Width: -2}, false},
		{Config{FPS: 241}, false},
		{Config{FPS: -1}, false},
		{Config{GOP: -1}, false},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tt.cfg, err, tt.ok)
		}
		if _, err := New(tt.cfg); (err == nil) != tt.ok {
			t.Errorf("New(%+v) = %v, want ok=%v", tt.cfg, err, tt.ok)
		}
	}
	if _, err := New(Config{Width: 8192, Height: 8192, FPS: 240}); err == nil {
		t.Error("New accepted 8192x8192 at 240 fps, beyond every level")
	}
}

func TestDefaults(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if e.Width() != 1280 || e.Height() != 720 || e.FrameRate() != 30 || e.gop != 60 {
		t.Errorf("got %dx%d@%d GOP %d, want 1280x720@30 GOP 60", e.Width(), e.Height(), e.FrameRate(), e.gop)
	}
	if got := e.ProfileLevelID(); got != "42e01f" {
		t.Errorf("ProfileLevelID() = %s, want 42e01f", got)
	}
}

func TestKeyframesAtGOPInterval(t *testing.T) {
	e, err := New(Config{Width: 320, Height: 180, GOP: 30})
	if err != nil {
		t.Fatal(err)
	}
	wantKey := map[int]bool{0: true, 30: true, 40: true, 70: true, 100: true}
	for i := range 110 {
		if i == 40 {
			e.RequestKeyframe()
		}
		nalus, key := e.Next()
		if key != wantKey[i] {
			t.Fatalf("frame %d: keyframe %v, want %v", i, key, wantKey[i])
		}
		var types []byte
		for _, n := range nalus {
			types = append(types, n[0]&0x1f)
		}
		want := []byte{1}
		if key {
			want = []byte{7, 8, 5}
		}
		if !bytes.Equal(types, want) {
			t.Fatalf("frame %d: NAL types %v, want %v", i, types, want)
		}
	}
}

// TestSizeAndBitrate checks the budget that keeps the stream easy on
// browsers and links: keyframes far below 2048 packets of 1200 bytes and a
// modest bit rate.
func TestSizeAndBitrate(t *testing.T) {
	for _, sz := range []struct{ w, h int }{{1280, 720}, {320, 180}, {640, 360}, {1920, 1080}} {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			key, kbps := measure(t, Config{Width: sz.w, Height: sz.h, FPS: 30, Label: "main"}, 300)
			t.Logf("keyframe %d bytes, %.1f kbit/s", key, kbps)
			if key > 50_000 {
				t.Errorf("keyframe %d bytes, want at most 50000", key)
			}
			if kbps > 1000 {
				t.Errorf("bit rate %.1f kbit/s, want under 1000", kbps)
			}
		})
	}
}

// measure encodes frames frames and returns the largest keyframe in bytes
// and the average bit rate in kbit/s, counting NAL units without start codes.
func measure(tb testing.TB, cfg Config, frames int) (keyBytes int, kbps float64) {
	e, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	total := 0
	for range frames {
		nalus, key := e.Next()
		n := 0
		for _, nal := range nalus {
			n += len(nal)
		}
		total += n
		if key {
			keyBytes = max(keyBytes, n)
		}
	}
	return keyBytes, float64(total*8) * float64(e.FrameRate()) / float64(frames) / 1000
}

func BenchmarkEncode(b *testing.B) {
	for _, sz := range []struct{ w, h int }{{1280, 720}, {320, 180}} {
		b.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(b *testing.B) {
			cfg := Config{Width: sz.w, Height: sz.h, FPS: 30, Label: "main"}
			key, kbps := measure(b, cfg, 300)
			e, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				e.Next()
			}
			b.ReportMetric(float64(key), "keyframe-bytes")
			b.ReportMetric(kbps, "kbit/s")
		})
	}
}
