package gateway

import (
	"errors"
	"testing"

	pioncodecs "github.com/pion/rtp/codecs"
)

// keyCase is an RTP payload and whether IsKeyframe should call it a
// keyframe's start.
type keyCase struct {
	name    string
	payload []byte
	want    bool
}

// checkKeyframes runs IsKeyframe(c, …) on every case, one subtest each.
func checkKeyframes(t *testing.T, c Codec, cases []keyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsKeyframe(c, tc.payload); got != tc.want {
				t.Errorf("IsKeyframe(%s, % x) = %v, want %v", c, tc.payload, got, tc.want)
			}
		})
	}
}

func TestIsKeyframeH264(t *testing.T) {
	checkKeyframes(t, H264, []keyCase{
		{"empty", nil, false},
		{"single IDR", []byte{0x65, 0x88, 0x84}, true},
		{"single IDR, other NRI", []byte{0x25, 0x88}, true},
		{"single SPS", []byte{0x67, 0x42, 0xc0, 0x1f}, true},
		{"single PPS", []byte{0x68, 0xce, 0x3c, 0x80}, false},
		{"single non-IDR", []byte{0x41, 0x9a, 0x02}, false},
		{"single SEI", []byte{0x06, 0x05, 0x10}, false},
		{"STAP-A SPS+PPS", stapA(nal(0x67, 8), nal(0x68, 4)), true},
		{"STAP-A SEI then SPS", stapA(nal(0x06, 5), nal(0x67, 8), nal(0x68, 4)), true},
		{"STAP-A SEI then IDR", stapA(nal(0x06, 5), nal(0x65, 30)), true},
		{"STAP-A SEI and non-IDR", stapA(nal(0x06, 5), nal(0x41, 30)), false},
		{"STAP-A zero size", []byte{0x78, 0x00, 0x00, 0x67}, false},
		{"STAP-A truncated before NAL", []byte{0x78, 0x00, 0x08}, false},
		{"FU-A start of IDR", []byte{0x7c, 0x85, 0xb8}, true},
		{"FU-A middle of IDR", []byte{0x7c, 0x05, 0xb8}, false},
		{"FU-A end of IDR", []byte{0x7c, 0x45, 0xb8}, false},
		{"FU-A start of non-IDR", []byte{0x5c, 0x81, 0x9a}, false},
		{"FU-A header only", []byte{0x7c}, false},
		{"STAP-B is not parsed", []byte{0x79, 0x00, 0x01, 0x00, 0x08, 0x67}, false},
	})
}

// h265NAL builds an H.265 NAL unit of type typ (temporal id 1) and size bytes.
func h265NAL(typ byte, size int) []byte {
	b := make([]byte, max(size, 2))
	b[0], b[1] = typ<<1, 0x01
	return b
}

// h265AP builds an aggregation packet (type 48) without DONL.
func h265AP(nalus ...[]byte) []byte {
	p := []byte{48 << 1, 0x01}
	for _, n := range nalus {
		p = append(p, byte(len(n)>>8), byte(len(n)))
		p = append(p, n...)
	}
	return p
}

func TestIsKeyframeH265(t *testing.T) {
	fu := func(fuHeader byte) []byte { return []byte{49 << 1, 0x01, fuHeader, 0xaf, 0x02} }
	checkKeyframes(t, H265, []keyCase{
		{"empty", nil, false},
		{"one byte", []byte{0x26}, false},
		{"TRAIL_R", h265NAL(1, 20), false},
		{"TRAIL_N", h265NAL(0, 20), false},
		{"BLA_W_LP", h265NAL(16, 20), true},
		{"IDR_W_RADL", h265NAL(19, 20), true},
		{"IDR_N_LP", h265NAL(20, 20), true},
		{"CRA", h265NAL(21, 20), true},
		{"reserved IRAP 22", h265NAL(22, 20), false},
		{"VPS", h265NAL(32, 20), true},
		{"SPS", h265NAL(33, 20), true},
		{"PPS", h265NAL(34, 20), true},
		{"AUD", h265NAL(35, 3), false},
		{"prefix SEI", h265NAL(39, 20), false},
		{"AP with VPS SPS PPS", h265AP(h265NAL(32, 24), h265NAL(33, 40), h265NAL(34, 8)), true},
		{"AP with SEI then VPS", h265AP(h265NAL(39, 10), h265NAL(32, 24)), true},
		{"AP with AUD and TRAIL_R", h265AP(h265NAL(35, 3), h265NAL(1, 40)), false},
		{"AP zero size", []byte{48 << 1, 0x01, 0x00, 0x00, 0x40, 0x01}, false},
		{"FU start of IDR_W_RADL", fu(0x80 | 19), true},
		{"FU start of CRA", fu(0x80 | 21), true},
		{"FU middle of IDR_W_RADL", fu(19), false},
		{"FU end of IDR_W_RADL", fu(0x40 | 19), false},
		{"FU start of TRAIL_R", fu(0x80 | 1), false},
		{"FU without FU header", []byte{49 << 1, 0x01}, false},
		{"PACI is not parsed", h265NAL(50, 20), false},
	})
}

