package h264synth

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// bitString renders the bits written so far as '0'/'1', including the
// pending ones.
func bitString(w *bitWriter) string {
	var sb strings.Builder
	for _, b := range w.buf {
		fmt.Fprintf(&sb, "%08b", b)
	}
	if w.nacc > 0 {
		fmt.Fprintf(&sb, "%0*b", w.nacc, w.acc&(1<<w.nacc-1))
	}
	return sb.String()
}

func TestExpGolomb(t *testing.T) {
	tests := []struct {
		write func(w *bitWriter)
		want  string
	}{
		{func(w *bitWriter) { w.ue(0) }, "1"},
		{func(w *bitWriter) { w.ue(1) }, "010"},
		{func(w *bitWriter) { w.ue(2) }, "011"},
		{func(w *bitWriter) { w.ue(3) }, "00100"},
		{func(w *bitWriter) { w.ue(8) }, "0001001"},
		{func(w *bitWriter) { w.ue(65535) }, strings.Repeat("0", 16) + "1" + strings.Repeat("0", 16)},
		{func(w *bitWriter) { w.se(1) }, "010"},
		{func(w *bitWriter) { w.se(-1) }, "011"},
		{func(w *bitWriter) { w.se(2) }, "00100"},
		{func(w *bitWriter) { w.se(-6) }, "0001101"},
		{func(w *bitWriter) { w.u(3, 5); w.trailing() }, "10110000"},
		{func(w *bitWriter) { w.u(32, 0xdeadbeef) }, fmt.Sprintf("%032b", 0xdeadbeef)},
	}
	for i, tt := range tests {
		var w bitWriter
		tt.write(&w)
		if got := bitString(&w); got != tt.want {
			t.Errorf("case %d: got %s, want %s", i, got, tt.want)
		}
	}
	for _, v := range []uint32{0, 1, 2, 7, 8, 254, 255, 65535, 1 << 20} {
		var w bitWriter
		w.ue(v)
		if got := len(bitString(&w)); got != ueBits(v) {
			t.Errorf("ueBits(%d) = %d, written %d", v, ueBits(v), got)
		}
	}
}

// unescape removes emulation_prevention_three_byte as a decoder does.
func unescape(nal []byte) []byte {
	var out []byte
	zeros := 0
	for _, b := range nal {
		if zeros >= 2 && b == 3 {
			zeros = 0
			continue
		}
		out = append(out, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

func TestAppendNALEscapes(t *testing.T) {
	rbsp := []byte{0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 4, 0, 0, 3, 0x80}
	want := []byte{0x65, 0, 0, 3, 0, 0, 3, 1, 0, 0, 3, 2, 0, 0, 4, 0, 0, 3, 3, 0x80}
	got := appendNAL(nil, 0x65, rbsp)
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
	if back := unescape(got[1:]); !bytes.Equal(back, rbsp) {
		t.Fatalf("round trip: got % x, want % x", back, rbsp)
	}
}

// decodeLevel is spec 9.2.2.1 for the first level of a block with
// TrailingOnes 0 and suffixLength 0, written independently of levelCode.
func decodeLevel(prefix, suffix int) int {
	code := min(15, prefix)
	if prefix >= 15 {
		code += 15
	}
	code += suffix + 2
	if code%2 == 0 {
		return (code + 2) >> 1
	}
	return (-code - 1) >> 1
}

func TestLevelCodeRoundTrip(t *testing.T) {
	for level := -2 * maxResidualSamples; level <= 2*maxResidualSamples; level++ {
		if level >= -1 && level <= 1 {
			continue
		}
		prefix, suffixLen, suffix := levelCode(level)
		wantLen := map[int]int{14: 4, 15: 12}[prefix]
		if prefix > 15 || suffixLen != wantLen || suffix < 0 || suffix >= 1<<suffixLen {
			t.Fatalf("level %d: prefix %d suffix %d/%d bits out of range", level, prefix, suffix, suffixLen)
		}
		if got := decodeLevel(prefix, suffix); got != level {
			t.Fatalf("level %d decodes as %d (prefix %d suffix %d)", level, got, prefix, suffix)
		}
	}
}

func TestDCLevelBitsMatchesWriter(t *testing.T) {
	for _, chroma := range []bool{false, true} {
		for level := -maxResidualSamples; level <= maxResidualSamples; level++ {
			var w bitWriter
			writeDCLevel(&w, level, chroma)
			if got, want := len(bitString(&w)), dcLevelBits(level, chroma); got != want {
				t.Fatalf("level %d chroma %v: wrote %d bits, dcLevelBits says %d", level, chroma, got, want)
			}
		}
	}
}

func TestChooseLevel(t *testing.T) {
	tests := []struct {
		w, h, fps, kbps int
		want            int
	}{
		{1280, 720, 30, 500, 31},
		{1280, 720, 60, 500, 32},
		{320, 180, 30, 200, 13},
		{320, 180, 30, 1000, 20},
		{640, 360, 30, 200, 30},
		{1920, 1080, 30, 500, 40},
		{1920, 1080, 60, 500, 42},
		{3840, 2160, 30, 500, 51},
		{7680, 4320, 60, 500, 61},
		{64, 64, 30, 50, 10},
		{8192, 8192, 240, 500, 0},
	}
	for _, tt := range tests {
		got, err := chooseLevel((tt.w+15)/16, (tt.h+15)/16, tt.fps, tt.kbps)
		if tt.want == 0 {
			if err == nil {
				t.Errorf("%dx%d@%d: got level %d, want an error", tt.w, tt.h, tt.fps, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%dx%d@%d %d kbit/s: got %d, %v; want %d", tt.w, tt.h, tt.fps, tt.kbps, got, err, tt.want)
		}
	}
}