// OBU headers (type << 3, no extension, no size field).
const (
	obuSequenceHeader         = 1 << 3
	obuTemporalDelimiter      = 2 << 3
	obuFrame                  = 6 << 3
	av1AggZ, av1AggY, av1AggN = 0x80, 0x40, 0x08
)

func av1W(w byte) byte { return w << 4 }

func TestIsKeyframeAV1(t *testing.T) {
	// 16 bytes, so that its length byte misread as an OBU header is not a
	// sequence header by accident (lengths 8..15 would be).
	seqHdr := filled([]byte{obuSequenceHeader, 0x00, 0x00, 0x00, 0x24, 0x4f, 0x7e, 0x7f}, 16)
	frame := []byte{obuFrame, 0x10, 0x00, 0x40, 0x11}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	checkKeyframes(t, AV1, []keyCase{
		{"empty", nil, false},
		{"aggregation header only", []byte{av1W(1) | av1AggN}, false},
		{"N bit, W=1", cat([]byte{av1W(1) | av1AggN}, frame), true},
		{"N bit, W=0", cat([]byte{av1AggN, byte(len(frame))}, frame), true},
		{"sequence header first, W=0", cat([]byte{0x00, byte(len(seqHdr))}, seqHdr, []byte{byte(len(frame))}, frame), true},
		{"sequence header first, W=1", cat([]byte{av1W(1)}, seqHdr), true},
		{"sequence header first, W=2", cat([]byte{av1W(2), byte(len(seqHdr))}, seqHdr, frame), true},
		{"sequence header first, W=3", cat([]byte{av1W(3), byte(len(seqHdr))}, seqHdr, []byte{byte(len(frame))}, frame, frame), true},
		{"sequence header, two-byte LEB128 length", cat([]byte{0x00, 0x88, 0x00}, seqHdr), true},
		{"sequence header, Y=1", cat([]byte{av1W(1) | av1AggY}, seqHdr), true},
		{"frame OBU, W=1", cat([]byte{av1W(1)}, frame), false},
		{"frame OBU, W=0", cat([]byte{0x00, byte(len(frame))}, frame), false},
		{"temporal delimiter", cat([]byte{av1W(1)}, []byte{obuTemporalDelimiter, 0x00}), false},
		{"Z=1 continuation that looks like a sequence header", cat([]byte{av1AggZ | av1W(1)}, seqHdr), false},
		{"Z=1 continuation, W=0", cat([]byte{av1AggZ, byte(len(seqHdr))}, seqHdr), false},
		{"W=0 length runs off the end", []byte{0x00, 0x80, 0x80}, false},
	})
}

func TestIsKeyframeVP8(t *testing.T) {
	const keyTag, interTag = 0x50, 0x51 // frame tag byte 0: bit 0 is P (0 = key frame)
	checkKeyframes(t, VP8, []keyCase{
		{"empty", nil, false},
		{"key, no extension", []byte{0x10, keyTag, 0x01, 0x00, 0x9d, 0x01, 0x2a}, true},
		{"inter, no extension", []byte{0x10, interTag, 0x02, 0x00}, false},
		{"key, N bit set", []byte{0x30, keyTag, 0x01, 0x00}, true},
		{"key, continuation (S=0)", []byte{0x00, keyTag, 0x01}, false},
		{"key, partition 1", []byte{0x11, keyTag, 0x01}, false},
		{"key, 7-bit picture ID", []byte{0x90, 0x80, 0x05, keyTag, 0x01}, true},
		{"inter, 7-bit picture ID", []byte{0x90, 0x80, 0x05, interTag, 0x01}, false},
		{"key, 15-bit picture ID", []byte{0x90, 0x80, 0x81, 0x23, keyTag, 0x01}, true},
		{"inter, 15-bit picture ID", []byte{0x90, 0x80, 0x81, 0x23, interTag, 0x01}, false},
		// A 15-bit picture ID whose low byte has bit 0 clear must not be
		// read as the frame tag.
		{"inter, 15-bit picture ID ending in an even byte", []byte{0x90, 0x80, 0x81, 0x22, interTag}, false},
		{"key, picture ID, TL0PICIDX, TID/KEYIDX", []byte{0x90, 0xf0, 0x81, 0x23, 0x07, 0x40, keyTag}, true},
		{"inter, picture ID, TL0PICIDX, TID/KEYIDX", []byte{0x90, 0xf0, 0x81, 0x23, 0x07, 0x40, interTag}, false},
		{"key, extension without fields", []byte{0x90, 0x00, keyTag}, true},
		{"extension byte missing", []byte{0x90}, false},
		{"picture ID missing", []byte{0x90, 0x80}, false},
		{"frame tag missing", []byte{0x90, 0x80, 0x05}, false},
	})
}

func TestIsKeyframeVP9(t *testing.T) {
	checkKeyframes(t, VP9, []keyCase{
		{"empty", nil, false},
		{"P=0 B=1 (key frame start, with SS)", []byte{0x8b, 0x80, 0x01, 0x18}, true},
		{"P=0 B=1 flexible", []byte{0x98, 0x80, 0x01}, true},
		{"P=0 B=0 (later packet of a key frame)", []byte{0x85, 0x80, 0x01}, false},
		{"P=1 B=1 (inter frame start)", []byte{0xc9, 0x80, 0x02}, false},
		{"P=1 B=0", []byte{0xc5, 0x80, 0x02}, false},
	})
}

func TestIsKeyframeOpus(t *testing.T) {
	if !IsKeyframe(Opus, []byte{0xfc, 0xff, 0xfe}) {
		t.Error("IsKeyframe(Opus, …) = false, want true: every Opus packet decodes on its own")
	}
	if IsKeyframe(Codec("video/MPV"), []byte{0x65}) {
		t.Error("IsKeyframe of an unknown codec = true, want false")
	}
}

// keyFlags runs every payload through IsKeyframe.
func keyFlags(c Codec, payloads [][]byte) []bool {
	out := make([]bool, len(payloads))
	for i, p := range payloads {
		out[i] = IsKeyframe(c, p)
	}
	return out
}

// wantLeading checks that a fragmented keyframe is recognised on its first
// lead packets only (parameter sets, then the start of the picture), and
// that the frame took more packets than that.
func wantLeading(t *testing.T, c Codec, lead int, payloads [][]byte) {
	t.Helper()
	if len(payloads) < lead+2 {
		t.Fatalf("payloader gave %d packets, want a fragmented frame", len(payloads))
	}
	for i, got := range keyFlags(c, payloads) {
		if want := i < lead; got != want {
			t.Errorf("packet %d of %d (% x…): IsKeyframe = %v, want %v", i, len(payloads), payloads[i][:min(4, len(payloads[i]))], got, want)
		}
	}
}

func wantNone(t *testing.T, c Codec, payloads [][]byte) {
	t.Helper()
	if len(payloads) == 0 {
		t.Fatal("payloader gave no packets")
	}
	for i, got := range keyFlags(c, payloads) {
		if got {
			t.Errorf("packet %d of %d of an inter frame: IsKeyframe = true", i, len(payloads))
		}
	}
}

func annexB(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = append(b, 0, 0, 0, 1)
		b = append(b, n...)
	}
	return b
}

func filled(header []byte, size int) []byte {
	b := make([]byte, size)
	copy(b, header)
	for i := len(header); i < size; i++ {
		b[i] = byte(i*7 + 1) // no start codes inside
	}
	return b
}

func TestIsKeyframePionPayloaders(t *testing.T) {
	const mtu = 1200
	t.Run("H264", func(t *testing.T) {
		var p pioncodecs.H264Payloader
		idr := annexB(nal(0x09, 2), filled([]byte{0x67, 0x42, 0xc0, 0x1f}, 12), filled([]byte{0x68, 0xce}, 4), filled([]byte{0x65, 0x88}, 5000))
		wantLeading(t, H264, 2, p.Payload(mtu, idr))
		wantNone(t, H264, p.Payload(mtu, annexB(filled([]byte{0x41, 0x9a}, 4000))))
	})
	t.Run("H264 without STAP-A", func(t *testing.T) {
		p := pioncodecs.H264Payloader{DisableStapA: true}
		idr := annexB(filled([]byte{0x67, 0x42, 0xc0, 0x1f}, 12), filled([]byte{0x68, 0xce}, 4), filled([]byte{0x65, 0x88}, 5000))
		got := keyFlags(H264, p.Payload(mtu, idr))
		// SPS alone, PPS alone, then FU-A: the SPS and the FU-A start are both keys.
		want := []bool{true, false, true, false, false, false, false}
		if len(got) != len(want) {
			t.Fatalf("got %d packets, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("packet %d: IsKeyframe = %v, want %v", i, got[i], want[i])
			}
		}
	})
	t.Run("H265", func(t *testing.T) {
		var p pioncodecs.H265Payloader
		vps := filled([]byte{32 << 1, 0x01, 0x0c, 0x01, 0xff, 0xff}, 24)
		sps := filled([]byte{33 << 1, 0x01, 0x01, 0x01}, 40)
		pps := filled([]byte{34 << 1, 0x01, 0xc1, 0x72}, 8)
		idr := filled([]byte{19 << 1, 0x01, 0xaf}, 5000)
		wantLeading(t, H265, 2, p.Payload(mtu, annexB(vps, sps, pps, idr)))
		wantNone(t, H265, p.Payload(mtu, annexB(filled([]byte{1 << 1, 0x01, 0xd0}, 4000))))
	})
	t.Run("AV1", func(t *testing.T) {
		var p pioncodecs.AV1Payloader
		// OBUs with size fields, as an encoder writes them (low-overhead format).
		obu := func(hdr byte, size int) []byte {
			body := filled(nil, size)
			b := []byte{hdr | 0x02}
			for n := size; ; n >>= 7 { // LEB128
				if n < 0x80 {
					b = append(b, byte(n))
					break
				}
				b = append(b, byte(n&0x7f)|0x80)
			}
			return append(b, body...)
		}
		key := append(append(obu(obuTemporalDelimiter, 0), obu(obuSequenceHeader, 12)...), obu(obuFrame, 5000)...)
		wantLeading(t, AV1, 1, p.Payload(mtu, key))
		inter := append(obu(obuTemporalDelimiter, 0), obu(obuFrame, 4000)...)
		wantNone(t, AV1, p.Payload(mtu, inter))
	})
	t.Run("VP8", func(t *testing.T) {
		for _, pid := range []bool{false, true} {
			p := pioncodecs.VP8Payloader{EnablePictureID: pid}
			key := filled([]byte{0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00}, 5000)
			wantLeading(t, VP8, 1, p.Payload(mtu, key))
			wantNone(t, VP8, p.Payload(mtu, filled([]byte{0x51, 0x02, 0x00}, 4000)))
		}
	})
}

func TestParseCodec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Codec
	}{
		{"video/H264", H264}, {"h264", H264}, {"AVC", H264},
		{"video/h265", H265}, {"HEVC", H265}, {"video/hevc", H265},
		{"av1", AV1}, {"video/AV1", AV1},
		{"vp8", VP8}, {" VP9 ", VP9},
		{"audio/opus", Opus}, {"OPUS", Opus},
	} {
		got, err := ParseCodec(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseCodec(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "mpeg2", "audio/aac", "video/"} {
		if c, err := ParseCodec(in); !errors.Is(err, ErrUnsupportedCodec) {
			t.Errorf("ParseCodec(%q) = %q, %v; want ErrUnsupportedCodec", in, c, err)
		}
	}
	if got := Opus.ClockRate(); got != 48000 {
		t.Errorf("Opus clock rate %d, want 48000", got)
	}
	if got := AV1.ClockRate(); got != 90000 {
		t.Errorf("AV1 clock rate %d, want 90000", got)
	}
	if H265.Kind() != KindVideo || Opus.Kind() != KindAudio {
		t.Errorf("kinds: H265 %v, Opus %v", H265.Kind(), Opus.Kind())
	}
}
